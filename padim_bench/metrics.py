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


def pixel_roc_auc(maps: np.ndarray, masks: np.ndarray) -> float | None:
    """Pixel-level ROC-AUC (anomaly localization), every pixel of every image being one sample.

    Args:
        maps: (N, H, W) float32/float64 anomaly maps; higher means more anomalous.
        masks: (N, H, W) bool/uint8 ground-truth masks in {0, 1} (1 = anomalous pixel).

    Returns:
        ROC-AUC in [0, 1] (``sklearn.metrics.roc_auc_score``), or None if only one class is present.

    Raises:
        ValueError: maps not 3-D, shape mismatch, non-finite scores or masks not in {0, 1}.
    """
    s = _scores(maps, "maps", 3)
    m = _binary(masks, "masks", s.shape)
    if m.all() or not m.any():
        return None
    return float(roc_auc_score(m.ravel(), s.ravel()))


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


def pro_auc(maps: np.ndarray, masks: np.ndarray, fpr_limit: float = 0.3) -> float | None:
    """Normalized area under the PRO curve up to ``fpr_limit`` (PaDiM paper Sec. IV: 0.3).

    The curve is linearly interpolated at exactly ``fpr_limit``, integrated with the trapezoidal
    rule over FPR in [0, fpr_limit] and divided by ``fpr_limit``.

    Args:
        maps: (N, H, W) float32/float64 anomaly maps; higher means more anomalous.
        masks: (N, H, W) bool/uint8 ground-truth masks in {0, 1} (1 = anomalous pixel).
        fpr_limit: upper FPR bound of the integral, a fraction in (0, 1].

    Returns:
        Normalized area in [0, 1], or None if the masks have no anomalous or no normal pixel.

    Raises:
        ValueError: malformed input (see ``pixel_roc_auc``) or ``fpr_limit`` not in (0, 1].
    """
    if not (np.isfinite(fpr_limit) and 0.0 < fpr_limit <= 1.0):
        raise ValueError(f"fpr_limit must be in (0, 1], got {fpr_limit!r}")
    s = _scores(maps, "maps", 3)
    m = _binary(masks, "masks", s.shape)
    if m.all() or not m.any():
        return None
    fpr, pro = pro_curve(s, m)
    i = int(np.searchsorted(fpr, fpr_limit, side="right"))  # fpr[:i] <= fpr_limit < fpr[i:]
    x, y = fpr[:i], pro[:i]
    if x[-1] < fpr_limit:  # then i < len(fpr), as fpr ends at 1 >= fpr_limit
        t = (fpr_limit - fpr[i - 1]) / (fpr[i] - fpr[i - 1])
        x = np.append(x, fpr_limit)
        y = np.append(y, pro[i - 1] + t * (pro[i] - pro[i - 1]))
    area = float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0)) / fpr_limit
    return min(max(area, 0.0), 1.0)
