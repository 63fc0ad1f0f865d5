"""What a run's records hold beside the figures the steps measured: a category record's stamp
(hashes, data fingerprint, origin, method, environment) and the run record of ``results.json``
(the dataset's own part of it, e.g. STC's pooled figures, is the dataset's:
:meth:`padim_bench.data.Dataset.run_summary`).

The environment is passed in (:func:`padim_bench.envinfo.environment`) so that nothing here
imports torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .cache import data_fingerprint
from .code import run_code
from .folder import RECORD_VERSION

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
                     "weights_source": extractor.weights_source,
                     "weights_sha256": getattr(extractor, "weights_sha256", None)}
    rec["environment"] = environment


def run_record(cfg: RunConfig, records: list[dict[str, Any]], extractor: Any, environment: dict[str, Any],
               timed_spans: dict[str, str], root_resolved: str, origin: dict[str, Any] | None) -> dict[str, Any]:
    """The run record (``results.json``) over ``records``, the finished categories (sorted): the
    config (its categories those the results hold, over invocations), hashes, the backbone, the
    timed spans' definitions, the environment, ``code`` (which code made each category,
    :func:`padim_bench.store.code.run_code`); labelled synthetic when any category is."""
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
            "weights_sha256": getattr(extractor, "weights_sha256", None),
            "normalization": extractor.normalization,
            "mean": list(getattr(extractor, "mean", ())), "std": list(getattr(extractor, "std", ())),
            "layers": list(extractor.layers),
            "channels": dict(extractor.channels),
            "full_param_count": int(extractor.full_param_count),
        },
        "timed_spans": timed_spans,
        "environment": environment,
        "categories": records,
        "dataset_root_resolved": root_resolved,
        "code": run_code(records),
    }
    synthetic = origin or next((c["synthetic_data"] for c in records if c.get("synthetic_data")), None)
    if synthetic:  # any category on generated data labels the whole run
        record["synthetic_data"] = synthetic
    return record
