"""Scanning an STC root: every training video's frame count (PyAV, without decoding it all) and
every test clip's frames, labels and pixel masks checked against each other."""

from __future__ import annotations

import re
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ...errors import DataError
from ..images import image_size
from .records import ClipInfo, StcLayout, VideoInfo

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


