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
    for cat in (c for c in columns if c not in tables.GROUP_KINDS):
        sections.append(_category_section(cat, runs, figs, data_root, problems))
    data_bytes = {str(r.folder): _dir_bytes(r.folder / REPORT_DATA_DIR) for r in runs}
    fig_bytes = sum(len(b) for b in figs.pngs.values())
    sections.append(_disk_section(data_bytes, len(figs.pngs), fig_bytes, embed))
    if problems:  # right under the runs
        sections.insert(1, "<h2>Missing pieces</h2><ul>"
                        + "".join(f'<li class="problem">{H.esc(p)}</li>' for p in problems) + "</ul>")
    title = "padim-bench report: " + ", ".join(r.label for r in runs)
    page = _inside(out, out / "report.html")
    try:
        atomic_write_text(page, H.page(title, sections))
        atomic_write_text(figs.manifest, "\n".join(sorted(figs.pngs)) + "\n")
    except OSError as e:
        raise PadimBenchError(f"{page}: cannot write ({e.strerror or e})") from None
    written = figs.written + [page]
    total = sum(p.stat().st_size for p in written)
    return ReportSummary(page, written, total, fig_bytes, data_bytes, problems)


def _runs_section(runs: list[Run]) -> str:
    """The page's head: one row per run (folder, method, config hash, machine, when)."""
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
    return (f'<p class="note">Generated {H.esc(time.strftime("%Y-%m-%d %H:%M:%S %Z"))} by <code>padim-bench report</code> '
            "from the runs below. Every number comes from their <code>results.json</code> and "
            "<code>report_data/</code>; making this report changes none of them.</p>"
            '<div class="scroll"><table><thead><tr><th>label</th><th>run folder</th><th>method</th><th>config hash</th>'
            "<th>machine</th><th>finished (UTC)</th><th>load average then</th></tr></thead><tbody>" + "".join(rows)
            + "</tbody></table></div>")


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
                    figs: _Figures) -> list[str]:
    """The comparison charts: metrics per category and group, then time and memory."""
    from .figures import bar_figure, cost_figure

    bars = figs.save("bars", bar_figure(_bar_data(runs, columns, paper), columns, column_labels, METRICS, _BARS_NOTE))
    cost = figs.save("cost", cost_figure(_cost_data(runs, paper), _COST_NOTE))
    return ["<h2>Methods compared</h2>" + figs.html(bars, "metrics per category", _BARS_NOTE),
            "<h2>Time and memory</h2>" + figs.html(cost, "time and memory", _COST_NOTE)]


def _tables_section(runs: list[Run], paper_tables: Sequence[str], problems: list[str]) -> str:
    """Each run's table, then the paper's tables with these runs (``padim-bench table``)."""
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
    return "\n".join(parts)


def _category_section(cat: str, runs: list[Run], figs: _Figures, data_root, problems: list[str]) -> str:
    """One category: every run's curves overlaid, then each run's overlays per group."""
    from .figures import CurveSeries, curves_figure

    sec = [f"<h2>{H.esc(cat)}</h2>"]
    series = [CurveSeries(r.label, r.color, r.data[cat].curves if cat in r.data else None) for r in runs]
    limits = [s.curves["pro"]["fpr_limit"] for s in series if s.curves and s.curves.get("pro")]
    if any(s.curves for s in series):
        name = figs.save(f"curves_{cat}", curves_figure(cat, series, max(limits) if limits else 0.3))
        cap = ("Image ROC (all points), pixel ROC (thinned to at most 400 points along the curve) and the PRO "
               "curve up to the FPR limit (its normalised area is the PRO metric), every run overlaid.")
        sec.append(figs.html(name, f"{cat} curves", cap))
    else:
        sec.append(f'<p class="problem">{H.esc(cat)}: no curve data in any run (re-run with --force).</p>')
    sec.append(f'<p class="note">{H.esc(_OVERLAY_NOTE)}</p>')
    for r in runs:
        cd = r.data.get(cat)
        if cd is None:
            continue
        if cd.maps is None:
            sec.append(f'<p class="problem">{H.esc(r.label)}: no overlays for {H.esc(cat)}'
                       f"{': ' + H.esc('; '.join(cd.problems)) if cd.problems else ''}</p>")
            continue
        sec += _overlays(cat, r, cd, figs, data_root, problems)
    return "\n".join(sec)


def _overlays(cat: str, r: Run, cd, figs: _Figures, data_root, problems: list[str]) -> list[str]:
    """A run's overlay figures of one category, one per group of selected test images."""
    from .figures import overlay_figure

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
        out.append(f"<h3>{H.esc(r.label)}: {H.esc(GROUP_TEXT[group])}</h3>" + figs.html(name, f"{r.label} {cat} {group}", ""))
    return out


def _disk_section(data_bytes: dict[str, int], n_pngs: int, fig_bytes: int, embed: bool) -> str:
    """What the runs keep for the report and what the report takes."""
    size_rows = "".join(f"<tr><td><code>{H.esc(k)}/{REPORT_DATA_DIR}</code></td><td>{v / 1e3:.0f} KB</td></tr>"
                        for k, v in data_bytes.items())
    return ("<h2>Disk</h2><p>What the runs keep for this report (curves, thresholds, 8-bit maps of the selected images) "
            "and what the report itself takes:</p><table><tbody>" + size_rows
            + f"<tr><td>{n_pngs} PNGs in <code>figures/</code></td><td>{fig_bytes / 1e3:.0f} KB</td></tr>"
            + ("<tr><td>this page (the PNGs embedded once more, base64: about 4/3 of their size)</td>"
               f"<td>about {fig_bytes * 4 / 3 / 1e3:.0f} KB</td></tr>" if embed else "") + "</tbody></table>")
