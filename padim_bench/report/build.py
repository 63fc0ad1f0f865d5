"""``padim-bench report``: figures and one HTML page from one or several run folders.

Reads ``results.json`` and ``report_data/`` of each run (never writes there), re-reads the input
images of the selected test images from the dataset, and writes into the report folder::

    REPORT_DIR/report.html                       self-contained page (figures embedded)
    REPORT_DIR/figures/bars.png                  metrics per category and textures / objects / all
    REPORT_DIR/figures/cost.png                  fit time, inference time, memory (log scales)
    REPORT_DIR/figures/curves_<category>.png     image ROC, pixel ROC, PRO of every run, overlaid
    REPORT_DIR/figures/compare_<category>.png    the same test images in every run (two runs or more)
    REPORT_DIR/figures/overlay_<category>_<run>_<group>.png   input, ground truth, heat map, threshold

The page (:mod:`.html`) is a list of sections with a table of contents: the runs, what could not
be drawn, the comparison charts, the tables, then one section per category. To add a section,
write a function returning an :class:`~padim_bench.report.html.Section` (save its figures with
``figs.save`` and embed them with ``figs.html``) and add it to the list in :func:`build_report`.

File names are sanitised (``[A-Za-z0-9._-]``) and every path stays inside ``REPORT_DIR``. PNGs of
an earlier report in the same folder (listed in ``.report_files``) are removed first, so the
folder holds exactly one report; its size is returned and printed.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .. import tables
from ..errors import PadimBenchError
from ..output import markdown_table
from ..store import atomic_write_bytes, atomic_write_text
from . import html as H
from .backbone_chart import backbone_sections
from .data import GROUP_TEXT, GROUPS, IMAGE_THRESHOLD_RULE, PIXEL_THRESHOLD_RULE, REPORT_DATA_DIR, load_category, \
    safe_name
from .html import Section
from .runs import METRICS, Run, _bar_data, _columns, _cost_data, _label_runs, _overlay_rows, _Paper, find_runs

MANIFEST = ".report_files"


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


# ------------------------------------------------------------------------------------ writing
def _dir_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0


def _inside(out: Path, path: Path) -> Path:
    if out.resolve() not in path.resolve().parents:
        raise PadimBenchError(f"{path}: would be written outside the report folder {out}")  # a bug, never user input
    return path


class _Figures:
    """The report folder's ``figures/``: the previous report's PNGs removed (only files its
    manifest listed, inside the folder), each new figure written once under a unique safe name."""

    def __init__(self, out: Path, dpi: int, embed: bool):
        if out.exists() and not out.is_dir():
            raise PadimBenchError(f"report folder {out} exists and is not a folder")
        self.out, self.dir, self.dpi, self.embed = out, out / "figures", dpi, embed
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise PadimBenchError(f"report folder {out}: cannot create it ({e.strerror or e})") from None
        self.manifest = out / MANIFEST
        if self.manifest.is_file():
            for name in self.manifest.read_text(encoding="utf-8").split():
                p = self.dir / safe_name(name)
                if p.suffix == ".png" and p.is_file():
                    p.unlink()
        self.pngs: dict[str, bytes] = {}
        self.written: list[Path] = []

    def save(self, name: str, fig) -> str:
        """Write ``fig`` as ``figures/<name>.png``; returns the file name used."""
        from .figures import png_bytes

        name = safe_name(name)
        if not name.endswith(".png"):
            name += ".png"
        while name in self.pngs:
            name = name[:-4] + "_.png"
        blob = png_bytes(fig, self.dpi)
        path = _inside(self.out, self.dir / name)
        try:
            atomic_write_bytes(path, blob)
        except OSError as e:
            raise PadimBenchError(f"{path}: cannot write ({e.strerror or e})") from None
        self.pngs[name] = blob
        self.written.append(path)
        return name

    def html(self, name: str, alt: str, caption: str) -> str:
        """The page's ``<figure>`` of the saved ``name`` (embedded or linked)."""
        return H.figure(self.pngs[name], alt, caption, self.embed, f"figures/{name}")


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
    runs = find_runs(run_dirs)
    _label_runs(runs)
    out = Path(out_dir)
    figs = _Figures(out, dpi, embed)
    problems: list[str] = []
    for r in runs:
        for c in r.record["categories"]:
            cd = load_category(r.folder, c)
            r.data[c["category"]] = cd
            problems += [f"{r.label}: {p}" for p in cd.problems]
    columns, column_labels = _columns(runs)
    paper = _Paper()
    sections = [_runs_section(runs), *_chart_sections(runs, columns, column_labels, paper, figs),
                *backbone_sections([r.record for r in runs], figs), _tables_section(runs, paper_tables, problems)]
    sections += [_category_section(cat, runs, figs, data_root, problems)
                 for cat in columns if cat not in tables.GROUP_KINDS]
    data_bytes = {str(r.folder): _dir_bytes(r.folder / REPORT_DATA_DIR) for r in runs}
    fig_bytes = sum(len(b) for b in figs.pngs.values())
    if problems:  # right under the runs
        sections.insert(1, Section("missing", "Missing pieces", "<ul>" + "".join(
            f'<li class="problem">{H.esc(p)}</li>' for p in problems) + "</ul>"))
    title = "padim-bench report: " + ", ".join(r.label for r in runs)
    page = _inside(out, out / "report.html")
    try:
        atomic_write_text(page, H.page(title, _intro(), sections))
        atomic_write_text(figs.manifest, "\n".join(sorted(figs.pngs)) + "\n")
    except OSError as e:
        raise PadimBenchError(f"{page}: cannot write ({e.strerror or e})") from None
    written = figs.written + [page]
    total = sum(p.stat().st_size for p in written)
    return ReportSummary(page, written, total, fig_bytes, data_bytes, problems)


def _intro() -> str:
    return (f'<p class="note">Generated {H.esc(time.strftime("%Y-%m-%d %H:%M:%S %Z"))} by <code>padim-bench '
            "report</code>. Every number comes from the runs' <code>results.json</code> and "
            "<code>report_data/</code>; making this report changes none of them.</p>")


def _shown_path(folder: Path) -> str:
    """``folder`` relative to the working folder where it lies below it, else as given."""
    try:
        return os.path.relpath(folder.resolve(), Path.cwd()) if Path.cwd() in folder.resolve().parents else str(folder)
    except ValueError:
        return str(folder)


def _tags(r: Run) -> str:
    return "".join(f'<span class="tag">{H.esc(c)}</span>' for c in r.caveats)


def _runs_section(runs: list[Run]) -> Section:
    """One row per run: its label (in its colour), what sets it apart, folder, config hash,
    machine, when."""
    rows = []
    for r in runs:
        env = r.record.get("environment", {})
        load = ", ".join(f"{v:.1f}" for v in env.get("load_average") or [])
        rows.append([f'<b style="color:{H.esc(r.color)}">&#9632;</b> {H.esc(r.label)}{_tags(r)}',
                     H.esc(r.details), f"<code>{H.esc(_shown_path(r.folder))}</code>", H.esc(r.record.get("config_hash")),
                     f"{H.esc(env.get('cpu'))}, {H.esc(env.get('torch_threads'))} threads, {H.esc(env.get('device'))}"
                     + (f"; load average then {H.esc(load)}" if load else ""), H.esc(env.get("date_utc"))])
    note = ""
    if any(r.caveats for r in runs):
        note = ('<p class="note">Runs tagged <span class="tag">random weights</span> use an untrained backbone, '
                '<span class="tag">synthetic data</span> generated images: their numbers test the tool, not the '
                "method, and are drawn pale and hatched (dashed curves) in every chart.</p>")
    return Section("runs", "Runs", H.table(["label", "what it is", "run folder", "config hash", "machine",
                                            "finished (UTC)"], rows, wrap=True) + note)


_BARS_NOTE = ("Bars: our runs (value in percent on each bar; n/a = not measured). Black markers: the paper's values "
              "(Tables III and V) for the same method: filled where the paper reports our exact method and backbone, "
              "hollow where it is the same method with the paper's backbone (ResNet18 / WideResNet50), which is not "
              "our configuration; no marker where the paper has no value (e.g. PRO per category, or any "
              "EfficientNet-Lite0 row). Group means [n/N] cover n of the paper's N categories: not the paper's mean.")
_COST_NOTE = ("Bars: mean over the run's categories; dots: each category. Paper markers: Table VII (s/image on "
              "an Intel i7-4710HQ, serial) and Table VIII (fitted state in float32; the paper counts the backbone "
              "for some cells and not for others, so each marker sits on the bar of its convention). Ours: "
              "measured on the machine named above (a load average above its core count means it was shared and the "
              "times are inflated); the peak RSS is the whole process (interpreter and libraries).")
_OVERLAY_NOTE = (f"Overlays: red = pixels whose map is >= the category's {PIXEL_THRESHOLD_RULE}. Image rows "
                 f"say whether the image score reaches the {IMAGE_THRESHOLD_RULE}. Heat-map colours span the "
                 "category's test pixels from their minimum to their 99.9th percentile (raised, if needed, so that the "
                 "threshold sits at most at 80% of the scale), the same for every row, so good and defective images "
                 "compare; the rare higher values saturate. Green: ground-truth contour. The runs keep these maps as "
                 "8-bit levels of that range, for the selected images only.")


def _chart_sections(runs: list[Run], columns: list[str], column_labels: list[str], paper: _Paper,
                    figs: _Figures) -> list[Section]:
    """The comparison charts: metrics per category and group, then time and memory."""
    from .figures import FADED_TEXT, bar_figure, cost_figure

    faded = " " + FADED_TEXT[0].upper() + FADED_TEXT[1:].replace("\n", " ") + "." if any(r.caveats for r in runs) else ""
    bars = figs.save("bars", bar_figure(_bar_data(runs, columns, paper), columns, column_labels, METRICS))
    cost = figs.save("cost", cost_figure(_cost_data(runs, paper)))
    contended = "".join(f'<p class="note problem">{H.esc(n)}</p>'  # flagged as `run` warns: shared timings
                        for n in tables.contention_notes([r.record for r in runs], ("fit", "batch-1 timing")))
    return [Section("methods", "Methods compared", figs.html(bars, "metrics per category", _BARS_NOTE + faded)),
            Section("cost", "Time and memory", figs.html(cost, "time and memory", _COST_NOTE + faded) + contended)]


def _tables_section(runs: list[Run], paper_tables: Sequence[str], problems: list[str]) -> Section:
    """Each run's table under its own heading (label, then what sets it apart), then the paper's
    tables with these runs (``padim-bench table``)."""
    kids = [Section(H.anchor("table-run", i, r.label), f"Run: {r.label}", H.markdown_to_html(markdown_table(r.record)),
                    sub=r.details) for i, r in enumerate(runs)]
    records = [r.record for r in runs]
    for number in paper_tables:
        try:
            parts = tables.build(number, records)
        except (PadimBenchError, NotImplementedError, KeyError) as e:
            problems.append(f"paper table {number}: not rendered ({e})")
            continue
        title = parts[0].title.split(":")[0] if parts else f"Table {number}"
        kids.append(Section(H.anchor("paper-table", number), f"Paper's {title}",
                            "\n".join(H.markdown_to_html(tables.to_markdown(p)) for p in parts)))
    return Section("tables", "Tables", '<p class="note">Wide tables scroll sideways inside their box.</p>', kids)


_COMPARE_NOTE = ("The same test images in every run: the union of the images each run kept (its highest- and "
                 "lowest-scored defective images and its highest-scored good ones). Each run's heat map is drawn on "
                 "that run's own colour range (the methods' map units differ); red contour: the run's pixel threshold, "
                 "green: ground truth; rank: the image's place among the category's test images by the run's image "
                 "score (1 = most anomalous). A grey cell: the run did not keep that image's map (only its rank is "
                 "known).")


def _category_section(cat: str, runs: list[Run], figs: _Figures, data_root, problems: list[str]) -> Section:
    """One category: every run's curves overlaid, the same images in every run, then each run's
    own selection (collapsed)."""
    from .compare import comparison
    from .figures import CurveSeries, curves_figure
    from .overlays import comparison_figure

    kids = []
    series = [CurveSeries(r.label, r.color, r.data[cat].curves if cat in r.data else None, bool(r.caveats))
              for r in runs]
    limits = [s.curves["pro"]["fpr_limit"] for s in series if s.curves and s.curves.get("pro")]
    if any(s.curves for s in series):
        name = figs.save(f"curves_{cat}", curves_figure(cat, series, max(limits) if limits else 0.3))
        cap = ("Image ROC (all points), pixel ROC (thinned to at most 400 points along the curve) and the PRO "
               "curve up to the FPR limit (its normalised area is the PRO metric), every run overlaid.")
        body = figs.html(name, f"{cat} curves", cap)
    else:
        body = f'<p class="problem">{H.esc(cat)}: no curve data in any run (re-run with --force).</p>'
    kids.append(Section(H.anchor(cat, "curves"), f"{cat}: curves", body))
    cmp_ = comparison(cat, runs, data_root, problems)
    if cmp_ is not None:
        images, cruns, cells, left_out = cmp_
        name = figs.save(f"compare_{cat}", comparison_figure(f"{cat}: the same test images in every run", images,
                                                             cruns, cells))
        more = f" {left_out} more images of the union are not shown." if left_out else ""
        kids.append(Section(H.anchor(cat, "compare"), f"{cat}: same images, every run",
                            figs.html(name, f"{cat} comparison", _COMPARE_NOTE + more)))
    own = []
    for r in runs:
        cd = r.data.get(cat)
        if cd is None:
            continue
        if cd.maps is None:
            own.append(f'<p class="problem">{H.esc(r.label)}: no overlays for {H.esc(cat)}'
                       f"{': ' + H.esc('; '.join(cd.problems)) if cd.problems else ''}</p>")
            continue
        own.append(H.details(f"{r.label}: its own selection", "\n".join(_overlays(cat, r, cd, figs, data_root,
                                                                                  problems)), open_=len(runs) == 1))
    kids.append(Section(H.anchor(cat, "overlays"), f"{cat}: each run's images",
                        f'<p class="note">{H.esc(_OVERLAY_NOTE)} Click a run to open its figures.</p>' + "".join(own)))
    return Section(H.anchor("category", cat), cat, "", kids)


def _overlays(cat: str, r: Run, cd, figs: _Figures, data_root, problems: list[str]) -> list[str]:
    """A run's overlay figures of one category, one per group of selected test images."""
    from .overlays import overlay_figure

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
    out = []
    for group in GROUPS:
        rows_ = _overlay_rows(r, cd, group, data_root, problems)
        if not rows_:
            continue
        fig = overlay_figure(f"{r.label}: {cat}, {GROUP_TEXT[group]}", rows_, rng["lo"], rng["hi"], t, t_note,
                             saturated=rng["hi"] < rng["max"])
        name = figs.save(f"overlay_{safe_name(cat)}_{safe_name(r.label)}_{group}", fig)
        out.append(f"<h4>{H.esc(r.label)}: {H.esc(GROUP_TEXT[group])}</h4>" + figs.html(name, f"{r.label} {cat} {group}", ""))
    return out
