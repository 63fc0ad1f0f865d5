"""Table VIII: the fitted state's memory, computed from the architectures
(``Method.predict_state_nbytes``) with the paper's counting convention per cell, beside the
fitted state of matching runs and their measured peak memory; every run whose fitted state no
paper cell shows (a backbone, dataset or input size the paper lacks) gets a labelled row of its own."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from .. import reference
from ..methods import METHODS, method_class
from .cells import Cell, TableData, extra_label, row_for


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
        params = method.params_class(**{k: v for k, v in spec.items()  # the row's own settings (d, decoder)
                                         if k in {f.name for f in dataclasses.fields(method.params_class)}})
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
    shown = [r for r in records for pc in pcells if row_for("8", r) == pc.row and r["config"]["dataset"]["name"] == pc.column
             and any(v is not None for v in fitted_state_gb(r, pc.extra))]
    own = [r for r in records if not any(r is s for s in shown)]
    data.rows += _own_rows(own)
    if own:
        data.notes.append("rows without a paper value: runs whose fitted state no paper cell shows (another backbone, "
                          "dataset or input size); computed at the run's input size and largest training set, "
                          "fitted = its largest category's whole state (every component, backbone included where "
                          "the method keeps it), fit peak = its largest")
    return data


def _own_rows(records: list[dict[str, Any]]) -> list[tuple[str, list[Cell]]]:
    """One row per run: computed (from its architecture), fit peak and fitted state, in GB."""
    rows: list[tuple[str, list[Cell]]] = []
    labels = [_own_label(r) for r in records]
    for r, label in zip(records, labels):
        if labels.count(label) > 1:  # runs of one experiment (seeds, folders) stay apart
            label += f" ({r.get('_path', r.get('name', 'run'))})"
        cats = r["categories"]
        peak = [c["memory"]["fit_peak_rss_bytes"] / 1e9 for c in cats if c.get("memory", {}).get("fit_peak_rss_bytes")]
        state = [c["memory"]["state_gb"] for c in cats if c.get("memory", {}).get("state_gb") is not None]
        computed = _computed_gb(r)
        rows.append((label, [Cell(ours=computed), Cell(ours=computed), Cell(ours=max(peak) if peak else None),
                             Cell(ours=max(state) if state else None)]))
    return rows


def _own_label(record: dict[str, Any]) -> str:
    """The paper row's label where the run is one (at another size or on another dataset), else the
    label of a row the paper lacks; then its dataset and input size."""
    row = row_for("8", record)
    base = reference.rows("8")[row]["label"] if row else extra_label(record)
    ds = record["config"]["dataset"]
    size = ds.get("crop") or ds.get("resize")
    return f"{base}, {ds['name']}" + (f", {size} px" if size else "")


def _computed_gb(record: dict[str, Any]) -> float | None:
    """The run's state in GB from its architecture (its method parameters, backbone, layers, input
    size and largest training set), or None where that cannot be computed (an old or partial
    record, a method without ``predict_state_nbytes``)."""
    from ..config import config_from_dict
    from ..errors import PadimBenchError

    try:
        cfg = config_from_dict(json.loads(json.dumps(record["config"])))
        size = cfg.dataset.crop or cfg.dataset.resize
        n_train = max(int(c["n_train"]) for c in record["categories"])
        parts = method_class(cfg.method.name).predict_state_nbytes(
            cfg.method.params, cfg.method.backbone, list(cfg.method.layers or method_class(cfg.method.name).default_layers),
            int(size), n_train)
    except (PadimBenchError, NotImplementedError, KeyError, TypeError, ValueError):
        return None
    return sum(parts.values()) / 1e9


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
