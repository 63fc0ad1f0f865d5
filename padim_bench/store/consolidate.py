"""What a run's records hold beside the figures the steps measured: a category record's stamp
(hashes, data fingerprint, origin, method, environment) and the run record of ``results.json``.

The environment is passed in (:func:`padim_bench.envinfo.environment`) so that nothing here
imports torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .. import metrics as M
from .cache import data_fingerprint
from .folder import RECORD_VERSION, RunFolder, load_histogram

if TYPE_CHECKING:
    from ..config import RunConfig


def stamp_category(rec: dict[str, Any], cfg: RunConfig, split: Any, extractor: Any, environment: dict[str, Any],
                   memory_check: dict[str, Any], skipped: list[str], root_resolved: str,
                   origin: dict[str, Any] | None) -> None:
    """Add to a finished category record (in place) its fit's memory check, the config and run
    hashes, the files skipped, the data fingerprint, the resolved data root and the synthetic
    data's origin, the method and the environment: per category, since a folder may gather
    categories from several invocations (each with its own ``--data-root``) and a resumed run may
    span sessions."""
    rec["memory"]["fit_memory_check"] = memory_check
    rec["config_hash"], rec["run_hash"] = cfg.config_hash(), cfg.run_hash()
    rec["skipped_files"] = skipped
    rec["data_fingerprint"] = data_fingerprint(split)
    rec["dataset_root_resolved"] = root_resolved
    if origin:
        rec["synthetic_data"] = origin
    rec["method"] = {"name": cfg.method.name, "backbone": extractor.name, "weights": extractor.weights,
                     "weights_source": extractor.weights_source}
    rec["environment"] = environment


def run_record(cfg: RunConfig, records: list[dict[str, Any]], extractor: Any, environment: dict[str, Any],
               timed_spans: dict[str, str], root_resolved: str, origin: dict[str, Any] | None) -> dict[str, Any]:
    """The run record (``results.json``) over ``records``, the finished categories (sorted): the
    config (its categories those the results hold, over invocations), hashes, the backbone, the
    timed spans' definitions, the environment; labelled synthetic when any category is."""
    config = cfg.to_dict()
    config["dataset"]["categories"] = [r["category"] for r in records]
    record = {
        "record_version": RECORD_VERSION,
        "name": cfg.name,
        "config_hash": cfg.config_hash(),
        "run_hash": cfg.run_hash(),
        "config": config,
        "backbone": {
            "name": extractor.name,
            "weights": extractor.weights,
            "weights_source": extractor.weights_source,
            "normalization": extractor.normalization,
            "layers": list(extractor.layers),
            "channels": dict(extractor.channels),
            "full_param_count": int(extractor.full_param_count),
        },
        "timed_spans": timed_spans,
        "environment": environment,
        "categories": records,
        "dataset_root_resolved": root_resolved,
    }
    synthetic = origin or next((c["synthetic_data"] for c in records if c.get("synthetic_data")), None)
    if synthetic:  # any category on generated data labels the whole run
        record["synthetic_data"] = synthetic
    return record


def stc_summary(info: dict[str, Any], records: list[dict[str, Any]], folder: RunFolder,
                resize: int) -> dict[str, Any]:
    """The run-level STC part of ``results.json``: the protocol, the scenes reported without a
    model, and the metrics over all scenes: ``pooled`` (every test pixel / frame of every finished
    scene as one set; the pixel ROC-AUC from the scenes' histograms, see
    :func:`padim_bench.metrics.pooled_roc_auc`, with its binning bound) and ``scene_mean`` (the mean
    of the per-scene values)."""
    from ..data.stc import protocol_text

    hists = [load_histogram(folder.histogram_file(r["category"])) for r in records]
    pixel = bound = None
    if records and all(hh is not None for hh in hists):
        pixel, bound = M.pooled_roc_auc(hists)
    scores = np.concatenate([np.asarray(r["image_scores"], dtype=np.float64) for r in records]) if records else np.zeros(0)
    labels = np.concatenate([np.asarray(r["labels"], dtype=np.int64) for r in records]) if records else np.zeros(0)
    maxima = np.concatenate([np.asarray((r.get("stc") or {}).get("map_max", []), dtype=np.float64) for r in records]) \
        if records else np.zeros(0)
    means: dict[str, float | None] = {}
    for key, get in (("pixel_roc_auc", lambda r: r["metrics"].get("pixel_roc_auc")),
                     ("image_roc_auc", lambda r: r["metrics"].get("image_roc_auc")),
                     ("frame_roc_auc", lambda r: (r.get("stc") or {}).get("frame_roc_auc"))):
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
            "pixel_method": "ROC-AUC of every test pixel of every scene together, from per-scene histograms of "
                            "float32 scores binned on their top 24 bits (15 mantissa bits); exact for the binned "
                            "scores, within pixel_roc_auc_binning_bound of the unbinned ones",
            "image_roc_auc": M.image_roc_auc(scores, labels) if len(labels) else None,
            "frame_roc_auc": M.image_roc_auc(maxima, labels) if len(maxima) == len(labels) and len(labels) else None,
            "frame_method": "image_roc_auc: the method's image score over every selected test frame of every scene "
                            "(PaDiM: the map maximum); per scene, frame_roc_auc is the map maximum for every method",
        },
        "scene_mean": means,
    }

