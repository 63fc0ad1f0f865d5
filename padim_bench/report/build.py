"""``padim-bench report``: figures and one HTML page from one or several run folders.

Reads ``results.json`` and ``report_data/`` of each run (never writes there), re-reads the input
images of the selected test images from the dataset, and writes into the report folder::

    REPORT_DIR/report.html                       self-contained page (figures embedded)
    REPORT_DIR/figures/bars.png                  metrics per category and textures / objects / all
    REPORT_DIR/figures/cost.png                  fit time, inference time, memory (log scales)
    REPORT_DIR/figures/curves_<category>.png     image ROC, pixel ROC, PRO of every run, overlaid
    REPORT_DIR/figures/overlay_<category>_<run>_<group>.png   input, ground truth, heat map, threshold

File names are sanitised (``[A-Za-z0-9._-]``) and every path stays inside ``REPORT_DIR``. PNGs of
an earlier report in the same folder (listed in ``.report_files``) are removed first, so the
folder holds exactly one report; its size is returned and printed.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .. import reference, tables
from ..errors import PadimBenchError
from ..methods import method_class
from ..output import markdown_table
from ..store import atomic_write_bytes, atomic_write_text, read_results
from . import html as H
from .data import GROUP_TEXT, GROUPS, IMAGE_THRESHOLD_RULE, PIXEL_THRESHOLD_RULE, REPORT_DATA_DIR, CategoryData, \
    load_category, safe_name

BACKBONE_NAMES = {"resnet18": "R18", "wide_resnet50_2": "WR50", "efficientnet_b5": "EffB5",
                  "efficientnet_lite0": "EffL0", "efficientnet_lite1": "EffL1", "efficientnet_lite2": "EffL2"}
METRICS = (("image_roc_auc", "image ROC-AUC %"), ("pixel_roc_auc", "pixel ROC-AUC %"), ("pro", "PRO % (FPR <= 0.3)"))
MANIFEST = ".report_files"


@dataclass
class Run:
    """A run folder as the report sees it."""

    record: dict[str, Any]
    folder: Path
    label: str = ""
    color: str = ""
    data: dict[str, CategoryData] = field(default_factory=dict)


@dataclass
class ReportSummary:
    """What :func:`build_report` wrote.

    Attributes:
        html: the page. files: every file written (PNGs, the page). total_bytes: their size.
        figure_bytes: size of the PNGs alone (the page embeds them once more).
        report_data_bytes: per run folder, the size of its ``report_data/`` (what the runs keep).
        problems: what could not be drawn and why (missing report data, unreadable inputs).
    """

    html: Path
    files: list[Path]
    total_bytes: int
    figure_bytes: int
    report_data_bytes: dict[str, int]
    problems: list[str]

    @property
    def n_files(self) -> int:
        return len(self.files)


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
    ``SPADE-WR50``, ``VAE-R18``) + ``nonaligned``, ``[random]``, ``[synthetic]``."""
    m = record["config"]["method"]
    label = method_class(m["name"]).label(m, BACKBONE_NAMES.get(m["backbone"], m["backbone"]))
    if record["config"]["dataset"].get("augment", "none") != "none":
        label += " nonaligned"
    if m.get("weights") == "random":
        label += " [random]"
    if record.get("synthetic_data"):
        label += " [synthetic]"
    return label


def _label_runs(runs: list[Run]) -> None:
    from .figures import PALETTE

    labels = [run_label(r.record) for r in runs]
    for i, r in enumerate(runs):
        if labels.count(labels[i]) > 1:
            labels[i] += f" ({r.folder.name})"
    for i, r in enumerate(runs):
        r.label = labels[i] if labels.count(labels[i]) == 1 else f"{labels[i]} #{i + 1}"
        r.color = PALETTE[i % len(PALETTE)]


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
    """The bar chart's columns: every category, then textures / objects / all where they have
    members; on MVTec AD a group labelled ``[n/N]`` covers n of the paper's N categories."""
    cats = sorted({c["category"] for r in runs for c in r.record["categories"]})
    kinds = {c["category"]: c["kind"] for r in runs for c in r.record["categories"]}
    mvtec = all(r.record["config"]["dataset"]["name"] == "mvtec_ad" for r in runs)
    cols, labels = list(cats), list(cats)
    for group, kind in (("textures", "texture"), ("objects", "object"), ("all", None)):
        members = [c for c in cats if kind is None or kinds[c] == kind]
        if not members or (kind is not None and not mvtec):
            continue
        of = tables.GROUP_SIZE[group]
        cols.append(group)
        labels.append(f"{group}\n[{len(members)}/{of}]" if mvtec and len(members) != of else group)
    return cols, labels


def _bar_data(runs: list[Run], columns: list[str], paper: _Paper):
    from .figures import BarRun

    out = []
    for r in runs:
        b = BarRun(r.label, r.color)
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
        c = CostRun(r.label, r.color,
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


# ------------------------------------------------------------------------------------ writing
def _dir_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0


def _inside(out: Path, path: Path) -> Path:
    if out.resolve() not in path.resolve().parents:
        raise PadimBenchError(f"{path}: would be written outside the report folder {out}")  # a bug, never user input
    return path


def _overlay_rows(run: Run, cd: CategoryData, group: str, data_root, problems: list[str]):
    from .figures import OverlayRow

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


def build_report(run_dirs: Sequence[str | Path], out_dir: str | Path, *, data_root: str | Path | None = None,
                 dpi: int = 80, embed: bool = True, paper_tables: Sequence[str] = ("3", "5", "7", "8")) -> ReportSummary:
    """Write the report of the runs in ``run_dirs`` into ``out_dir`` (module doc).

    Args:
        run_dirs: run folders, ``results.json`` files or folders of runs; several are overlaid,
            labelled by method and backbone.
        out_dir: report folder (created).
        data_root: where the dataset lies now, when it moved since the runs (input images of the
            overlays are re-read from it); None: the paths the runs recorded.
        dpi: resolution of the PNGs (80: about 1000 px wide).
        embed: embed the PNGs in the page (self-contained); False: link ``figures/*.png``.
        paper_tables: the paper's tables shown side by side with these runs (``padim-bench table``);
            Table VIII is computed from the architectures, which takes several seconds.

    Returns:
        A :class:`ReportSummary` (files, sizes, problems).

    Raises:
        PadimBenchError: a path is not a run, or the report folder cannot be written.
    """
    from .figures import CurveSeries, bar_figure, cost_figure, curves_figure, overlay_figure, png_bytes

    runs = find_runs(run_dirs)
    _label_runs(runs)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise PadimBenchError(f"report folder {out} exists and is not a folder")
    fig_dir = out / "figures"
    try:
        fig_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PadimBenchError(f"report folder {out}: cannot create it ({e.strerror or e})") from None
    manifest = out / MANIFEST
    if manifest.is_file():  # remove the previous report's figures (only files it listed, inside out)
        for name in manifest.read_text(encoding="utf-8").split():
            p = fig_dir / safe_name(name)
            if p.suffix == ".png" and p.is_file():
                p.unlink()
    problems: list[str] = []
    written: list[Path] = []
    pngs: dict[str, bytes] = {}

    def save(name: str, fig) -> str:
        name = safe_name(name)
        if not name.endswith(".png"):
            name += ".png"
        while name in pngs:
            name = name[:-4] + "_.png"
        blob = png_bytes(fig, dpi)
        path = _inside(out, fig_dir / name)
        try:
            atomic_write_bytes(path, blob)
        except OSError as e:
            raise PadimBenchError(f"{path}: cannot write ({e.strerror or e})") from None
        pngs[name] = blob
        written.append(path)
        return name

    for r in runs:
        for c in r.record["categories"]:
            cd = load_category(r.folder, c)
            r.data[c["category"]] = cd
            problems += [f"{r.label}: {p}" for p in cd.problems]

    columns, column_labels = _columns(runs)
    paper = _Paper()
    cats = [c for c in columns if c not in tables.GROUP_SIZE]
    sections: list[str] = []

    # -- header
    rows = []
    for r in runs:
        env = r.record.get("environment", {})
        m = r.record["config"]["method"]
        rows.append(f"<tr><td>{H.esc(r.label)}</td><td><code>{H.esc(r.folder)}</code></td>"
                    f"<td>{H.esc(m['name'])}, {H.esc(m['backbone'])}, weights {H.esc(m['weights'])}</td>"
                    f"<td>{H.esc(r.record.get('config_hash'))}</td><td>{H.esc(env.get('cpu'))}, "
                    f"{H.esc(env.get('torch_threads'))} threads, {H.esc(env.get('device'))}</td>"
                    f"<td>{H.esc(env.get('date_utc'))}</td>"
                    f"<td>{H.esc(', '.join(f'{v:.1f}' for v in env.get('load_average') or []))}</td></tr>")
    sections.append(
        f'<p class="note">Generated {H.esc(time.strftime("%Y-%m-%d %H:%M:%S %Z"))} by <code>padim-bench report</code> '
        "from the runs below. Every number comes from their <code>results.json</code> and "
        "<code>report_data/</code>; making this report changes none of them.</p>"
        '<div class="scroll"><table><thead><tr><th>label</th><th>run folder</th><th>method</th><th>config hash</th>'
        "<th>machine</th><th>finished (UTC)</th><th>load average then</th></tr></thead><tbody>" + "".join(rows)
        + "</tbody></table></div>")

    # -- comparison charts
    note = ("Bars: our runs (value in percent on each bar; n/a = not measured). Black markers: the paper's values "
            "(Tables III and V) for the same method: filled where the paper reports our exact method and backbone, "
            "hollow where it is the same method with the paper's backbone (ResNet18 / WideResNet50), which is not "
            "our configuration; no marker where the paper has no value (e.g. PRO per category, or any "
            "EfficientNet-Lite0 row). Group means [n/N] cover n of the paper's N categories: not the paper's mean.")
    bars = save("bars", bar_figure(_bar_data(runs, columns, paper), columns, column_labels, METRICS, note))
    cost_note = ("Bars: mean over the run's categories; dots: each category. Paper markers: Table VII (s/image on "
                 "an Intel i7-4710HQ, serial) and Table VIII (fitted state in float32; the paper counts the backbone "
                 "for some cells and not for others, so each marker sits on the bar of its convention). Ours: "
                 "measured on the machine named above (a load average above its core count means it was shared and the times "
                 "are inflated); the peak RSS is the whole process (interpreter and libraries).")
    cost = save("cost", cost_figure(_cost_data(runs, paper), cost_note))
    sections.append("<h2>Methods compared</h2>" + H.figure(pngs[bars], "metrics per category", note, embed,
                                                            f"figures/{bars}"))
    sections.append("<h2>Time and memory</h2>" + H.figure(pngs[cost], "time and memory", cost_note, embed,
                                                          f"figures/{cost}"))

    # -- tables
    parts = ["<h2>Tables</h2>"]
    for r in runs:
        parts.append(H.markdown_to_html(markdown_table(r.record)))
    records = [r.record for r in runs]
    for number in paper_tables:
        try:
            for part in tables.build(number, records):
                parts.append(H.markdown_to_html(tables.to_markdown(part)))
        except (PadimBenchError, NotImplementedError, KeyError) as e:
            problems.append(f"paper table {number}: not rendered ({e})")
    sections.append("\n".join(parts))

    # -- per category
    thr_text = (f"Overlays: red = pixels whose map is >= the category's {PIXEL_THRESHOLD_RULE}. Image rows "
                f"say whether the image score reaches the {IMAGE_THRESHOLD_RULE}. Heat-map colours span the "
                "category's test pixels from their minimum to their 99.9th percentile (raised, if needed, so that the "
                "threshold sits at most at 80% of the scale), the same for every row, so good and defective images "
                "compare; the rare higher values saturate. Green: ground-truth contour. The runs keep these maps as "
                "8-bit levels of that range, for the selected images only.")
    for cat in cats:
        sec = [f"<h2>{H.esc(cat)}</h2>"]
        series = [CurveSeries(r.label, r.color, r.data[cat].curves if cat in r.data else None) for r in runs]
        limits = [s.curves["pro"]["fpr_limit"] for s in series if s.curves and s.curves.get("pro")]
        if any(s.curves for s in series):
            name = save(f"curves_{cat}", curves_figure(cat, series, max(limits) if limits else 0.3))
            cap = ("Image ROC (all points), pixel ROC (thinned to at most 400 points along the curve) and the PRO "
                   "curve up to the FPR limit (its normalised area is the PRO metric), every run overlaid.")
            sec.append(H.figure(pngs[name], f"{cat} curves", cap, embed, f"figures/{name}"))
        else:
            sec.append(f'<p class="problem">{H.esc(cat)}: no curve data in any run (re-run with --force).</p>')
        sec.append(f'<p class="note">{H.esc(thr_text)}</p>')
        for r in runs:
            cd = r.data.get(cat)
            if cd is None:
                continue
            if cd.maps is None:
                sec.append(f'<p class="problem">{H.esc(r.label)}: no overlays for {H.esc(cat)}'
                           f"{': ' + H.esc('; '.join(cd.problems)) if cd.problems else ''}</p>")
                continue
            cur = cd.curves
            pt, rng = cur.get("pixel_threshold") or {}, cur["map_range"]
            t = pt.get("value")
            t_note = ("no pixel threshold (one class only)" if t is None else
                      f"red: map >= {t:.4g}, the pixel-F1-optimal threshold over all {cur['n_test']} test images "
                      f"(F1 {pt['f1']:.2f}, precision {pt['precision']:.2f}, recall {pt['recall']:.2f}; chosen on the "
                      f"test labels). Colours: [{rng['lo']:.4g}, {rng['hi']:.4g}], up to "
                      + ("the 99.9th percentile of all test pixels" if rng["hi"] <= rng["p99_9"] else
                         "where the threshold sits at 80% of the scale (above the 99.9th percentile)")
                      + (f"; the maps reach {rng['max']:.4g}: higher values saturate." if rng["hi"] < rng["max"] else "."))
            for group in GROUPS:
                rows_ = _overlay_rows(r, cd, group, data_root, problems)
                if not rows_:
                    continue
                fig = overlay_figure(f"{r.label}: {cat}, {GROUP_TEXT[group]}", rows_, rng["lo"], rng["hi"], t, t_note,
                                     saturated=rng["hi"] < rng["max"])
                name = save(f"overlay_{safe_name(cat)}_{safe_name(r.label)}_{group}", fig)
                sec.append(f"<h3>{H.esc(r.label)}: {H.esc(GROUP_TEXT[group])}</h3>"
                           + H.figure(pngs[name], f"{r.label} {cat} {group}", "", embed, f"figures/{name}"))
        sections.append("\n".join(sec))

    # -- sizes
    data_bytes = {str(r.folder): _dir_bytes(r.folder / REPORT_DATA_DIR) for r in runs}
    fig_bytes = sum(len(b) for b in pngs.values())
    size_rows = "".join(f"<tr><td><code>{H.esc(k)}/{REPORT_DATA_DIR}</code></td><td>{v / 1e3:.0f} KB</td></tr>"
                        for k, v in data_bytes.items())
    sections.append(
        "<h2>Disk</h2><p>What the runs keep for this report (curves, thresholds, 8-bit maps of the selected images) "
        "and what the report itself takes:</p><table><tbody>" + size_rows
        + f"<tr><td>{len(pngs)} PNGs in <code>figures/</code></td><td>{fig_bytes / 1e3:.0f} KB</td></tr>"
        + ("<tr><td>this page (the PNGs embedded once more, base64: about 4/3 of their size)</td>"
           f"<td>about {fig_bytes * 4 / 3 / 1e3:.0f} KB</td></tr>" if embed else "") + "</tbody></table>")
    if problems:  # right under the runs
        sections.insert(1, "<h2>Missing pieces</h2><ul>"
                        + "".join(f'<li class="problem">{H.esc(p)}</li>' for p in problems) + "</ul>")
    title = "padim-bench report: " + ", ".join(r.label for r in runs)
    page = _inside(out, out / "report.html")
    try:
        atomic_write_text(page, H.page(title, sections))
        atomic_write_text(manifest, "\n".join(sorted(pngs)) + "\n")
    except OSError as e:
        raise PadimBenchError(f"{page}: cannot write ({e.strerror or e})") from None
    written.append(page)
    total = sum(p.stat().st_size for p in written)
    return ReportSummary(page, written, total, fig_bytes, data_bytes, problems)


def summary_json(summary: ReportSummary) -> str:
    """The summary as JSON (for scripts)."""
    return json.dumps({"html": str(summary.html), "files": [str(p) for p in summary.files],
                       "total_bytes": summary.total_bytes, "figure_bytes": summary.figure_bytes,
                       "report_data_bytes": summary.report_data_bytes, "problems": summary.problems}, indent=2)
