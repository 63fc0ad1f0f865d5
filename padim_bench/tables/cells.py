"""A table's cells and how a run record fills them: which paper row a run reproduces, its label
when the paper has none, and the measured value of a column.

Which runs a table shows is data: ``padim_bench/reference/paper.yaml`` names the dataset each
table reproduces (``tables.N.dataset``), and a run goes in the tables of the dataset its own
dataset declares (:attr:`padim_bench.data.Dataset.paper_tables`); only runs of that very dataset
are matched to the paper's rows. Group columns (``textures`` / ``objects`` / ``all``) are means
over the categories of a kind; the dataset says how many of the paper's categories each covers
(:attr:`~padim_bench.data.Dataset.group_sizes`) and computes its own values where it has them
(:meth:`~padim_bench.data.Dataset.measured`, e.g. STC's pooled ``all``).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from .. import reference
from ..data import DATASETS, dataset_class, record_dataset
from ..methods import method_class

PERCENT_METRICS = ("image_roc_auc", "pixel_roc_auc", "pro")
#: group columns and the kind of category each averages (None: every category)
GROUP_KINDS = {"textures": "texture", "objects": "object", "all": None}
#: defaults of the method parameters that paper rows may name, when a record lacks them
_ROW_DEFAULTS = {"reduction": "random", "combine": "joint", "decoder": "small"}


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
    """A rendered-agnostic table: columns ``(column, metric)``, rows of cells, notes;
    ``per_category``: its columns are categories (the terminal shows them as rows)."""

    title: str
    columns: list[tuple[str, str]]
    rows: list[tuple[str, list[Cell]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    unit: str = "%"
    per_category: bool = False


def table_dataset(table: str) -> str | None:
    """The dataset whose runs paper table ``table`` reproduces (``paper.yaml``), or None (Table
    VIII, whose columns are datasets)."""
    return reference.load_paper()["tables"][table].get("dataset")


def dataset_name(record: dict[str, Any]) -> str | None:
    """The dataset a run record is on (``config.dataset.name``)."""
    return (record.get("config") or {}).get("dataset", {}).get("name")


def in_table(table: str, record: dict[str, Any]) -> bool:
    """``record`` goes in paper table ``table``: its dataset's paper tables are the table's
    dataset (every run goes in Table VIII)."""
    want = table_dataset(table)
    return want is None or record_dataset(record).paper_tables == want


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


def _own_dataset(table: str, record: dict[str, Any]) -> bool:
    """Only runs of the table's own dataset are matched to its rows (another dataset's runs in
    its tables, e.g. a folder in the MVTec AD layout, are rows of their own)."""
    want = table_dataset(table)
    return want is None or dataset_name(record) == want


def row_for(table: str, record: dict[str, Any]) -> str | None:
    """The paper row of ``table`` that ``record`` reproduces, or None. Non-aligned runs
    (``dataset.augment: nonaligned``) only reproduce Table VI, and Table VI only those; a run
    reproduces the rows of its own dataset's tables only (Table VIII: any dataset's; its columns
    are matched by dataset)."""
    nonaligned = record["config"]["dataset"].get("augment", "none") != "none"
    if nonaligned != (table == "6") or not _own_dataset(table, record):
        return None
    for key, spec in reference.rows(table).items():
        if _matches(spec, record["config"]["method"]):
            return key
    return None


def analog_row_for(table: str, record: dict[str, Any]) -> str | None:
    """A table-specific paper row (Tables I, II: layers, reduction, combine) that ``record``
    matches in everything but the backbone: the same experiment on another backbone."""
    if not _own_dataset(table, record):
        return None
    own = reference.load_paper()["tables"][table].get("rows", {})
    for key, spec in own.items():
        if _matches({k: v for k, v in spec.items() if k != "backbone"}, record["config"]["method"]):
            return key
    return None


def extra_label(record: dict[str, Any]) -> str:
    """Label of a measured row the paper does not have: method, backbone, the method's label parts
    (``Method.label_parts``) and the settings that set it apart (layers, the method's
    ``variant_parts``, the dataset's augmentation, the dataset where it is not the paper's)."""
    m = record["config"]["method"]
    cls = method_class(m["name"])
    parts = "".join(f"-{p}" for p in cls.label_parts(m))
    bits = []
    if m.get("layers") not in (None, ["layer1", "layer2", "layer3"]):
        bits.append("+".join(m["layers"]))
    bits += cls.variant_parts(m)
    if record["config"]["dataset"].get("augment", "none") != "none":
        bits.append(record["config"]["dataset"]["augment"])
    if record_dataset(record).paper_tables != dataset_name(record):
        bits.append(f"on {dataset_name(record)}")
    extra = f" {' '.join(bits)}" if bits else ""
    return f"{m['name']}-{m['backbone']}{parts}{extra} (not in the paper)"


def group_size(column: str, dataset: str | None) -> int | None:
    """Categories the paper's value of ``column`` covers on ``dataset`` (MVTec AD's groups: 5 / 10
    / 15; STC: the 12 scenes with test clips), or None (not a paper mean)."""
    cls = dataset_class(dataset)
    return cls.group_sizes.get(cls.column_aliases.get(column, column))


def measured_value(rec: dict[str, Any], column: str, metric: str) -> tuple[float | None, int]:
    """Measured value of ``metric`` for ``column`` (a category, a group mean, or the dataset's
    name: every category) in percent, and the number of categories behind it. The dataset
    computes its own values first (:meth:`~padim_bench.data.Dataset.measured`; STC: ``all``
    pooled over every scene's test pixels, frames for ``image_roc_auc`` / ``frame_roc_auc``)."""
    cls = record_dataset(rec)
    own = cls.measured(rec, column, metric)
    if own is not None:
        return own
    column = cls.column_aliases.get(column, column)
    cats = rec["categories"]
    if column in GROUP_KINDS or column == dataset_name(rec) or column in DATASETS:
        kind = GROUP_KINDS.get(column)
        members = [c for c in cats if (kind is None or c["kind"] == kind)
                   and (cls.paper_categories is None or c["category"] in cls.paper_categories)]
    else:
        members = [c for c in cats if c["category"] == column]
    vals = [_metric(cls, c, metric) for c in members]
    vals = [v for v in vals if v is not None]
    if not vals:
        return None, 0
    return statistics.fmean(vals), len(vals)


def _metric(cls: type, cat: dict[str, Any], metric: str) -> float | None:
    if metric in cls.own_metrics:  # e.g. STC's frame-level ROC-AUC of the map maxima
        v = cls.category_metric(cat, metric)
        return None if v is None else 100.0 * v
    if metric in PERCENT_METRICS:
        v = cat["metrics"].get(metric)
        return None if v is None else 100.0 * v
    if metric in cat["time"]:
        return cat["time"][metric]
    if metric in cat["memory"]:
        return cat["memory"][metric]
    return None
