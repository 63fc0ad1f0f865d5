"""A run's tables: the rich terminal table and the CSV / Markdown text of ``results.csv`` / ``.md``.

A run's record (``results.json``, written by :mod:`padim_bench.store`) holds the resolved config,
its hash, the environment and one entry per category. Tables show metrics in percent (as the paper
does) with textures / objects / all means; times in seconds; memory in GB = 1e9 bytes. A run with
random backbone weights is labelled so in every table and file.
"""

from __future__ import annotations

import csv
import io
import math
from typing import Any, Iterable

from rich.table import Table

METRIC_COLUMNS = (("image_roc_auc", "image ROC-AUC %"), ("pixel_roc_auc", "pixel ROC-AUC %"), ("pro", "PRO %"))
RANDOM_WEIGHTS_NOTE = "RANDOM backbone weights: time and memory only; the metrics are not meaningful"
RANDOM_INIT_NOTE = "encoder initialised with RANDOM weights (then trained)"


def random_note(record: dict[str, Any]) -> str | None:
    """The label a run with random backbone weights carries in every table and file, or None:
    for a method that trains its backbone (``Method.trains_backbone``) random initial weights are
    a setting, not a stand-in."""
    from .methods import method_class

    m = record["config"]["method"]
    if m["weights"] != "random":
        return None
    return RANDOM_INIT_NOTE if method_class(m["name"]).trains_backbone else RANDOM_WEIGHTS_NOTE


NOT_ASKED = "n/a"  # a metric the config did not ask for (``undefined`` is a metric that cannot be computed)


def _mean(values: Iterable[float | str | None]) -> float | str | None:
    values = list(values)
    if values and all(v == NOT_ASKED for v in values):
        return NOT_ASKED
    vals = [v for v in values if v is not None and v != NOT_ASKED]
    return sum(vals) / len(vals) if vals else None


def summary_rows(categories: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-category rows, then rows ``textures`` / ``objects`` / ``all`` (kind ``mean``) holding
    the means over those categories (undefined cells are skipped).

    Each row: ``name``, ``kind``, the three metrics (fractions or None), ``fit_s``,
    ``infer_s_per_image``, ``fit_peak_gb``, ``state_gb``.
    """

    def row(c: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": c["category"],
            "kind": c["kind"],
            **{k: c["metrics"].get(k, NOT_ASKED) for k, _ in METRIC_COLUMNS},
            "fit_s": c["time"]["fit_s"],
            "infer_s_per_image": c["time"].get("infer_s_per_image"),
            "fit_peak_gb": c["memory"]["fit_peak_rss_bytes"] / 1e9,
            "state_gb": c["memory"]["state_gb"],
        }

    rows = [row(c) for c in categories]
    groups = [("textures", "texture"), ("objects", "object"), ("all", None)]
    means = []
    for label, kind in groups:
        members = [r for r in rows if kind is None or r["kind"] == kind]
        if not members or (kind is not None and len(members) == len(rows)):
            continue  # a group equal to "all" adds nothing
        means.append({"name": label, "kind": "mean",
                      **{k: _mean(r[k] for r in members) for k in list(rows[0])[2:]}})
    return rows + means


def _pct(v: float | str | None, digits: int = 1) -> str:
    if v == NOT_ASKED:
        return NOT_ASKED
    return "undefined" if v is None else f"{100 * v:.{digits}f}"


def _num(v: float | None, fmt: str) -> str:  # noqa: D103
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def title(record: dict[str, Any]) -> str:
    """One-line description: method, backbone, d, dataset, weights."""
    m = record["config"]["method"]
    d = m.get("d")
    return (f"{m['name']} | {m['backbone']}" + (f" d={d}" if d else "") +
            f" | {record['config']['dataset']['name']} | weights: {m['weights']}")


def pooled_rows(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The row of the metrics its dataset computes over the whole dataset at once
    (:meth:`padim_bench.data.Dataset.pooled_row`; STC's ``all (pooled)``: every test pixel /
    frame of every scene as one set, see ``results.json: stc.pooled``), shaped like
    :func:`summary_rows`' rows; ``[]`` where the dataset has none."""
    from .data import record_dataset

    pooled = record_dataset(record).pooled_row(record)
    if pooled is None or not record["categories"]:
        return []
    label, values = pooled
    asked = record["config"]["evaluation"]["metrics"]
    row = {"name": label, "kind": "mean"}
    for k, _ in METRIC_COLUMNS:
        row[k] = values.get(k, NOT_ASKED) if k in asked else NOT_ASKED
    keys = list(summary_rows(record["categories"])[0])
    return [{k: row.get(k) for k in keys}]


def synthetic_note(record: dict[str, Any]) -> str | None:
    """The label of a run on a padim-bench generated dataset (``record["synthetic_data"]``, see
    :mod:`padim_bench.data.origin`), or None."""
    syn = record.get("synthetic_data")
    if not syn:
        return None
    return f"SYNTHETIC data: {syn['what']}; not comparable with the paper's values"


def captions(record: dict[str, Any]) -> list[str]:
    """The lines under a run's table: the random-weights, synthetic-data and code labels
    (:func:`padim_bench.store.code.code_note`), and the dataset's own (:meth:`padim_bench.data.Dataset.captions`, e.g. STC's protocol)."""
    from .data import record_dataset

    from .store.code import code_note

    lines = [random_note(record)] if random_note(record) else []
    if synthetic_note(record):
        lines.append(synthetic_note(record))
    if code_note(record):  # uncommitted changes, or categories of several code versions
        lines.append(code_note(record))
    return lines + record_dataset(record).captions(record)


def rich_table(record: dict[str, Any]) -> Table:
    """The paper-style table of a run for the terminal."""
    t = Table(title=title(record), caption="\n".join(captions(record)) or None)
    t.add_column("category", no_wrap=True)  # the value columns' headers wrap instead: a name is never cut
    for _, label in METRIC_COLUMNS:
        t.add_column(label, justify="right")
    for label in ("fit s", "infer s/img", "fit peak GB", "state GB"):
        t.add_column(label, justify="right")
    rows = summary_rows(record["categories"]) + pooled_rows(record)
    for i, r in enumerate(rows):
        if r["kind"] == "mean" and (i == 0 or rows[i - 1]["kind"] != "mean"):
            t.add_section()
        t.add_row(r["name"], *(_pct(r[k]) for k, _ in METRIC_COLUMNS), _num(r["fit_s"], ".1f"),
                  _num(r["infer_s_per_image"], ".3f"), _num(r["fit_peak_gb"], ".2f"), _num(r["state_gb"], ".3f"),
                  style="bold" if r["kind"] == "mean" else None)
    return t


def markdown_table(record: dict[str, Any]) -> str:
    """The same table in Markdown, metrics in percent with 2 decimals."""
    head = ["category", *(label for _, label in METRIC_COLUMNS), "fit s", "infer s/img", "fit peak GB", "state GB"]
    lines = [f"**{title(record)}**", ""]
    for line in captions(record):
        lines += [f"_{line}_", ""]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in summary_rows(record["categories"]) + pooled_rows(record):
        cells = [r["name"], *(_pct(r[k], 2) for k, _ in METRIC_COLUMNS), _num(r["fit_s"], ".1f"),
                 _num(r["infer_s_per_image"], ".3f"), _num(r["fit_peak_gb"], ".2f"), _num(r["state_gb"], ".3f")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def csv_table(record: dict[str, Any]) -> str:
    """One row per category (and mean rows), full precision; metrics as fractions in [0, 1]."""
    rows = summary_rows(record["categories"]) + pooled_rows(record)
    buf = io.StringIO()
    fields = ["name", "kind", "method", "backbone", "weights"] + [k for k in rows[0] if k not in ("name", "kind")]
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    m = record["config"]["method"]
    for r in rows:
        w.writerow({**{k: ("" if v is None else v) for k, v in r.items()},
                    "method": m["name"], "backbone": m["backbone"], "weights": m["weights"]})
    return buf.getvalue()
