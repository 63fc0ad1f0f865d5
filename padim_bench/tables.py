"""The paper's tables, side by side with measured results: reported value, ours, difference.

Results are run records read from ``results.json`` files (never typed in;
:func:`padim_bench.store.read_results`). A measured row is matched to a paper row by method,
backbone and, where the paper row says, ``d`` and layers; anything else is shown as an extra row,
labelled with its own backbone. Group cells (textures / objects / all) say
how many of the dataset's categories the mean covers (``2/15``): a partial mean is not the paper's
number. Table VIII is computed from the architectures (``predict_state_nbytes``), with the paper's
counting convention per cell.
"""

from __future__ import annotations

import csv
import io
import statistics
from dataclasses import dataclass, field
from typing import Any

from rich.markup import escape
from rich.table import Table

from . import reference
from .data.mvtec import MVTEC_CATEGORIES, MVTEC_TEXTURES
from .data.stc import STC_TEST_SCENES
from .errors import PadimBenchError
from .methods import METHODS, method_class

GROUP_SIZE = {"textures": len(MVTEC_TEXTURES), "objects": len(MVTEC_CATEGORIES) - len(MVTEC_TEXTURES),
              "all": len(MVTEC_CATEGORIES)}
PERCENT_METRICS = ("image_roc_auc", "pixel_roc_auc", "pro")
SCENE_MEAN = "scene mean"  # STC: the mean of the per-scene values (``all`` is pooled over scenes)
#: Table IV's columns besides the paper's (all, pixel ROC-AUC)
TABLE4_EXTRA = [(SCENE_MEAN, "pixel_roc_auc"), ("all", "frame_roc_auc"), (SCENE_MEAN, "frame_roc_auc")]
TAG_MARK = {"2": "", "1": "¹", "?": "?"}
#: defaults of the method parameters that paper rows may name, when a record lacks them
_ROW_DEFAULTS = {"reduction": "random", "combine": "joint"}


@dataclass
class Cell:
    """One table cell: the paper's value and tag, our measurement, its spread and coverage."""

    paper: float | None = None
    tag: str | None = None
    ours: float | None = None
    spread: float | None = None  # standard deviation over matched runs (seeds)
    runs: int = 0
    covered: int | None = None  # categories in the mean
    of: int | None = None  # categories the paper's mean covers

    @property
    def diff(self) -> float | None:
        return None if self.paper is None or self.ours is None else self.ours - self.paper


@dataclass
class TableData:
    """A rendered-agnostic table: columns ``(column, metric)``, rows of cells, notes."""

    title: str
    columns: list[tuple[str, str]]
    rows: list[tuple[str, list[Cell]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    unit: str = "%"


def _matches(spec: dict[str, Any], method: dict[str, Any]) -> bool:
    for key, want in spec.items():
        if key == "label":
            continue
        if key == "method":
            key = "name"
        have = method.get(key, _ROW_DEFAULTS.get(key))
        if key == "backbone" and want is None:
            return False
        if have != want:
            return False
    return True


def row_for(table: str, record: dict[str, Any]) -> str | None:
    """The paper row of ``table`` that ``record`` reproduces, or None. Non-aligned runs
    (``dataset.augment: nonaligned``) only reproduce Table VI, and Table VI only those; STC runs
    only Table IV (and VIII's STC cells), and Table IV only those."""
    nonaligned = record["config"]["dataset"].get("augment", "none") != "none"
    if nonaligned != (table == "6"):
        return None
    if table != "8" and is_stc(record) != (table == "4"):
        return None
    for key, spec in reference.rows(table).items():
        if _matches(spec, record["config"]["method"]):
            return key
    return None


def analog_row_for(table: str, record: dict[str, Any]) -> str | None:
    """A table-specific paper row (Tables I, II: layers, reduction, combine) that ``record``
    matches in everything but the backbone: the same experiment on another backbone."""
    own = reference.load_paper()["tables"][table].get("rows", {})
    for key, spec in own.items():
        if _matches({k: v for k, v in spec.items() if k != "backbone"}, record["config"]["method"]):
            return key
    return None


def extra_label(record: dict[str, Any]) -> str:
    """Label of a measured row the paper does not have: method, backbone, the method's label parts
    (``Method.label_parts``) and the settings that set it apart (layers, the method's
    ``variant_parts``, the dataset's augmentation)."""
    m = record["config"]["method"]
    cls = method_class(m["name"])
    parts = "".join(f"-{p}" for p in cls.label_parts(m))
    bits = []
    if m.get("layers") not in (None, ["layer1", "layer2", "layer3"]):
        bits.append("+".join(m["layers"]))
    bits += cls.variant_parts(m)
    if record["config"]["dataset"].get("augment", "none") != "none":
        bits.append(record["config"]["dataset"]["augment"])
    extra = f" {' '.join(bits)}" if bits else ""
    return f"{m['name']}-{m['backbone']}{parts}{extra} (not in the paper)"


def is_stc(record: dict[str, Any]) -> bool:
    """A run on ShanghaiTech Campus (``dataset.name: stc``)."""
    return record["config"].get("dataset", {}).get("name") == "stc"


def group_size(column: str, dataset: str | None) -> int | None:
    """Categories the paper's value of ``column`` covers: MVTec AD's groups (5 / 10 / 15), or on
    STC the 12 scenes with test clips for ``all`` and ``scene mean``."""
    if dataset == "stc":
        return STC_TEST_SCENES if column in ("all", SCENE_MEAN) else None
    return GROUP_SIZE.get(column)


def measured_value(rec: dict[str, Any], column: str, metric: str) -> tuple[float | None, int]:
    """Measured value of ``metric`` for ``column`` (a category or a group mean) in percent, and
    the number of categories behind it. On STC, ``all`` is pooled over every scene's test pixels
    (frames for ``image_roc_auc`` / ``frame_roc_auc``; ``results.json: stc.pooled``) and
    ``scene mean`` the mean of the scenes' values."""
    cats = rec["categories"]
    if is_stc(rec) and column == "all" and metric in ("pixel_roc_auc", "image_roc_auc", "frame_roc_auc"):
        pooled = (rec.get("stc") or {}).get("pooled") or {}
        v = pooled.get(metric)
        return (None, 0) if v is None else (100.0 * v, int(pooled.get("scenes", 0)))
    if column == SCENE_MEAN:
        column = "all"
    if column in GROUP_SIZE or column in (rec["config"]["dataset"]["name"], "mvtec_ad", "stc"):
        kind = {"textures": "texture", "objects": "object"}.get(column)
        members = [c for c in cats if kind is None or c["kind"] == kind]
    else:
        members = [c for c in cats if c["category"] == column]
    vals = [_metric(c, metric) for c in members]
    vals = [v for v in vals if v is not None]
    if not vals:
        return None, 0
    return statistics.fmean(vals), len(vals)


def _metric(cat: dict[str, Any], metric: str) -> float | None:
    if metric == "frame_roc_auc":  # STC: frame-level ROC-AUC of the map maxima
        v = (cat.get("stc") or {}).get("frame_roc_auc")
        return None if v is None else 100.0 * v
    if metric in PERCENT_METRICS:
        v = cat["metrics"].get(metric)
        return None if v is None else 100.0 * v
    if metric in cat["time"]:
        return cat["time"][metric]
    if metric in cat["memory"]:
        return cat["memory"][metric]
    return None


# -------------------------------------------------------------------------------------- tables
def build(table: str, records: list[dict[str, Any]]) -> list[TableData]:
    """Table ``table`` ("1" .. "8") from the paper's cells and the measured ``records``; Table III
    comes as two parts (textures / objects / all, then per category).

    Raises:
        PadimBenchError: unknown table number.
    """
    if table not in reference.table_ids():
        raise PadimBenchError(f"unknown table {table!r}; the paper has tables {', '.join(reference.table_ids())}")
    if table == "8":
        return [build_table8(records)]
    kept = [r for r in records if is_stc(r) == (table == "4")]  # Table IV is STC's, the others MVTec AD's
    left_out = [str(r.get("_path", r.get("name", "run"))) for r in records if is_stc(r) != (table == "4")]
    pcells = reference.cells(table)
    if table == "3":
        groups = [c for c in pcells if c.column in GROUP_SIZE]
        per_class = [c for c in pcells if c.column not in GROUP_SIZE]
        parts = [_build(table, kept, groups), _build(table, kept, per_class, " (per category)")]
    else:
        parts = [_build(table, kept, pcells)]
    if left_out:
        why = "not STC runs; Table IV is STC's" if table == "4" else "STC runs; they go in Table IV"
        note = f"left out ({why}): " + ", ".join(left_out)
        for part in parts:
            part.notes.insert(0, note)
    return parts


def _build(table: str, records: list[dict[str, Any]], pcells: list[reference.PaperCell], suffix: str = "") -> TableData:
    spec = reference.load_paper()["tables"][table]
    columns: list[tuple[str, str]] = []
    for c in pcells:
        if (c.column, c.metric) not in columns:
            columns.append((c.column, c.metric))
    if table == "4":
        columns += [c for c in TABLE4_EXTRA if c not in columns]
    row_specs = reference.rows(table)
    grouped: dict[str, list[dict[str, Any]]] = {}
    analog_of: dict[str, str] = {}
    by_cats: dict[str, set[tuple[str, ...]]] = {}
    split_of: dict[str, str] = {}  # a row's key -> the key it was split from (by flags or category set)
    for rec in records:
        key = row_for(table, rec)
        if key is None and (analog := analog_row_for(table, rec)) is not None:
            key = f"{row_specs[analog]['label']} — ours with {rec['config']['method']['backbone']}"
            analog_of[key] = analog
        key = key or extra_label(rec)
        by_cats.setdefault(key, set()).add(_category_set(rec))
        grouped.setdefault(key, []).append(rec)
    for key in list(grouped):  # runs that are not the same experiment are not averaged into one row
        recs = grouped[key]
        parts: dict[str, list[dict[str, Any]]] = {}
        for rec in recs:
            flags = [f for f, on in (("RANDOM weights", rec["config"]["method"].get("weights") == "random"),
                                     ("SYNTHETIC data", bool(rec.get("synthetic_data")))) if on]
            cats = ", ".join(_category_set(rec)) if len(by_cats[key]) > 1 else ""
            tag = f"{key} [{', '.join(flags)}]" if flags else key
            parts.setdefault(f"{tag} ({cats})" if cats else tag, []).append(rec)
        if list(parts) != [key]:
            del grouped[key]
            for tag, rs in parts.items():
                grouped[tag] = rs
                split_of[tag] = key
                if key in row_specs or key in analog_of:
                    analog_of[tag] = analog_of.get(key, key)
    row_keys = []
    for k in row_specs:
        if any(c.row == k for c in pcells) or k in grouped:
            row_keys.append(k)
        row_keys += [a for a, src in analog_of.items() if src == k]
    row_keys += [k for k in grouped if k not in row_keys]
    data = TableData(spec["title"] + suffix, columns, unit="s" if table == "7" else "%")
    for key in row_keys:
        recs = grouped.get(key, [])
        paper_key = analog_of.get(key, key)
        base = split_of.get(key, key)
        label = (row_specs[base]["label"] if base in row_specs else base) + key[len(base):]  # + this group's tag
        tag = key[len(base):]  # the paper's own row, not flagged; Table VII's times hold with random weights
        genuine = base == paper_key and ("[" not in tag or (table == "7" and "SYNTHETIC" not in tag))
        cells = []
        for column, metric in columns:
            cell = Cell(of=group_size(column, "stc" if table == "4" else None))
            for pc in pcells:  # the paper's value stands beside genuine runs of its own row only
                if (pc.row, pc.column, pc.metric) == (paper_key, column, metric) and genuine:
                    cell.paper, cell.tag = pc.value, pc.tag
            vals = [(v, n) for v, n in (measured_value(r, column, metric) for r in recs) if v is not None]
            if vals:
                cell.ours = statistics.fmean(v for v, _ in vals)
                cell.spread = statistics.stdev(v for v, _ in vals) if len(vals) > 1 else None
                cell.runs = len(vals)
                cell.covered = min(n for _, n in vals)
            cells.append(cell)
        data.rows.append((label, cells))
    if table == "7":
        data.notes += _table7_ratios(data) + _same_backbone_ratios(records)
    if table == "6":
        data.notes += _table6_drops(records)
    if table == "4":
        data.notes += _table4_notes(records)
    data.notes += _synthetic_notes(records)
    data.notes.append("paper value → ours (difference); a value alone is the paper's, not measured here; "
                      "¹ one source only, ? unconfirmed; [n/N] = categories in our mean / in the paper's")
    return data


def _category_set(rec: dict[str, Any]) -> tuple[str, ...]:
    return tuple(sorted(c["category"] for c in rec["categories"]))


def _synthetic_notes(records: list[dict[str, Any]]) -> list[str]:
    """One line per run on a padim-bench generated dataset (``synthetic_data`` in its record)."""
    return [f"{r.get('_path', r.get('name', 'run'))}: SYNTHETIC data ({r['synthetic_data']['what']}): "
            "its values are not comparable with the paper's" for r in records if r.get("synthetic_data")]


def _table4_notes(records: list[dict[str, Any]]) -> list[str]:
    """What Table IV's columns are, and each run's STC protocol (strides, frames, scenes)."""
    notes = ["all = every test pixel (frame) of every scene as one set, the paper's \"over all scenes\"; scene mean = "
             "mean of the per-scene ROC-AUCs; frame ROC-AUC = frame-level, from each map's maximum (not in the paper)"]
    for r in records:
        stc = r.get("stc") or {}
        if stc.get("protocol"):
            bound = (stc.get("pooled") or {}).get("pixel_roc_auc_binning_bound")
            notes.append(f"{r.get('_path', r.get('name', 'run'))}: {stc['protocol']}"
                         + (f"; pooled pixel ROC-AUC binning bound {100 * bound:.1e} points" if bound is not None else ""))
    return notes


def _table6_drops(records: list[dict[str, Any]]) -> list[str]:
    """Pixel ROC-AUC lost by the non-aligned runs against aligned runs of the same method,
    backbone and d over the same categories (the paper: PaDiM -5.3, SPADE -8.8, VAE -12.2)."""
    paper = {row: value for row, value, _ in reference.load_paper()["tables"]["6"].get("drops", [])}
    labels = {k: v["label"] for k, v in reference.rows("6").items()}
    notes = ["paper: pixel ROC-AUC drop from Table III: " + ", ".join(f"{labels[r]} {v:+.1f}" for r, v in paper.items())]
    key = lambda r: (r["config"]["method"]["name"], r["config"]["method"]["backbone"], r["config"]["method"].get("d"))  # noqa: E731
    for k in sorted({key(r) for r in records}, key=str):
        shifted = [r for r in records if key(r) == k and r["config"]["dataset"].get("augment", "none") != "none"]
        aligned = [r for r in records if key(r) == k and r["config"]["dataset"].get("augment", "none") == "none"]
        if not shifted or not aligned:
            continue
        cats = set.intersection(*({c["category"] for c in r["categories"]} for r in shifted + aligned))
        def mean_pix(rs):
            vals = [100 * c["metrics"]["pixel_roc_auc"] for r in rs for c in r["categories"]
                    if c["category"] in cats and c["metrics"].get("pixel_roc_auc") is not None]
            return statistics.fmean(vals) if vals else None
        a, b = mean_pix(aligned), mean_pix(shifted)
        if a is not None and b is not None:
            parts = "".join(f"-{p}" for p in method_class(k[0]).label_parts(shifted[0]["config"]["method"]))
            notes.append(f"ours: {k[0]}-{k[1]}{parts}" +
                         f": pixel ROC-AUC {a:.1f} aligned -> {b:.1f} non-aligned ({b - a:+.1f}) over {len(cats)} categories, "
                         f"{len(shifted)} non-aligned run(s)")
    return notes


def _same_backbone_ratios(records: list[dict[str, Any]]) -> list[str]:
    """The inference-time ratio of the two methods of paper.yaml's Table VII ``same_backbone``
    rows, each with the same backbone, over the categories both measured (the paper: SPADE /
    PaDiM = 7.10 / 0.95 = 7.5 with WR50)."""
    spec = reference.load_paper()["tables"]["7"].get("same_backbone")
    if not spec:
        return []
    rows, paper = reference.rows("7"), {c.row: c.value for c in reference.cells("7") if c.column == "all"}
    num_row, den_row = spec["rows"]
    methods = [rows[num_row]["method"], rows[den_row]["method"]]
    names = [method_class(m).display_name or m for m in methods]

    def times(method: str, backbone: str) -> dict[str, float]:
        return {c["category"]: c["time"]["infer_s_per_image"] for r in records
                if r["config"]["method"]["name"] == method and r["config"]["method"]["backbone"] == backbone
                for c in r["categories"] if c["time"].get("infer_s_per_image")}

    notes = []
    for backbone in sorted({r["config"]["method"]["backbone"] for r in records}):
        num, den = (times(m, backbone) for m in methods)
        common = sorted(set(num) & set(den))
        if common:
            ratio = statistics.fmean(num[c] for c in common) / statistics.fmean(den[c] for c in common)
            notes.append(f"ours, {backbone}: {names[0]} / {names[1]} = {ratio:.1f} over {', '.join(common)} "
                         f"(paper, {spec['paper_backbone']}: {paper[num_row] / paper[den_row]:.1f})")
    return notes


def _table7_ratios(data: TableData) -> list[str]:
    """Each of paper.yaml's Table VII ``ratios`` (numerator row, denominator row): the paper's and
    ours, and every measured time against the paper's."""
    by_label = {label.split(" [")[0]: cells[0] for label, cells in data.rows if cells}
    rows = reference.rows("7")
    notes = []
    for label, cells in data.rows:
        c = cells[0]
        if c.paper and c.ours:
            notes.append(f"{label}: ours {c.ours:.3f} s = {c.ours / c.paper:.2f} x the paper's {c.paper} s "
                         "(other CPU; the ratios between methods below should carry over)")
    for num_row, den_row in reference.load_paper()["tables"]["7"].get("ratios", []):
        num, den = rows[num_row]["label"], rows[den_row]["label"]
        a, b = by_label.get(num), by_label.get(den)
        if a and b and a.paper and b.paper:
            ours = f"{a.ours / b.ours:.2f}" if a.ours and b.ours else "not measured"
            notes.append(f"ratio {num} / {den}: paper {a.paper / b.paper:.2f}, ours {ours}")
    return notes


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
    data.notes.append("computed = fitted state in float32 from the architecture (GB = 1e9 bytes); SPADE bank for "
                      "242 images at 224 (MVTec AD) or 5,000 frames at 256 (STC). The paper does not state its "
                      "convention: only these with/without-backbone choices reproduce its values.")
    data.notes.append("fitted = the state_bytes of fitted models in the given runs (same input size as the cell), "
                      "by the same convention; SPADE's bank scaled from the run's training images to the cell's "
                      "(242 images, 5,000 frames), since it grows linearly with them; the largest category shown")
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


# ------------------------------------------------------------------------------------ rendering
def _fmt(v: float | None, unit: str, digits: int | None = None) -> str:
    if v is None:
        return ""
    if digits is None:
        digits = 3 if unit == "GB" else 2 if unit == "s" else 1
    return f"{v:.{digits}f}"


def paper_digits(v: float) -> int:
    """Decimals the paper printed (``37.0`` -> 1, ``0.09`` -> 2)."""
    text = repr(float(v))
    return len(text.split(".")[1]) if "." in text else 0


def cell_text(c: Cell, unit: str) -> str:
    """``paper → ours (±diff) [n/N]``, parts left out where unknown; when the paper gives the
    value, ours is printed to the paper's precision."""
    digits = paper_digits(c.paper) if c.paper is not None else None
    paper = f"{_fmt(c.paper, unit, digits)}{TAG_MARK.get(c.tag or '2', '')} → " if c.paper is not None else ""
    if c.ours is None:
        return paper[:-3]  # the paper's value alone: nothing measured
    ours = _fmt(c.ours, unit, digits)
    if c.spread is not None:
        ours += f"±{_fmt(c.spread, unit)}"
    diff = ""
    if c.diff is not None:
        d = round(c.diff, digits if digits is not None else 2)
        diff = " (=)" if d == 0 else f" ({d:+.{digits if digits is not None else 2}f})"
    cover = f" [{c.covered}/{c.of}]" if c.of and c.covered is not None and c.covered != c.of else ""
    runs = f" x{c.runs}" if c.runs > 1 else ""
    return f"{paper}{ours}{diff}{cover}{runs}"


def _header(column: str, metric: str) -> str:
    names = {"pixel_roc_auc": "pixel ROC-AUC", "image_roc_auc": "image ROC-AUC", "pro": "PRO",
             "frame_roc_auc": "frame ROC-AUC", "infer_s_per_image": "s / image", "state_gb": "GB",
             "fit_peak_rss_bytes": "GB", "fitted_gb": "GB"}
    return f"{column}\n{names.get(metric, metric)}"


def to_rich(data: TableData) -> Table:
    """The table for the terminal (text is escaped: ``[2/15]`` is not rich markup)."""
    t = Table(title=escape(data.title), caption=escape("\n".join(data.notes)), caption_justify="left")
    t.add_column("method")
    for column, metric in data.columns:
        t.add_column(escape(_header(column, metric)), justify="right")
    for label, cells in data.rows:
        t.add_row(escape(label), *(escape(cell_text(c, data.unit)) for c in cells))
    return t


def to_markdown(data: TableData) -> str:
    head = ["method"] + [_header(c, m).replace("\n", " ") for c, m in data.columns]
    lines = [f"**{data.title}**", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, cells in data.rows:
        lines.append("| " + " | ".join([label] + [cell_text(c, data.unit) for c in cells]) + " |")
    return "\n".join(lines + [""] + [f"_{n}_" for n in data.notes]) + "\n"


def to_csv(data: TableData) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["row", "column", "metric", "paper", "tag", "ours", "diff", "spread", "runs", "covered", "of"])
    for label, cells in data.rows:
        for (column, metric), c in zip(data.columns, cells):
            w.writerow([label, column, metric, c.paper, c.tag, c.ours, c.diff, c.spread, c.runs, c.covered, c.of])
    return buf.getvalue()


def to_latex(data: TableData) -> str:
    def esc(s: str) -> str:
        return s.replace("&", r"\&").replace("%", r"\%").replace("_", r"\_").replace("→", r"$\to$").replace("±", r"$\pm$")

    cols = "l" + "r" * len(data.columns)
    lines = [r"\begin{table}", r"\centering", rf"\caption{{{esc(data.title)}}}", rf"\begin{{tabular}}{{{cols}}}",
             r"\hline", " & ".join(["method"] + [esc(_header(c, m).replace("\n", " ")) for c, m in data.columns]) + r" \\",
             r"\hline"]
    for label, cells in data.rows:
        lines.append(" & ".join([esc(label)] + [esc(cell_text(c, data.unit)) for c in cells]) + r" \\")
    lines += [r"\hline", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"
