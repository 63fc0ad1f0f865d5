"""Anomaly-detection metrics: image ROC-AUC, pixel ROC-AUC and the PRO score.

* **Image ROC-AUC** (detection): one anomaly score per image against its label (1 = defective).
* **Pixel ROC-AUC** (localization): every pixel of every anomaly map is one sample, scored against
  the ground-truth mask. Large defects dominate it, because it counts pixels, not defects.
* **PRO** (per-region overlap, Bergmann et al., "MVTec AD", CVPR 2019; used with an FPR limit of 0.3
  in the PaDiM paper, Defard et al. 2020, Sec. IV): the ground-truth regions are the 8-connected
  components of each image's mask. At threshold ``t`` (a pixel is anomalous if its score >= ``t``)
  PRO(t) is the mean, over all regions of the dataset, of the fraction of the region's pixels that
  are anomalous, so each defect weighs the same whatever its size; FPR(t) is the fraction of all
  normal pixels that are anomalous. ``pro_auc`` is the area under PRO(FPR) for FPR in
  [0, fpr_limit], divided by ``fpr_limit`` so that it lies in [0, 1] (a random map scores about
  ``fpr_limit / 2``).

All functions return ``None`` when the metric is undefined (a single class present) and raise
``ValueError`` on malformed input (shape mismatch, non-finite scores, labels/masks not in {0, 1}).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from sklearn.metrics import roc_auc_score

# 8-connectivity inside each image, none across images: (N, H, W) is labelled as a 3-D volume.
_STRUCTURE = np.zeros((3, 3, 3), dtype=bool)
_STRUCTURE[1] = True


def _scores(x: np.ndarray, name: str, ndim: int) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {x.shape}")
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise ValueError(f"{name} must be numeric, got dtype {x.dtype}")
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def _binary(y: np.ndarray, name: str, shape: tuple[int, ...]) -> np.ndarray:
    y = np.asarray(y)
    if y.shape != shape:
        raise ValueError(f"{name} shape {y.shape} does not match the scores' shape {shape}")
    if y.dtype != bool and not ((y == 0) | (y == 1)).all():
        raise ValueError(f"{name} must contain only 0 and 1, got values {np.unique(y)[:10]}")
    return y.astype(bool)


def image_roc_auc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """Image-level ROC-AUC (anomaly detection).

    Args:
        scores: (N,) float anomaly score per image; higher means more anomalous.
        labels: (N,) ground truth in {0, 1} (1 = anomalous), bool or integer.

    Returns:
        ROC-AUC in [0, 1] (``sklearn.metrics.roc_auc_score``), or None if only one class is present.

    Raises:
        ValueError: scores not 1-D, shape mismatch, non-finite scores or labels not in {0, 1}.
    """
    s = _scores(scores, "scores", 1)
    y = _binary(labels, "labels", s.shape)
    if y.all() or not y.any():
        return None
    return float(roc_auc_score(y, s))


@dataclass(frozen=True)
class PixelRoc:
    """The ROC over every pixel of a category, from one sort of its pixel scores: what
    :func:`pixel_roc_auc` integrates and what the report stores and thins.

    Attributes:
        fps, tps: int64 ``(K,)`` false and true positives at each distinct score (``map >= t``),
            the highest score first (the last entry counts every pixel).
        thresholds: ``(K,)`` those scores, in the maps' dtype.
        auc: the ROC-AUC, ``sklearn.metrics.roc_auc_score``'s rule exactly (the trapezoidal area of
            the curve without its collinear interior points, which leaves the curve unchanged).
    """

    fps: np.ndarray
    tps: np.ndarray
    thresholds: np.ndarray
    auc: float

    @property
    def fpr(self) -> np.ndarray:
        """float64 ``(K + 1,)`` false-positive rate of every point, from (0, 0)."""
        return np.r_[0.0, self.fps / self.fps[-1]]

    @property
    def tpr(self) -> np.ndarray:
        """float64 ``(K + 1,)`` true-positive rate of every point, from (0, 0)."""
        return np.r_[0.0, self.tps / self.tps[-1]]


def pixel_counts(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False and true positives at every distinct threshold, from one sort (what
    ``sklearn.metrics.roc_curve`` and ``precision_recall_curve`` each sort for).

    Args:
        y: (P,) bool labels (True = anomalous pixel). s: (P,) float scores.

    Returns:
        ``(fps, tps, thresholds)``: int64, int64 and ``s``'s dtype, one entry per distinct score
        from the highest down; entry ``i`` counts the pixels with ``s >= thresholds[i]``.
    """
    order = np.argsort(-s, kind="stable")
    s_sorted = s[order]
    tps = np.cumsum(y[order], dtype=np.int64)
    del order
    last = np.append(np.flatnonzero(s_sorted[1:] != s_sorted[:-1]), s.size - 1)
    tps = tps[last]
    return (last + 1) - tps, tps, s_sorted[last]


def pixel_roc(maps: np.ndarray, masks: np.ndarray) -> PixelRoc | None:
    """Pixel-level ROC (anomaly localization), every pixel of every image being one sample.

    Args:
        maps: (N, H, W) float32/float64 anomaly maps; higher means more anomalous.
        masks: (N, H, W) bool/uint8 ground-truth masks in {0, 1} (1 = anomalous pixel).

    Returns:
        The curve and its area (:class:`PixelRoc`), or None if only one class is present.

    Raises:
        ValueError: maps not 3-D, shape mismatch, non-finite scores or masks not in {0, 1}.
    """
    s = _scores(maps, "maps", 3)
    m = _binary(masks, "masks", s.shape)
    if m.all() or not m.any():
        return None
    fps, tps, thresholds = pixel_counts(m.ravel(), s.ravel())
    keep = slice(None)
    if len(fps) > 2:  # sklearn's drop_intermediate: the corners only, so the sum is sklearn's exactly
        keep = np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True]
    area = curve_area(np.r_[0.0, fps[keep] / fps[-1]], np.r_[0.0, tps[keep] / tps[-1]])
    return PixelRoc(fps, tps, thresholds, area)


def pixel_roc_auc(maps: np.ndarray, masks: np.ndarray) -> float | None:
    """Pixel-level ROC-AUC, :func:`pixel_roc`'s area (equal to ``sklearn.metrics.roc_auc_score``
    over the flattened pixels).

    Args:
        maps: (N, H, W) float32/float64 anomaly maps; higher means more anomalous.
        masks: (N, H, W) bool/uint8 ground-truth masks in {0, 1} (1 = anomalous pixel).

    Returns:
        ROC-AUC in [0, 1], or None if only one class is present.

    Raises:
        ValueError: maps not 3-D, shape mismatch, non-finite scores or masks not in {0, 1}.
    """
    roc = pixel_roc(maps, masks)
    return None if roc is None else roc.auc


def pro_curve(maps: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PRO-versus-FPR curve over every distinct score threshold (Bergmann et al., CVPR 2019).

    Regions are the 8-connected components of each image's mask (``scipy.ndimage.label``). Each
    anomalous pixel weighs ``1 / (region_size * n_regions)`` and each normal pixel
    ``1 / n_normal``; sorting the scores descending and cumulating the weights per class gives
    PRO(t) and FPR(t) for all thresholds at once, in O(P log P) for P pixels.

    Args:
        maps: (N, H, W) float32/float64 anomaly maps; higher means more anomalous.
        masks: (N, H, W) bool/uint8 ground-truth masks in {0, 1} (1 = anomalous pixel).

    Returns:
        ``(fpr, pro)``: float64 arrays of equal length, both non-decreasing, starting at (0, 0),
        then one point per distinct score (tied scores form one threshold) from the highest down,
        the last, at the lowest score, being exactly (1, 1).

    Raises:
        ValueError: malformed input (see ``pixel_roc_auc``), or masks with no anomalous or no
            normal pixel, for which the curve is undefined.
    """
    s = _scores(maps, "maps", 3)
    m = _binary(masks, "masks", s.shape)
    if m.all() or not m.any():
        raise ValueError("PRO curve is undefined: masks need both anomalous and normal pixels")
    labels, n_regions = ndimage.label(m, structure=_STRUCTURE)
    sizes = np.bincount(labels.ravel()).astype(np.float64)
    labels, m, s = labels.ravel(), m.ravel(), s.ravel()
    order = np.argsort(-s, kind="stable")
    s_sorted, m_sorted = s[order], m[order]
    w_region = 1.0 / (sizes[labels[order]] * n_regions)  # only read where m_sorted is True
    pro = np.cumsum(np.where(m_sorted, w_region, 0.0))
    fpr = np.cumsum(~m_sorted, dtype=np.float64) / np.count_nonzero(~m)
    last = np.append(np.flatnonzero(s_sorted[1:] != s_sorted[:-1]), s.size - 1)
    fpr = np.concatenate(([0.0], fpr[last]))
    pro = np.concatenate(([0.0], np.minimum(pro[last], 1.0)))
    pro[-1] = 1.0  # exactly 1 in theory; remove the float rounding of the cumulative sum
    return fpr, pro


def pro_curve_to_limit(maps: np.ndarray, masks: np.ndarray, fpr_limit: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """The PRO curve of :func:`pro_curve` cut at ``fpr_limit``: the part that :func:`pro_auc`
    integrates, so that ``curve_area(fpr, pro) / fpr_limit == pro_auc(maps, masks, fpr_limit)``
    (before ``pro_auc``'s clipping to [0, 1], a no-op up to float rounding).

    Every point of the full curve with FPR <= ``fpr_limit`` is kept; when the last one lies below
    ``fpr_limit``, a point at exactly ``fpr_limit`` is appended, PRO linearly interpolated between
    its neighbours on the full curve.

    Args:
        maps: (N, H, W) float32/float64 anomaly maps; higher means more anomalous.
        masks: (N, H, W) bool/uint8 ground-truth masks in {0, 1} (1 = anomalous pixel).
        fpr_limit: upper FPR bound, a fraction in (0, 1].

    Returns:
        ``(fpr, pro)``: float64 arrays of equal length (>= 2), both non-decreasing, from (0, 0) to
        FPR exactly ``fpr_limit``.

    Raises:
        ValueError: malformed input (see ``pixel_roc_auc``), ``fpr_limit`` not in (0, 1], or masks
            with no anomalous or no normal pixel (the curve is undefined).
    """
    if not (np.isfinite(fpr_limit) and 0.0 < fpr_limit <= 1.0):
        raise ValueError(f"fpr_limit must be in (0, 1], got {fpr_limit!r}")
    fpr, pro = pro_curve(maps, masks)
    i = int(np.searchsorted(fpr, fpr_limit, side="right"))  # fpr[:i] <= fpr_limit < fpr[i:]
    x, y = fpr[:i], pro[:i]
    if x[-1] < fpr_limit:  # then i < len(fpr), as fpr ends at 1 >= fpr_limit
        t = (fpr_limit - fpr[i - 1]) / (fpr[i] - fpr[i - 1])
        x = np.append(x, fpr_limit)
        y = np.append(y, pro[i - 1] + t * (pro[i] - pro[i - 1]))
    return x, y


def curve_area(x: np.ndarray, y: np.ndarray) -> float:
    """Trapezoidal area under the polyline through ``(x[k], y[k])`` (``x`` non-decreasing), the
    rule every area of this module uses (``numpy.trapezoid`` up to summation order).

    Args:
        x, y: 1-D float arrays of equal length (>= 1; a single point has area 0).
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0))


@dataclass(frozen=True)
class ProCurve:
    """The PRO curve up to the FPR limit and its normalised area: what :func:`pro_auc` integrates
    and what the report stores and thins.

    Attributes:
        fpr, pro: float64 ``(K,)`` :func:`pro_curve_to_limit`'s points, from (0, 0) to FPR
            ``fpr_limit``.
        fpr_limit: the upper FPR bound (a fraction in (0, 1]).
        area: ``curve_area(fpr, pro) / fpr_limit`` clipped to [0, 1] (the PRO score).
    """

    fpr: np.ndarray
    pro: np.ndarray
    fpr_limit: float
    area: float


def pro_to_limit(maps: np.ndarray, masks: np.ndarray, fpr_limit: float = 0.3) -> ProCurve | None:
    """The PRO curve up to ``fpr_limit`` and its normalised area (PaDiM paper Sec. IV: 0.3).

    The curve is linearly interpolated at exactly ``fpr_limit``, integrated with the trapezoidal
    rule over FPR in [0, fpr_limit] and divided by ``fpr_limit``.

    Args:
        maps: (N, H, W) float32/float64 anomaly maps; higher means more anomalous.
        masks: (N, H, W) bool/uint8 ground-truth masks in {0, 1} (1 = anomalous pixel).
        fpr_limit: upper FPR bound of the integral, a fraction in (0, 1].

    Returns:
        :class:`ProCurve`, or None if the masks have no anomalous or no normal pixel.

    Raises:
        ValueError: malformed input (see ``pixel_roc_auc``) or ``fpr_limit`` not in (0, 1].
    """
    if not (np.isfinite(fpr_limit) and 0.0 < fpr_limit <= 1.0):
        raise ValueError(f"fpr_limit must be in (0, 1], got {fpr_limit!r}")
    s = _scores(maps, "maps", 3)
    m = _binary(masks, "masks", s.shape)
    if m.all() or not m.any():
        return None
    x, y = pro_curve_to_limit(s, m, fpr_limit)
    area = curve_area(x, y) / fpr_limit
    return ProCurve(x, y, float(fpr_limit), min(max(area, 0.0), 1.0))


def pro_auc(maps: np.ndarray, masks: np.ndarray, fpr_limit: float = 0.3) -> float | None:
    """Normalized area under the PRO curve up to ``fpr_limit``: :func:`pro_to_limit`'s area.

    Args:
        maps: (N, H, W) float32/float64 anomaly maps; higher means more anomalous.
        masks: (N, H, W) bool/uint8 ground-truth masks in {0, 1} (1 = anomalous pixel).
        fpr_limit: upper FPR bound of the integral, a fraction in (0, 1].

    Returns:
        Normalized area in [0, 1], or None if the masks have no anomalous or no normal pixel.

    Raises:
        ValueError: malformed input (see ``pixel_roc_auc``) or ``fpr_limit`` not in (0, 1].
    """
    curve = pro_to_limit(maps, masks, fpr_limit)
    return None if curve is None else curve.area


# ------------------------------------------------------------------------------------------------
# ROC-AUC pooled over several datasets' pixels without holding their maps (STC: every scene)


def _order_keys(scores: np.ndarray) -> np.ndarray:
    """uint32 keys whose unsigned order is the float32 order of ``scores`` (IEEE-754 bit trick:
    flip every bit of negatives, the sign bit of the rest; -0.0 is folded onto +0.0)."""
    u = (np.asarray(scores, dtype=np.float32) + np.float32(0.0)).view(np.uint32)
    return np.where(u & np.uint32(0x80000000), ~u, u | np.uint32(0x80000000))


def score_histogram(maps: np.ndarray, masks: np.ndarray, bits: int = 24) -> dict[str, np.ndarray]:
    """Sparse per-class histogram of pixel scores, from which :func:`pooled_roc_auc` computes the
    ROC-AUC of several such sets of pixels pooled, without keeping their maps.

    Scores are cast to float32 and mapped to order-preserving 32-bit keys; a bin is the key's top
    ``bits`` bits. With ``bits = 32`` every distinct float32 score is its own bin and the pooled
    ROC-AUC equals ``sklearn.metrics.roc_auc_score`` on the float32 scores exactly (up to float
    summation); with ``bits = 24`` (the default; 15 mantissa bits, bins about 3e-5 wide relative to
    the score) the file stays small and the rounding's effect is bounded (see
    :func:`pooled_roc_auc`).

    Args:
        maps: (N, H, W) float anomaly maps; higher means more anomalous.
        masks: (N, H, W) bool/uint8 masks in {0, 1}.
        bits: key bits kept, 8 to 32.

    Returns:
        ``{"keys": uint32 (K,) ascending, "pos": int64 (K,), "neg": int64 (K,), "bits": int64 ()}``:
        anomalous and normal pixels per occupied bin.

    Raises:
        ValueError: malformed input (see ``pixel_roc_auc``) or ``bits`` outside [8, 32].
    """
    if not 8 <= bits <= 32:
        raise ValueError(f"bits must be in [8, 32], got {bits}")
    s = _scores(maps, "maps", 3)
    m = _binary(masks, "masks", s.shape).ravel()
    keys = _order_keys(s.ravel()) >> np.uint32(32 - bits)
    pk, pc = np.unique(keys[m], return_counts=True)
    nk, nc = np.unique(keys[~m], return_counts=True)
    allk = np.union1d(pk, nk).astype(np.uint32)
    pos, neg = np.zeros(len(allk), np.int64), np.zeros(len(allk), np.int64)
    pos[np.searchsorted(allk, pk)] = pc
    neg[np.searchsorted(allk, nk)] = nc
    return {"keys": allk, "pos": pos, "neg": neg, "bits": np.int64(bits)}


def pooled_roc_auc(histograms: list[dict[str, np.ndarray]]) -> tuple[float | None, float]:
    """ROC-AUC of the union of the pixels summarised by :func:`score_histogram` (same ``bits``).

    Pixels in the same bin count as tied (one half per anomalous / normal pair, as scikit-learn
    counts tied scores), so the result is the exact ROC-AUC of the binned scores; against the
    unbinned float32 scores it can differ by at most the returned bound, half the fraction of
    (anomalous, normal) pixel pairs that share a bin.

    Returns:
        ``(auc, bound)``; ``auc`` None when the pooled pixels have a single class.

    Raises:
        ValueError: no histogram, or histograms of different ``bits``.
    """
    if not histograms:
        raise ValueError("no histogram to pool")
    bits = {int(h["bits"]) for h in histograms}
    if len(bits) != 1:
        raise ValueError(f"histograms with different bits {sorted(bits)} cannot be pooled")
    keys = np.concatenate([np.asarray(h["keys"], dtype=np.uint32) for h in histograms])
    uk, inv = np.unique(keys, return_inverse=True)
    pos = np.bincount(inv, np.concatenate([h["pos"] for h in histograms]).astype(np.float64), len(uk))
    neg = np.bincount(inv, np.concatenate([h["neg"] for h in histograms]).astype(np.float64), len(uk))
    n_pos, n_neg = pos.sum(), neg.sum()
    if n_pos == 0 or n_neg == 0:
        return None, 0.0
    below = np.cumsum(neg) - neg  # normal pixels in lower bins
    pairs = n_pos * n_neg
    auc = float(np.sum(pos * (below + 0.5 * neg)) / pairs)
    return min(max(auc, 0.0), 1.0), float(0.5 * np.sum(pos * neg) / pairs)
