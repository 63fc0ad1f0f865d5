"""The ``padim-bench`` command line (Typer): thin commands that call the runner.

User errors (:class:`~padim_bench.errors.PadimBenchError`) are printed in one line, without a
traceback, and exit with status 2. Nothing else imports this module.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

from .errors import PadimBenchError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Reproduce and benchmark the PaDiM paper's tables (PaDiM, SPADE, VAE) on MVTec AD "
    "(and folders in its layout) and ShanghaiTech Campus (STC).",
)
out_console = Console()
err_console = Console(stderr=True)

ConfigArg = Annotated[Path, typer.Argument(help="experiment YAML file (see configs/)")]
DataRootOpt = Annotated[Optional[str], typer.Option("--data-root", help="dataset root (overrides dataset.root)")]
CategoriesOpt = Annotated[Optional[str], typer.Option("--categories", help="comma-separated categories, or 'all'")]
DeviceOpt = Annotated[Optional[str], typer.Option("--device", help="auto, cpu or cuda (overrides runtime.device)")]
OutOpt = Annotated[Optional[str], typer.Option("--out", help="output folder (overrides output.dir)")]
WeightsOpt = Annotated[
    Optional[str],
    typer.Option("--weights", help="imagenet or random (random: time/memory only, labelled in every output)"),
]
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", help="override any key: --set method.d=200 (repeatable)")]


def _fail(e: Exception) -> None:
    msg = str(e)
    if msg.startswith("Caught ") and "Original Traceback" in msg:  # re-raised from a DataLoader worker: keep its message
        last = [ln for ln in msg.strip().splitlines() if ln.strip()][-1]
        head, _, tail = last.partition(": ")
        msg = tail if tail and head.split(".")[-1] == type(e).__name__ else last
    err_console.print(f"[bold red]error:[/] {escape(msg)}", highlight=False, soft_wrap=True)  # "[ray]" is text
    raise typer.Exit(2)


def _show_warnings() -> None:
    def show(message, category, filename, lineno, file=None, line=None):
        err_console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)

    warnings.showwarning = show


@app.command()
def run(
    config: ConfigArg,
    data_root: DataRootOpt = None,
    categories: CategoriesOpt = None,
    device: DeviceOpt = None,
    out: OutOpt = None,
    weights: WeightsOpt = None,
    set_: SetOpt = None,
    force: Annotated[bool, typer.Option("--force", help="recompute finished categories and overwrite the output folder")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress bars")] = False,
    force_memory: Annotated[bool, typer.Option(
        "--force-memory", help="fit even when the predicted memory exceeds what is available "
        "(runtime.allow_memory_over: true)")] = False,
    report: Annotated[bool, typer.Option(
        "--report", help="also write the HTML report and its figures into OUT/report at the end "
                         "(output.report: true)")] = False,
) -> None:
    """Fit and evaluate the configured method on every category; print and save the table.

    Results go to the output folder as results.json (everything), results.csv and results.md.
    Re-running the same command resumes: finished categories are skipped. Before anything is
    loaded, each fit's memory is predicted; a run that will not fit stops with the figures unless
    --force-memory.
    """
    from .config import load_experiments
    from .output import rich_table
    from .runner import run as run_experiment

    _show_warnings()
    try:
        sets = list(set_ or []) + (["runtime.allow_memory_over=true"] if force_memory else [])
        sets += ["output.report=true"] if report else []
        cfgs = load_experiments(config, sets, data_root=data_root, categories=categories, device=device, out=out,
                                weights=weights)
        if any(c.method.weights == "random" for c in cfgs):
            err_console.print("[bold yellow]RANDOM backbone weights[/] (asked for): time and memory figures only")
        if len(cfgs) > 1:
            err_console.print(f"{config}: {len(cfgs)} runs: " + ", ".join(c.name for c in cfgs), highlight=False)
        for cfg in cfgs:
            record = run_experiment(cfg, force=force, console=err_console, show_progress=not quiet)
            out_console.print(rich_table(record))
            out_console.print(f"results: {Path(cfg.output.dir) / 'results.json'} (.csv, .md)")
    except PadimBenchError as e:
        _fail(e)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]: finished categories are saved; re-run the same command to resume")
        raise typer.Exit(130)


@app.command()
def sweep(
    sweep_file: Annotated[Path, typer.Argument(help="sweep file: an experiment YAML with variants / axes / seeds (see configs/paper/)")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="list the jobs, their predicted memory and status; run nothing")] = False,
    executor: Annotated[str, typer.Option("--executor", help="local (a process pool on this machine) or ray")] = "local",
    address: Annotated[Optional[str], typer.Option("--address", help="ray: 'auto' or HOST:PORT of a running cluster (default: start a local one)")] = None,
    jobs: Annotated[Optional[int], typer.Option("--jobs", min=1, help="local: jobs at once (default: cores, limited by memory)")] = None,
    threads: Annotated[Optional[int], typer.Option("--threads", min=1, help="torch threads per job when runtime.threads is null (default: local cores / jobs, ray 1)")] = None,
    memory_gb: Annotated[Optional[float], typer.Option("--memory-gb", min=0.1, help="local: memory budget in GB (1e9 bytes) instead of 0.9 x MemAvailable")] = None,
    allow_oversize: Annotated[bool, typer.Option("--allow-oversize", help="run jobs predicted larger than the budget (alone) instead of refusing them")] = False,
    data_root: DataRootOpt = None,
    categories: CategoriesOpt = None,
    device: DeviceOpt = None,
    out: Annotated[Optional[str], typer.Option("--out", help="the sweep's results folder (overrides output.dir)")] = None,
    weights: WeightsOpt = None,
    set_: SetOpt = None,
    force: Annotated[bool, typer.Option("--force", help="recompute finished jobs; overwrite folders of another run")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress display")] = False,
) -> None:
    """Run every job of a sweep (variants x axes x seeds x categories), locally or on Ray.

    One job = one category of one run; each writes its record into its run folder under the
    sweep's folder, so `padim-bench table N FOLDER` reads the sweep. Finished jobs are skipped;
    a failed job is recorded (FOLDER/_errors/) and the others go on; exit status 1 if any failed.
    """
    from .sweep.driver import dry_run_table, local_sizing, run_sweep, summary_lines
    from .sweep.plan import plan_sweep

    _show_warnings()
    try:
        plan = plan_sweep(sweep_file, set_, dry_run=dry_run, force=force, data_root=data_root,
                          categories=categories, device=device, out=out, weights=weights)
        if any(j.config.method.weights == "random" for j in plan.jobs):
            err_console.print("[bold yellow]RANDOM backbone weights[/] (asked for): time and memory figures only")
        if dry_run:
            sizing = None if executor == "ray" else local_sizing(plan, jobs, threads, memory_gb)
            table_, lines = dry_run_table(plan, sizing, ray_threads=threads or 1)
            out_console.print(table_)
            for line in lines:
                out_console.print(escape(line), highlight=False)
            return
        result = run_sweep(plan, executor=executor, address=address, jobs=jobs, threads=threads,
                           memory_gb=memory_gb, allow_oversize=allow_oversize, force=force,
                           console=err_console, show_progress=not quiet)
    except PadimBenchError as e:
        _fail(e)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]: finished jobs are saved; re-run the same command to resume")
        raise typer.Exit(130)
    for line in summary_lines(plan, result):
        (err_console if line.startswith("FAILED") else out_console).print(escape(line), highlight=False, soft_wrap=True)
    if not result.ok:
        raise typer.Exit(1)


@app.command()
def demo(
    out: Annotated[str, typer.Option("--out", help="output folder of the demo run")] = "results/demo/run",
    data_dir: Annotated[str, typer.Option("--data-dir", help="where the demo dataset is generated")] = "results/demo/data",
    force: Annotated[bool, typer.Option("--force", help="recompute a finished demo")] = False,
    stc: Annotated[bool, typer.Option("--stc", help="the synthetic ShanghaiTech Campus demo instead "
                                                   "(videos of moving shapes, anomalous objects in the test clips)")] = False,
) -> None:
    """Run PaDiM with the real ImageNet EfficientNet-Lite0 on an embedded, offline demo dataset.

    The dataset is made from scikit-image's texture photographs (brick, grass, gravel) with
    synthetic defects and exact masks; it runs in a few minutes on a laptop CPU. With --stc: a
    synthetic dataset in the exact STC layout (padim_bench.data.stc_synth), STC protocol.
    """
    from .config import load_config
    from .data.demo import make_demo_dataset
    from .output import rich_table
    from .runner import run as run_experiment

    _show_warnings()
    cfg_path = Path(__file__).parent / ("demo_stc.yaml" if stc else "demo.yaml")
    try:
        if stc:
            from .data.stc_synth import generate_stc

            root = generate_stc(Path(data_dir) / "stc").root
            out = out if out != "results/demo/run" else "results/demo/run_stc"
        else:
            root = make_demo_dataset(data_dir)
        cfg = load_config(cfg_path, data_root=str(root), out=out)
        record = run_experiment(cfg, force=force, console=err_console)
    except PadimBenchError as e:
        _fail(e)
    out_console.print(rich_table(record))
    out_console.print(f"results: {Path(out) / 'results.json'} (.csv, .md)")


@app.command()
def validate(
    config: ConfigArg,
    data_root: DataRootOpt = None,
    categories: CategoriesOpt = None,
    set_: SetOpt = None,
    weights: WeightsOpt = None,
) -> None:
    """Check a config, its names, its weights file and every data file (layout and decoding)
    without loading a model or fitting anything."""
    _show_warnings()
    from .config import load_experiments
    from .data.mvtec import resolve_categories, scan_category
    from .backbones import check_weights
    from .data.verify import check_split
    from .runner import check_names, resolve_device

    try:
        cfgs = load_experiments(config, set_, data_root=data_root, categories=categories, weights=weights)
        for c in cfgs:
            check_names(c)
            resolve_device(c.runtime.device)  # e.g. cuda on a machine without one, as run would refuse
        cfg = cfgs[0]
        check_weights(cfg.method.backbone, cfg.method.weights)
        if len(cfgs) > 1:
            out_console.print(f"{len(cfgs)} runs: " + ", ".join(c.name for c in cfgs))
        if cfg.dataset.name == "stc":
            _validate_stc(cfg)
        else:
            cats = resolve_categories(cfg.dataset.root, cfg.dataset.categories)
            for c in cats:
                s, skipped = check_split(scan_category(cfg.dataset.root, c), cfg.dataset.on_unreadable)
                if skipped:
                    out_console.print(f"{c}: {len(skipped)} unreadable file(s) would be skipped")
                n_bad = sum(x.label for x in s.test)
                out_console.print(f"{c}: {len(s.train)} train, {len(s.test) - n_bad} test good, {n_bad} test defective")
    except PadimBenchError as e:
        _fail(e)
    out_console.print(f"[green]ok[/]: {config} (config hash {cfg.config_hash()})")


def _validate_stc(cfg) -> None:
    """``validate`` on STC: layout, per-clip alignment, every video's frame count, the selected
    test frames, the protocol figures and each scene's predicted fit memory."""
    from .data.stc import protocol_text
    from .data.transforms import Preprocess
    from .memory import check_run
    from .runner import resolve_device, scan_splits

    splits, skipped, plan = scan_splits(cfg)
    out_console.print(protocol_text(plan.info, cfg.dataset.resize), highlight=False)
    size = Preprocess(cfg.dataset.resize, cfg.dataset.crop, cfg.dataset.interpolation).size
    memory = check_run(cfg, splits, resolve_device(cfg.runtime.device), size)
    for s in splits:
        n_bad = sum(x.label for x in s.test)
        mem = memory[s.name]
        out_console.print(f"scene {s.name}: {len(s.videos)} videos, {len(s.train)} training frames; {len(s.clips)} "
                          f"test clips, {len(s.test) - n_bad} normal and {n_bad} anomalous test frames; fit needs "
                          f"about {mem['predicted_fit_ram_bytes'] / 1e9:.2f} GB of RAM "
                          f"({mem['available_ram_bytes'] / 1e9:.1f} GB available)"
                          + (f"; {len(skipped[s.name])} unreadable file(s) would be skipped" if skipped[s.name] else ""),
                          highlight=False)


@app.command()
def table(
    number: Annotated[str, typer.Argument(help="paper table: 1-8 (or I-VIII)")],
    results: Annotated[Optional[list[Path]], typer.Argument(help="results.json files or folders holding them")] = None,
    fmt: Annotated[Optional[str], typer.Option("--format", help="rich (terminal), md, csv or tex; default: rich, or with -o "
                                                                "the file's suffix (.md, .csv, .tex; other suffixes md); "
                                                                "rich with -o writes md")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="write to this file instead of stdout")] = None,
) -> None:
    """Show a paper table with the paper's value, ours and the difference in every cell.

    Cells without a measurement show the paper's value only; rows not in the paper are labelled;
    group means over fewer categories than the paper's say so ([2/15]).
    """
    _show_warnings()
    from . import store, tables

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

    from . import check as C
    from .store import read_run

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
    from .report.build import build_report

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
def list_(what: Annotated[str, typer.Argument(help="backbones, methods or layers")] = "backbones") -> None:
    """List registered backbones (with their layers) or methods."""
    from .backbones import backbone_names, layer_names
    from .methods import METHODS

    if what in ("backbones", "layers"):
        for name in backbone_names():
            out_console.print(f"{name}: {', '.join(layer_names(name))}")
    elif what == "methods":
        for name in METHODS.names():
            out_console.print(name)
    else:
        _fail(PadimBenchError(f"list: unknown {what!r}; use backbones, methods or layers"))


def main() -> None:  # pragma: no cover - console entry point alias
    app(prog_name="padim-bench")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
