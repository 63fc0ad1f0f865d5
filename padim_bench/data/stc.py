"""ShanghaiTech Campus (STC): the official layout, the paper's protocol and the loaders.

Layout (Luo et al., ICCV 2017; the files as distributed)::

    ROOT/training/videos/<scene>_<clip>.avi               normal videos, one folder for all scenes
    ROOT/testing/frames/<scene>_<clip>/<NNN>.jpg          test frames, numbered from 000
    ROOT/testing/test_frame_mask/<scene>_<clip>.npy       (frames,) per-frame labels, 1 = anomalous
    ROOT/testing/test_pixel_mask/<scene>_<clip>.npy       (frames, H, W) pixel masks, non-zero = anomalous

The scene is the part of the name before the first ``_`` (``01`` .. ``13``).

Protocol (PaDiM paper Sec. IV-A and Table IV, following SPADE, Cohen and Hoshen 2020):

* one model per scene, trained on that scene's training videos; a scene without test clips (real
  STC's scene 13) is reported as such, not fitted;
* frames resized to 256 x 256 without a crop (a 64 x 64 grid for stride-4 features);
* training frames subsampled by one stride for every video: frames 0, s, 2s, ... of each video.
  By default (``dataset.train_stride: null``) ``s`` is the smallest stride that keeps at most
  ``dataset.train_frames_total`` (5,000, SPADE's "about 5,000 frames") frames over every training
  video of the dataset, whatever scenes a run covers, so a scene's frames never depend on the
  ``categories`` selection; the stride used is recorded;
* test frames subsampled by ``dataset.test_stride`` (5): frames 0, 5, 10, ... of each clip;
* metrics: pixel ROC-AUC over every test pixel of a scene, and pooled over every scene; frame-level
  ROC-AUC (see the runner).

Alignment is checked per clip, before any model is loaded: the JPEG frames must be numbered
exactly 0 .. n-1 and their count must equal the frame mask's length and the pixel mask's first
dimension; the pixel masks' ``H x W`` must be the frames' size. A mismatch is a
:class:`~padim_bench.errors.DataError` naming the clip and the counts.

Videos are decoded with PyAV (``av`` on PyPI), the maintained binding to FFmpeg's libraries: it
decodes every codec FFmpeg does (real STC's AVI files included), reads a video's frame count from
its container header without decoding (or counts packets when the header has none), and decodes
sequentially into numpy with little overhead. torchvision's video API is deprecated, and OpenCV
would add a large dependency for this one use. Masks are read with ``np.load(allow_pickle=False,
mmap_mode='r')``: never unpickled, and only the selected frames' masks are paged in.

Nothing holds all training frames: :class:`VideoFrames` decodes one video at a time and yields the
selected frames as they come (PaDiM streams its statistics over them; SPADE's bank is allocated
once, at the predicted size).
"""

from __future__ import annotations

import re
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch

from ..errors import ConfigError, DataError
from .images import image_size, load_image
from .prefetch import ThreadPrefetcher

STC_SCENES = 13
#: scenes of real STC that have test clips (01 .. 12; 13 has training videos only)
STC_TEST_SCENES = 12
VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".mov")
FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png")
_NAME = re.compile(r"^([^_]+)_(.+)$")


def _av():
    try:
        import av
    except ImportError:  # pragma: no cover - av is a dependency of padim-bench
        raise DataError("reading STC videos needs PyAV: pip install av (a dependency of padim-bench)") from None
    return av


def decoder_name() -> str:
    """``PyAV <version> (FFmpeg <version>)``, recorded in results."""
    av = _av()
    libav = getattr(av, "library_versions", {}).get("libavcodec")
    return f"PyAV {av.__version__}" + (f" (libavcodec {'.'.join(map(str, libav))})" if libav else "")


# ------------------------------------------------------------------------------------ records
@dataclass(frozen=True)
class VideoInfo:
    """One training video: its file, scene, frame count and where the count comes from
    (``header``: the container's frame count; ``packets``: counted by demuxing, no decoding)."""

    path: Path
    scene: str
    n_frames: int
    count_source: str


@dataclass(frozen=True)
class ClipInfo:
    """One test clip: its name, scene, frame files (``frames[i]`` is frame ``i``), mask files,
    frame size ``(width, height)`` and per-frame labels (uint8 ``(n,)`` in {0, 1})."""

    name: str
    scene: str
    frames: tuple[Path, ...]
    frame_mask: Path
    pixel_mask: Path
    size: tuple[int, int]
    labels: tuple[int, ...]

    @property
    def n_frames(self) -> int:
        return len(self.frames)


@dataclass(frozen=True)
class TrainFrame:
    """Frame ``frame`` (0-based, in decoding order) of training video ``path`` (``n_frames`` long).
    ``label``, ``defect`` and ``mask_path`` mirror :class:`~padim_bench.data.mvtec.Sample`."""

    path: Path
    frame: int
    n_frames: int
    label: int = 0
    defect: str = "normal"
    mask_path: Path | None = None


@dataclass(frozen=True)
class TestFrame:
    """Test frame ``frame`` of clip ``defect``: its JPEG ``path``, frame label (0 / 1) and the clip's
    pixel-mask file ``mask_path`` (the frame's mask is ``np.load(mask_path)[frame]``)."""

    path: Path
    label: int
    defect: str
    mask_path: Path
    frame: int


@dataclass(frozen=True)
class StcLayout:
    """A scanned STC root: every training video and every aligned test clip."""

    root: Path
    videos: tuple[VideoInfo, ...]
    clips: tuple[ClipInfo, ...]
    skipped: tuple[str, ...] = ()

    def scenes(self) -> list[str]:
        """Every scene with a training video or a test clip, sorted."""
        return sorted({v.scene for v in self.videos} | {c.scene for c in self.clips}, key=_scene_key)

    def test_scenes(self) -> list[str]:
        return sorted({c.scene for c in self.clips}, key=_scene_key)


@dataclass(frozen=True)
class StcSplit:
    """One scene's training frames (selected by ``train_stride``) and test frames (by
    ``test_stride``), the same interface as :class:`~padim_bench.data.mvtec.CategorySplit`."""

    name: str
    root: Path
    train: tuple[TrainFrame, ...]
    test: tuple[TestFrame, ...]
    videos: tuple[VideoInfo, ...]
    clips: tuple[ClipInfo, ...]
    train_stride: int
    test_stride: int
    skipped: tuple[str, ...] = field(default=())

    def data_files(self, train_only: bool = False) -> list[Path]:
        """Files the scene's results depend on: videos, and (unless ``train_only``) every frame of
        the selected test frames, and the clips' mask files."""
        files = [v.path for v in self.videos]
        if not train_only:
            files += [s.path for s in self.test]
            files += [p for c in self.clips for p in (c.frame_mask, c.pixel_mask)]
        return files

    @property
    def fingerprint_salt(self) -> str:
        """The protocol figures that select frames, part of the data fingerprints: a scene's
        frames change when the derived stride changes, even if its own files did not."""
        return f"stc train_stride={self.train_stride} test_stride={self.test_stride}"

    def describe(self) -> dict[str, Any]:
        """Plain-data protocol facts of the scene, for results."""
        return {
            "train_videos": len(self.videos),
            "train_frames_available": sum(v.n_frames for v in self.videos),
            "train_frames_used": len(self.train),
            "train_stride": self.train_stride,
            "frame_counts": sorted({v.count_source for v in self.videos}),
            "test_clips": [c.name for c in self.clips],
            "test_frames_available": sum(c.n_frames for c in self.clips),
            "test_frames_used": len(self.test),
            "test_stride": self.test_stride,
            "skipped_files": list(self.skipped),
        }


def _scene_key(scene: str) -> tuple:
    return (0, int(scene), scene) if scene.isdigit() else (1, 0, scene)


def _split_name(name: str, what: Path) -> str:
    m = _NAME.match(name)
    if not m:
        raise DataError(f"{what}: name {name!r} is not <scene>_<clip> (STC layout, e.g. 01_001.avi, 01_0014)")
    return m.group(1)


# ------------------------------------------------------------------------------------- videos
def video_frame_count(path: str | Path) -> tuple[int, str]:
    """Frames of a video without decoding them all: the container's count when it has one
    (``header``), else the number of video packets (``packets``, demuxed, not decoded). The first
    frame is decoded to check that the stream is readable.

    Returns:
        ``(n_frames, source)``.

    Raises:
        DataError: the file is missing, not a video, has no video stream, no frame, or its first
            frame does not decode (the message names the file and FFmpeg's reason).
    """
    av = _av()
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                raise DataError(f"{path}: no video stream")
            stream = c.streams.video[0]
            n, source = int(stream.frames or 0), "header"
            if n <= 0:
                n, source = sum(1 for p in c.demux(stream) if p.size), "packets"
        if n <= 0:
            raise DataError(f"{path}: no video frame")
        with av.open(str(path)) as c:
            next(iter(c.decode(video=0)))
    except StopIteration:
        raise DataError(f"{path}: no decodable video frame") from None
    except (av.FFmpegError, OSError, ValueError) as e:
        raise DataError(f"{path}: cannot read video ({type(e).__name__}: {e})") from None
    return n, source


def select_frames(n_frames: int, stride: int) -> range:
    """Frames kept by a stride: ``0, stride, 2 * stride, ...`` below ``n_frames``
    (``ceil(n_frames / stride)`` of them)."""
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    return range(0, n_frames, stride)


def derive_train_stride(frame_counts: Sequence[int], target: int) -> int:
    """The smallest stride ``s >= 1`` for which ``sum(ceil(n / s))`` over the videos is at most
    ``target`` (SPADE's STC protocol: about 5,000 training frames), so the frames kept are as
    close to ``target`` as one stride for every video allows, never above it (unless even one
    frame per video is more: then the longest video's length, one frame per video).

    Raises:
        ValueError: ``target`` < 1.
    """
    if target < 1:
        raise ValueError(f"target must be >= 1, got {target}")
    counts = [int(n) for n in frame_counts if n > 0]
    if not counts:
        return 1
    kept = lambda s: sum(-(-n // s) for n in counts)  # noqa: E731
    lo, hi = 1, max(counts)  # kept(max) == len(counts); kept is non-increasing in s
    if kept(hi) > target:
        return hi  # one frame per video is still more than the target: as few as possible
    while lo < hi:
        mid = (lo + hi) // 2
        if kept(mid) <= target:
            hi = mid
        else:
            lo = mid + 1
    return lo


# ---------------------------------------------------------------------------------- scanning
def _list_files(folder: Path, exts: tuple[str, ...]) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in exts and not p.name.startswith("."))


def _npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of an ``.npy`` file from its header (no data read, never unpickled)."""
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (ValueError, OSError) as e:
        raise DataError(f"{path}: not a readable .npy array ({e})") from None
    if not isinstance(arr, np.ndarray):
        raise DataError(f"{path}: expected one .npy array")
    if arr.dtype.kind not in "biuf":
        raise DataError(f"{path}: dtype {arr.dtype} is not numeric")
    return tuple(arr.shape), arr.dtype


def scan_clip(root: Path, name: str) -> ClipInfo:
    """Check one test clip's frames and masks against each other.

    Raises:
        DataError: a missing mask file, frame files not numbered exactly 0 .. n-1, a count mismatch
            (naming the clip, the number of frames, of labels and of pixel-mask frames), labels not
            in {0, 1}, or masks of another size than the frames.
    """
    test = root / "testing"
    frames_dir = test / "frames" / name
    fmask, pmask = test / "test_frame_mask" / f"{name}.npy", test / "test_pixel_mask" / f"{name}.npy"
    for p in (fmask, pmask):
        if not p.is_file():
            raise DataError(f"clip {name}: {p} not found (each testing/frames/<clip> needs its frame and pixel mask)")
    files = _list_files(frames_dir, FRAME_EXTENSIONS)
    if not files:
        raise DataError(f"clip {name}: no frames in {frames_dir} (expected 000.jpg, 001.jpg, ...)")
    numbered = {}
    for p in files:
        if not p.stem.isdigit():
            raise DataError(f"clip {name}: frame file {p.name} is not numbered (expected 000.jpg, 001.jpg, ...)")
        if int(p.stem) in numbered:
            raise DataError(f"clip {name}: frame {int(p.stem)} twice ({numbered[int(p.stem)].name}, {p.name})")
        numbered[int(p.stem)] = p
    f_shape, _ = _npy_header(fmask)
    p_shape, _ = _npy_header(pmask)
    n_labels = f_shape[0] if len(f_shape) == 1 else None
    if n_labels is None:
        raise DataError(f"clip {name}: {fmask} has shape {f_shape}; expected (frames,)")
    if len(p_shape) != 3:
        raise DataError(f"clip {name}: {pmask} has shape {p_shape}; expected (frames, height, width)")
    if not (len(files) == n_labels == p_shape[0]):
        raise DataError(f"clip {name}: {len(files)} frames in {frames_dir}, {n_labels} labels in {fmask.name} "
                        f"(test_frame_mask), {p_shape[0]} masks in {pmask.name} (test_pixel_mask); they must be equal")
    missing = [i for i in range(len(files)) if i not in numbered]
    if missing:
        extra = sorted(set(numbered) - set(range(len(files))))
        raise DataError(f"clip {name}: frame {missing[0]} is missing from {frames_dir} (frames must be numbered "
                        f"0 .. {len(files) - 1}; found {numbered[extra[0]].name} instead)")
    w, h = image_size(numbered[0])
    if (p_shape[1], p_shape[2]) != (h, w):
        raise DataError(f"clip {name}: pixel masks are {p_shape[2]}x{p_shape[1]}, frames are {w}x{h} "
                        f"({pmask.name}, {numbered[0].name})")
    labels = np.load(fmask, allow_pickle=False)
    bad = np.setdiff1d(np.unique(labels), [0, 1])
    if bad.size:
        raise DataError(f"clip {name}: {fmask.name} holds {bad[:5].tolist()}; frame labels must be 0 or 1")
    return ClipInfo(name, _split_name(name, frames_dir), tuple(numbered[i] for i in range(len(files))),
                    fmask, pmask, (w, h), tuple(int(v) for v in labels))


def scan_stc(root: str | Path, on_unreadable: str = "error", threads: int = 2) -> StcLayout:
    """Scan an STC root: every training video (frame count, first frame decodable) and every test
    clip (aligned, see :func:`scan_clip`).

    Args:
        root: the folder holding ``training/`` and ``testing/``.
        on_unreadable: ``error`` (an unreadable video stops here) or ``skip`` (left out, listed).
        threads: videos probed in parallel (FFmpeg releases the GIL).

    Raises:
        DataError: not the STC layout, an unreadable video (under ``error``), a clip whose frames
            and masks disagree, masks without frames (or the reverse), or no training video.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"dataset root not found: {root} (set dataset.root or --data-root)")
    vdir, fdir = root / "training" / "videos", root / "testing" / "frames"
    if not vdir.is_dir():
        raise DataError(f"{vdir}: folder not found (STC layout: training/videos/<scene>_<clip>.avi)")
    files = _list_files(vdir, VIDEO_EXTENSIONS)
    if not files:
        raise DataError(f"{vdir}: no training videos ({', '.join(VIDEO_EXTENSIONS)})")
    scenes = [_split_name(p.stem, p) for p in files]

    def probe(p: Path) -> tuple[int, str] | str:
        try:
            return video_frame_count(p)
        except DataError as e:
            return str(e)

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        counts = list(pool.map(probe, files))
    bad = [c for c in counts if isinstance(c, str)]
    if bad and on_unreadable != "skip":
        more = f" (and {len(bad) - 3} more)" if len(bad) > 3 else ""
        raise DataError(f"{len(bad)} unreadable training video(s): " + "; ".join(bad[:3]) + more
                        + ". Fix or remove them, or set dataset.on_unreadable: skip to leave them out")
    if bad:
        warnings.warn(f"skipped {len(bad)} unreadable training video(s) (dataset.on_unreadable: skip): {bad[0]}")
    videos = tuple(VideoInfo(p, s, *c) for p, s, c in zip(files, scenes, counts) if not isinstance(c, str))
    if not videos:
        raise DataError(f"{vdir}: no readable training video")
    clips: list[ClipInfo] = []
    if fdir.is_dir():
        names = sorted(p.name for p in fdir.iterdir() if p.is_dir() and not p.name.startswith("."))
        clips = [scan_clip(root, n) for n in names]
        for kind in ("test_frame_mask", "test_pixel_mask"):
            folder = root / "testing" / kind
            orphans = sorted(p.stem for p in folder.glob("*.npy") if p.stem not in names) if folder.is_dir() else []
            if orphans:
                raise DataError(f"{folder}: mask(s) without a testing/frames/<clip> folder: {', '.join(orphans[:5])}")
    return StcLayout(root, videos, tuple(clips), tuple(bad))


# ------------------------------------------------------------------------------------ splits
@dataclass(frozen=True)
class StcPlan:
    """What an STC run covers: the scene splits, the scenes reported without a model, and the
    protocol figures (recorded in results)."""

    splits: tuple[StcSplit, ...]
    scenes_without_test: tuple[str, ...]
    info: dict[str, Any]


def resolve_scenes(layout: StcLayout, wanted: str | list[str]) -> tuple[list[str], list[str]]:
    """``(scenes to fit, scenes without test clips)`` for ``dataset.categories``.

    Raises:
        ConfigError: a listed scene is not in the dataset (the message lists those that are).
        DataError: a scene has test clips but no training video, or no scene has test clips.
    """
    found = layout.scenes()
    if wanted == "all":
        chosen = found
    else:
        chosen = [wanted] if isinstance(wanted, str) else list(dict.fromkeys(wanted))
        missing = [s for s in chosen if s not in found]
        if missing:
            raise ConfigError(f"dataset.categories: scene(s) {', '.join(missing)} not found under {layout.root}. "
                              f"Scenes: {', '.join(found)} (quote them in YAML: ['01'])")
    trained = {v.scene for v in layout.videos}
    tested = set(layout.test_scenes())
    untrained = [s for s in chosen if s in tested and s not in trained]
    if untrained:
        raise DataError(f"scene(s) {', '.join(untrained)}: test clips but no training video in "
                        f"{layout.root / 'training' / 'videos'}")
    fit = [s for s in chosen if s in tested]
    if not fit:
        raise DataError(f"{layout.root}: none of the scenes {', '.join(chosen)} has test clips in testing/frames")
    return fit, [s for s in chosen if s not in tested]


def make_plan(layout: StcLayout, wanted: str | list[str], train_stride: int | None, train_frames_total: int,
              test_stride: int) -> StcPlan:
    """The scene splits of an STC run (see the module doc for the protocol).

    Args:
        layout: the scanned dataset.
        wanted: ``dataset.categories``: ``all`` or scene names.
        train_stride: stride over every training video; ``None``: derived from
            ``train_frames_total`` over every training video of the dataset.
        train_frames_total: the target number of training frames over the whole dataset.
        test_stride: stride over every test clip.

    Raises:
        ConfigError, DataError: see :func:`resolve_scenes`.
    """
    fit, no_test = resolve_scenes(layout, wanted)
    counts = [v.n_frames for v in layout.videos]
    stride = train_stride if train_stride is not None else derive_train_stride(counts, train_frames_total)
    splits = []
    for scene in fit:
        videos = tuple(v for v in layout.videos if v.scene == scene)
        clips = tuple(c for c in layout.clips if c.scene == scene)
        train = tuple(TrainFrame(v.path, i, v.n_frames) for v in videos for i in select_frames(v.n_frames, stride))
        test = tuple(TestFrame(c.frames[i], c.labels[i], c.name, c.pixel_mask, i)
                     for c in clips for i in select_frames(c.n_frames, test_stride))
        skipped = tuple(s for s in layout.skipped if f"/{scene}_" in s.replace("\\", "/"))
        splits.append(StcSplit(scene, layout.root, train, test, videos, clips, stride, test_stride, skipped))
    info = {
        "decoder": decoder_name(),
        "scenes": layout.scenes(),
        "scenes_fitted": fit,
        "scenes_without_test": no_test,
        "train_videos": len(layout.videos),
        "train_frames_available": sum(counts),
        "train_stride": stride,
        "train_stride_source": "dataset.train_stride" if train_stride is not None else
                               f"derived: smallest stride keeping <= {train_frames_total} frames over every video",
        "train_frames_selected_all_scenes": sum(len(select_frames(n, stride)) for n in counts),
        "test_stride": test_stride,
        "test_clips": len(layout.clips),
        "skipped_videos": list(layout.skipped),
    }
    return StcPlan(tuple(splits), tuple(no_test), info)


def protocol_text(info: dict[str, Any], resize: int) -> str:
    """One line stating the protocol a run used (printed under every STC table)."""
    no_test = info.get("scenes_without_test") or []
    every = lambda n: "every frame" if n == 1 else f"1 frame in {n}"  # noqa: E731
    return (f"STC protocol: one model per scene; frames resized to {resize}x{resize}, no crop; training frames: "
            f"{every(info['train_stride'])} of each video ({info['train_frames_selected_all_scenes']} of "
            f"{info['train_frames_available']} over all scenes); test frames: {every(info['test_stride'])} of each clip"
            + (f"; scene(s) without test clips, not evaluated: {', '.join(no_test)}" if no_test else ""))


def check_test_frames(split: StcSplit, on_unreadable: str = "error", threads: int = 2) -> tuple[StcSplit, list[str]]:
    """Decode every selected test frame once (Pillow), before any model is loaded.

    Returns:
        ``(split, skipped)``: the split without unreadable frames (under ``skip``) and one line
        per skipped file.

    Raises:
        DataError: an unreadable frame under ``error`` (up to 5 named), or no test frame left.
    """
    from .verify import file_problem

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        problems = list(pool.map(lambda s: file_problem(s.path), split.test))
    bad = [f"{s.path}: {p}" for s, p in zip(split.test, problems) if p is not None]
    if not bad:
        return split, list(split.skipped)
    if on_unreadable != "skip":
        more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
        raise DataError(f"scene {split.name}: {len(bad)} unreadable test frame(s): " + "; ".join(bad[:5]) + more
                        + ". Fix them, or set dataset.on_unreadable: skip to leave them out (counted in the results)")
    test = tuple(s for s, p in zip(split.test, problems) if p is None)
    if not test:
        raise DataError(f"scene {split.name}: no readable test frame left after skipping {len(bad)}")
    warnings.warn(f"scene {split.name}: skipped {len(bad)} unreadable test frame(s) (dataset.on_unreadable: skip): {bad[0]}")
    from dataclasses import replace

    return replace(split, test=test), list(split.skipped) + bad


def prepare(ds: Any, threads: int = 2) -> tuple[StcPlan, dict[str, list[str]]]:
    """Scan ``ds.root``, plan the scenes and check the selected test frames (the runner's STC
    entry point; ``ds`` is the :class:`~padim_bench.config.DatasetConfig`).

    Returns:
        ``(plan, skipped)``: the plan (its splits without unreadable frames) and, per scene, the
        skipped files.

    Raises:
        ConfigError, DataError: see :func:`scan_stc`, :func:`make_plan`, :func:`check_test_frames`.
    """
    from dataclasses import replace

    layout = scan_stc(ds.root, ds.on_unreadable, threads)
    plan = make_plan(layout, ds.categories, ds.train_stride, ds.train_frames_total, ds.test_stride)
    splits, skipped = [], {}
    for s in plan.splits:
        s2, skipped[s.name] = check_test_frames(s, ds.on_unreadable, threads)
        splits.append(s2)
    return replace(plan, splits=tuple(splits)), skipped


# ----------------------------------------------------------------------------------- loading
class VideoFrames(torch.utils.data.IterableDataset):
    """Training frames decoded video by video: yields ``(image, 0)`` per selected frame, image
    float32 ``(3, S, S)`` in [0, 1] (the runner's :class:`~padim_bench.data.transforms.Preprocess`).

    Each video is opened, decoded sequentially up to its last selected frame (inter-coded video
    cannot skip decoding) and closed; only the selected frames are converted to RGB. Memory holds
    one decoded frame plus the DataLoader's batches, never the video. With DataLoader workers,
    worker ``k`` of ``W`` decodes videos ``k, k + W, ...`` (deterministic order).

    Raises (while iterating):
        DataError: a video that fails to decode, or ends before a selected frame (naming the video,
            the frames decoded and the count its header gave).
    """

    def __init__(self, samples: Sequence[TrainFrame], prep: Any):
        plan: dict[Path, list[int]] = {}
        total: dict[Path, int] = {}
        for s in samples:
            plan.setdefault(s.path, []).append(s.frame)
            total[s.path] = s.n_frames
        self.plan = [(p, sorted(f), total[p]) for p, f in plan.items()]
        self.prep = prep
        self.n = len(samples)

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[tuple[torch.Tensor, int]]:
        info = torch.utils.data.get_worker_info()
        plan = self.plan if info is None else self.plan[info.id :: info.num_workers]
        for path, frames, n in plan:
            yield from self._decode(path, frames, n)

    def _decode(self, path: Path, frames: list[int], n: int) -> Iterator[tuple[torch.Tensor, int]]:
        av = _av()
        wanted, last, i = set(frames), frames[-1], -1
        try:
            with av.open(str(path)) as c:
                stream = c.streams.video[0]
                stream.thread_type = "AUTO"
                for i, frame in enumerate(c.decode(stream)):
                    if i in wanted:
                        arr = frame.to_ndarray(format="rgb24").astype(np.float32) / 255.0
                        yield self.prep.image(arr), 0
                    if i >= last:
                        break
        except (av.FFmpegError, OSError) as e:
            raise DataError(f"{path}: decoding failed at frame {i + 1} ({type(e).__name__}: {e})") from None
        if i < last:
            raise DataError(f"{path}: only {i + 1} frames decode, its header says {n}; selected frame {last} is missing "
                            "(re-encode the video or remove it; the layout check reads only its header and first frame)")


class ClipFrames(torch.utils.data.Dataset):
    """Selected test frames: ``(image (3,S,S) float32 in [0, 1], mask (S,S) uint8 in {0, 1}, label,
    index)``. The image is the JPEG, the mask ``np.load(pixel_mask, mmap_mode='r')[frame] != 0``
    resized with nearest-neighbour (so only that frame's mask is read)."""

    def __init__(self, samples: Sequence[TestFrame], prep: Any):
        self.samples = list(samples)
        self.prep = prep
        self._masks: dict[Path, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.samples)

    def mask(self, s: TestFrame) -> np.ndarray:
        """bool ``(H, W)`` pixel mask of test frame ``s`` at the frame's own size."""
        m = self._masks.get(s.mask_path)
        if m is None:
            m = self._masks[s.mask_path] = np.load(s.mask_path, mmap_mode="r", allow_pickle=False)
        return np.asarray(m[s.frame]) != 0

    def __getitem__(self, i: int):
        s = self.samples[i]
        img = self.prep.image(load_image(s.path))
        return img, self.prep.mask(self.mask(s)), s.label, i


def make_stc_loader(samples: Sequence[TrainFrame] | Sequence[TestFrame], prep: Any, batch_size: int,
                    workers: int) -> Iterable:
    """A DataLoader over training frames (:class:`VideoFrames`) or test frames (:class:`ClipFrames`),
    in order, ``workers`` decoding processes; with 0, decoded by a thread of this process one batch
    ahead (:class:`~padim_bench.data.prefetch.ThreadPrefetcher`)."""
    if samples and isinstance(samples[0], TrainFrame):
        ds: torch.utils.data.Dataset = VideoFrames(samples, prep)
        workers = min(workers, len(ds.plan))  # an idle worker would only cost a process
    else:
        ds = ClipFrames(samples, prep)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=workers,
                                         persistent_workers=False)
    return loader if workers else ThreadPrefetcher(loader)
