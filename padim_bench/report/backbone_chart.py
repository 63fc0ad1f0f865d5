"""The report's backbone chart: accuracy against inference time, one point per backbone and method
(:mod:`padim_bench.tables.backbones`' rows: means over the categories every run has). Random-weights
points are hollow grey crosses labelled RANDOM (their accuracy says nothing); the paper's rows are
black squares (all 15 categories, the paper's CPU)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from ..errors import PadimBenchError
from ..tables.backbones import COLUMNS, BackboneTable, build_backbones
from .html import Section

if TYPE_CHECKING:
    from matplotlib.figure import Figure

NOTE = ("Accuracy (y) against inference time per image at batch 1 (x, log scale), one point per backbone and "
        "method, means over the categories every run shown has. Hollow grey crosses: RANDOM backbone weights "
        "(time only; their accuracy is not meaningful). Black squares: the paper's rows (all 15 MVTec AD "
        "categories, the paper's CPU).")


def backbone_figure(table: BackboneTable, metric: str = "image_roc_auc") -> Figure:
    """Scatter of ``metric`` (a percent column) against ``infer_s_per_image`` for every row of
    ``table`` with both values (random-weights rows at their time, on the axis floor)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5))
    ax = fig.subplots()
    floor = None
    for title, rows in table.sections:
        for r in rows:
            x, y = r.values["infer_s_per_image"].mean, r.values[metric].mean
            if x is None:
                continue
            if r.weights == "random":
                floor = floor if floor is not None else _floor(table, metric)
                ax.scatter([x], [floor], marker="x", color="0.6", s=50)
                ax.annotate(f"{r.backbone} (RANDOM)", (x, floor), fontsize=7, color="0.45", rotation=30,
                            xytext=(2, 4), textcoords="offset points")
            elif y is not None:
                paper = r.weights == "paper"
                ax.scatter([x], [y], marker="s" if paper else "o", color="black" if paper else "C0", s=50)
                ax.annotate(r.label if paper else r.backbone, (x, y), fontsize=8, xytext=(4, 3),
                            textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("inference s / image (batch 1)")
    ax.set_ylabel(COLUMNS[metric][0])
    ax.set_title(f"{COLUMNS[metric][0]} against inference time, per backbone")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return fig


def _floor(table: BackboneTable, metric: str) -> float:
    ys = [r.values[metric].mean for _, rows in table.sections for r in rows if r.values[metric].mean is not None]
    return (min(ys) - 2.0) if ys else 50.0


def backbone_sections(records: Sequence[dict[str, Any]], figs: Any) -> list[Section]:
    """The report's backbone section (``[]`` when the runs use fewer than two backbones or share no
    category); ``figs`` saves a figure and gives its HTML (the report's ``_Figures``)."""
    if len({r["config"]["method"]["backbone"] for r in records}) < 2:
        return []
    try:
        table = build_backbones(list(records))
    except PadimBenchError:
        return []
    name = figs.save("backbones", backbone_figure(table))
    return [Section("backbones", "Backbones compared",
                    figs.html(name, "accuracy against inference time per backbone", NOTE))]
