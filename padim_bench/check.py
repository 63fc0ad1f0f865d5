"""Regression check: compare a run's metrics with a baseline run of our own or with the paper.

Differences are in percentage points. Against a baseline, every category and the textures /
objects / all means must stay within tolerance, and no category may go missing. Against the
paper, only confirmed cells (tag "2") whose mean covers the same categories as the paper's are
hard anchors; the other cells are listed for information.

``direction``: ``both`` (default) fails a cell that moved either way beyond its tolerance (a
reproduction that suddenly scores higher is a change too: e.g. a leak of test data); ``drop``
fails only a fall beyond it and reports a rise beyond it as ``improved`` (a CI gate on
regressions). Statuses: ``ok``, ``improved`` (drop only), ``MOVED`` and ``MISSING`` (fail),
``info`` (not enforced).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import reference, tables
from .errors import PadimBenchError
from .output import NOT_ASKED, summary_rows

DEFAULT_TOLERANCE = {"image_roc_auc": 0.1, "pixel_roc_auc": 0.1, "pro": 0.1}
DIRECTIONS = ("both", "drop")
FAILING = ("MOVED", "MISSING")
"""The statuses that fail a check (exit status 1)."""


@dataclass
class Comparison:
    """One compared cell (percent; ``tolerance`` in points). ``status``: ``ok``, ``improved``
    (a rise beyond the tolerance under ``direction="drop"``), ``MOVED``, ``MISSING`` or ``info``
    (not enforced)."""

    where: str
    metric: str
    reference: float | None
    ours: float | None
    tolerance: float | None
    status: str

    @property
    def diff(self) -> float | None:
        return None if self.reference is None or self.ours is None else self.ours - self.reference


def check_direction(direction: str) -> str:
    """``direction`` when it is one of :data:`DIRECTIONS`.

    Raises:
        PadimBenchError: another value.
    """
    if direction not in DIRECTIONS:
        raise PadimBenchError(f"--direction {direction!r}: use {' or '.join(DIRECTIONS)}")
    return direction


def cell_status(ours: float, reference: float, tolerance: float, direction: str = "both") -> str:
    """``ok``, ``MOVED`` or (``direction="drop"``) ``improved`` for a cell with both values
    defined (points; a difference within 1e-9 of the tolerance is within it)."""
    diff = ours - reference
    if abs(diff) <= tolerance + 1e-9:
        return "ok"
    return "improved" if direction == "drop" and diff > 0 else "MOVED"


def parse_tolerances(items: list[str] | None) -> dict[str, float]:
    """``["0.5"]`` sets every metric; ``["pro=1.0"]`` one metric (points).

    Raises:
        PadimBenchError: unknown metric or a value that is not a number >= 0.
    """
    tol = dict(DEFAULT_TOLERANCE)
    for item in items or []:
        key, _, value = item.rpartition("=")
        try:
            v = float(value)
        except ValueError:
            raise PadimBenchError(f"--tolerance {item!r}: expected POINTS or METRIC=POINTS, e.g. pro=0.5") from None
        if not v >= 0:
            raise PadimBenchError(f"--tolerance {item!r}: must be a number >= 0 (points)")
        if key and key not in tol:
            raise PadimBenchError(f"--tolerance {item!r}: unknown metric {key!r}; valid: {', '.join(tol)}")
        for k in ([key] if key else list(tol)):
            tol[k] = v
    return tol


def _cells(record: dict[str, Any]) -> dict[tuple[str, str], float | None]:
    """``(category or group, metric) -> percent`` for every metric of a run."""
    out: dict[tuple[str, str], float | None] = {}
    for c in record["categories"]:
        for metric, v in c["metrics"].items():
            out[(c["category"], metric)] = None if v is None else 100.0 * v
    for row in summary_rows(record["categories"]):
        if row["kind"] != "mean":
            continue
        for metric in tables.PERCENT_METRICS:
            v = row.get(metric, NOT_ASKED)
            if v != NOT_ASKED:  # a metric the run did not ask for is no cell
                out[(f"mean: {row['name']}", metric)] = None if v is None else 100.0 * v
    return out


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def config_differences(record: dict[str, Any], baseline: dict[str, Any], limit: int = 6) -> list[str]:
    """``key: ours vs baseline`` for the config keys that change numbers (not the name, output,
    runtime, data root or categories) where the two runs differ, plus generated vs genuine data;
    at most ``limit`` entries."""
    skip = ("name", "output.", "runtime.", "dataset.root", "dataset.categories")
    a, b = (_flat(r.get("config") or {}) for r in (record, baseline))
    out = [f"{k}: {a.get(k)!r} vs {b.get(k)!r}" for k in sorted(set(a) | set(b))
           if not k.startswith(skip) and a.get(k) != b.get(k)]
    if bool(record.get("synthetic_data")) != bool(baseline.get("synthetic_data")):
        out.insert(0, "data: " + ("generated vs genuine" if record.get("synthetic_data") else "genuine vs generated"))
    return out[:limit] + ([f"and {len(out) - limit} more"] if len(out) > limit else [])


def against_baseline(record: dict[str, Any], baseline: dict[str, Any], tol: dict[str, float],
                     direction: str = "both") -> list[Comparison]:
    """Every metric cell of ``baseline`` compared with ``record``: each category of the baseline
    must be in ``record`` (else ``MISSING``) and within tolerance (in ``direction``, module doc);
    the means are enforced only when both runs have the same categories (else listed as ``info``,
    "over other categories"). A cell undefined in one run only is ``MOVED`` either way.

    Raises:
        PadimBenchError: the two runs are on different datasets (``config.dataset.name``, e.g. STC
            against an MVTec AD baseline): their categories and metrics mean different things.
    """
    names = [tables.dataset_name(r) for r in (record, baseline)]
    if names[0] != names[1]:
        raise PadimBenchError(f"the results are on {names[0]}, the baseline on {names[1]}: not comparable; "
                              "check against a baseline of the same dataset")
    ours, ref = _cells(record), _cells(baseline)
    cats = [{c["category"] for c in r["categories"]} for r in (record, baseline)]
    other_set = cats[0] != cats[1]  # a mean over other categories is another quantity: not enforced
    out = []
    for (where, metric), rv in ref.items():
        if metric not in tol:
            continue
        if other_set and where.startswith("mean: "):
            note = " (over other categories)" if (where, metric) in ours else " (ours has no such mean)"
            out.append(Comparison(where + note, metric, rv, ours.get((where, metric)), tol[metric], "info"))
            continue
        if (where, metric) not in ours:
            out.append(Comparison(where, metric, rv, None, tol[metric], "MISSING"))
            continue
        ov = ours[(where, metric)]
        if rv is None or ov is None:
            status = "ok" if rv is ov else "MOVED"  # undefined in one run only
        else:
            status = cell_status(ov, rv, tol[metric], direction)
        out.append(Comparison(where, metric, rv, ov, tol[metric], status))
    return out


def against_paper(record: dict[str, Any], tol: dict[str, float], direction: str = "both") -> list[Comparison]:
    """The paper's cells for the row ``record`` reproduces (every table with such cells), the
    hard ones compared in ``direction`` (module doc).

    Raises:
        PadimBenchError: the run used random backbone weights or is on a padim-bench generated
            dataset (``synthetic_data``), or the paper has no row for its method and backbone.
    """
    if record["config"]["method"].get("weights") == "random":
        raise PadimBenchError(f"{record.get('_path', 'this run')} used RANDOM backbone weights (time and memory figures "
                              "only): the paper's values do not apply; check against a baseline results file instead")
    if record.get("synthetic_data"):
        raise PadimBenchError(f"{record.get('_path', 'this run')} is on SYNTHETIC data ({record['synthetic_data']['what']}): "
                              "the paper's values do not apply; check against a baseline results file instead")
    out = []
    for table in reference.table_ids():
        row = tables.row_for(table, record)
        if row is None or table in ("7", "8"):
            continue
        for pc in reference.cells(table):
            if pc.row != row or pc.metric not in tol:
                continue
            ours, covered = tables.measured_value(record, pc.column, pc.metric)
            full = tables.group_size(pc.column, record["config"]["dataset"].get("name"))
            hard = pc.tag == "2" and ours is not None and (full is None or covered == full)
            if ours is None:
                status = "info"
            elif hard:
                status = cell_status(ours, pc.value, tol[pc.metric], direction)
            else:
                status = "info"
            where = f"table {table}: {pc.column}" + (f" [{covered}/{full}]" if full and ours is not None and covered != full else "")
            out.append(Comparison(where, pc.metric, pc.value, ours, tol[pc.metric], status))
    if not out:
        m = record["config"]["method"]
        raise PadimBenchError(f"the paper reports no numbers for {m['name']} with {m['backbone']}"
                              + (f" (d={m['d']})" if m.get("d") is not None else "") + "; "
                              "check against a baseline results file instead")
    return out
