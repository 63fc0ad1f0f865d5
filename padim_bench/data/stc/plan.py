"""The paper's STC protocol over a scanned layout: frame strides, the scenes a run fits, and
the selected test frames' decoding check."""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Sequence

from ...errors import ConfigError, DataError
from .records import StcLayout, StcSplit, TestFrame, TrainFrame
from .scan import decoder_name, scan_stc


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
    from ..verify import file_problem

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
    return replace(split, test=test), list(split.skipped) + bad


def prepare(ds: Any, threads: int = 2) -> tuple[StcPlan, dict[str, list[str]]]:
    """Scan ``ds.root``, plan the scenes and check the selected test frames (the STC plug-in's
    :meth:`~padim_bench.data.base.Dataset.prepare`; ``ds`` is the
    :class:`~padim_bench.config.DatasetConfig`, its ``params`` STC's).

    Returns:
        ``(plan, skipped)``: the plan (its splits without unreadable frames) and, per scene, the
        skipped files.

    Raises:
        ConfigError, DataError: see :func:`scan_stc`, :func:`make_plan`, :func:`check_test_frames`.
    """
    layout = scan_stc(ds.root, ds.on_unreadable, threads)
    plan = plan_for(layout, ds)
    splits, skipped = [], {}
    for s in plan.splits:
        s2, skipped[s.name] = check_test_frames(s, ds.on_unreadable, threads)
        splits.append(s2)
    return replace(plan, splits=tuple(splits)), skipped


def plan_for(layout: StcLayout, ds: Any) -> StcPlan:
    """:func:`make_plan` with a run's ``dataset.categories`` and STC parameters."""
    p = ds.params
    return make_plan(layout, ds.categories, p.train_stride, p.train_frames_total, p.test_stride)
