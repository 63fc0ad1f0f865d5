"""STC's records: a training video, a test clip, a frame of each, a scanned layout and one
scene's split (the interface of :class:`~padim_bench.data.mvtec.CategorySplit`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STC_SCENES = 13
#: scenes of real STC that have test clips (01 .. 12; 13 has training videos only)
STC_TEST_SCENES = 12


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

