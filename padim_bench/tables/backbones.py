"""The backbone comparison (``padim-bench table backbones RESULTS...``): one row per backbone and
method, the paper's PaDiM rows beside them.

Rows group run records by method, backbone, weights, layers and the method's label parts (PaDiM's
``Rd100``); several records of a group are seeds (or repeated runs): a cell is the mean over them,
with their standard deviation as the spread. Every row's values are means over the *same*
categories: the intersection of the categories of every run of its section (said in the notes), so
that no row is averaged over easier categories than another. Runs with random backbone weights are
rows of their own section (with its own intersection), their ROC-AUC / PRO left out (not
meaningful): time and memory only. The paper's
rows (R18-Rd100, WR50-Rd550, EfficientNet-B5; ``padim_bench/reference/paper.yaml``, Tables III, V,
VII, VIII) are over all 15 MVTec AD categories, on the paper's machine.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from ..errors import PadimBenchError
from ..reference import cells as paper_cells
from ..reference import load_paper
from ..methods import method_class

#: column key -> (header, unit, larger is better)
COLUMNS = {
    "image_roc_auc": ("image ROC-AUC %", "%", True),
    "pixel_roc_auc": ("pixel ROC-AUC %", "%", True),
    "pro": ("PRO %", "%", True),
    "fit_s": ("fit s", "s", False),
    "infer_s_per_image": ("infer s/img (batch 1)", "s", False),
    "state_gb": ("state GB", "GB", False),
    "fit_peak_gb": ("fit peak GB", "GB", False),
}
METRICS = ("image_roc_auc", "pixel_roc_auc", "pro")
#: the time columns and the span whose ``other_cpu_cores_<span>`` says how busy the machine was
_TIMED = {"fit_s": "fit", "infer_s_per_image": "timing"}
BUSY_CORES = 0.5  # as padim_bench.runner.BUSY_CORES: above it a timed span was not a quiet machine's


@dataclass(frozen=True)
class Value:
    """A cell: ``mean`` over the runs of the row, ``spread`` (their standard deviation, ``None``
    for one run), ``runs`` behind it, and the paper's confirmation ``tag`` for a paper cell."""

    mean: float | None
    spread: float | None = None
    runs: int = 1
    tag: str | None = None


@dataclass(frozen=True)
class Row:
    """One row: ``label`` (method, backbone, label parts), the backbone, weights
    (``imagenet``/``random``/``file``/``paper``), and ``values`` by column key."""

    label: str
    backbone: str
    weights: str
    values: dict[str, Value]


@dataclass
class BackboneTable:
    """The comparison: ``sections`` (title, rows) in order; ``categories`` the means cover."""

    title: str
    sections: list[tuple[str, list[Row]]]
    categories: list[str]
    notes: list[str] = field(default_factory=list)

    columns = COLUMNS


def build_backbones(records: list[dict[str, Any]], sort: str = "image_roc_auc") -> BackboneTable:
    """The comparison of ``records`` (run records, :func:`padim_bench.store.read_results`), rows of
    each section sorted by column ``sort`` (best first: highest metric, lowest time or memory).

    Raises:
        PadimBenchError: no records, an unknown ``sort`` column, or runs sharing no category.
    """
    if sort not in COLUMNS:
        raise PadimBenchError(f"--sort {sort!r}: use one of {', '.join(COLUMNS)}")
    if not records:
        raise PadimBenchError("table backbones: no results given (run folders or results.json files)")
    real = [r for r in records if _weights_kind(r["config"]["method"]["weights"]) != "random"]
    random_recs = [r for r in records if r not in real]
    real_rows, real_cats = _section(real)
    random_rows, random_cats = _section(random_recs)
    sections = [("measured here", _sorted(real_rows, sort)),
                ("RANDOM backbone weights: time and memory only, ROC-AUC / PRO not meaningful",
                 _sorted(random_rows, sort if sort not in METRICS else "infer_s_per_image")),
                ("paper (all 15 MVTec AD categories, the paper's CPU)", paper_rows())]
    sections = [(t, rs) for t, rs in sections if rs]
    notes = [f"{what} rows: means over the {len(cats)} categories every such run has ({', '.join(cats)})"
             for what, cats in (("measured", real_cats), ("RANDOM-weights", random_cats)) if cats]
    notes += ["± = standard deviation over the runs (seeds) of a row, xN = N runs; fit s grows with the "
              "training images, so compare it over the same categories",
              "infer s/img: batch 1, after warm-up; fit peak GB: the fit's peak resident memory (VmHWM), "
              "GB = 1e9 bytes; state GB: the fitted model incl. the backbone's parameters",
              "paper rows: Tables III, V, VII (the paper's CPU), VIII (state: R18 with the backbone's parameters, "
              "WR50 without, as the paper counts); ¹ one source only; the paper gives no R18 image ROC-AUC "
              "and no B5 localization, time, memory or d"]
    if any(r.values[k].tag == "busy" for _, rows in sections for r in rows for k in _TIMED):
        notes.append(f"* timed while other processes used more than {BUSY_CORES} CPU cores on average "
                     "(other_cpu_cores in the records): not a quiet machine's time")
    if random_rows:
        notes.append("RANDOM weights rows (seeded init) show time and memory only: their ROC-AUC / PRO say "
                     "nothing about the backbone")
    return BackboneTable("Backbones compared: each method per backbone", sections, real_cats or random_cats, notes)


def _section(records: list[dict[str, Any]]) -> tuple[list[Row], list[str]]:
    """The rows of ``records`` (grouped, see the module doc) over the categories all of them have.

    Raises:
        PadimBenchError: the runs share no category.
    """
    if not records:
        return [], []
    common = sorted(set.intersection(*({c["category"] for c in r["categories"]} for r in records)))
    if not common:
        listing = "; ".join(f"{r.get('_path', r['name'])}: {', '.join(c['category'] for c in r['categories'])}"
                            for r in records)
        raise PadimBenchError(f"table backbones: the runs share no category, so no row is comparable ({listing})")
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for rec in records:
        groups.setdefault(_group_key(rec), []).append(rec)
    return [_row(recs, common) for recs in groups.values()], common


def _group_key(rec: dict[str, Any]) -> tuple:
    m = rec["config"]["method"]
    weights = _weights_kind(m["weights"])
    return (m["name"], m["backbone"], weights, tuple(m.get("layers") or ()), _label(rec))


def _weights_kind(weights: str) -> str:
    return weights if weights in ("imagenet", "random") else "file"


def _label(rec: dict[str, Any]) -> str:
    m = rec["config"]["method"]
    parts = "".join(f"-{p}" for p in method_class(m["name"]).label_parts(m))
    layers = m.get("layers")
    extra = f" {'+'.join(layers)}" if layers not in (None, ["layer1", "layer2", "layer3"]) else ""
    file = " (weights file)" if _weights_kind(m["weights"]) == "file" else ""
    return f"{m['name']} {m['backbone']}{parts}{extra}{file}"


def _row(recs: list[dict[str, Any]], common: list[str]) -> Row:
    per_run = [_run_values(rec, common) for rec in recs]
    values = {}
    for key in COLUMNS:
        vals = [v[key] for v in per_run if v.get(key) is not None]
        if not vals:
            values[key] = Value(None)
            continue
        spread = statistics.stdev(vals) if len(vals) > 1 else None
        busy = key in _TIMED and _busy(recs, common, _TIMED[key])
        values[key] = Value(statistics.fmean(vals), spread, len(vals), "busy" if busy else None)
    m = recs[0]["config"]["method"]
    weights = _weights_kind(m["weights"])
    if weights == "random":
        values.update({k: Value(None) for k in METRICS})
    return Row(_label(recs[0]), m["backbone"], weights, values)


def _busy(recs: list[dict[str, Any]], common: list[str], span: str) -> bool:
    """Whether other processes used more than :data:`BUSY_CORES` CPU cores during ``span`` of any
    of the categories (the runner's ``other_cpu_cores_<span>``)."""
    return any((c["time"].get(f"other_cpu_cores_{span}") or 0.0) > BUSY_CORES
               for rec in recs for c in rec["categories"] if c["category"] in common)


def _run_values(rec: dict[str, Any], common: list[str]) -> dict[str, float | None]:
    """One run's means over the categories ``common``."""
    cats = [c for c in rec["categories"] if c["category"] in common]

    def mean(get) -> float | None:
        vals = [v for v in map(get, cats) if v is not None]
        return statistics.fmean(vals) if len(vals) == len(cats) else None

    out = {k: mean(lambda c, k=k: None if c["metrics"].get(k) is None else 100.0 * c["metrics"][k])
           for k in METRICS}
    out["fit_s"] = mean(lambda c: c["time"].get("fit_s"))
    out["infer_s_per_image"] = mean(lambda c: c["time"].get("infer_s_per_image"))
    out["state_gb"] = mean(lambda c: c["memory"].get("state_gb"))
    out["fit_peak_gb"] = mean(lambda c: None if c["memory"].get("fit_peak_rss_bytes") is None
                              else c["memory"]["fit_peak_rss_bytes"] / 1e9)
    return out


def paper_rows() -> list[Row]:
    """The paper's rows ``paper.yaml`` lists under ``backbones`` (PaDiM-R18-Rd100, WR50-Rd550,
    EfficientNet-B5), each column from the table ``backbones.columns`` names."""
    paper = load_paper()
    spec, source = paper["rows"], paper["backbones"]["columns"]
    found = {(c.table, c.row, c.column, c.metric): c for t in {s[0] for s in source.values()}
             for c in paper_cells(t)}
    rows = []
    for key in paper["backbones"]["rows"]:
        values = {}
        for col in COLUMNS:
            table, column = source.get(col, (None, None))
            cell = found.get((table, key, column, col))
            values[col] = Value(cell.value, None, 1, cell.tag) if cell else Value(None)
        rows.append(Row(spec[key]["label"], spec[key]["backbone"], "paper", values))
    return rows


def _sorted(rows: list[Row], key: str) -> list[Row]:
    better_high = COLUMNS[key][2]
    known = [r for r in rows if r.values[key].mean is not None]
    unknown = [r for r in rows if r.values[key].mean is None]
    return sorted(known, key=lambda r: -r.values[key].mean if better_high else r.values[key].mean) + unknown
