"""Flat results: one row per category and per mean of a run, with what made it, under one fixed
header, so that the files of many runs concatenate into one leaderboard CSV.

Every run writes ``results_flat.csv`` (:func:`flat_csv` of its record) beside ``results.csv``;
``padim-bench leaderboard RESULTS... -o board.csv`` writes the rows of every run found under
RESULTS (committed runs from before this file included), and since the header
(:data:`FLAT_FIELDS`) is the same for every run, ``results_flat.csv`` files also concatenate by
hand (``head -n 1`` of one, then ``tail -n +2`` of each). Metrics are fractions in [0, 1] (full
precision, empty where undefined or not asked), times in seconds, memory in GB = 1e9 bytes.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Iterable

from .output import NOT_ASKED, pooled_rows, summary_rows

FLAT_FIELDS = (
    "run", "row", "kind", "n_categories", "method", "backbone", "d", "layers", "seed", "weights", "dataset",
    "synthetic_data", "image_roc_auc", "pixel_roc_auc", "pro", "fit_s", "infer_s_per_image", "fit_peak_gb",
    "state_gb", "code_version", "git_commit", "dirty", "config_hash", "results",
)
"""The header of ``results_flat.csv`` and of a leaderboard (the same for every run)."""


def _code(record: dict[str, Any]) -> dict[str, Any]:
    from .store.code import record_code

    return record_code(record) or {}


def flat_rows(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of one run record: its categories, then its means (``mean: textures`` ...,
    :func:`padim_bench.output.summary_rows`, and a dataset's pooled row), each with the fields of
    :data:`FLAT_FIELDS` (``n_categories``: 1 for a category, the categories a mean covers)."""
    cfg, code = record["config"], _code(record)
    m = cfg["method"]
    kinds = {c["category"]: c["kind"] for c in record["categories"]}
    common = {
        "run": record.get("name"), "method": m["name"], "backbone": m["backbone"], "d": m.get("d"),
        "layers": "+".join(m.get("layers") or []), "seed": m.get("seed"), "weights": m["weights"],
        "dataset": cfg["dataset"].get("name"), "synthetic_data": bool(record.get("synthetic_data")),
        "code_version": code.get("key"), "git_commit": code.get("git_commit"), "dirty": code.get("dirty"),
        "config_hash": record.get("config_hash"),
        "results": record.get("_path") or str(Path(cfg["output"]["dir"]) / "results.json"),
    }
    out = []
    for r in summary_rows(record["categories"]) + pooled_rows(record):
        mean = r["kind"] == "mean"
        group = r["name"]
        n = sum(1 for k in kinds.values() if group.split(" ")[0] == "all" or k == group.rstrip("s")) if mean else 1
        row = {**common, "row": f"mean: {group}" if mean else group, "kind": r["kind"], "n_categories": n}
        for k in ("image_roc_auc", "pixel_roc_auc", "pro", "fit_s", "infer_s_per_image", "fit_peak_gb", "state_gb"):
            v = r.get(k)
            row[k] = None if v == NOT_ASKED else v
        out.append(row)
    return out


def flat_csv(records: Iterable[dict[str, Any]]) -> str:
    """:data:`FLAT_FIELDS` as the header, then :func:`flat_rows` of every record in order
    (``None`` written as an empty cell)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(FLAT_FIELDS), lineterminator="\n")
    w.writeheader()
    for record in records:
        for row in flat_rows(record):
            w.writerow({k: "" if row.get(k) is None else row[k] for k in FLAT_FIELDS})
    return buf.getvalue()
