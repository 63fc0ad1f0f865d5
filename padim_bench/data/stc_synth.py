"""A small synthetic dataset in the exact ShanghaiTech Campus (STC) layout, for tests and demos.

Real STC (Luo et al., "A Revisit of Sparse Coding Based Anomaly Detection in Stacked RNN
Framework", ICCV 2017) is 13 camera scenes of a campus; its training set is normal videos, its test
set JPEG frames with per-frame labels and pixel masks. This module writes the same layout::

    ROOT/training/videos/<scene>_<NNN>.avi           normal videos (MPEG-4 part 2 in AVI, via PyAV)
    ROOT/testing/frames/<scene>_<NNNN>/<NNN>.jpg     test frames, numbered from 000
    ROOT/testing/test_frame_mask/<scene>_<NNNN>.npy  uint8 (frames,) labels, 1 = anomalous frame
    ROOT/testing/test_pixel_mask/<scene>_<NNNN>.npy  uint8 (frames, H, W) masks, 1 = anomalous pixel

What the frames show (every choice drawn from ``numpy.random.default_rng(seed)``, so the same
arguments always write the same pixels and masks):

* a static background per scene: smoothed colour noise with a lighter horizontal "path" and a few
  darker blocks ("buildings"), the same in that scene's training videos and test clips;
* normal activity: small dark-grey "pedestrians" (``6 x 12`` pixels) walking along the path at 1 to
  2 pixels per frame, in training and test alike;
* anomalies (test clips only): one saturated orange disc (a "vehicle", radius ``H // 9``) crossing
  the frame at 3 to 5 pixels per frame during a window of frames. Its pixel mask is exactly the
  disc's pixels (any pedestrian it covers is hidden, the mask is the disc); a frame's label is 1
  exactly when its mask has an anomalous pixel.

Lossy coding (MPEG-4 for videos, JPEG quality 95 for frames) changes pixel values slightly, never
the layout or the masks. Writing the default dataset takes about a second.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.ndimage
from PIL import Image

MARKER_NAME = ".padim_bench_synthetic_stc.json"
"""Written at the dataset root with the generator's parameters: runs on this data are labelled
synthetic (:func:`padim_bench.data.origin.synthetic_origin`)."""

#: pedestrians: (width, height) in pixels
PEDESTRIAN = (6, 12)
VIDEO_CODEC = "mpeg4"  # MPEG-4 part 2, inter-coded like real STC's videos; in every PyAV wheel


@dataclass(frozen=True)
class SyntheticStc:
    """What :func:`generate_stc` wrote.

    Attributes:
        root: the dataset root (what ``--data-root`` takes).
        size: ``(width, height)`` of every frame in pixels.
        train_videos: ``{scene: [video path, ...]}``.
        train_frames: frames per training video.
        test_clips: ``{clip name: number of frames}``.
        anomalous_frames: ``{clip name: number of frames labelled 1}``.
        scenes_without_test: scenes that have training videos only.
    """

    root: Path
    size: tuple[int, int]
    train_videos: dict[str, list[Path]]
    train_frames: int
    test_clips: dict[str, int]
    anomalous_frames: dict[str, int]
    scenes_without_test: tuple[str, ...]


def _background(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """Static scene: float32 ``(H, W, 3)`` in [0, 255]."""
    noise = rng.normal(0.0, 1.0, size=(h, w, 3))
    noise = scipy.ndimage.gaussian_filter(noise, sigma=(2.0, 2.0, 0.0))
    noise = noise / (np.abs(noise).max() + 1e-9)
    tint = rng.uniform(90, 150, size=3)
    bg = tint + 40.0 * noise
    top = h // 2 - h // 8
    bg[top : top + h // 4] += 35.0  # the path people walk along
    for _ in range(3):  # darker blocks
        bw, bh = int(rng.integers(w // 10, w // 5)), int(rng.integers(h // 8, h // 4))
        x, y = int(rng.integers(0, w - bw)), int(rng.integers(0, max(1, top - bh)))
        bg[y : y + bh, x : x + bw] -= 45.0
    return np.clip(bg, 0, 255).astype(np.float32)


@dataclass
class _Walker:
    x: float
    y: int
    speed: float
    grey: float


def _walkers(rng: np.random.Generator, w: int, h: int, n: int) -> list[_Walker]:
    top = h // 2 - h // 8
    ys = rng.integers(top, top + h // 4 - PEDESTRIAN[1] + 1, size=n)
    return [_Walker(float(rng.uniform(0, w)), int(y), float(rng.choice([-1, 1]) * rng.uniform(1.0, 2.0)),
                    float(rng.uniform(30, 70))) for y in ys]


def _draw_walkers(frame: np.ndarray, walkers: list[_Walker], t: int) -> None:
    h, w = frame.shape[:2]
    pw, ph = PEDESTRIAN
    for p in walkers:
        x = int(round(p.x + p.speed * t)) % (w + pw) - pw  # walks off one side, comes back on the other
        x0, x1 = max(0, x), min(w, x + pw)
        if x1 > x0:
            frame[p.y : p.y + ph, x0:x1] = p.grey


def _encode_video(path: Path, frames: list[np.ndarray]) -> None:
    import av

    h, w = frames[0].shape[:2]
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="avi") as container:
        stream = container.add_stream(VIDEO_CODEC, rate=25)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"qscale": "2"}  # near-lossless quantiser
        for arr in frames:
            for packet in stream.encode(av_frame(arr)):
                container.mux(packet)
        for packet in stream.encode():  # flush
            container.mux(packet)


def av_frame(arr: np.ndarray):
    """A PyAV ``VideoFrame`` from a uint8 ``(H, W, 3)`` RGB array."""
    import av

    return av.VideoFrame.from_ndarray(np.ascontiguousarray(arr, dtype=np.uint8), format="rgb24")


def _write_video(path: Path, rng: np.random.Generator, bg: np.ndarray, n_frames: int, walkers: int) -> Path:
    """One normal training video: ``walkers`` pedestrians over the scene's background ``bg``."""
    h, w = bg.shape[:2]
    people = _walkers(rng, w, h, walkers)
    frames = []
    for t in range(n_frames):
        f = bg.copy()
        _draw_walkers(f, people, t)
        frames.append(np.clip(f, 0, 255).astype(np.uint8))
    _encode_video(path, frames)
    return path


def _write_clip(root: Path, clip: str, rng: np.random.Generator, bg: np.ndarray, n_frames: int, walkers: int) -> int:
    """One test clip (JPEG frames, frame labels, pixel masks): pedestrians, and the orange disc
    crossing the frame during about the clip's middle 40 %. Returns its number of anomalous frames."""
    h, w = bg.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    radius = max(3, h // 9)
    people = _walkers(rng, w, h, walkers)
    start = int(n_frames * 0.3)
    stop = max(start + 1, int(n_frames * 0.7))
    speed = float(rng.uniform(3.0, 5.0))
    cy = int(rng.integers(radius, h - radius))
    x0 = float(rng.uniform(radius, w / 3))
    pix = np.zeros((n_frames, h, w), dtype=np.uint8)
    folder = root / "testing" / "frames" / clip
    folder.mkdir(parents=True, exist_ok=True)
    for t in range(n_frames):
        f = bg.copy()
        _draw_walkers(f, people, t)
        if start <= t < stop:
            cx = x0 + speed * (t - start)
            disc = (xx - cx) ** 2 + (yy - cy) ** 2 <= radius**2
            f[disc] = (250.0, 140.0, 20.0)
            pix[t] = disc
        Image.fromarray(np.clip(f, 0, 255).astype(np.uint8)).save(folder / f"{t:03d}.jpg", quality=95)
    labels = pix.reshape(n_frames, -1).any(1).astype(np.uint8)
    for kind, arr in (("test_frame_mask", labels), ("test_pixel_mask", pix)):
        out = root / "testing" / kind / f"{clip}.npy"
        out.parent.mkdir(parents=True, exist_ok=True)
        np.save(out, arr, allow_pickle=False)
    return int(labels.sum())


def generate_stc(
    root: str | Path,
    *,
    scenes: int = 3,
    scenes_without_test: int = 1,
    train_videos: int = 2,
    train_frames: int = 40,
    test_clips: int = 2,
    test_frames: int = 30,
    size: tuple[int, int] = (160, 96),
    walkers: int = 3,
    seed: int = 0,
) -> SyntheticStc:
    """Write a synthetic STC dataset under ``root`` (see the module doc) and describe it.

    Args:
        root: dataset root (created; existing files of the same names are overwritten), with the
            marker ``MARKER_NAME`` recording these arguments.
        scenes: number of scenes, named ``01``, ``02``, ... as in STC.
        scenes_without_test: how many of the last scenes get training videos only (real STC's
            scene 13 has no test clip).
        train_videos: normal videos per scene, ``<scene>_001.avi`` ...
        train_frames: frames per training video.
        test_clips: test clips per scene with test clips, ``<scene>_0001`` ...
        test_frames: frames per test clip; each clip has one anomaly window covering about its
            middle 40 % (the vehicle is visible on part of it), the rest is normal.
        size: ``(width, height)`` of the frames in pixels, both even (MPEG-4 with 4:2:0 chroma).
        walkers: pedestrians per video or clip.
        seed: seed of every random choice.

    Returns:
        The description of what was written.

    Raises:
        ValueError: an odd or too small frame size, or counts below 1.
    """
    w, h = size
    if w % 2 or h % 2 or w < 32 or h < 32:
        raise ValueError(f"size {size}: width and height must be even and >= 32")
    if min(scenes, train_videos, train_frames, test_clips, test_frames) < 1 or not 0 <= scenes_without_test < scenes + 1:
        raise ValueError("scenes, train_videos, train_frames, test_clips and test_frames must be >= 1, "
                         "scenes_without_test in [0, scenes]")
    root = Path(root)
    rng = np.random.default_rng(seed)
    videos_out: dict[str, list[Path]] = {}
    clips_out: dict[str, int] = {}
    anomalous: dict[str, int] = {}
    names = [f"{i + 1:02d}" for i in range(scenes)]
    no_test = tuple(names[scenes - scenes_without_test:]) if scenes_without_test else ()
    clip_no = 0
    for scene in names:
        bg = _background(rng, w, h)
        videos_out[scene] = [_write_video(root / "training" / "videos" / f"{scene}_{v + 1:03d}.avi", rng, bg,
                                          train_frames, walkers) for v in range(train_videos)]
        if scene in no_test:
            continue
        for _ in range(test_clips):
            clip_no += 1
            clip = f"{scene}_{clip_no:04d}"
            anomalous[clip] = _write_clip(root, clip, rng, bg, test_frames, walkers)
            clips_out[clip] = test_frames
    marker = {"generator": "padim_bench.data.stc_synth.generate_stc", "scenes": scenes,
              "scenes_without_test": scenes_without_test, "train_videos": train_videos, "train_frames": train_frames,
              "test_clips": test_clips, "test_frames": test_frames, "size": [w, h], "walkers": walkers, "seed": seed}
    (root / MARKER_NAME).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return SyntheticStc(root, (w, h), videos_out, train_frames, clips_out, anomalous, no_test)
