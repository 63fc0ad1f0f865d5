"""Figures of test images: one run's selected images (:func:`overlay_figure`) and the same test
images across every run side by side (:func:`comparison_figure`). matplotlib's object-oriented
API on the Agg canvas, as in :mod:`.figures`."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure

from .figures import HEATMAP, WIDTH, wrap_label

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
    fig = Figure(figsize=(WIDTH, 3.1 * n + 1.0), layout="constrained")
    fig.suptitle(title + "\n" + textwrap.fill(threshold_note, 160), fontsize=9.5)
    subs = fig.subfigures(n, 1, squeeze=False)[:, 0] if rows else []
    for sub, row in zip(subs, rows):
        sub.suptitle(row.caption, fontsize=9.5, x=0.01, ha="left")
        axes = sub.subplots(1, 4)
        size = row.mask.shape
        base = row.image if row.image is not None else np.full((*size, 3), 0.5)
        grey = base.mean(axis=2, keepdims=True) * 0.6 + 0.2  # dimmed background under the colours
        axes[0].imshow(base)
        axes[0].set_title("input", fontsize=9)
        if row.image is None:
            axes[0].text(0.5, 0.5, row.image_note or "input not available", ha="center", va="center",
                         transform=axes[0].transAxes, fontsize=7, wrap=True)
        axes[1].imshow(base)
        axes[1].set_title("ground truth (green)" if row.mask.any() else "ground truth: no defect", fontsize=9)
        axes[2].imshow(np.repeat(grey, 3, axis=2))
        im = axes[2].imshow(row.amap, cmap=HEATMAP, vmin=vmin, vmax=vmax, alpha=0.6)
        axes[2].set_title("anomaly map", fontsize=9)
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
            axes[3].set_title(f"map >= {threshold:.4g} (red): {100 * hit.mean():.1f}% of pixels", fontsize=9)
        else:
            axes[3].set_title("no threshold (undefined)", fontsize=9)
        for ax in (axes[1], axes[2], axes[3]):
            if row.mask.any():
                ax.contour(row.mask, levels=[0.5], colors="lime", linewidths=1.2)
        for ax in axes:
            ax.set_xticks([]), ax.set_yticks([])
    return fig


# ------------------------------------------------------------------------------- comparison
@dataclass
class CompareImage:
    """A test image of the comparison: ``title`` (defect/file), ``image`` float ``(S, S, 3)`` in
    [0, 1] as the models saw it or None, ``mask`` bool ``(S, S)`` ground truth."""

    title: str
    image: np.ndarray | None
    mask: np.ndarray


@dataclass
class CompareCell:
    """One run's view of one test image: its anomaly map (float ``(S, S)``, map units) where the
    run kept it, else None; the image's rank by the run's image score (1 = most anomalous) of
    ``n``; None where the image is not in the run's test set."""

    amap: np.ndarray | None
    rank: int | None
    n: int


@dataclass
class CompareRun:
    """A row of the comparison: label, colour, the colour range ``[vmin, vmax]`` of its maps and
    its pixel threshold (map units; None = undefined)."""

    label: str
    color: str
    vmin: float
    vmax: float
    threshold: float | None


COMPARE_COLUMNS = 8


def _compare_cell(ax, img: CompareImage, cell: CompareCell, run: CompareRun) -> None:
    ax.set_xticks([]), ax.set_yticks([])
    rank = "not in its test set" if cell.rank is None else f"rank {cell.rank}/{cell.n}"
    if cell.amap is None:
        ax.set_facecolor("0.92")
        ax.text(0.5, 0.5, f"map not kept\n{rank}", ha="center", va="center", transform=ax.transAxes, fontsize=8.5,
                color="0.3")
        return
    if img.image is not None and img.image.shape[:2] == cell.amap.shape:
        ax.imshow(np.repeat(img.image.mean(axis=2, keepdims=True) * 0.6 + 0.2, 3, axis=2))
    ax.imshow(cell.amap, cmap=HEATMAP, vmin=run.vmin, vmax=run.vmax, alpha=0.6)
    if img.mask.shape == cell.amap.shape and img.mask.any():
        ax.contour(img.mask, levels=[0.5], colors="lime", linewidths=1.0)
    if run.threshold is not None:
        hit = cell.amap >= run.threshold
        if hit.any() and not hit.all():
            ax.contour(hit, levels=[0.5], colors="red", linewidths=0.8)
    ax.text(0.03, 0.03, rank, transform=ax.transAxes, fontsize=8, va="bottom",
            bbox={"facecolor": "white", "alpha": 0.8, "pad": 1.5, "edgecolor": "none"})


def comparison_figure(title: str, images: Sequence[CompareImage], runs: Sequence[CompareRun],
                      cells: Sequence[Sequence[CompareCell]]) -> Figure:
    """The same test images in every run: per block of up to :data:`COMPARE_COLUMNS` images, a row
    of inputs (ground truth in green), then one row per run (its heat map over the dimmed input,
    on the run's own colour range, since the methods' map units differ; its pixel threshold as a
    red contour; the image's rank by the run's image score). ``cells[i][j]``: run ``i``, image
    ``j``."""
    n_img, n_run = max(1, len(images)), len(runs)
    blocks = -(-n_img // COMPARE_COLUMNS)
    left_in, gap_in, top_in = 1.25, 0.35, 0.55  # row labels; above each block (titles); the figure's title
    cell_in = (WIDTH - left_in - 0.1) / (COMPARE_COLUMNS + 0.04 * (COMPARE_COLUMNS - 1))
    block_in = (1 + n_run) * cell_in * 1.04
    height = blocks * block_in + (blocks - 1) * gap_in + top_in + 0.1
    fig = Figure(figsize=(WIDTH, height))
    outer = fig.add_gridspec(blocks, 1, left=left_in / WIDTH, right=1 - 0.1 / WIDTH, top=1 - top_in / height,
                             bottom=0.1 / height, hspace=gap_in / block_in)
    grids = [outer[b].subgridspec(1 + n_run, COMPARE_COLUMNS, hspace=0.04, wspace=0.04) for b in range(blocks)]
    fig.suptitle(title, fontsize=11, y=1 - 0.12 / height, va="top")
    for j, img in enumerate(images):
        b, col = divmod(j, COMPARE_COLUMNS)
        ax = fig.add_subplot(grids[b][0, col])
        ax.imshow(img.image if img.image is not None else np.full((*img.mask.shape, 3), 0.5))
        if img.mask.any():
            ax.contour(img.mask, levels=[0.5], colors="lime", linewidths=1.0)
        ax.set_title(img.title if len(img.title) <= 24 else img.title[:23] + "…", fontsize=8.5)
        ax.set_xticks([]), ax.set_yticks([])
        if col == 0:
            ax.set_ylabel("input", fontsize=9)
        for i, run in enumerate(runs):
            ax = fig.add_subplot(grids[b][1 + i, col])
            _compare_cell(ax, img, cells[i][j], run)
            if col == 0:
                ax.set_ylabel(wrap_label(run.label, 14), fontsize=9,
                              color=run.color)
    return fig
