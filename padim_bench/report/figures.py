"""The report's figures, drawn with matplotlib's object-oriented API on the Agg canvas.

No ``pyplot``: every function builds its own :class:`matplotlib.figure.Figure` (no global state,
safe to call from any thread or test) and :func:`png_bytes` renders it. Inputs are plain data
prepared by :mod:`padim_bench.report.build`; nothing here reads or writes results files.

Conventions: metrics in percent, time in seconds, memory in GB (1e9 bytes); a run's colour is the
same in every figure; the paper's values are black markers, filled where the paper has our exact
method and backbone, hollow where it is the same method with the paper's backbone. Runs whose
numbers do not compare with the paper's (random weights, synthetic data: ``faded``) are drawn
pale and hatched (bars) or dashed (curves), with a legend entry saying so. Figures are
:data:`WIDTH` inches wide: at the report's 80 dpi they fill the page's column at 1:1, so the
10 pt text reads at about 11 px.

The comparison of test images across runs and the per-run overlays are in :mod:`.overlays`.
"""

from __future__ import annotations

import io
import textwrap
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
from PIL import Image

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f",
           "#bcbd22")
HEATMAP = "jet"
WIDTH = 13.5  # inches: 1080 px at 80 dpi, the page's column at 1400 px
FADED_ALPHA, FADED_HATCH = 0.45, "xx"
FADED_TEXT = "pale, hatched / dashed: random weights or synthetic data\n(not comparable with the paper)"


def faded_handle() -> Patch:
    """The legend entry of the faded runs."""
    return Patch(facecolor="0.55", alpha=FADED_ALPHA, hatch=FADED_HATCH, edgecolor="0.3", label=FADED_TEXT)


def wrap_label(text: str, width: int = 18) -> str:
    """A tick label broken at word boundaries (``-`` and spaces) into lines of about ``width``."""
    return textwrap.fill(text, width)


def _tick_text(v: float, _pos=None) -> str:
    return f"{v:g}"


def log_axis(ax, values: Sequence[float]) -> None:
    """Log-scaled y axis spanning ``values`` (> 0) with room above for labels, at least one decade,
    and labelled ticks at 1, 2, 5 x 10^k (every decade only where the span exceeds 3 decades):
    never fewer than three labelled ticks."""
    vals = [v for v in values if v is not None and v > 0] or [1.0]
    lo, hi = min(vals), max(vals)
    lo, hi = min(lo, hi / 10) / 2, hi * 3
    ax.set_yscale("log")
    ax.set_ylim(lo, hi)
    subs = (1.0,) if np.log10(hi / lo) > 3.5 else (1.0, 2.0, 5.0)
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=subs, numticks=30))
    ax.yaxis.set_major_formatter(FuncFormatter(_tick_text))
    ax.yaxis.set_minor_locator(LogLocator(base=10, subs=np.arange(2, 10) * 1.0, numticks=30))
    ax.yaxis.set_minor_formatter(NullFormatter())


def value_label(ax, x: float, y: float, text: str, bar_inches: float, fontsize: float = 9) -> None:
    """``text`` above a bar at ``(x, y)``: horizontal where the bar is wide enough for it, else
    turned upright."""
    upright = bar_inches < 0.085 * len(text) * fontsize / 9
    ax.text(x, y, text, ha="center", va="bottom", fontsize=fontsize, rotation=90 if upright else 0,
            clip_on=True)


def png_bytes(fig: Figure, dpi: int = 80, palette: bool = True) -> bytes:
    """The figure as PNG bytes (Agg; no timestamp or software tag, so equal figures give equal
    bytes). ``palette``: reduced to 256 colours (Pillow's fast octree, no dithering), which keeps
    the plots' flat colours exact and makes the overlays' photographs about 5x smaller (130 KB
    instead of 700 KB for three MVTec AD images) without a visible change."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    if not palette:
        return buf.getvalue()
    img = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    small = img.quantize(colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    out = io.BytesIO()
    small.save(out, format="PNG", optimize=True)
    return out.getvalue()


# ---------------------------------------------------------------------------------- curves
@dataclass
class CurveSeries:
    """One run's curves for one category: ``curves`` is the report-data JSON (see
    :func:`padim_bench.report.data.category_curves`) or None when missing; ``faded``: drawn
    dashed (random weights or synthetic data)."""

    label: str
    color: str
    curves: dict[str, Any] | None
    faded: bool = False


def curves_figure(category: str, series: Sequence[CurveSeries], fpr_limit: float = 0.3) -> Figure:
    """Image ROC, pixel ROC and PRO (to ``fpr_limit``) of every run, overlaid, one panel each;
    the legend gives each curve's AUC or normalised PRO area (percent), and names the runs without
    that curve ("no data")."""
    fig = Figure(figsize=(WIDTH, 5.0), layout="constrained")
    axes = fig.subplots(1, 3)
    specs = [("image_roc", "tpr", "image ROC", "FPR (good images flagged)", "TPR (defective images found)", "AUC"),
             ("pixel_roc", "tpr", "pixel ROC", "FPR (normal pixels)", "TPR (anomalous pixels)", "AUC"),
             ("pro", "pro", f"PRO up to FPR {fpr_limit:g}", "FPR (normal pixels)", "PRO (mean overlap per defect)",
              "area")]
    for ax, (key, ykey, title, xlabel, ylabel, what) in zip(axes, specs):
        limit = fpr_limit if key == "pro" else 1.0
        ax.plot([0, limit], [0, 1 if key != "pro" else limit], ls=":", color="0.6", lw=1, label="chance")
        for s in series:
            c = (s.curves or {}).get(key)
            if not c:  # a legend line, not text over the panel
                ax.plot([], [], ls="", label=f"{s.label}: no data")
                continue
            value = c["area"] if key == "pro" else c["auc"]
            text = "undefined" if value is None else f"{100 * value:.1f}"
            ax.plot(c["fpr"], c[ykey], color=s.color, lw=1.8, ls="--" if s.faded else "-",
                    label=f"{s.label} ({what} {text})")
        if key == "pro" and any((s.curves or {}).get("pro") for s in series):
            limit = max(s.curves["pro"]["fpr_limit"] for s in series if (s.curves or {}).get("pro"))
        ax.set(xlim=(0, limit), ylim=(0, 1.01), title=title, xlabel=xlabel, ylabel=ylabel)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8.5)
    fig.suptitle(f"{category}: ROC and PRO curves" + ("  (dashed: random weights or synthetic data)"
                                                      if any(s.faded for s in series) else ""))
    return fig


# --------------------------------------------------------------------------------- bar chart
@dataclass
class PaperMark:
    """A paper value drawn as a marker: ``row`` (paper.yaml row key), its label, value (percent,
    seconds or GB), tag, whether it is the run's own configuration (same backbone), and its
    matplotlib marker (paper.yaml ``markers``)."""

    row: str
    label: str
    value: float
    tag: str
    own: bool
    marker: str = "o"


@dataclass
class BarRun:
    """One run in the comparison charts: label, colour and, per column (category or group) and
    metric, the measured value (percent; None = not measured) and the paper's markers;
    ``faded``: drawn pale and hatched (random weights or synthetic data)."""

    label: str
    color: str
    values: dict[tuple[str, str], float | None] = field(default_factory=dict)
    marks: dict[tuple[str, str], list[PaperMark]] = field(default_factory=dict)
    faded: bool = False


def _bar_style(color: str, faded: bool) -> dict[str, Any]:
    return ({"facecolor": color, "alpha": FADED_ALPHA, "hatch": FADED_HATCH, "edgecolor": color} if faded
            else {"facecolor": color})


def _marker_handles(runs: Sequence[BarRun], keys: Sequence[tuple[str, str]]) -> list[Line2D]:
    return _paper_handles([m for r in runs for k in keys for m in r.marks.get(k, [])])


def _paper_handles(marks: Sequence[PaperMark]) -> list[Line2D]:
    """One legend entry per paper row drawn (filled: the run's own configuration)."""
    seen: dict[tuple[str, bool], PaperMark] = {}
    for m in marks:
        seen.setdefault((m.row, m.own), m)
    return [Line2D([], [], ls="", marker=m.marker, color="black", markerfacecolor="black" if own else "none",
                   label=f"paper: {m.label}" + ("" if own else " (same method, paper's backbone)"))
            for (row, own), m in sorted(seen.items())]


def _draw_marks(ax, x: float, marks: Sequence[PaperMark]) -> None:
    for m in marks:
        ax.plot([x], [m.value], ls="", marker=m.marker, color="black", ms=6,
                markerfacecolor="black" if m.own else "none", markeredgewidth=1.2, zorder=5)


def bar_figure(runs: Sequence[BarRun], columns: Sequence[str], column_labels: Sequence[str],
               metrics: Sequence[tuple[str, str]]) -> Figure:
    """Grouped bars: one panel per metric, one group per column (categories, then textures /
    objects / all), one bar per run, the value printed on it; the paper's values as markers.

    Args:
        runs: the runs (see :class:`BarRun`). columns: column keys; column_labels: their tick
            labels. metrics: ``(key, axis label)`` pairs.
    """
    n_runs = max(1, len(runs))
    width = 0.8 / n_runs
    fig_w = max(WIDTH, 0.55 * len(columns) * n_runs + 2)
    bar_in = (fig_w - 1.4) / max(1, len(columns)) * width * 0.92
    fig = Figure(figsize=(fig_w, 3.4 * len(metrics) + 1.8), layout="constrained")
    axes = fig.subplots(len(metrics), 1, squeeze=False)[:, 0]
    for ax, (metric, ylabel) in zip(axes, metrics):
        lows = [100.0]
        for i, r in enumerate(runs):
            for j, col in enumerate(columns):
                x = j - 0.4 + width * (i + 0.5)
                v = r.values.get((col, metric))
                if v is not None:
                    ax.bar(x, v, width * 0.92, **_bar_style(r.color, r.faded))
                    value_label(ax, x, v, f"{v:.1f}", bar_in)
                    lows.append(v)
                else:
                    ax.text(x, 0, "n/a", ha="center", va="bottom", fontsize=8.5, color="0.4", clip_on=True)
                marks = r.marks.get((col, metric), [])
                _draw_marks(ax, x, marks)
                lows += [m.value for m in marks]
        low = max(0.0, 10 * np.floor((min(lows) - 5) / 10))
        ax.set_ylim(low, 100 + (100 - low) * (0.08 if bar_in >= 0.36 else 0.16))  # room for the labels
        for t in ax.texts:
            if t.get_text() == "n/a":
                t.set_y(low)
        ax.set_xticks(range(len(columns)), column_labels, fontsize=10)
        ax.set_ylabel(ylabel)
        ax.grid(axis="y", alpha=0.3)
        for j in range(1, len(columns)):
            ax.axvline(j - 0.5, color="0.85", lw=0.8)
    handles = [Patch(label=r.label, **_bar_style(r.color, r.faded)) for r in runs]
    if any(r.faded for r in runs):
        handles.append(faded_handle())
    handles += _marker_handles(runs, [(c, m) for c in columns for m, _ in metrics])
    fig.legend(handles=handles, loc="outside upper center", ncols=min(3, len(handles)), fontsize=9)
    return fig


# -------------------------------------------------------------------------------- cost chart
@dataclass
class CostRun:
    """One run's time and memory figures (means over categories, and per category)."""

    label: str
    color: str
    fit_s: list[float]
    infer_s: list[float]
    state_gb: list[float]
    state_gb_without_backbone: list[float]
    fit_peak_gb: list[float]
    infer_marks: list[PaperMark] = field(default_factory=list)
    memory_marks: list[tuple[PaperMark, bool]] = field(default_factory=list)  # (mark, counts the backbone)
    faded: bool = False


def _log_bars(ax, xs: Sequence[float], values: Sequence[list[float]], runs: Sequence[CostRun], width: float,
              bar_in: float, hatch: str | None = None) -> list[float]:
    """Mean bars with each category as a dot; returns every value drawn (for the axis range)."""
    drawn = []
    for x, vals, r in zip(xs, values, runs):
        vals = [v for v in vals if v is not None and v > 0]
        if not vals:
            continue
        mean = float(np.mean(vals))
        ax.bar(x, mean, width, facecolor=r.color, alpha=FADED_ALPHA if r.faded else None,
               hatch=hatch or (FADED_HATCH if r.faded else None),
               edgecolor="white" if hatch else (r.color if r.faded else None))
        ax.plot([x] * len(vals), vals, ls="", marker=".", color="black", ms=4, zorder=4)
        value_label(ax, x, max(vals) * 1.1, f"{mean:.0f}" if mean >= 100 else f"{mean:.3g}", bar_in)
        drawn += vals
    return drawn


def cost_figure(runs: Sequence[CostRun]) -> Figure:
    """Fit time and batch-1 inference time (top), memory (below, the full width) per run on log
    scales, in the manner of the paper's Tables VII and VIII: bars = mean over categories, dots =
    each category, black markers = the paper's values (hollow: same method with the paper's
    backbone, on the paper's CPU)."""
    n = max(1, len(runs))
    fig_w = max(WIDTH, 2.2 * n + 2)
    fig = Figure(figsize=(fig_w, 10.0), layout="constrained")
    ax = fig.subplot_mosaic([["fit", "inf"], ["mem", "mem"]])
    ax_fit, ax_inf, ax_mem = ax["fit"], ax["inf"], ax["mem"]
    xs = list(range(len(runs)))
    half = [wrap_label(r.label, max(10, int(fig_w * 3 / n))) for r in runs]  # ~6 characters per inch at 9.5 pt
    full = [wrap_label(r.label, max(10, int(fig_w * 6 / n))) for r in runs]
    half_in = (fig_w / 2 - 1.0) / n
    fit = _log_bars(ax_fit, xs, [r.fit_s for r in runs], runs, 0.6, half_in * 0.6)
    ax_fit.set(title="fit time (whole fit, decode included)", ylabel="seconds")
    inf = _log_bars(ax_inf, xs, [r.infer_s for r in runs], runs, 0.6, half_in * 0.6)
    for x, r in zip(xs, runs):
        _draw_marks(ax_inf, x, r.infer_marks)
        inf += [m.value for m in r.infer_marks]
    ax_inf.set(title="inference, batch 1 (Table VII)", ylabel="seconds / image")
    w, mem_in = 0.27, (fig_w - 1.2) / n * 0.27
    mem = _log_bars(ax_mem, [x - w for x in xs], [r.state_gb for r in runs], runs, w, mem_in)
    mem += _log_bars(ax_mem, xs, [r.state_gb_without_backbone for r in runs], runs, w, mem_in, hatch="///")
    mem += _log_bars(ax_mem, [x + w for x in xs], [r.fit_peak_gb for r in runs], runs, w, mem_in, hatch="..")
    for x, r in zip(xs, runs):
        for mark, with_backbone in r.memory_marks:
            _draw_marks(ax_mem, x - w if with_backbone else x, [mark])
            mem.append(mark.value)
    ax_mem.set(title="memory (Table VIII: fitted state)", ylabel="GB (1e9 bytes)")
    for a, vals, labels in ((ax_fit, fit, half), (ax_inf, inf, half), (ax_mem, mem, full)):
        log_axis(a, vals)
        a.set_xticks(xs, labels, fontsize=9.5)
        a.set_xlim(-0.6, len(runs) - 0.4)
        a.grid(axis="y", which="major", alpha=0.3)
    handles = [Patch(facecolor="0.6", label="state, with backbone"),
               Patch(facecolor="0.6", hatch="///", edgecolor="white", label="state, without backbone"),
               Patch(facecolor="0.6", hatch="..", edgecolor="white", label="fit peak RSS (whole process)")]
    marks = [m for r in runs for m in r.infer_marks] + [m for r in runs for m, _ in r.memory_marks]
    faded = [faded_handle()] if any(r.faded for r in runs) else []
    ax_mem.legend(handles=handles + _paper_handles(marks) + faded, fontsize=8.5, loc="upper left",
                  bbox_to_anchor=(1.005, 1.0))
    return fig
