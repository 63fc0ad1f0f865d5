"""Table VIII: the fitted state's memory, computed from the architectures
(``Method.predict_state_nbytes``) with the paper's counting convention per cell, beside the
fitted state of matching runs and their measured peak memory."""

from __future__ import annotations

from typing import Any

from .. import reference
from ..methods import METHODS, method_class
from .cells import Cell, TableData, row_for


def build_table8(records: list[dict[str, Any]]) -> TableData:
    """Table VIII computed from the architectures (``predict_state_nbytes``), per the paper's
    counting convention for each cell, with measured peak process memory beside where given, and
    the fitted state of matching runs (same method, backbone, d, dataset and input size; see
    :func:`fitted_state_gb`)."""
    pcells = reference.cells("8")
    row_specs = reference.rows("8")
    data = TableData(reference.load_paper()["tables"]["8"]["title"], [("paper → computed", "state_gb"),
                     ("computed, exact", "state_gb"), ("fit peak (measured)", "fit_peak_rss_bytes"),
                     ("paper → fitted", "fitted_gb")], unit="GB")
    for pc in pcells:
        spec = row_specs[pc.row]
        method = METHODS.get(spec["method"])
        params = method.params_class(**({"d": spec["d"]} if "d" in spec else {}))
        layers = list(method.cls.default_layers)
        try:
            parts = method.cls.predict_state_nbytes(params, spec["backbone"], layers, pc.extra["size"],
                                                     pc.extra["n_train"])
        except NotImplementedError:
            parts = None
        computed = None
        if parts is not None:
            computed = sum(v for k, v in parts.items() if pc.extra.get("backbone", True) or k != "backbone") / 1e9
        peak = [c["memory"]["fit_peak_rss_bytes"] / 1e9 for r in records if row_for("8", r) == pc.row
                and r["config"]["dataset"]["name"] == pc.column for c in r["categories"]]
        label = f"{spec['label']}, {pc.column}, " + ("with" if pc.extra.get("backbone", True) else "without") + " backbone"
        fitted = [v for r in records if row_for("8", r) == pc.row and r["config"]["dataset"]["name"] == pc.column
                  for v in fitted_state_gb(r, pc.extra) if v is not None]
        data.rows.append((label, [Cell(paper=pc.value, tag=pc.tag, ours=computed),
                                  Cell(ours=computed),
                                  Cell(ours=max(peak) if peak else None),
                                  Cell(paper=pc.value, tag=pc.tag, ours=max(fitted)) if fitted else Cell()]))
    data.notes += reference.load_paper()["tables"]["8"].get("notes", [])  # the conventions, as paper.yaml states them
    return data


def fitted_state_gb(record: dict[str, Any], extra: dict[str, Any]) -> list[float | None]:
    """Per category of ``record``, its fitted state in GB under a Table VIII cell's convention
    (``extra``: ``backbone`` counted or not, ``n_train`` and ``size``); None for a category
    without ``state_bytes`` or a run of another input size. Components that grow with the training
    set (``Method.per_image_state``, e.g. SPADE's ``bank``) are scaled to ``extra['n_train']``."""
    grows = method_class(record["config"]["method"]["name"]).per_image_state
    ds = record["config"]["dataset"]
    if (ds.get("crop") or ds.get("resize")) != extra["size"]:
        return []
    out: list[float | None] = []
    for c in record["categories"]:
        parts = (c.get("memory") or {}).get("state_bytes")
        if not isinstance(parts, dict) or not c.get("n_train"):
            out.append(None)
            continue
        total = 0.0
        for k, v in parts.items():
            if k == "backbone" and not extra.get("backbone", True):
                continue
            total += v * extra["n_train"] / c["n_train"] if k in grows else v
        out.append(total / 1e9)
    return out
