"""The steps of one category, each callable alone (a benchmark script runs only those it measures):

* :func:`fit_category`: fit on the training set in one timed span (or load the fit from the model
  cache);
* :func:`score_category`: score the whole test set in batches, timed;
* :func:`time_category`: the batch-1 timing pass;
* :func:`evaluate`: the metrics, each pixel curve computed once and kept for the report.

:func:`padim_bench.runner.run_category` composes them into a category record.

Timed spans (seconds, ``time.perf_counter``; :data:`TIMED_SPANS` is their description in
``results.json``):

* ``fit_s``: the whole fit, decoding and pre-processing included (overlapped by a decoding thread
  with ``runtime.workers: 0``, by DataLoader worker processes otherwise).
* ``infer_s_per_image``: batch 1, after ``warmup_images``, mean over ``timing_images`` test images,
  from the image file to the smoothed map: decode, resize/crop, backbone, embedding, Mahalanobis
  distances, upsampling, Gaussian filter, max. Model and weight loading are outside.
* ``infer_model_s_per_image``: the same span without decode and pre-processing.
* ``infer_batched_s_per_image``: the batched scoring pass over the whole test set, decode included.
"""

from __future__ import annotations

import statistics
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
from rich.progress import Progress

from . import metrics as M
from . import store
from .config import RunConfig
from .data import dataset_for
from .data.images import load_image
from .data.mvtec import CategorySplit
from .data.transforms import Augment, Preprocess
from .methods import Method
from .methods.base import postprocess
from .profiling import Span, gemm_rate, measure

TIMED_SPANS = {
    "fit_s": "whole fit, image decoding and resizing included (a decoding thread, or DataLoader workers, overlap it): "
             "backbone and the method's own fit (its statistics, feature bank or training; the model description "
             "gives a training budget)",
    "infer_s_per_image": "batch 1 after warm-up: decode, resize/crop, backbone, embedding, distances, "
                         "upsampling, Gaussian filter, max (model and weight loading excluded)",
    "infer_model_s_per_image": "batch 1: backbone, embedding, distances, upsampling, Gaussian filter, max",
    "infer_batched_s_per_image": "batched scoring of the whole test set (decode included) / images",
}


class TrainBatches:
    """Re-iterable training images ``(B, 3, S, S)`` from a DataLoader, advancing a progress bar;
    each iteration is a fresh pass (two-pass methods such as PCA iterate twice)."""

    def __init__(self, loader: torch.utils.data.DataLoader, progress: Progress | None, task: Any):
        self.loader, self.progress, self.task = loader, progress, task

    def __iter__(self):
        if self.progress is not None:
            self.progress.reset(self.task, total=len(self.loader.dataset))
        for images, *_ in self.loader:
            yield images
            if self.progress is not None:
                self.progress.advance(self.task, len(images))


def _preprocess(cfg: RunConfig) -> tuple[Preprocess, Augment | None]:
    ds = cfg.dataset
    augment = None
    if ds.augment == "nonaligned":
        augment = Augment(ds.augment_rotation_deg, cfg.method.seed if ds.augment_seed is None else ds.augment_seed)
    return Preprocess(ds.resize, ds.crop, ds.interpolation), augment


def _loader(cfg: RunConfig, samples: Any, which: str) -> Iterable:
    """The batches of a split's ``train`` or ``test`` samples, from the configured dataset's loader
    (:meth:`padim_bench.data.Dataset.loader`: MVTec AD images, STC videos decoded as they stream
    and test frames with their mask slices, ...)."""
    rt = cfg.runtime
    prep, augment = _preprocess(cfg)
    return dataset_for(cfg.dataset).loader(samples, prep, augment, rt.batch_size, rt.workers, which)


@dataclass
class FitResult:
    """What :func:`fit_category` did.

    Attributes:
        fit: ``fit_s`` (seconds), ``fit_peak_rss_bytes``, ``fit_start_rss_bytes``,
            ``fit_peak_cuda_bytes`` (bytes), ``rss_method``, ``other_cpu_cores`` (of the fit span,
            :class:`padim_bench.profiling.Span`), ``fit_from_cache`` (the model file it was loaded
            from, or None when fitted now; the figures are then the cached fit's).
        fingerprint: the training files' (:func:`padim_bench.store.train_fingerprint`).
        predicted_state_bytes: the state's size predicted from the architecture before any image
            was read, or None where the method cannot predict it.
    """

    fit: dict[str, Any]
    fingerprint: str
    predicted_state_bytes: dict[str, int] | None


def fit_category(cfg: RunConfig, method: Method, split: CategorySplit, device: torch.device,
                 progress: Progress | None = None, cache_path: Path | None = None,
                 models_dir: Path | None = None) -> FitResult:
    """Fit ``method`` on ``split.train`` inside one timed span (decoding included), or load the fit
    from ``cache_path`` when it holds a model of the same training files; the fit is then saved to
    ``cache_path`` and, with ``models_dir``, to ``models_dir/<category>.pt``.

    Raises:
        PadimBenchError: the method's own failures (e.g. too few training images).
        OSError: a model file cannot be written.
    """
    size = _preprocess(cfg)[0].size
    method.set_train_size(len(split.train))
    try:  # the fitted state's size, predicted from the architecture before any image is read
        predicted = type(method).predict_state_nbytes(cfg.method.params, cfg.method.backbone, list(cfg.method.layers),
                                                      size, len(split.train))
    except NotImplementedError:
        predicted = None
    fingerprint = store.train_fingerprint(split)
    cached = store.load_cached(method, cache_path, fingerprint) if cache_path is not None else None
    if cached is None:
        task = progress.add_task(f"{split.name}: fit", total=len(split.train), unit="images") if progress else None
        batches = TrainBatches(_loader(cfg, split.train, "train"), progress, task)
        with measure(device) as span:
            method.fit(batches)
        fit = {"fit_s": span.seconds, "fit_peak_rss_bytes": span.peak_rss_bytes,
               "fit_start_rss_bytes": span.start_rss_bytes, "fit_peak_cuda_bytes": span.peak_cuda_bytes,
               "rss_method": span.rss_method, "fit_from_cache": None, "other_cpu_cores": span.other_cpu_cores}
        if cache_path is not None:
            store.save_model(method, cache_path, {"fingerprint": fingerprint, "fit": fit})
    else:
        fit = {**cached["fit"], "fit_from_cache": str(cache_path)}
    if models_dir is not None:
        store.save_model(method, models_dir / f"{split.name}.pt", {"fingerprint": fingerprint, "fit": fit})
    return FitResult(fit, fingerprint, predicted)


def score_batch(cfg: RunConfig, method: Method, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Score a batch of pre-processed images ``(B, 3, S, S)`` float32 with a fitted ``method``: its
    patch maps (and image scores, where it has its own) up to the final ``(B, S, S)`` float32 maps
    at the input's resolution, smoothed (``evaluation.sigma``), and the ``(B,)`` image scores
    (:func:`padim_bench.methods.base.postprocess`)."""
    ev = cfg.evaluation
    raw, image_scores = method.score_images(images)
    return postprocess(raw, (int(images.shape[-2]), int(images.shape[-1])), ev.sigma, ev.map_interpolation,
                       image_scores)


@dataclass
class ScoreResult:
    """The batched scoring pass over a test set (:func:`score_category`).

    Attributes:
        maps: ``(N, S, S)`` float32 anomaly maps. scores: ``(N,)`` image scores. masks:
            ``(N, S, S)`` {0, 1} ground truth. labels: ``(N,)`` {0, 1}, 1 = anomalous.
        span: the pass's :class:`padim_bench.profiling.Span` (decoding included; seconds over the
            whole set, peak memory).
    """

    maps: np.ndarray
    scores: np.ndarray
    masks: np.ndarray
    labels: np.ndarray
    span: Span

    @property
    def seconds_per_image(self) -> float:
        return self.span.seconds / len(self.labels)


def score_category(cfg: RunConfig, method: Method, split: CategorySplit, device: torch.device,
                   progress: Progress | None = None) -> ScoreResult:
    """Score every test image of ``split`` in batches of ``runtime.batch_size`` inside one timed
    span (decoding included), with a fitted ``method``."""
    task = progress.add_task(f"{split.name}: score", total=len(split.test), unit="images") if progress else None
    maps, scores, masks, labels = [], [], [], []
    with measure(device) as span:
        for images, mask, label, _ in _loader(cfg, split.test, "test"):
            m, s = score_batch(cfg, method, images)
            maps.append(m), scores.append(s), masks.append(mask.numpy()), labels.append(label.numpy())
            if progress is not None:
                progress.advance(task, len(images))
    return ScoreResult(np.concatenate(maps), np.concatenate(scores), np.concatenate(masks), np.concatenate(labels), span)


@dataclass
class TimeResult:
    """The batch-1 timing pass (:func:`time_category`).

    Attributes:
        figures: ``infer_s_per_image`` (mean, decode to smoothed map), ``infer_s_per_image_median``,
            ``infer_model_s_per_image`` (without decode and pre-processing), seconds, None when no
            image was left to time; ``timing_images``, ``warmup_images``.
        span: the whole pass's :class:`padim_bench.profiling.Span` (warm-up included).
        predicted_score: the method's predicted scoring cost beside the measured figures, or None.
    """

    figures: dict[str, Any]
    span: Span
    predicted_score: dict[str, Any] | None


def time_category(cfg: RunConfig, method: Method, split: CategorySplit, device: torch.device) -> TimeResult:
    """Time a fitted ``method`` at batch 1 on ``runtime.timing_images`` test images after
    ``runtime.warmup_images`` (at least one image is kept to time), each from its file to the
    smoothed map (see the module doc)."""
    size = _preprocess(cfg)[0].size
    predicted_score = _predict_score(method, cfg, size, len(split.train), device)
    with measure(device) as span:
        figures = _batch1_pass(cfg, method, split)
    if predicted_score is not None:
        predicted_score["measured_model_s_per_image"] = figures["infer_model_s_per_image"]
        predicted_score["measured_peak_increase_bytes"] = span.peak_rss_bytes - span.start_rss_bytes
    return TimeResult(figures, span, predicted_score)


def _batch1_pass(cfg: RunConfig, method: Method, split: CategorySplit) -> dict[str, Any]:
    rt, prep = cfg.runtime, _preprocess(cfg)[0]
    n_warm = min(rt.warmup_images, max(0, len(split.test) - 1))  # keep at least one image to time
    chosen = list(split.test[:n_warm]) + list(split.test[n_warm : n_warm + rt.timing_images])
    total, model_only = [], []
    for i, s in enumerate(chosen):
        t0 = time.perf_counter()
        img = prep.image(load_image(s.path, cfg.dataset.bit_depth))[None]
        t1 = time.perf_counter()
        score_batch(cfg, method, img)
        t2 = time.perf_counter()
        if i >= n_warm:
            total.append(t2 - t0)
            model_only.append(t2 - t1)
    if not total:  # no test image left after the warm-up: nothing timed (reported as such)
        return {"infer_s_per_image": None, "infer_s_per_image_median": None, "infer_model_s_per_image": None,
                "timing_images": 0, "warmup_images": n_warm}
    return {
        "infer_s_per_image": statistics.fmean(total),
        "infer_s_per_image_median": statistics.median(total),
        "infer_model_s_per_image": statistics.fmean(model_only),
        "timing_images": len(total),
        "warmup_images": n_warm,
    }


def _predict_score(method: Method, cfg: RunConfig, size: int, n_train: int,
                   device: torch.device) -> dict[str, Any] | None:
    """Predicted cost of scoring one test image (methods whose ``predict_score_cost`` gives one,
    i.e. SPADE): multiply-adds, temporary bytes, and seconds = multiply-adds / the float32 matrix-product
    rate measured now (:func:`padim_bench.profiling.gemm_rate`; the backbone is not included).
    The runner adds the measured batch-1 figures next to it."""
    cost = type(method).predict_score_cost(cfg.method.params, cfg.method.backbone, list(cfg.method.layers), size, n_train)
    if cost is None:
        return None
    rate = gemm_rate(device)
    return {**cost, "gemm_macs_per_s": rate, "predicted_s_per_image": cost["macs"] / rate,
            "note": "kNN distance products only (backbone excluded); rate measured just before the timing pass"}


@dataclass
class Evaluation:
    """The metrics of a scored test set (:func:`evaluate`) and the curves they integrate.

    Attributes:
        metrics: ``evaluation.metrics`` -> value in [0, 1], None where undefined.
        undefined: the names of the undefined ones.
        roc: the pixel ROC (:func:`padim_bench.metrics.pixel_roc`), pro: the PRO curve
            (:func:`padim_bench.metrics.pro_to_limit`): None where undefined or not computed.
    """

    metrics: dict[str, float | None]
    undefined: list[str]
    roc: M.PixelRoc | None
    pro: M.ProCurve | None


def evaluate(cfg: RunConfig, name: str, scored: ScoreResult, curves: bool = True) -> Evaluation:
    """``evaluation.metrics`` of the scored test set of category ``name``; each pixel curve is
    computed once, for its metric and (with ``curves``, for the report) kept. Warns when a metric is
    undefined (a test set with one class only)."""
    asked, ev = cfg.evaluation.metrics, cfg.evaluation
    # PRO first: its curve (cut at the FPR limit) is smaller than the ROC's arrays, held meanwhile
    pro = M.pro_to_limit(scored.maps, scored.masks, ev.pro_fpr_limit) if curves or "pro" in asked else None
    roc = M.pixel_roc(scored.maps, scored.masks) if curves or "pixel_roc_auc" in asked else None
    values = {"image_roc_auc": lambda: M.image_roc_auc(scored.scores, scored.labels),
              "pixel_roc_auc": lambda: None if roc is None else roc.auc,
              "pro": lambda: None if pro is None else pro.area}
    metrics = {name_: values[name_]() for name_ in asked}
    undefined = [k for k, v in metrics.items() if v is None]
    if undefined:
        labels = scored.labels
        why = f"test set has {int(labels.sum())} anomalous and {int((labels == 0).sum())} normal images"
        if labels.any() and not scored.masks.any() and set(undefined) - {"image_roc_auc"}:
            why += "; no anomalous pixel in any mask: no masks, or all black"
        warnings.warn(f"{name}: {', '.join(undefined)} undefined ({why})")
    return Evaluation(metrics, undefined, roc, pro)
