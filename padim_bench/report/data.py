"""What a run keeps for the report, and reading it back (numpy and scikit-learn only).

Per category, right after the metrics, :func:`save_category` writes into ``OUT/report_data/``:

``<category>.json`` (compact JSON, a few tens of KB)
    * ``image_roc``: every point of ``sklearn.metrics.roc_curve`` on the image scores (a few
      dozen), its AUC, and the image threshold at Youden's J (max TPR - FPR);
    * ``pixel_roc``: the ROC over every pixel that the metric integrated
      (:func:`padim_bench.metrics.pixel_roc`: one point per distinct score), thinned to at most
      ``MAX_CURVE_POINTS`` points evenly spaced along the curve (endpoints kept), and its AUC (the
      metric ``pixel_roc_auc`` itself);
    * ``pro``: the PRO curve that ``pro_auc`` integrated (:func:`padim_bench.metrics.pro_to_limit`:
      PRO against FPR up to the FPR limit), thinned the same way, and its area (the metric);
    * ``pixel_threshold``: the threshold maximising the pixel F1 score over all the category's
      test pixels (every distinct score tried, ``map >= t``), with its precision and recall.
      It is chosen on the test labels (an oracle threshold, an optimistic setting), for display;
    * ``map_range``: ``min``, ``max`` and the 99.9th percentile ``p99_9`` of all the category's
      test pixels, and the display range ``[lo, hi]``: ``lo = min``, ``hi = max(p99_9,
      t + (t - min) / 4)`` for the pixel threshold ``t`` (so ``t`` sits at most at 80 % of the
      scale), capped at ``max``. Anomaly maps are heavy-tailed (a few pixels 10-20x the
      threshold), so a min-max scale would paint everything but those pixels cold; the top 0.1 %
      of pixels saturate instead. The same scale for every image of the category;
    * ``selected``: the test images whose maps are kept (index, path, defect, label, score, group).

``<category>.npz`` (``numpy.savez_compressed``)
    * ``maps``: ``(K, S, S)`` maps of the selected images as 8-bit levels of the display range,
      ``q = round(255 * clip((map - lo) / (hi - lo), 0, 1))``, each row delta-coded modulo 256
      (``maps[..., j] = q[..., j] - q[..., j - 1]``, which smooth maps compress well); read back
      as ``lo + q / 255 * (hi - lo)``: within ``(hi - lo) / 510`` of the map below ``hi``, and
      ``hi`` above it. That is what the report draws (a 256-colour heat map on ``[lo, hi]``, the
      contour of ``map >= t`` with ``t < hi``): 10-40 KB per 224 px map against about 75 KB in
      float16;
    * ``masks``: their ground-truth masks, ``numpy.packbits`` of ``(K, S * S)`` bool;
    * ``shape``: ``(K, S, S)``.

Selected images, ``k`` per group (``output.report_images``): the ``k`` highest-scored defective
images (``best_defective``), the ``k`` lowest-scored among the other defective ones
(``worst_defective``), and the ``k`` highest-scored good images (``top_good``, the likeliest
false alarms). With ``k = 3`` and 224 px maps, the npz is about 200 KB per category; input
images are re-read from the dataset at report time, not stored.

Both files are written atomically (npz first); the JSON names the npz's SHA-256 and the run hash,
so a stale or torn pair is detected and reported instead of being drawn.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from .. import metrics as M
from ..store.files import atomic_write_bytes, atomic_write_text

REPORT_DATA_VERSION = 1
REPORT_DATA_DIR = "report_data"
MAX_CURVE_POINTS = 400
MAP_ENCODING = "uint8 levels of [map_range.lo, map_range.hi], clipped, delta-coded along rows"
GROUPS = ("best_defective", "worst_defective", "top_good")
GROUP_TEXT = {
    "best_defective": "highest-scored defective images",
    "worst_defective": "lowest-scored defective images",
    "top_good": "highest-scored good images",
}
PIXEL_THRESHOLD_RULE = ("threshold maximising the pixel F1 score over all test pixels of the category "
                        "(chosen on the test labels: an oracle, optimistic threshold, for display only)")
IMAGE_THRESHOLD_RULE = "image-score threshold at Youden's J (max TPR - FPR) over the category's test images"


def safe_name(name: str) -> str:
    """``name`` reduced to ``[A-Za-z0-9._-]`` (other runs of characters become ``_``), never empty,
    never starting with a dot: safe as one file-name component."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("._")
    return s or "unnamed"


# ---------------------------------------------------------------------------- curve extraction
def thin_curve(x: np.ndarray, y: np.ndarray, max_points: int = MAX_CURVE_POINTS,
               x_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_points`` points of a monotone curve, evenly spaced along its length.

    Points are picked from the curve itself (no new point is made), at arc-length positions
    ``0, L/(n-1), ..., L`` measured in ``(x / x_scale, y)``; the first and last points are always
    kept. Spacing along the length (not along ``x`` alone) keeps the vertical steps of an ROC
    curve as well as its horizontal runs, so the thinned curve's trapezoidal area stays within
    about ``1 / max_points`` of the full one (far less on real curves).

    Args:
        x, y: 1-D float arrays of equal length, non-decreasing (ROC: FPR, TPR).
        max_points: most points returned (>= 2).
        x_scale: ``x`` divided by this before measuring length (the PRO curve's FPR limit, so both
            axes span [0, 1]).

    Returns:
        ``(x, y)`` float64 copies, thinned when longer than ``max_points``.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) <= max_points:
        return x.copy(), y.copy()
    step = np.hypot(np.diff(x) / x_scale, np.diff(y))
    length = np.concatenate(([0.0], np.cumsum(step)))
    targets = np.linspace(0.0, length[-1], max_points)
    idx = np.unique(np.clip(np.searchsorted(length, targets), 0, len(x) - 1))
    idx = np.unique(np.concatenate(([0], idx, [len(x) - 1])))
    return x[idx], y[idx]


def _rounded(a: np.ndarray, digits: int = 6) -> list[float]:
    return [round(float(v), digits) for v in a]


def select_images(scores: np.ndarray, labels: np.ndarray, k: int) -> list[tuple[int, str]]:
    """The test images whose maps the report keeps: ``(index, group)`` pairs, see the module doc.

    Args:
        scores: (N,) float image scores. labels: (N,) {0, 1}, 1 = defective.
        k: images per group (0: none).

    Returns:
        ``best_defective`` (score descending), ``worst_defective`` (score ascending, none of the
        best), ``top_good`` (score descending); ties broken by index.
    """
    if k <= 0:
        return []
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels).astype(bool)
    idx = np.arange(len(scores))
    bad = idx[labels][np.argsort(-scores[labels], kind="stable")]
    good = idx[~labels][np.argsort(-scores[~labels], kind="stable")]
    best = list(bad[:k])
    rest = [i for i in bad[::-1] if i not in best]  # ascending score
    worst = rest[:k]
    return ([(int(i), "best_defective") for i in best] + [(int(i), "worst_defective") for i in worst]
            + [(int(i), "top_good") for i in good[:k]])


def category_curves(maps: np.ndarray, scores: np.ndarray, labels: np.ndarray, roc: M.PixelRoc | None,
                    pro: M.ProCurve | None, max_points: int = MAX_CURVE_POINTS) -> dict[str, Any]:
    """Curve points, thresholds and map range of one category (the JSON's plain-data part).

    Args:
        maps: (N, S, S) float32/float64 anomaly maps. scores: (N,) float image scores.
        labels: (N,) {0, 1}.
        roc: the maps' pixel ROC as the metric computed it (:func:`padim_bench.metrics.pixel_roc`),
            None where undefined. pro: their PRO curve likewise
            (:func:`padim_bench.metrics.pro_to_limit`).
        max_points: most points kept for the pixel ROC and PRO curves.

    Returns:
        Keys ``image_roc``, ``pixel_roc``, ``pro`` (each None where the metric is undefined: one
        class only), ``pixel_threshold``, ``image_threshold`` (None where undefined) and
        ``map_range`` (module doc). FPR / TPR / PRO are fractions rounded to 6 decimals;
        thresholds and the map range are in the map's own units.

    Raises:
        ValueError: malformed arrays (see :mod:`padim_bench.metrics`).
    """
    maps = np.asarray(maps)
    if not np.issubdtype(maps.dtype, np.floating):
        maps = maps.astype(np.float64)
    labels_b = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    out: dict[str, Any] = {"image_roc": None, "image_threshold": None, "pixel_roc": None, "pro": None,
                           "pixel_threshold": None,
                           "map_range": None}
    if labels_b.any() and not labels_b.all():
        fpr, tpr, thr = roc_curve(labels_b, scores)
        out["image_roc"] = {"fpr": _rounded(fpr), "tpr": _rounded(tpr), "auc": float(roc_auc_score(labels_b, scores))}
        j = int(np.argmax(tpr - fpr))
        out["image_threshold"] = {"rule": IMAGE_THRESHOLD_RULE, "value": float(thr[j]) if math.isfinite(thr[j]) else None,
                                  "tpr": float(tpr[j]), "fpr": float(fpr[j])}
    if roc is not None:
        fpr, tpr = roc.fpr, roc.tpr
        n_full = len(fpr)
        fpr, tpr = thin_curve(fpr, tpr, max_points)
        out["pixel_roc"] = {"fpr": _rounded(fpr), "tpr": _rounded(tpr), "auc": roc.auc, "points": n_full}
        fps, tps, thr = roc.fps, roc.tps, roc.thresholds
        f1 = 2 * tps / (tps + fps + tps[-1])  # 2 TP / (2 TP + FP + FN), at "map >= thr"
        j = int(np.argmax(f1))
        out["pixel_threshold"] = {"rule": PIXEL_THRESHOLD_RULE, "value": float(thr[j]), "f1": float(f1[j]),
                                  "precision": float(tps[j] / (tps[j] + fps[j])), "recall": float(tps[j] / tps[-1])}
    if pro is not None:
        pfpr, ppro = thin_curve(pro.fpr, pro.pro, max_points, x_scale=pro.fpr_limit)
        out["pro"] = {"fpr": _rounded(pfpr), "pro": _rounded(ppro), "fpr_limit": pro.fpr_limit, "area": pro.area,
                      "points": len(pro.fpr)}
    lo, top = float(maps.min()), float(maps.max())
    p999 = float(np.percentile(maps, 99.9))
    hi = p999
    if out["pixel_threshold"] is not None:
        t = out["pixel_threshold"]["value"]
        hi = max(hi, t + (t - lo) / 4)
    hi = min(hi, top)
    out["map_range"] = {"min": lo, "max": top, "p99_9": p999, "lo": lo, "hi": hi,
                        "rule": "colours span [lo, hi]: lo = min, hi = max(99.9th percentile of all test pixels, "
                                "t + (t - min) / 4) for the pixel threshold t, capped at max; higher values saturate"}
    return out


# ---------------------------------------------------------------------------------- writing
def save_category(out_dir: str | Path, category: str, maps: np.ndarray, masks: np.ndarray, scores: np.ndarray,
                  labels: np.ndarray, paths: Sequence[str | Path], defects: Sequence[str], *, k: int,
                  roc: M.PixelRoc | None, pro: M.ProCurve | None, run_hash: str,
                  config_hash: str) -> tuple[Path, int]:
    """Write ``out_dir/report_data/<category>.json`` and ``.npz`` (module doc), atomically.

    Args:
        out_dir: the run's output folder.
        category: category name (sanitised for the file name).
        maps: (N, S, S) float anomaly maps; masks: (N, S, S) {0, 1}; scores: (N,) float;
            labels: (N,) {0, 1}; paths, defects: N test image paths and defect types, in order.
        k: images kept per group (``output.report_images``; 0 keeps curves only).
        roc, pro: the curves the metrics integrated (:func:`category_curves`).
        run_hash, config_hash: the run's (checked when read back).

    Returns:
        ``(json path, bytes written in both files)``.

    Raises:
        ValueError: malformed arrays; OSError: the folder is not writable.
    """
    folder = Path(out_dir) / REPORT_DATA_DIR
    name = safe_name(category)
    data = category_curves(maps, scores, labels, roc, pro)
    chosen = select_images(scores, labels, k)
    data.update({"report_data_version": REPORT_DATA_VERSION, "category": category, "run_hash": run_hash,
                 "config_hash": config_hash, "n_test": int(len(scores)), "n_test_anomalous": int(np.sum(labels)),
                 "selected": [{"index": i, "group": g, "path": str(paths[i]), "defect": str(defects[i]),
                               "label": int(labels[i]), "score": float(scores[i])} for i, g in chosen],
                 "maps_file": None, "maps_sha256": None, "maps_bytes": 0})
    written = 0
    if chosen:
        lo, hi = data["map_range"]["lo"], data["map_range"]["hi"]
        sel = np.asarray(maps)[[i for i, _ in chosen]].astype(np.float64)
        q = np.rint(255 * np.clip((sel - lo) / (hi - lo), 0, 1) if hi > lo else np.zeros_like(sel)).astype(np.uint8)
        m = np.asarray(masks)[[i for i, _ in chosen]].astype(bool)
        buf = io.BytesIO()
        np.savez_compressed(buf, maps=np.diff(q, axis=-1, prepend=np.uint8(0)),
                            masks=np.packbits(m.reshape(len(chosen), -1), axis=1),
                            shape=np.asarray(m.shape, dtype=np.int64))
        blob = buf.getvalue()
        npz = folder / f"{name}.npz"
        atomic_write_bytes(npz, blob)
        written += len(blob)
        data.update(maps_file=npz.name, maps_sha256=hashlib.sha256(blob).hexdigest(), maps_bytes=len(blob),
                    map_encoding=MAP_ENCODING)
    text = json.dumps(data, separators=(",", ":"), allow_nan=False) + "\n"
    path = folder / f"{name}.json"
    atomic_write_text(path, text)
    return path, written + len(text.encode())


# ---------------------------------------------------------------------------------- reading
@dataclass
class CategoryData:
    """A category's report data as read back.

    Attributes:
        curves: the JSON's content (see :func:`category_curves`), or None when missing / stale.
        maps: float32 ``(K, S, S)`` maps of ``curves["selected"]`` in map units, clipped at
            ``map_range["hi"]`` (within ``(hi - lo) / 510`` of the run's maps below it, see the
            module doc), or None.
        masks: bool ``(K, S, S)``, or None.
        problems: why something is missing, in words (empty when all is there).
    """

    curves: dict[str, Any] | None = None
    maps: np.ndarray | None = None
    masks: np.ndarray | None = None
    problems: list[str] = field(default_factory=list)


def load_category(run_dir: str | Path, record: dict[str, Any]) -> CategoryData:
    """Read the report data of one category record (an entry of ``results.json``'s
    ``categories``) from ``run_dir/report_data``. Never raises for missing or damaged files: the
    reason lands in ``problems`` (e.g. a category finished before report data existed, reused by
    a resumed run: re-run it with ``--force``).
    """
    cat = record["category"]
    folder = Path(run_dir) / REPORT_DATA_DIR
    path = folder / f"{safe_name(cat)}.json"
    out = CategoryData()
    rerun = "re-run with --force to get curves and overlays"
    if not path.is_file():
        out.problems.append(f"{cat}: no report data ({path} missing: the category was computed before report "
                            f"data existed, or by a resumed run); {rerun}")
        return out
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        out.problems.append(f"{path}: unreadable ({e}); {rerun}")
        return out
    if not isinstance(data, dict) or data.get("report_data_version") != REPORT_DATA_VERSION:
        out.problems.append(f"{path}: not report data of version {REPORT_DATA_VERSION}; {rerun}")
        return out
    if data.get("run_hash") != record.get("run_hash") or data.get("category") != cat:
        out.problems.append(f"{path}: belongs to another run (run hash {data.get('run_hash')}, the results' "
                            f"{record.get('run_hash')}); {rerun}")
        return out
    rng = data.get("map_range")
    if not (isinstance(rng, dict) and all(isinstance(rng.get(k), (int, float)) for k in ("lo", "hi", "min", "max"))
            and isinstance(data.get("selected"), list) and isinstance(data.get("n_test"), int)):
        out.problems.append(f"{path}: incomplete report data; {rerun}")
        return out
    out.curves = data
    if not data.get("maps_file"):
        if data.get("selected") == []:
            out.problems.append(f"{cat}: no maps kept (output.report_images: 0)")
        return out
    npz = folder / safe_name(data["maps_file"])
    try:
        blob = npz.read_bytes()
    except OSError as e:
        out.problems.append(f"{npz}: missing or unreadable ({e.strerror or e}); {rerun}")
        return out
    if hashlib.sha256(blob).hexdigest() != data.get("maps_sha256"):
        out.problems.append(f"{npz}: does not match {path.name} (checksum); {rerun}")
        return out
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as z:
            shape = tuple(int(v) for v in z["shape"])
            q = np.cumsum(z["maps"], axis=-1, dtype=np.uint8)  # undoes the delta coding, modulo 256
            masks = np.unpackbits(z["masks"], axis=1, count=shape[1] * shape[2]).reshape(shape).astype(bool)
    except (OSError, ValueError, KeyError, IndexError) as e:
        out.problems.append(f"{npz}: unreadable ({e}); {rerun}")
        return out
    lo, hi = data["map_range"]["lo"], data["map_range"]["hi"]
    if q.shape != shape:
        out.problems.append(f"{npz}: maps of shape {q.shape}, masks of {shape}; {rerun}")
        return out
    out.maps = (lo + q.astype(np.float64) / 255.0 * (hi - lo)).astype(np.float32)
    out.masks = masks
    return out
