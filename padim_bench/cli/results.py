"""The commands that read finished runs: ``table``, ``check``, ``report``, and ``list``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from ..errors import PadimBenchError
from .common import _fail, _show_warnings, app, err_console, out_console


@app.command()
def table(
    number: Annotated[str, typer.Argument(help="paper table: 1-8 (or I-VIII)")],
    results: Annotated[Optional[list[Path]], typer.Argument(help="results.json files or folders holding them")] = None,
    fmt: Annotated[Optional[str], typer.Option("--format", help="rich (terminal), md, csv or tex; default: rich, or with -o "
                                                                "the file's suffix (.md, .csv, .tex; other suffixes md); "
                                                                "rich with -o writes md")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="write to this file instead of stdout")] = None,
    sort: Annotated[str, typer.Option("--sort", help="table backbones: the column rows are ranked by (image_roc_auc, "
                                                     "pixel_roc_auc, pro, fit_s, infer_s_per_image, state_gb, "
                                                     "fit_peak_gb)")] = "image_roc_auc",
) -> None:
    """Show a paper table with the paper's value, ours and the difference in every cell.

    Cells without a measurement show the paper's value only; rows not in the paper are labelled;
    group means over fewer categories than the paper's say so ([2/15]).
    """
    _show_warnings()
    from .. import store, tables

    roman = {"I": "1", "II": "2", "III": "3", "IV": "4", "V": "5", "VI": "6", "VII": "7", "VIII": "8"}
    number = roman.get(number.upper(), number)
    try:
        if fmt is None:
            fmt = "rich" if output is None else {".csv": "csv", ".tex": "tex"}.get(output.suffix.lower(), "md")
        if fmt not in ("rich", "md", "csv", "tex"):
            raise PadimBenchError(f"--format {fmt!r}: use rich, md, csv or tex")
        if output is not None:  # before any work: a folder, or a parent that is missing or not a folder
            if output.is_dir():
                raise PadimBenchError(f"--output {output}: is a folder; give a file name")
            if not output.parent.is_dir():
                raise PadimBenchError(f"--output {output}: the folder {output.parent} does not exist or is not a folder")
            run_files = (*store.RUN_FILES, store.RUN_INFO)
            if output.name in run_files or any((output.parent / f).is_file() for f in (store.RESULTS, store.RUN_INFO)):
                raise PadimBenchError(f"--output {output}: a run's folder or file (a run writes {', '.join(run_files)}); "
                                      "write the table elsewhere")
        records = store.read_results(results or [])
        if number == "backbones":  # the backbone comparison (padim_bench.tables.backbones)
            from ..tables import backbones_render
            from ..tables.backbones import build_backbones

            parts = [build_backbones(records, sort)]
            tables = backbones_render  # type: ignore[assignment]  # its to_rich / to_markdown / to_csv / to_latex
        else:
            parts = tables.build(number, records)
    except PadimBenchError as e:
        _fail(e)
    if fmt == "rich" and output is None:
        for part in parts:
            out_console.print(tables.to_rich(part))
        return
    render = {"rich": tables.to_markdown, "md": tables.to_markdown, "csv": tables.to_csv, "tex": tables.to_latex}[fmt]
    text = "\n".join(render(part) for part in parts)
    if output is None:
        sys.stdout.write(text)
    else:
        try:
            store.atomic_write_text(output, text)
        except OSError as e:
            _fail(PadimBenchError(f"--output {output}: cannot write there ({e.strerror or e})"))
        out_console.print(f"written: {output}")


@app.command()
def check(
    results: Annotated[Path, typer.Argument(help="results.json (or its folder) to check")],
    against: Annotated[str, typer.Option("--against", help="'paper', or a baseline results.json / folder")] = "paper",
    tolerance: Annotated[Optional[list[str]], typer.Option("--tolerance", help="points: 0.5 for all, or pro=1.0 (repeatable)")] = None,
) -> None:
    """Exit 1 if any metric moved beyond its tolerance (percentage points) from the reference or
    a baseline category is missing; exit 2 if nothing could be enforced.

    Against a baseline of our own every category is enforced, and the means when both runs have
    the same categories; against the paper only its confirmed cells covering the same categories
    are (the rest is shown as info). Runs with random weights or on generated data are not checked
    against the paper.
    """
    _show_warnings()
    from rich.table import Table

    from .. import check as C
    from ..store import read_run

    try:
        tol = C.parse_tolerances(tolerance)
        record = read_run(results)
        if against == "paper":
            rows = C.against_paper(record, tol)
        else:
            baseline = read_run(against)
            if baseline.get("config_hash") != record.get("config_hash"):
                diff = C.config_differences(record, baseline)
                err_console.print(f"[yellow]warning:[/] config hash {record.get('config_hash')} differs from the "
                                  f"baseline's {baseline.get('config_hash')}: not the same experiment"
                                  + (f" ({'; '.join(diff)})" if diff else ""), highlight=False, soft_wrap=True)
            rows = C.against_baseline(record, baseline, tol)
    except PadimBenchError as e:
        _fail(e)
    t = Table(title=f"check {results} against {against}")
    for col in ("cell", "metric", "reference", "ours", "diff (points)", "tolerance", "status"):
        t.add_column(col, justify="left" if col in ("cell", "metric", "status") else "right")
    fmt = lambda v: "undefined" if v is None else f"{v:.2f}"  # noqa: E731
    ours_text = lambda r: "missing" if r.status == "MISSING" else fmt(r.ours)  # noqa: E731
    for r in rows:
        style = "red" if r.status in ("MOVED", "MISSING") else "dim" if r.status == "info" else None
        t.add_row(escape(r.where), r.metric, fmt(r.reference), ours_text(r),
                  "" if r.diff is None else f"{r.diff:+.2f}", f"{r.tolerance:.2f}", r.status, style=style)
    out_console.print(t)
    failed = [r for r in rows if r.status in ("MOVED", "MISSING")]
    for r in failed:
        err_console.print(f"[red]{r.status}[/]: {escape(r.where)} {r.metric}: reference {fmt(r.reference)}, "
                          f"ours {ours_text(r)} (tolerance {r.tolerance:.2f} points)", highlight=False)
    enforced = sum(r.status != "info" for r in rows)
    moved, missing = (sum(r.status == s for r in failed) for s in ("MOVED", "MISSING"))
    out_console.print(f"{enforced} enforced cells: {moved} moved, {missing} missing"
                      + (f"; {len(rows) - enforced} shown for information" if enforced < len(rows) else ""))
    if failed:
        raise typer.Exit(1)
    if not enforced:  # a gate that checked nothing must not pass
        _fail(PadimBenchError(f"nothing was enforced: no cell of {against} covers what {results} measured "
                              "(see the information rows); a regression check needs at least one"))


@app.command("report")
def report_(
    results: Annotated[list[Path], typer.Argument(help="run folders (or their results.json, or folders of runs)")],
    out: Annotated[Optional[Path], typer.Option("--out", help="report folder (default: RUN/report for one run; "
                                                               "needed with several)")] = None,
    data_root: Annotated[Optional[str], typer.Option(
        "--data-root", help="where the dataset lies now, if it moved since the runs (input images of the overlays)")] = None,
    dpi: Annotated[int, typer.Option("--dpi", min=30, max=300, help="resolution of the PNGs")] = 80,
    no_embed: Annotated[bool, typer.Option("--no-embed", help="link figures/*.png instead of embedding them")] = False,
) -> None:
    """Figures and one self-contained HTML page from one or several runs, overlaid by method and
    backbone: ROC and PRO curves and anomaly-map overlays per category, metrics compared with the
    paper's values, time and memory. Writes REPORT/report.html and REPORT/figures/*.png; reads the
    runs (results.json, report_data/) and never changes them.
    """
    _show_warnings()
    from ..report.build import build_report

    try:
        if out is None:
            if len(results) != 1:
                raise PadimBenchError("report: --out is needed with several run folders")
            out = (results[0].parent if results[0].is_file() else results[0]) / "report"
        summary = build_report(results, out, data_root=data_root, dpi=dpi, embed=not no_embed)
    except PadimBenchError as e:
        _fail(e)
    for problem in summary.problems:
        err_console.print(f"[yellow]warning:[/] {escape(problem)}", highlight=False, soft_wrap=True)
    data = sum(summary.report_data_bytes.values())
    out_console.print(f"report: {summary.html} ({summary.n_files} files, {summary.total_bytes / 1e6:.2f} MB on disk: "
                      f"{summary.figure_bytes / 1e6:.2f} MB of PNGs and the page embedding them); the runs keep "
                      f"{data / 1e6:.2f} MB of report data", highlight=False, soft_wrap=True)


@app.command("list")
def list_(what: Annotated[str, typer.Argument(help="backbones, methods, datasets or layers")] = "backbones",
          search: Annotated[str, typer.Option("--search", help="backbones: only names containing this, "
                                                               "timm's and torchvision's models included")] = "") -> None:
    """List registered backbones (with their layers), methods or datasets (and their demos)."""
    from ..data import DATASETS, demo_names
    from ..methods import METHODS

    if what in ("backbones", "layers"):
        from .backbones import print_backbones

        try:
            print_backbones(search)
        except PadimBenchError as e:
            _fail(e)
    elif what == "methods":
        for name in METHODS.names():
            out_console.print(name)
    elif what == "datasets":
        for name in DATASETS.names():
            out_console.print(f"{name}: {DATASETS.get(name).label()}" + (" (has a demo)" if name in demo_names() else ""),
                              highlight=False)
    else:
        _fail(PadimBenchError(f"list: unknown {what!r}; use backbones, methods, datasets or layers"))
