"""The commands that read finished runs: ``table``, ``check``, ``leaderboard``, ``report``, and ``list``."""

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
    fmt: Annotated[Optional[str], typer.Option("--format", help="rich (terminal), md, csv, tex or json; default: rich, or with -o "
                                                                "the file's suffix (.md, .csv, .tex; other suffixes md); "
                                                                "rich with -o writes md")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="write to this file instead of stdout")] = None,
    all_categories: Annotated[bool, typer.Option(
        "--all-categories", help="per-category views in the terminal: every category, also those without a "
                                 "measurement (files always hold every category)")] = False,
    sort: Annotated[str, typer.Option("--sort", help="table backbones: the column rows are ranked by (image_roc_auc, "
                                                     "pixel_roc_auc, pro, fit_s, infer_s_per_image, state_gb, "
                                                     "fit_peak_gb)")] = "image_roc_auc",
) -> None:
    """Show a paper table with the paper's value, ours and the difference in every cell.

    Cells without a measurement show the paper's value only; rows not in the paper are labelled;
    group means over fewer categories than the paper's say so ([2/15]). In the terminal the table
    is laid out to fit its width: long row labels become #1, #2, ... with a legend below, and
    per-category views show categories as rows. The paper's values carry their tag from
    paper.yaml (the CSV's tag column): 2 (unmarked) = confirmed by two or more sources, 1 (¹) =
    one source only, ? = unconfirmed.
    """
    _show_warnings()
    from .. import store, tables

    roman = {"I": "1", "II": "2", "III": "3", "IV": "4", "V": "5", "VI": "6", "VII": "7", "VIII": "8"}
    number = roman.get(number.upper(), number)
    try:
        if fmt is None:
            fmt = "rich" if output is None else {".csv": "csv", ".tex": "tex", ".json": "json"}.get(output.suffix.lower(), "md")
        if fmt not in ("rich", "md", "csv", "tex", "json"):
            raise PadimBenchError(f"--format {fmt!r}: use rich, md, csv, tex or json")
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

            if fmt == "json":
                raise PadimBenchError("table backbones: --format json is not available; use csv, md or tex")
            parts = [build_backbones(records, sort)]
            tables = backbones_render  # type: ignore[assignment]  # its to_rich / to_markdown / to_csv / to_latex
        else:
            parts = tables.build(number, records)
    except PadimBenchError as e:
        _fail(e)
    if fmt == "rich" and output is None:
        for part in parts:
            out_console.print(tables.to_rich(part, all_categories=all_categories))
        return
    if fmt == "json":  # one document: a list of the table's parts (Table III has two)
        import json

        from ..tables.json_out import to_json

        text = json.dumps([to_json(part) for part in parts], indent=2, ensure_ascii=False) + "\n"
    else:
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
    direction: Annotated[str, typer.Option("--direction", help="both: fail a move either way beyond the tolerance; "
                                                               "drop: fail only a fall (a rise is reported as improved)")] = "both",
    fmt: Annotated[str, typer.Option("--format", help="rich (a table) or json (the cells and counts, on stdout)")] = "rich",
    junit: Annotated[Optional[Path], typer.Option("--junit", help="also write a JUnit XML report here (one test case "
                                                                  "per category x metric)")] = None,
) -> None:
    """Exit 1 if any metric moved beyond its tolerance (percentage points) from the reference or
    a baseline category is missing; exit 2 if nothing could be enforced or the input is bad; 0
    otherwise.

    Against a baseline of our own every category is enforced, and the means when both runs have
    the same categories; against the paper only its confirmed cells covering the same categories
    are (the rest is shown as info). Runs with random weights or on generated data are not checked
    against the paper. --direction drop fails only falls (for CI gates); see docs/ci.md.
    """
    _show_warnings()
    import json

    from .. import check_report as R
    from ..store import atomic_write_bytes

    try:
        if fmt not in ("rich", "json"):
            raise PadimBenchError(f"--format {fmt!r}: use rich or json")
        if junit is not None:
            R.check_output_file(junit, "--junit")
        outcome = R.run_check(results, against, tolerance, direction)
        if junit is not None:
            atomic_write_bytes(junit, R.junit_xml(outcome))
    except PadimBenchError as e:
        _fail(e)
    except OSError as e:
        _fail(PadimBenchError(f"--junit {junit}: cannot write there ({e.strerror or e})"))
    for w in outcome.warnings:
        err_console.print(f"[yellow]warning:[/] {escape(w)}", highlight=False, soft_wrap=True)
    if fmt == "json":
        sys.stdout.write(json.dumps(R.to_json(outcome), indent=2) + "\n")
    else:
        # the title on its own line: a long path stays whole (a table title wraps at the table's width)
        out_console.print(escape(f"check {outcome.results} against {outcome.against} (direction: {outcome.direction})"),
                          highlight=False, soft_wrap=True)
        out_console.print(_check_table(outcome))
    for r in outcome.failed:
        err_console.print(f"[red]{r.status}[/]: {escape(r.where)} {r.metric}: {R.cell_line(r)}", highlight=False)
    rows, enforced = outcome.rows, outcome.enforced
    improved = outcome.count("improved")
    (err_console if fmt == "json" else out_console).print(
        f"{enforced} enforced cells: {outcome.count('MOVED')} moved, {outcome.count('MISSING')} missing"
        + (f", {improved} improved" if improved else "")
        + (f"; {len(rows) - enforced} shown for information" if enforced < len(rows) else "")
        + (f"; JUnit report: {junit}" if junit is not None else ""), highlight=False)
    if outcome.exit_code == 1:
        raise typer.Exit(1)
    if outcome.exit_code == 2:  # a gate that checked nothing must not pass
        _fail(PadimBenchError(f"nothing was enforced: no cell of {against} covers what {results} measured "
                              "(see the information rows); a regression check needs at least one"))


def _check_table(outcome):
    """The rich table of a check's cells (failing rows red, information rows dim)."""
    from rich.table import Table

    t = Table()
    for col in ("cell", "metric", "reference", "ours", "diff (points)", "tolerance", "status"):
        t.add_column(col, justify="left" if col in ("cell", "metric", "status") else "right")
    fmt = lambda v: "undefined" if v is None else f"{v:.2f}"  # noqa: E731
    for r in outcome.rows:
        style = "red" if r.status in ("MOVED", "MISSING") else "dim" if r.status == "info" else \
            "green" if r.status == "improved" else None
        t.add_row(escape(r.where), r.metric, fmt(r.reference), "missing" if r.status == "MISSING" else fmt(r.ours),
                  "" if r.diff is None else f"{r.diff:+.2f}", f"{r.tolerance:.2f}", r.status, style=style)
    return t


@app.command()
def leaderboard(
    results: Annotated[list[Path], typer.Argument(help="results.json files or folders holding them (searched below)")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="write the CSV here instead of stdout")] = None,
) -> None:
    """One CSV of every run found: a row per category and per mean (run, method, backbone, d,
    layers, seed, weights, dataset, code version, metrics as fractions, times in s, memory in GB).

    The header is the same for every run, as in each run's results_flat.csv (docs/ci.md).
    """
    from .. import store
    from ..leaderboard import flat_csv
    from ..check_report import check_output_file

    try:
        if output is not None:
            check_output_file(output, "--output")
        text = flat_csv(store.read_results(results))
    except PadimBenchError as e:
        _fail(e)
    if output is None:
        sys.stdout.write(text)
        return
    try:
        store.atomic_write_text(output, text)
    except OSError as e:
        _fail(PadimBenchError(f"--output {output}: cannot write there ({e.strerror or e})"))
    err_console.print(f"written: {output} ({text.count(chr(10)) - 1} rows)", highlight=False)


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


LAYERS_SIZE = 224  # input side (pixels) at which `list layers` gives each tap's grid


def _list_layers(names: list[str]) -> None:
    """Per backbone (``names``, or every registered one) its feature taps: the module (or the
    family's description) each layer name taps, channels, stride and grid at a 224 x 224 input
    (from the architecture on the meta device: no weights)."""
    from rich.table import Table

    from ..backbones import backbone_names, layer_names, layer_shapes, resolve

    unknown = [n for n in names if n not in backbone_names()]
    if unknown:
        raise PadimBenchError(f"list layers: unknown backbone {unknown[0]!r}; see padim-bench list backbones")
    t = Table(title=f"feature taps (channels, stride and grid at a {LAYERS_SIZE} x {LAYERS_SIZE} input)")
    for col in ("backbone", "layer", "taps", "channels", "stride", "grid"):
        t.add_column(col, justify="left" if col in ("backbone", "layer", "taps") else "right")
    for name in names or backbone_names():
        shapes, taps = layer_shapes(name, layer_names(name), LAYERS_SIZE), resolve(name)[1].layers
        for i, (layer, (c, h, w)) in enumerate(shapes.items()):
            t.add_row(name if i == 0 else "", layer, escape(str(taps.get(layer, ""))), str(c), str(LAYERS_SIZE // h),
                      f"{h} x {w}", end_section=i == len(shapes) - 1)
    out_console.print(t)


@app.command("list")
def list_(
    what: Annotated[str, typer.Argument(help="backbones, methods, datasets or layers")] = "backbones",
    names: Annotated[Optional[list[str]], typer.Argument(help="layers: only these backbones")] = None,
    search: Annotated[str, typer.Option("--search", help="backbones: only names containing this, "
                                                         "timm's and torchvision's models included")] = "",
) -> None:
    """List registered backbones (with their taps and local weights), methods, datasets (and their
    demos), or each backbone's layers (feature taps) with their channels and strides."""
    from ..data import DATASETS, demo_names
    from ..methods import METHODS

    if what == "layers":
        try:
            _list_layers(list(names or []))
        except PadimBenchError as e:
            _fail(e)
    elif what == "backbones":
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
