"""The runs a report shows: reading them, their labels, the paper's markers beside them, and the
data each figure draws (bars, time and memory, overlays)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .. import reference, tables
from ..data import record_dataset
from ..errors import PadimBenchError
from ..methods import method_class
from ..store import read_results
from .data import CategoryData

BACKBONE_NAMES = {"resnet18": "R18", "wide_resnet50_2": "WR50", "efficientnet_b5": "EffB5",
                  "efficientnet_lite0": "EffL0", "efficientnet_lite1": "EffL1", "efficientnet_lite2": "EffL2"}
METRICS = (("image_roc_auc", "image ROC-AUC %"), ("pixel_roc_auc", "pixel ROC-AUC %"), ("pro", "PRO % (FPR <= 0.3)"))


@dataclass
class Run:
    """A run folder as the report sees it."""

    record: dict[str, Any]
    folder: Path
    label: str = ""
    color: str = ""
    data: dict[str, CategoryData] = field(default_factory=dict)
    #: what sets the run apart from the others of the report, in words (its heading's line)
    details: str = ""

    @property
    def name(self) -> str:
        """The run's name: the variant name for a run of an experiment or sweep (the last part of
        the record's ``name``, e.g. ``rd100_seed0`` of ``table2/rd100_seed0``), else its folder's."""
        return str(self.record.get("name") or self.folder.name).rsplit("/", 1)[-1]

    @property
    def caveats(self) -> list[str]:
        """Why the run's numbers do not compare with the paper's: ``random weights`` (an untrained
        backbone), ``synthetic data`` (generated images). Empty for a genuine run."""
        out = []
        if self.record["config"]["method"].get("weights") == "random":
            out.append("random weights")
        if self.record.get("synthetic_data"):
            out.append("synthetic data")
        return out


# ------------------------------------------------------------------------------------ loading
def find_runs(paths: Sequence[str | Path]) -> list[Run]:
    """The runs under ``paths``: each a run folder (holding ``results.json``), a ``results.json``,
    or a folder of run folders (searched below, e.g. an experiment's output), read by
    :func:`padim_bench.store.read_results`.

    Raises:
        PadimBenchError: no path, or a path that does not exist or holds no padim-bench run,
            naming it.
    """
    if not paths:
        raise PadimBenchError("report: give at least one run folder (e.g. results/runs/mvtec_effl0)")
    return [Run(r, Path(r["_path"]).parent) for r in read_results(paths)]


def run_label(record: dict[str, Any]) -> str:
    """Short label of a run: the method's label (``Method.label``: ``PaDiM-EffL0-Rd100``,
    ``SPADE-WR50``, ``VAE-R18``), its non-default variant (``Method.variant_parts``: ``pca``), then
    ``nonaligned``, ``[random]``, ``[synthetic]``."""
    m = record["config"]["method"]
    cls = method_class(m["name"])
    label = " ".join([cls.label(m, BACKBONE_NAMES.get(m["backbone"], m["backbone"])), *cls.variant_parts(m)])
    if record["config"]["dataset"].get("augment", "none") != "none":
        label += " nonaligned"
    if m.get("weights") == "random":
        label += " [random]"
    if record.get("synthetic_data"):
        label += " [synthetic]"
    return label


def _label_runs(runs: list[Run]) -> None:
    """Each run's label (:func:`run_label`; where two runs share one, the variant name of each is
    appended, then a number), colour and details (:func:`run_details`)."""
    from .figures import PALETTE

    base = [run_label(r.record) for r in runs]
    labels = [b + f" {r.name}" if base.count(b) > 1 else b for b, r in zip(base, runs)]
    for i, r in enumerate(runs):
        r.label = labels[i] if labels.count(labels[i]) == 1 else f"{labels[i]} #{i + 1}"
        r.color = PALETTE[i % len(PALETTE)]
        r.details = run_details(r, runs)


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def _setting(value: Any) -> str:
    return "+".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def _settings(r: Run) -> dict[str, Any]:
    return {**_flat(r.record["config"]["method"]), **_flat(r.record["config"]["dataset"], "dataset.")}


def run_details(run: Run, runs: Sequence[Run]) -> str:
    """One line naming the run and what sets it apart: its name (the sweep variant), method,
    backbone, weights, then every setting whose value differs between ``runs`` (method settings
    among the runs of the same method, e.g. ``d 100``, ``reduction pca``, ``seed 3``; dataset
    settings among all), then its caveats in capitals."""
    m = run.record["config"]["method"]
    mine = _settings(run)
    same = [_settings(r) for r in runs if r.record["config"]["method"]["name"] == m["name"]]
    every = [_settings(r) for r in runs]
    differ = [k for k in mine if k not in ("name", "backbone", "weights")
              and len({_setting(f.get(k)) for f in (every if k.startswith("dataset.") else same)}) > 1]
    parts = [f"run {run.name}", f"method {m['name']}", f"backbone {m['backbone']}", f"weights {m.get('weights')}"]
    parts += [f"{k} {_setting(mine[k])}" for k in differ]
    return " · ".join(parts + [c.upper() for c in run.caveats])


def _input_image(run: Run, path: str, index: int, data_root: str | Path | None,
                 resolved_root: str | None = None) -> tuple[np.ndarray | None, str]:
    """The test image as the model saw it (resize, crop, the non-aligned geometry), float (S, S, 3)
    in [0, 1], or None and the reason. A relative ``path`` not found from here is looked up under
    ``resolved_root`` (the category record's resolved data root), else the run record's."""
    from ..data.images import load_image
    from ..data.transforms import Augment, Preprocess

    ds = run.record["config"]["dataset"]
    p = Path(path)
    resolved = resolved_root or run.record.get("dataset_root_resolved")  # the category's own, else the run's
    if data_root is None and not p.is_absolute() and not p.exists() and resolved:
        data_root = resolved  # a relative root, read from another working folder than the run's
    if data_root is not None:
        try:
            p = Path(data_root) / p.relative_to(ds["root"])
        except ValueError:
            p = Path(data_root) / Path(*p.parts[-4:])  # CATEGORY/test/DEFECT/FILE
    try:
        prep = Preprocess(ds["resize"], ds["crop"], ds["interpolation"])
        geom = None
        if ds.get("augment", "none") != "none":
            seed = ds["augment_seed"] if ds.get("augment_seed") is not None else run.record["config"]["method"]["seed"]
            geom = Augment(ds["augment_rotation_deg"], seed).draw("test", index, ds["resize"], ds["crop"])
        img = prep.image(load_image(p, ds.get("bit_depth")), geom).permute(1, 2, 0).numpy()
    except PadimBenchError as e:
        return None, f"input not available: {e} (--data-root points the report at the dataset)"
    return img, ""


# ----------------------------------------------------------------------------- paper markers
class _Paper:
    """The paper's cells and rows, parsed once per report (``reference`` re-reads its YAML on
    every call), and each run's own paper row per table."""

    def __init__(self) -> None:
        paper = reference.load_paper()
        self.markers: dict[str, str] = paper.get("markers", {})
        self.rows: dict[str, dict[str, Any]] = {}
        self.cells: dict[str, list[reference.PaperCell]] = {}
        for table, spec in paper["tables"].items():
            self.rows[table] = {**paper["rows"], **spec.get("rows", {})}
            self.cells[table] = reference.cells(table)
        self._own: dict[tuple[int, str], str | None] = {}

    def own_row(self, record: dict[str, Any], table: str) -> str | None:
        key = (id(record), table)
        if key not in self._own:
            self._own[key] = tables.row_for(table, record)
        return self._own[key]

    def marks(self, record: dict[str, Any], table: str, column: str, metric: str) -> list:
        """``(PaperMark, PaperCell)`` for every paper value of ``record``'s method (any backbone)
        in ``table`` at ``column`` / ``metric``."""
        from .figures import PaperMark

        rows, method = self.rows[table], record["config"]["method"]["name"]
        own = self.own_row(record, table)
        return [(PaperMark(c.row, rows[c.row]["label"], c.value, c.tag, own == c.row, self.markers.get(c.row, "o")), c)
                for c in self.cells[table]
                if c.column == column and c.metric == metric and rows.get(c.row, {}).get("method") == method]


def _columns(runs: list[Run]) -> tuple[list[str], list[str]]:
    """The bar chart's columns: every category, then the group means of the runs' dataset
    (``Dataset.group_sizes``: textures / objects / all on MVTec AD) where they have members; a
    group labelled ``[n/N]`` covers n of the paper's N categories. Runs on several datasets share
    ``all`` only."""
    cats = sorted({c["category"] for r in runs for c in r.record["categories"]})
    kinds = {c["category"]: c["kind"] for r in runs for c in r.record["categories"]}
    datasets = {record_dataset(r.record) for r in runs}
    sizes = next(iter(datasets)).group_sizes if len(datasets) == 1 else {"all": None}
    cols, labels = list(cats), list(cats)
    for group, kind in tables.GROUP_KINDS.items():
        members = [c for c in cats if kind is None or kinds[c] == kind]
        if not members or group not in sizes:
            continue
        of = sizes[group]
        cols.append(group)
        labels.append(f"{group}\n[{len(members)}/{of}]" if of and len(members) != of else group)
    return cols, labels


def _bar_data(runs: list[Run], columns: list[str], paper: _Paper):
    from .figures import BarRun

    out = []
    for r in runs:
        b = BarRun(r.label, r.color, faded=bool(r.caveats))
        for col in columns:
            for metric, _ in METRICS:
                v, n = tables.measured_value(r.record, col, metric)
                b.values[(col, metric)] = v if n else None
                table = "5" if metric == "image_roc_auc" else "3"
                b.marks[(col, metric)] = [m for m, _ in paper.marks(r.record, table, col, metric)]
        out.append(b)
    return out


def _cost_data(runs: list[Run], paper: _Paper):
    from .figures import CostRun

    out = []
    for r in runs:
        cats = r.record["categories"]
        c = CostRun(r.label, r.color, faded=bool(r.caveats),
                    fit_s=[x["time"]["fit_s"] for x in cats],
                    infer_s=[x["time"].get("infer_s_per_image") for x in cats],
                    state_gb=[x["memory"]["state_gb"] for x in cats],
                    state_gb_without_backbone=[x["memory"].get("state_gb_without_backbone") for x in cats],
                    fit_peak_gb=[x["memory"]["fit_peak_rss_bytes"] / 1e9 for x in cats])
        c.infer_marks = [m for m, _ in paper.marks(r.record, "7", "all", "infer_s_per_image")]
        c.memory_marks = [(m, cell.extra.get("backbone", True)) for m, cell in
                          paper.marks(r.record, "8", r.record["config"]["dataset"]["name"], "state_gb")]
        out.append(c)
    return out


def _overlay_rows(run: Run, cd: CategoryData, group: str, data_root, problems: list[str]):
    from .overlays import OverlayRow

    cur = cd.curves
    rec = next(c for c in run.record["categories"] if c["category"] == cur["category"])
    scores = np.asarray(rec["image_scores"], dtype=np.float64)
    order = {int(i): k + 1 for k, i in enumerate(np.argsort(-scores, kind="stable"))}
    image_t = (cur.get("image_threshold") or {}).get("value")
    rows = []
    for k, sel in enumerate(cur["selected"]):
        if sel["group"] != group:
            continue
        i = sel["index"]
        if rec["image_paths"][i] != sel["path"]:
            problems.append(f"{run.label} {cur['category']}: report data names {sel['path']}, the results "
                            f"{rec['image_paths'][i]}; re-run with --force")
            continue
        img, note = _input_image(run, sel["path"], i, data_root, rec.get("dataset_root_resolved"))
        if img is not None and img.shape[:2] != cd.masks[k].shape:
            img, note = None, f"input {sel['path']} is {img.shape[1]}x{img.shape[0]}, the map {cd.masks[k].shape}"
        if img is None:
            problems.append(f"{run.label} {cur['category']}: {note}")
        flagged = "" if image_t is None else (" >= " if sel["score"] >= image_t else " < ") + f"image threshold {image_t:.4g}"
        caption = (f"{Path(sel['path']).parent.name}/{Path(sel['path']).name}: "
                   f"{'defective' if sel['label'] else 'good'}, image score {sel['score']:.4g}{flagged} "
                   f"(rank {order[i]} of {len(scores)} by score)")
        rows.append(OverlayRow(img, cd.masks[k], cd.maps[k], caption, note))
    return rows
