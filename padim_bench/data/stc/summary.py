"""STC's own parts of the records: per scene, the frame-level ROC-AUC of the map maxima; per run,
the metrics over all scenes (pooled, Table IV's ``all``, and the mean over scenes).

Record key ``stc`` (``results.json: stc``, ``categories[].stc``). The pooled pixel ROC-AUC comes
from each scene's histogram of float32 map scores (:func:`padim_bench.metrics.score_histogram`,
kept by the run folder as ``categories/<scene>.pixhist.npz``), so no map is stored.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .plan import protocol_text
from .records import StcSplit

RECORD_KEY = "stc"
SCENE_MEAN = "scene mean"
"""Table IV's column of the mean of the per-scene values (``all`` is pooled over the scenes)."""

_PIXEL_METHOD = ("ROC-AUC of every test pixel of every scene together, from per-scene histograms of float32 scores "
                 "binned on their top 24 bits (15 mantissa bits); exact for the binned scores, within "
                 "pixel_roc_auc_binning_bound of the unbinned ones")
_FRAME_METHOD = ("image_roc_auc: the method's image score over every selected test frame of every scene (PaDiM: the "
                 "map maximum); per scene, frame_roc_auc is the map maximum for every method")


def scene_extras(split: StcSplit, maps: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """A scene's ``stc`` part: its protocol facts (:meth:`StcSplit.describe`), the frame-level
    ROC-AUC of the maps' maxima (``maps`` float32 ``(N, S, S)``, ``labels`` ``(N,)`` {0, 1}) and
    the maxima themselves (for the pooled frame-level figure)."""
    from ... import metrics as M

    map_max = maps.reshape(len(maps), -1).max(1)
    return {**split.describe(), "frame_roc_auc": M.image_roc_auc(map_max, labels), "map_max": map_max.tolist()}


def run_summary(info: dict[str, Any], records: list[dict[str, Any]], histograms: list[Any] | None,
                resize: int) -> dict[str, Any]:
    """The run-level ``stc`` part of ``results.json``: the protocol, the scenes reported without a
    model, and the metrics over all scenes: ``pooled`` (every test pixel / frame of every finished
    scene as one set; the pixel ROC-AUC from the scenes' ``histograms``, see
    :func:`padim_bench.metrics.pooled_roc_auc`, with its binning bound; None where a histogram is
    missing) and ``scene_mean`` (the mean of the per-scene values)."""
    from ... import metrics as M

    hists = histograms or [None] * len(records)
    pixel = bound = None
    if records and all(hh is not None for hh in hists):
        pixel, bound = M.pooled_roc_auc(hists)
    scores = np.concatenate([np.asarray(r["image_scores"], dtype=np.float64) for r in records]) if records else np.zeros(0)
    labels = np.concatenate([np.asarray(r["labels"], dtype=np.int64) for r in records]) if records else np.zeros(0)
    maxima = np.concatenate([np.asarray(_part(r).get("map_max", []), dtype=np.float64) for r in records]) \
        if records else np.zeros(0)
    means: dict[str, float | None] = {}
    for key, get in (("pixel_roc_auc", lambda r: r["metrics"].get("pixel_roc_auc")),
                     ("image_roc_auc", lambda r: r["metrics"].get("image_roc_auc")),
                     ("frame_roc_auc", lambda r: _part(r).get("frame_roc_auc"))):
        vals = [v for v in map(get, records) if v is not None]
        means[key] = float(np.mean(vals)) if vals else None
    return {
        **info,
        "protocol": protocol_text(info, resize),
        "scenes_pooled": [r["category"] for r in records],
        "pooled": {
            "scenes": len(records),
            "pixel_roc_auc": pixel,
            "pixel_roc_auc_binning_bound": bound,
            "pixel_method": _PIXEL_METHOD,
            "image_roc_auc": M.image_roc_auc(scores, labels) if len(labels) else None,
            "frame_roc_auc": M.image_roc_auc(maxima, labels) if len(maxima) == len(labels) and len(labels) else None,
            "frame_method": _FRAME_METHOD,
        },
        "scene_mean": means,
    }


def _part(record: dict[str, Any]) -> dict[str, Any]:
    """The ``stc`` part of a category or run record (``{}`` where it has none)."""
    return record.get(RECORD_KEY) or {}


def pooled(record: dict[str, Any]) -> dict[str, Any]:
    """A run record's pooled figures (``stc.pooled``), ``{}`` where it has none."""
    return _part(record).get("pooled") or {}


def frame_roc_auc(category: dict[str, Any]) -> float | None:
    """A scene record's frame-level ROC-AUC of its map maxima (a fraction), or None."""
    return _part(category).get("frame_roc_auc")


def captions(record: dict[str, Any]) -> list[str]:
    """The lines under an STC run's table: its protocol, and what ``all`` and ``all (pooled)`` are."""
    part = _part(record)
    if not part:
        return []
    return [part["protocol"], "image ROC-AUC = frame level; all = mean over scenes; "
            "all (pooled) = every test frame / pixel of every scene as one set"]


def table_notes(records: list[dict[str, Any]]) -> list[str]:
    """What Table IV's columns are, and each run's STC protocol (strides, frames, scenes)."""
    notes = ["all = every test pixel (frame) of every scene as one set, the paper's \"over all scenes\"; scene mean = "
             "mean of the per-scene ROC-AUCs; frame ROC-AUC = frame-level, from each map's maximum (not in the paper)"]
    for r in records:
        part = _part(r)
        if part.get("protocol"):
            bound = (part.get("pooled") or {}).get("pixel_roc_auc_binning_bound")
            notes.append(f"{r.get('_path', r.get('name', 'run'))}: {part['protocol']}"
                         + (f"; pooled pixel ROC-AUC binning bound {100 * bound:.1e} points" if bound is not None else ""))
    return notes
