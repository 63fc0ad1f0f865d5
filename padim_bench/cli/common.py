"""What every command shares: the Typer app, the consoles, the common options, and the one-line
error of a user error (:class:`~padim_bench.errors.PadimBenchError`, exit status 2)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from ..console import make_console
from .helptext import PlainHelpGroup  # noqa: E402

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, cls=PlainHelpGroup,
                  rich_markup_mode="markdown")  # markdown: descriptions wrap at word boundaries
out_console = make_console()  # without a terminal: as wide as a table needs (padim_bench/console.py)
err_console = make_console(stderr=True)


@app.callback()
def _app() -> None:
    """Reproduce and benchmark the PaDiM paper's tables (PaDiM, SPADE, VAE) on MVTec AD (and
    folders in its layout) and ShanghaiTech Campus (STC)."""


ConfigArg = Annotated[Path, typer.Argument(help="experiment YAML file (see configs/)")]
DataRootOpt = Annotated[Optional[str], typer.Option("--data-root", help="dataset root (overrides dataset.root)")]
CategoriesOpt = Annotated[Optional[str], typer.Option("--categories", help="comma-separated categories, or 'all'")]
DeviceOpt = Annotated[Optional[str], typer.Option("--device", help="auto, cpu or cuda (overrides runtime.device)")]
OutOpt = Annotated[Optional[str], typer.Option("--out", help="output folder (overrides output.dir)")]
WeightsOpt = Annotated[
    Optional[str],
    typer.Option("--weights", help="imagenet, random (time/memory only, labelled in every output) or a weights FILE (.safetensors/.pth, loaded weights-only)"),
]
ReuseOpt = Annotated[bool, typer.Option(
    "--reuse-results", help="on resume, keep finished categories made by other code (another padim-bench version or "
                            "edited sources); by default they are recomputed")]
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", metavar="KEY=VALUE",
                                                    help="override any key: --set method.d=200 (repeatable)")]


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




def main() -> None:  # pragma: no cover - console entry point alias
    app(prog_name="padim-bench")
