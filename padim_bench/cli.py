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

from .errors import PadimBenchError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Reproduce and benchmark the PaDiM paper's tables (PaDiM, SPADE, VAE) on MVTec AD and STC.",
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
    err_console.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
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
) -> None:
    """Fit and evaluate the configured method on every category; print and save the table.

    Results go to the output folder as results.json (everything), results.csv and results.md.
    Re-running the same command resumes: finished categories are skipped.
    """
    from .config import load_config
    from .output import rich_table
    from .runner import run as run_experiment

    _show_warnings()
    try:
        cfg = load_config(config, set_, data_root=data_root, categories=categories, device=device, out=out,
                          weights=weights)
        if cfg.method.weights == "random":
            err_console.print("[bold yellow]RANDOM backbone weights[/] (asked for): time and memory figures only")
        record = run_experiment(cfg, force=force, console=err_console, show_progress=not quiet)
    except PadimBenchError as e:
        _fail(e)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]: finished categories are saved; re-run the same command to resume")
        raise typer.Exit(130)
    out_console.print(rich_table(record))
    out_console.print(f"results: {Path(cfg.output.dir) / 'results.json'} (.csv, .md)")


@app.command()
def demo(
    out: Annotated[str, typer.Option("--out", help="output folder of the demo run")] = "results/demo/run",
    data_dir: Annotated[str, typer.Option("--data-dir", help="where the demo dataset is generated")] = "results/demo/data",
    force: Annotated[bool, typer.Option("--force", help="recompute a finished demo")] = False,
) -> None:
    """Run PaDiM with the real ImageNet EfficientNet-Lite0 on an embedded, offline demo dataset.

    The dataset is made from scikit-image's texture photographs (brick, grass, gravel) with
    synthetic defects and exact masks; it runs in a few minutes on a laptop CPU.
    """
    from .config import load_config
    from .data.demo import make_demo_dataset
    from .output import rich_table
    from .runner import run as run_experiment

    _show_warnings()
    cfg_path = Path(__file__).parent / "demo.yaml"
    try:
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
) -> None:
    """Check a config and its dataset layout without loading a model or fitting anything."""
    from .config import load_config
    from .data.mvtec import resolve_categories, scan_category
    from .runner import check_names

    try:
        cfg = load_config(config, set_, data_root=data_root, categories=categories)
        check_names(cfg)
        cats = resolve_categories(cfg.dataset.root, cfg.dataset.categories)
        for c in cats:
            s = scan_category(cfg.dataset.root, c)
            n_bad = sum(x.label for x in s.test)
            out_console.print(f"{c}: {len(s.train)} train, {len(s.test) - n_bad} test good, {n_bad} test defective")
    except PadimBenchError as e:
        _fail(e)
    out_console.print(f"[green]ok[/]: {config} (config hash {cfg.config_hash()})")


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
