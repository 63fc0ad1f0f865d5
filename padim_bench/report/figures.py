"""The report's figures, drawn with matplotlib's object-oriented API on the Agg canvas.

No ``pyplot``: every function builds its own :class:`matplotlib.figure.Figure` (no global state,
safe to call from any thread or test) and :func:`png_bytes` renders it. Inputs are plain data
prepared by :mod:`padim_bench.report.build`; nothing here reads or writes results files.

Conventions: metrics in percent, time in seconds, memory in GB (1e9 bytes); a run's colour is the
same in every figure; the paper's values are black markers, filled where the paper has our exact
method and backbone, hollow where it is the same method with the paper's backbone.
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
from matplotlib.ticker import FuncFormatter, NullFormatter
from PIL import Image

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f",
           "#bcbd22")
HEATMAP = "jet"


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
    :func:`padim_bench.report.data.category_curves`) or None when missing."""

    label: str
    color: str
    curves: dict[str, Any] | None


def curves_figure(category: str, series: Sequence[CurveSeries], fpr_limit: float = 0.3) -> Figure:
    """Image ROC, pixel ROC and PRO (to ``fpr_limit``) of every run, overlaid, one panel each;
    the legend gives each curve's AUC or normalised PRO area (percent)."""
    fig = Figure(figsize=(14, 4.6), layout="constrained")
    axes = fig.subplots(1, 3)
    specs = [("image_roc", "tpr", "image ROC", "FPR (good images flagged)", "TPR (defective images found)", "AUC"),
             ("pixel_roc", "tpr", "pixel ROC", "FPR (normal pixels)", "TPR (anomalous pixels)", "AUC"),
             ("pro", "pro", f"PRO up to FPR {fpr_limit:g}", "FPR (normal pixels)", "PRO (mean overlap per defect)",
              "area")]
    for ax, (key, ykey, title, xlabel, ylabel, what) in zip(axes, specs):
        missing = []
        limit = fpr_limit if key == "pro" else 1.0
        ax.plot([0, limit], [0, 1 if key != "pro" else limit], ls=":", color="0.6", lw=1, label="chance")
        for s in series:
            c = (s.curves or {}).get(key)
            if not c:
                missing.append(s.label)
                continue
            value = c["area"] if key == "pro" else c["auc"]
            text = "undefined" if value is None else f"{100 * value:.1f}"
            ax.plot(c["fpr"], c[ykey], color=s.color, lw=1.6, label=f"{s.label} ({what} {text})")
        if key == "pro" and any((s.curves or {}).get("pro") for s in series):
            limits = {s.curves["pro"]["fpr_limit"] for s in series if (s.curves or {}).get("pro")}
            limit = max(limits)
        ax.set(xlim=(0, limit), ylim=(0, 1.01), title=title, xlabel=xlabel, ylabel=ylabel)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
        if missing:
            ax.text(0.02, 0.98, "no data: " + ", ".join(missing), transform=ax.transAxes, va="top", fontsize=7,
                    color="0.3", wrap=True)
    fig.suptitle(f"{category}: ROC and PRO curves")
    return fig


# --------------------------------------------------------------------------------- overlays
@dataclass
class OverlayRow:
    """One test image of an overlay figure.

    Attributes:
        image: float ``(S, S, 3)`` in [0, 1] as the model saw it (resized, cropped), or None
            when the file cannot be read any more (then ``image_note`` says why).
        mask: bool ``(S, S)`` ground truth. amap: float ``(S, S)`` anomaly map (map units).
        caption: the row's title (file, label, image score).
    """

    image: np.ndarray | None
    mask: np.ndarray
    amap: np.ndarray
    caption: str
    image_note: str = ""


def overlay_figure(title: str, rows: Sequence[OverlayRow], vmin: float, vmax: float, threshold: float | None,
                   threshold_note: str, saturated: bool = False) -> Figure:
    """Per row: the input, the input with the ground-truth contour (green), the heat map over the
    input (colour scale ``[vmin, vmax]``, the same for every image of the category), and the
    region where the map is >= ``threshold`` (red) with the ground-truth contour.

    Args:
        title: figure title. rows: the images (see :class:`OverlayRow`).
        vmin, vmax: colour scale of the heat maps, map units.
        threshold: the map threshold of the last column, or None (column left empty).
        threshold_note: how the threshold was chosen (printed under the title).
        saturated: some map values exceed ``vmax`` (the colour bar gets an arrow).
    """
    n = max(1, len(rows))
    fig = Figure(figsize=(12, 2.75 * n + 0.9), layout="constrained")
    fig.suptitle(title + "\n" + textwrap.fill(threshold_note, 170), fontsize=9)
    subs = fig.subfigures(n, 1, squeeze=False)[:, 0] if rows else []
    for sub, row in zip(subs, rows):
        sub.suptitle(row.caption, fontsize=9, x=0.01, ha="left")
        axes = sub.subplots(1, 4)
        size = row.mask.shape
        base = row.image if row.image is not None else np.full((*size, 3), 0.5)
        grey = base.mean(axis=2, keepdims=True) * 0.6 + 0.2  # dimmed background under the colours
        axes[0].imshow(base)
        axes[0].set_title("input", fontsize=8)
        if row.image is None:
            axes[0].text(0.5, 0.5, row.image_note or "input not available", ha="center", va="center",
                         transform=axes[0].transAxes, fontsize=7, wrap=True)
        axes[1].imshow(base)
        axes[1].set_title("ground truth (green)" if row.mask.any() else "ground truth: no defect", fontsize=8)
        axes[2].imshow(np.repeat(grey, 3, axis=2))
        im = axes[2].imshow(row.amap, cmap=HEATMAP, vmin=vmin, vmax=vmax, alpha=0.6)
        axes[2].set_title("anomaly map", fontsize=8)
        sub.colorbar(im, ax=axes[2], fraction=0.046, pad=0.02, extend="max" if saturated else "neither"
                     ).ax.tick_params(labelsize=7)
        axes[3].imshow(base)
        if threshold is not None:
            hit = row.amap >= threshold
            red = np.zeros((*size, 4))
            red[..., 0], red[..., 3] = 1.0, 0.45 * hit
            axes[3].imshow(red)
            if hit.any() and not hit.all():
                axes[3].contour(hit, levels=[0.5], colors="red", linewidths=1.0)
            axes[3].set_title(f"map >= {threshold:.4g} (red): {100 * hit.mean():.1f}% of pixels", fontsize=8)
        else:
            axes[3].set_title("no threshold (undefined)", fontsize=8)
        for ax in (axes[1], axes[2], axes[3]):
            if row.mask.any():
                ax.contour(row.mask, levels=[0.5], colors="lime", linewidths=1.2)
        for ax in axes:
            ax.set_xticks([]), ax.set_yticks([])
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
    metric, the measured value (percent; None = not measured) and the paper's markers."""

    label: str
    color: str
    values: dict[tuple[str, str], float | None] = field(default_factory=dict)
    marks: dict[tuple[str, str], list[PaperMark]] = field(default_factory=dict)


def _marker_handles(runs: Sequence[BarRun], keys: Sequence[tuple[str, str]]) -> list[Line2D]:
    seen: dict[tuple[str, bool], PaperMark] = {}
    for r in runs:
        for k in keys:
            for m in r.marks.get(k, []):
                seen.setdefault((m.row, m.own), m)
    handles = []
    for (row, own), m in sorted(seen.items()):
        handles.append(Line2D([], [], ls="", marker=m.marker, color="black",
                              markerfacecolor="black" if own else "none",
                              label=f"paper: {m.label}" + ("" if own else " (same method, paper's backbone)")))
    return handles


def _draw_marks(ax, x: float, marks: Sequence[PaperMark]) -> None:
    for m in marks:
        ax.plot([x], [m.value], ls="", marker=m.marker, color="black", ms=6,
                markerfacecolor="black" if m.own else "none", markeredgewidth=1.2, zorder=5)


def bar_figure(runs: Sequence[BarRun], columns: Sequence[str], column_labels: Sequence[str],
               metrics: Sequence[tuple[str, str]], note: str) -> Figure:
    """Grouped bars: one panel per metric, one group per column (categories, then textures /
    objects / all), one bar per run, the value printed on it; the paper's values as markers.

    Args:
        runs: the runs (see :class:`BarRun`). columns: column keys; column_labels: their tick
            labels. metrics: ``(key, axis label)`` pairs. note: caption under the chart.
    """
    n_runs = max(1, len(runs))
    width = 0.8 / n_runs
    fig_w = max(11.0, 0.75 * len(columns) * n_runs + 2)
    fig = Figure(figsize=(fig_w, 3.1 * len(metrics) + 1.6), layout="constrained")
    axes = fig.subplots(len(metrics), 1, squeeze=False)[:, 0]
    for ax, (metric, ylabel) in zip(axes, metrics):
        lows = [100.0]
        for i, r in enumerate(runs):
            for j, col in enumerate(columns):
                x = j - 0.4 + width * (i + 0.5)
                v = r.values.get((col, metric))
                if v is not None:
                    ax.bar(x, v, width * 0.92, color=r.color, label=r.label if j == 0 else None)
                    ax.text(x, v, f"{v:.1f}", ha="center", va="bottom", fontsize=6.5, rotation=90)
                    lows.append(v)
                else:
                    ax.text(x, 0, "n/a", ha="center", va="bottom", fontsize=6, rotation=90, color="0.4")
                marks = r.marks.get((col, metric), [])
                _draw_marks(ax, x, marks)
                lows += [m.value for m in marks]
        low = max(0.0, 10 * np.floor((min(lows) - 5) / 10))
        ax.set_ylim(low, 104)
        ax.set_xticks(range(len(columns)), column_labels, fontsize=8)
        ax.set_ylabel(ylabel)
        ax.grid(axis="y", alpha=0.3)
        for j in range(1, len(columns)):
            ax.axvline(j - 0.5, color="0.85", lw=0.8)
    handles = [Patch(color=r.color, label=r.label) for r in runs]
    handles += _marker_handles(runs, [(c, m) for c in columns for m, _ in metrics])
    fig.legend(handles=handles, loc="outside upper center", ncols=min(3, len(handles)), fontsize=8)
    if note:
        fig.supxlabel(textwrap.fill(note, int(fig_w * 17)), fontsize=7, ha="left", x=0.01)
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


def _log_bars(ax, xs: Sequence[float], values: Sequence[list[float]], colors: Sequence[str], width: float,
              hatch: str | None = None, label: str | None = None) -> None:
    for k, (x, vals, c) in enumerate(zip(xs, values, colors)):
        vals = [v for v in vals if v is not None and v > 0]
        if not vals:
            continue
        mean = float(np.mean(vals))
        ax.bar(x, mean, width, color=c, hatch=hatch, edgecolor="white" if hatch else None,
               label=label if k == 0 else None)
        ax.plot([x] * len(vals), vals, ls="", marker=".", color="black", ms=4, zorder=4)
        ax.text(x, mean * 1.08, f"{mean:.0f}" if mean >= 100 else f"{mean:.3g}", ha="center", va="bottom", fontsize=7)


def cost_figure(runs: Sequence[CostRun], note: str) -> Figure:
    """Fit time, batch-1 inference time and memory per run on log scales, in the manner of the
    paper's Tables VII and VIII: bars = mean over categories, dots = each category, black markers
    = the paper's values (hollow: same method with the paper's backbone, on the paper's CPU)."""
    fig_w = max(12.0, 3.2 * len(runs) + 4)
    fig = Figure(figsize=(fig_w, 5.0), layout="constrained")
    ax_fit, ax_inf, ax_mem = fig.subplots(1, 3)
    xs = list(range(len(runs)))
    labels = [r.label for r in runs]
    colors = [r.color for r in runs]
    _log_bars(ax_fit, xs, [r.fit_s for r in runs], colors, 0.6)
    ax_fit.set(title="fit time (whole fit, decode included)", ylabel="seconds")
    _log_bars(ax_inf, xs, [r.infer_s for r in runs], colors, 0.6)
    for x, r in zip(xs, runs):
        _draw_marks(ax_inf, x, r.infer_marks)
    ax_inf.set(title="inference, batch 1 (Table VII)", ylabel="seconds / image")
    w = 0.27
    _log_bars(ax_mem, [x - w for x in xs], [r.state_gb for r in runs], colors, w, label="state, with backbone")
    _log_bars(ax_mem, xs, [r.state_gb_without_backbone for r in runs], colors, w, hatch="///",
              label="state, without backbone")
    _log_bars(ax_mem, [x + w for x in xs], [r.fit_peak_gb for r in runs], colors, w, hatch="..",
              label="fit peak RSS (process)")
    for x, r in zip(xs, runs):
        for mark, with_backbone in r.memory_marks:
            _draw_marks(ax_mem, x - w if with_backbone else x, [mark])
    ax_mem.set(title="memory (Table VIII: fitted state)", ylabel="GB (1e9 bytes)")
    for ax in (ax_fit, ax_inf, ax_mem):
        ax.set_yscale("log")
        lo, hi = ax.get_ylim()
        ax.set_ylim(min(lo, hi / 10) / 2, hi * 3)  # at least a decade, room for the labels
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xticks(xs, labels, fontsize=8, rotation=15)
        ax.grid(axis="y", which="major", alpha=0.3)
    handles = [Patch(facecolor="0.6", label="state, with backbone"),
               Patch(facecolor="0.6", hatch="///", edgecolor="white", label="state, without backbone"),
               Patch(facecolor="0.6", hatch="..", edgecolor="white", label="fit peak RSS (whole process)")]
    ax_mem.legend(handles=handles, fontsize=7, loc="upper left")
    marks = [m for r in runs for m in r.infer_marks] + [m for r in runs for m, _ in r.memory_marks]
    seen: dict[tuple[str, bool], PaperMark] = {}
    for m in marks:
        seen.setdefault((m.row, m.own), m)
    mh = [Line2D([], [], ls="", marker=m.marker, color="black",
                 markerfacecolor="black" if own else "none",
                 label=f"paper: {m.label}" + ("" if own else " (paper's backbone)")) for (row, own), m in sorted(seen.items())]
    if mh:
        ax_inf.legend(handles=mh, fontsize=7, loc="upper left")
    if note:
        fig.supxlabel(textwrap.fill(note, int(fig_w * 17)), fontsize=7, ha="left", x=0.01)
    return fig
