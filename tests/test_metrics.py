"""Tests of padim_bench.metrics; every expected value is computed independently of the module."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from padim_bench.metrics import image_roc_auc, pixel_roc, pixel_roc_auc, pro_auc, pro_curve, pro_to_limit


def _reference_pro_auc(maps, regions, normal, fpr_limit=0.3):
    """Slow, obvious PRO: ``regions`` is a list of (N, H, W) bool masks, ``normal`` a bool mask."""
    points = [(0.0, 0.0)]
    for t in sorted(np.unique(maps), reverse=True):
        hit = maps >= t
        pro = np.mean([hit[r].mean() for r in regions])
        fpr = hit[normal].sum() / normal.sum()
        points.append((fpr, pro))
    fpr, pro = map(np.array, zip(*points))
    keep = fpr <= fpr_limit
    x, y = list(fpr[keep]), list(pro[keep])
    if x[-1] < fpr_limit:
        x.append(fpr_limit)
        y.append(float(np.interp(fpr_limit, fpr, pro)))
    area = sum((x[k + 1] - x[k]) * (y[k + 1] + y[k]) / 2 for k in range(len(x) - 1))
    return area / fpr_limit


# ---------------------------------------------------------------- PRO


def test_pro_hand_computed_two_images(pro_hand_case):
    maps, masks, expected = pro_hand_case.maps, pro_hand_case.masks, pro_hand_case.expected
    assert round(expected, 3) == 0.954
    assert pro_auc(maps, masks) == pytest.approx(expected, abs=1e-12)

    fpr, pro = pro_curve(maps, masks)
    # thresholds 1.0, 0.9, 0.5, 0.0 after the origin
    np.testing.assert_allclose(fpr, [0, 0, 5 / 182, 5 / 182, 1])
    np.testing.assert_allclose(pro, [0, 0.5, 0.5, 1, 1])
    assert fpr.dtype == pro.dtype == np.float64


def test_pro_random_scores_is_limit_over_two():
    rng = np.random.default_rng(0)
    masks = np.zeros((4, 64, 64), dtype=np.uint8)
    masks[:, 10:26, 30:46] = 1
    maps = rng.uniform(size=masks.shape).astype(np.float32)
    assert pro_auc(maps, masks) == pytest.approx(0.15, abs=0.02)
    assert pro_auc(maps, masks, fpr_limit=1.0) == pytest.approx(0.5, abs=0.03)


def _tied_case():
    """Integer scores with ties; regions of sizes 4, 1, 6, 3+3 (two squares touching diagonally)."""
    rng = np.random.default_rng(1)
    masks = np.zeros((3, 12, 12), dtype=bool)
    masks[0, 1:3, 1:3] = True  # size 4
    masks[0, 8, 9] = True  # size 1
    masks[1, 2:4, 5:8] = True  # size 6
    masks[2, 3:5, 3:5] = True  # 2x2 ...
    masks[2, 5:7, 5:7] = True  # ... touching the one above only at a corner
    maps = rng.integers(0, 5, size=masks.shape)
    diag_a = np.zeros_like(masks)
    diag_a[2, 3:5, 3:5] = True
    diag_b = np.zeros_like(masks)
    diag_b[2, 5:7, 5:7] = True
    others = []
    for sl in [(0, slice(1, 3), slice(1, 3)), (0, 8, 9), (1, slice(2, 4), slice(5, 8))]:
        r = np.zeros_like(masks)
        r[sl] = True
        others.append(r)
    return maps, masks, others, diag_a, diag_b


def test_pro_ties_and_8_connectivity_match_reference():
    maps, masks, others, diag_a, diag_b = _tied_case()
    # make the two diagonal squares score very differently, so merging them matters
    maps[2, 3:5, 3:5] = 4
    maps[2, 5:7, 5:7] = 0
    merged = _reference_pro_auc(maps, others + [diag_a | diag_b], ~masks)
    separate = _reference_pro_auc(maps, others + [diag_a, diag_b], ~masks)
    assert abs(merged - separate) > 0.01
    assert pro_auc(maps, masks) == pytest.approx(merged, abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("limit", [0.05, 0.3, 1.0])
def test_pro_random_ties_match_reference(seed, limit):
    maps, masks, others, diag_a, diag_b = _tied_case()
    maps = np.random.default_rng(seed).integers(0, 5, size=masks.shape).astype(np.float32)
    expected = _reference_pro_auc(maps, others + [diag_a | diag_b], ~masks, limit)
    assert pro_auc(maps, masks, fpr_limit=limit) == pytest.approx(expected, abs=1e-12)
    curve = pro_to_limit(maps, masks, limit)  # the curve the report keeps: the one integrated
    assert curve.area == pro_auc(maps, masks, fpr_limit=limit) and curve.fpr_limit == limit
    assert curve.fpr[-1] == limit and sum((curve.fpr[1:] - curve.fpr[:-1]) * (curve.pro[1:] + curve.pro[:-1]) / 2) \
        / limit == pytest.approx(expected, abs=1e-12)
    fpr, pro = pro_curve(maps, masks)
    assert len(fpr) == len(np.unique(maps)) + 1  # one point per distinct threshold
    assert (fpr[0], pro[0], fpr[-1], pro[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(pro) >= 0)


def test_pro_regions_do_not_span_images():
    # the same pixel set in two images is two regions, so a miss on one costs half the PRO
    masks = np.zeros((2, 6, 6), dtype=bool)
    masks[:, 2:4, 2:4] = True
    maps = np.zeros((2, 6, 6))
    maps[0, 2:4, 2:4] = 1.0  # image 1's defect scores like normal pixels
    fpr, pro = pro_curve(maps, masks)
    np.testing.assert_allclose(fpr, [0, 0, 1])
    np.testing.assert_allclose(pro, [0, 0.5, 1])


def test_pro_bounds_perfect_and_worst():
    rng = np.random.default_rng(2)
    masks = rng.uniform(size=(3, 20, 20)) < 0.1
    normal_scores = rng.uniform(size=masks.shape)
    perfect = np.where(masks, 2.0 + normal_scores, normal_scores)
    worst = np.where(masks, normal_scores - 2.0, normal_scores)
    assert pro_auc(perfect, masks) == 1.0
    assert pro_auc(worst, masks) == 0.0
    for seed in range(5):
        maps = np.random.default_rng(seed).normal(size=masks.shape)
        for limit in (0.01, 0.3, 1.0):
            assert 0.0 <= pro_auc(maps, masks, limit) <= 1.0


# ---------------------------------------------------------------- ROC-AUC


def test_image_roc_auc():
    labels = np.array([0, 0, 1, 1])
    assert image_roc_auc(np.array([2.0, 3, 10, 12]), labels) == 1.0
    assert image_roc_auc(np.array([2.0, 3, 10, 12]) * 1000, labels) == 1.0
    # pairs (anomalous, normal): (0.35, 0.1) ok, (0.35, 0.4) wrong, (0.8, *) ok -> 3/4
    assert image_roc_auc(np.array([0.1, 0.4, 0.35, 0.8]), labels) == pytest.approx(0.75)
    assert image_roc_auc(np.array([1.0, 1.0, 1.0, 1.0]), labels.astype(bool)) == 0.5


def test_pixel_roc_auc():
    rng = np.random.default_rng(3)
    masks = (rng.uniform(size=(2, 16, 16)) < 0.2).astype(np.uint8)
    maps = (rng.normal(size=masks.shape) + masks).astype(np.float32)
    expected = roc_auc_score(masks.ravel(), maps.ravel())
    assert pixel_roc_auc(maps, masks) == pytest.approx(expected, abs=1e-12)
    assert pixel_roc_auc(masks.astype(np.float64) * 5 + 1, masks.astype(bool)) == 1.0


@pytest.mark.parametrize("kind", ["float32", "float64", "ties", "integers"])
@pytest.mark.parametrize("seed", range(4))
def test_pixel_roc_is_sklearns_curve_and_area_exactly(kind, seed):
    """The curve the report keeps is sklearn's full ROC (every distinct threshold), and its area is
    roc_auc_score to the last bit (same collinear points dropped, same summation)."""
    rng = np.random.default_rng(seed)
    masks = rng.uniform(size=(3, 24, 24)) < rng.uniform(0.02, 0.4)
    maps = rng.normal(size=masks.shape) + rng.uniform(0, 2) * masks
    maps = {"float32": maps.astype(np.float32), "float64": maps, "ties": np.round(maps, 1),
            "integers": np.round(maps * 2).astype(np.int64)}[kind]
    roc = pixel_roc(maps, masks)
    y, s = masks.ravel(), maps.ravel()
    assert roc.auc == roc_auc_score(y, s) == pixel_roc_auc(maps, masks)
    fpr, tpr, thr = roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_array_equal(roc.fpr, fpr)
    np.testing.assert_array_equal(roc.tpr, tpr)
    np.testing.assert_array_equal(roc.thresholds, thr[1:])  # sklearn's first threshold is +inf
    assert roc.fps[-1] == (~y).sum() and roc.tps[-1] == y.sum()


# ---------------------------------------------------------------- undefined and invalid


def test_undefined_cases_return_none():
    maps = np.random.default_rng(4).uniform(size=(2, 8, 8))
    normal = np.zeros(maps.shape, dtype=bool)
    anomalous = np.ones(maps.shape, dtype=np.uint8)
    assert pro_auc(maps, normal) is None
    assert pro_auc(maps, anomalous) is None
    assert pixel_roc_auc(maps, normal) is None
    assert pixel_roc_auc(maps, anomalous) is None
    assert pixel_roc(maps, normal) is None and pro_to_limit(maps, anomalous) is None
    assert image_roc_auc(np.array([0.1, 0.5, 0.9]), np.array([0, 0, 0])) is None
    assert image_roc_auc(np.array([0.1, 0.5, 0.9]), np.array([1, 1, 1])) is None
    with pytest.raises(ValueError, match="undefined"):
        pro_curve(maps, normal)


def test_invalid_input_raises():
    maps = np.zeros((2, 8, 8))
    masks = np.zeros((2, 8, 8), dtype=bool)
    masks[0, 0, 0] = True
    nan_maps = maps.copy()
    nan_maps[1, 3, 3] = np.nan
    for fn in (pro_auc, pixel_roc_auc, pro_curve, pixel_roc, pro_to_limit):
        with pytest.raises(ValueError, match="shape"):
            fn(maps, masks[:, :7])
        with pytest.raises(ValueError, match="NaN"):
            fn(nan_maps, masks)
        with pytest.raises(ValueError, match="0 and 1"):
            fn(maps, masks.astype(np.uint8) * 2)
        with pytest.raises(ValueError, match="dimensions"):
            fn(maps[0], masks[0])
    with pytest.raises(ValueError, match="NaN"):
        pro_auc(nan_maps, np.zeros_like(masks))  # checked even when PRO is undefined
    with pytest.raises(ValueError, match="shape"):
        image_roc_auc(np.array([0.1, 0.2, 0.3]), np.array([0, 1]))
    with pytest.raises(ValueError, match="NaN"):
        image_roc_auc(np.array([0.1, np.inf]), np.array([0, 1]))
    with pytest.raises(ValueError, match="0 and 1"):
        image_roc_auc(np.array([0.1, 0.2]), np.array([0, 2]))
    for bad in (0.0, -0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="fpr_limit"):
            pro_auc(maps, masks, fpr_limit=bad)
