"""The commands that compute: ``run``, ``sweep``, ``demo`` and ``validate``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from ..errors import PadimBenchError
from .common import (CategoriesOpt, ConfigArg, DataRootOpt, DeviceOpt, OutOpt, ReuseOpt, SetOpt, WeightsOpt, _fail,
                     _show_warnings, app, err_console, out_console)


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
    reuse_results: ReuseOpt = False,
) -> None:
    """Fit and evaluate the configured method on every category; print and save the table.

    Results go to the output folder as results.json (everything), results.csv and results.md.
    Re-running the same command resumes: finished categories made by the same code are skipped
    (categories made by other code are recomputed unless --reuse-results). Before anything is
    loaded, each fit's memory is predicted; a run that will not fit stops with the figures unless
    --force-memory.
    """
    _show_warnings()
    try:
        with _starting(quiet):  # importing torch and reading the config take seconds
            from ..config import load_experiments
            from ..output import rich_table
            from ..runner import run as run_experiment

            sets = list(set_ or []) + (["runtime.allow_memory_over=true"] if force_memory else [])
            sets += ["output.report=true"] if report else []
            cfgs = load_experiments(config, sets, data_root=data_root, categories=categories, device=device, out=out,
                                    weights=weights)
        if any(c.method.weights == "random" for c in cfgs):
            err_console.print("[bold yellow]RANDOM backbone weights[/] (asked for): time and memory figures only")
        if len(cfgs) > 1:
            err_console.print(f"{config}: {len(cfgs)} runs: " + ", ".join(c.name for c in cfgs), highlight=False)
        for cfg in cfgs:
            record = run_experiment(cfg, force=force, console=err_console, show_progress=not quiet,
                                    reuse_results=reuse_results)
            out_console.print(rich_table(_asked(record, cfg.dataset.categories)))
            out_console.print(f"results: {Path(cfg.output.dir) / 'results.json'} (results.csv, .md, _flat.csv)")
    except PadimBenchError as e:
        _fail(e)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]: finished categories are saved; re-run the same command to resume")
        raise typer.Exit(130)


def _starting(quiet: bool):
    """A status line on stderr while the run starts (nothing with ``--quiet``)."""
    from contextlib import nullcontext

    return nullcontext() if quiet else err_console.status("starting: loading torch and the config")


def _asked(record: dict, asked: str | list[str]) -> dict:
    """``record`` with only the categories asked for (``dataset.categories``; ``all``: every one);
    the other categories the run folder holds are named on stderr."""
    if asked == "all":
        return record
    shown = [c for c in record["categories"] if c["category"] in asked]
    others = [c["category"] for c in record["categories"] if c["category"] not in asked]
    if others and shown:
        err_console.print(f"the run folder also holds {', '.join(others)} (in its results.json / .csv / .md; "
                          "not shown)", highlight=False)
        return {**record, "categories": shown}
    return record


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
    reuse_results: ReuseOpt = False,
) -> None:
    """Run every job of a sweep (variants x axes x seeds x categories), locally or on Ray.

    One job = one category of one run; each writes its record into its run folder under the
    sweep's folder, so `padim-bench table N FOLDER` reads the sweep. Finished jobs are skipped;
    a failed job is recorded (FOLDER/_errors/) and the others go on; exit status 1 if any failed.
    """
    from ..sweep.driver import dry_run_table, local_sizing, run_sweep, summary_lines
    from ..sweep.plan import plan_sweep

    _show_warnings()
    try:
        plan = plan_sweep(sweep_file, set_, dry_run=dry_run, force=force, reuse_results=reuse_results,
                          data_root=data_root, categories=categories, device=device, out=out, weights=weights)
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
    out: Annotated[Optional[str], typer.Option("--out", help="output folder of the demo run (default: "
                                                             "results/demo/run, or the dataset's own under results/demo)")] = None,
    data_dir: Annotated[str, typer.Option("--data-dir", help="where the demo dataset is generated")] = "results/demo/data",
    force: Annotated[bool, typer.Option("--force", help="recompute a finished demo")] = False,
    dataset: Annotated[Optional[str], typer.Option(
        "--dataset", help="the dataset whose demo runs (padim-bench list datasets; default: the MVTec-layout "
                          "demo)")] = None,
) -> None:
    """Run PaDiM with the real ImageNet EfficientNet-Lite0 on an embedded, offline demo dataset.

    The dataset is made from scikit-image's texture photographs (brick, grass, gravel) with
    synthetic defects and exact masks; it runs in a few minutes on a laptop CPU. With
    --dataset stc: a synthetic dataset in the exact STC layout (videos of moving shapes,
    anomalous objects in the test clips; padim_bench.data.stc_synth), STC protocol.
    """
    from ..config import load_config
    from ..data import DATASETS, DEFAULT_DEMO, demo_names
    from ..output import rich_table
    from ..runner import run as run_experiment

    _show_warnings()
    try:
        made = DATASETS.get(dataset or DEFAULT_DEMO).demo(Path(data_dir))
        if made is None:
            raise PadimBenchError(f"--dataset {dataset}: has no demo; datasets with one: {', '.join(demo_names())}")
        out = out or f"results/demo/{made.run_name}"
        cfg = load_config(made.config, data_root=str(made.root), out=out)
        record = run_experiment(cfg, force=force, console=err_console)
    except PadimBenchError as e:
        _fail(e)
    out_console.print(rich_table(record))
    out_console.print(f"results: {Path(out) / 'results.json'} (results.csv, .md, _flat.csv)")


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
    from ..backbones import check_weights
    from ..config import load_experiments
    from ..runner import check_names, resolve_device

    try:
        cfgs = load_experiments(config, set_, data_root=data_root, categories=categories, weights=weights)
        for c in cfgs:
            check_names(c)
            resolve_device(c.runtime.device)  # e.g. cuda on a machine without one, as run would refuse
        cfg = cfgs[0]
        check_weights(cfg.method.backbone, cfg.method.weights)
        if len(cfgs) > 1:
            out_console.print(f"{len(cfgs)} runs: " + ", ".join(c.name for c in cfgs))
        _validate_data(cfg)
    except PadimBenchError as e:
        _fail(e)
    out_console.print(f"[green]ok[/]: {config} (config hash {cfg.config_hash()})")


def _validate_data(cfg) -> None:
    """``validate``'s data part: the dataset's scan and decoding check (layout, alignment, every
    file the run reads), its protocol lines, and each category's counts and predicted fit memory
    (refused as ``run`` would refuse it)."""
    from ..data import dataset_for
    from ..data.transforms import Preprocess
    from ..memory import check_run
    from ..runner import resolve_device

    dataset = dataset_for(cfg.dataset)
    data = dataset.prepare()
    for line in dataset.protocol_lines(data.info):
        out_console.print(line, highlight=False)
    size = Preprocess(cfg.dataset.resize, cfg.dataset.crop, cfg.dataset.interpolation).size
    memory = check_run(cfg, data.splits, resolve_device(cfg.runtime.device), size)
    for s in data.splits:
        mem, skipped = memory[s.name], data.skipped[s.name]
        out_console.print(f"{dataset.split_summary(s)}; fit needs about {mem['predicted_fit_ram_bytes'] / 1e9:.2f} GB "
                          f"of RAM ({mem['available_ram_bytes'] / 1e9:.1f} GB available)"
                          + (f"; {len(skipped)} unreadable file(s) would be skipped" if skipped else ""),
                          highlight=False)
