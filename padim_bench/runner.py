"""One experiment end to end: config -> data -> backbone -> method -> metrics -> files.

Order of work, so that every error a user can cause comes before any long computation:

1. the config is already validated (:func:`padim_bench.config.load_config`);
2. the output folder is checked (a run with another config is never overwritten silently);
3. every category's layout is scanned (missing masks, empty folders, size mismatches; STC: every
   video's frame count and every clip's frame / label / mask alignment, one scene per category),
   and each fit's memory is predicted and refused when it will not fit
   (:func:`padim_bench.memcheck.check_run`);
4. the backbone is loaded (missing weights fail here, at once) and ``d`` checked against it;
5. per category: fit (timed, peak memory), batched scoring of the test set, a batch-1 timing pass,
   metrics; the category's record is written atomically as soon as it is done, so an interrupted
   run resumes where it stopped.

Timed spans (seconds, ``time.perf_counter``):

* ``fit_s``: the whole fit, decoding and pre-processing included (overlapped by a decoding thread
  with ``runtime.workers: 0``, by DataLoader worker processes otherwise).
* ``infer_s_per_image``: batch 1, after ``warmup_images``, mean over ``timing_images`` test images,
  from the image file to the smoothed map: decode, resize/crop, backbone, embedding, Mahalanobis
  distances, upsampling, Gaussian filter, max. Model and weight loading are outside.
* ``infer_model_s_per_image``: the same span without decode and pre-processing.
* ``infer_batched_s_per_image``: the batched scoring pass over the whole test set, decode included.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import statistics
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from . import metrics as M
from .backbones import layer_names, layer_shapes, load_backbone
from .config import RunConfig
from .data.images import load_image
from .data.mvtec import CategorySplit, category_kind, resolve_categories, scan_category
from .data.origin import synthetic_origin
from .data.transforms import Augment, Preprocess, make_loader
from .data.verify import check_split
from .envinfo import environment
from .legacy import rekey_run_folder
from .memcheck import check_run
from .errors import ConfigError, PadimBenchError
from .methods import METHODS, Method
from .methods.base import postprocess
from .output import RUN_FILES, atomic_write_json, write_run_files
from .profiling import gemm_rate, measure

RECORD_VERSION = 1
TIMED_SPANS = {
    "fit_s": "whole fit, image decoding and resizing included (a decoding thread, or DataLoader workers, overlap it): "
             "PaDiM: backbone, embedding, mean/covariance update, Cholesky and inverse factor; SPADE: backbone "
             "and feature bank; VAE: training (its budget is in the model description)",
    "infer_s_per_image": "batch 1 after warm-up: decode, resize/crop, backbone, embedding, distances, "
                         "upsampling, Gaussian filter, max (model and weight loading excluded)",
    "infer_model_s_per_image": "batch 1: backbone, embedding, distances, upsampling, Gaussian filter, max",
    "infer_batched_s_per_image": "batched scoring of the whole test set (decode included) / images",
}


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU.

    Raises:
        ConfigError: ``cuda`` requested but not available.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("runtime.device: 'cuda' requested but torch sees no CUDA device (use auto or cpu)")
    return torch.device(name)


def check_names(cfg: RunConfig) -> None:
    """Check the method, backbone, layer names and the method's parameters against the
    architecture (built on the ``meta`` device: no weights, no data).

    Raises:
        ConfigError: an unknown name (with the valid ones) or e.g. ``d`` larger than the embedding.
    """
    spec = METHODS.get(cfg.method.name)
    valid = layer_names(cfg.method.backbone)
    unknown = [layer for layer in cfg.method.layers if layer not in valid]
    if unknown:
        raise ConfigError(
            f"method.layers: unknown layer {unknown[0]!r} for backbone {cfg.method.backbone!r}. Valid: {', '.join(valid)}"
        )
    layers = spec.cls.extractor_layers(cfg.method.params, cfg.method.layers)
    bad = [layer for layer in layers if layer not in valid]
    if bad:
        raise ConfigError(f"method {cfg.method.name!r} needs layer {bad[0]!r}, which backbone "
                          f"{cfg.method.backbone!r} lacks. Valid: {', '.join(valid)}")
    shapes = layer_shapes(cfg.method.backbone, layers, 128)
    sides = [shapes[layer][1] for layer in cfg.method.layers]
    if sides != sorted(sides, reverse=True):
        raise ConfigError(f"method.layers: list them from shallow to deep (e.g. layer1, layer2, layer3), got "
                          f"{cfg.method.layers}: the random channels are drawn over the layers in this order")
    spec.cls.check_embedding(cfg.method.params, {k: v[0] for k, v in shapes.items()})


def build_method(cfg: RunConfig, device: torch.device) -> Method:
    """Load the backbone and construct the configured method (no data is read).

    Raises:
        ConfigError: unknown method, backbone or layer, or ``d`` larger than the embedding.
        WeightsError: ImageNet weights are neither cached nor downloadable.
    """
    spec = METHODS.get(cfg.method.name)
    m = cfg.method
    layers = spec.cls.extractor_layers(m.params, m.layers)
    extractor = load_backbone(m.backbone, layers, weights=m.weights, seed=m.seed, device=device,
                              channels_last=cfg.runtime.channels_last)
    return spec.cls(m.params, extractor, device=device, seed=m.seed)


def prepare_output(cfg: RunConfig, force: bool) -> Path:
    """Create the output folder, or check that an existing one belongs to this config.

    Returns:
        The output folder.

    Raises:
        PadimBenchError: the folder holds a run with another config hash (unless ``force``), or
            is a file.
    """
    out = Path(cfg.output.dir)
    if out.exists() and not out.is_dir():
        raise PadimBenchError(f"output.dir {out} exists and is not a folder")
    info = out / "run.json"
    if info.exists() and not force:
        try:
            rekeyed = rekey_run_folder(out, cfg)
        except OSError as e:
            raise PadimBenchError(f"output.dir {out}: cannot re-key the run made before the data root left the "
                                  f"config hash ({e.strerror or e})") from None
        if rekeyed:
            warnings.warn(f"{out}: a run of this configuration made before the data root left the config hash; "
                          f"its hashes were updated in {len(rekeyed)} file(s) (no figure changed)", UserWarning, stacklevel=2)
        old = _read_json(info)
        if not isinstance(old, dict):
            raise PadimBenchError(f"{info}: not a padim-bench run file; use --force to start over or --out elsewhere")
        if old.get("run_hash") != cfg.run_hash():
            raise PadimBenchError(
                f"{out} holds a run with another configuration or runtime settings (run hash "
                f"{old.get('run_hash')}, this one {cfg.run_hash()}); choose another --out, or --force to overwrite it"
            )
    try:
        if force and info.exists():
            _clear_other_run(out, cfg.run_hash(), cfg.output.model_cache)
        (out / "categories").mkdir(parents=True, exist_ok=True)
        if force or not info.exists():  # a resumed run leaves the folder's run file as it was
            atomic_write_json(info, {"config_hash": cfg.config_hash(), "run_hash": cfg.run_hash(), "config": cfg.to_dict()})
    except OSError as e:
        raise PadimBenchError(f"output.dir {out}: cannot write there ({e.strerror or e})") from None
    return out


# the folders a run writes into its output folder, beside output.RUN_FILES (other files there are the user's)
RUN_FOLDERS = ("categories", "report_data", "models", "report")


def _clear_other_run(out: Path, run_hash: str, keep: str | None = None) -> None:
    """Under ``--force``, remove the files of a previous run with another (or an unreadable) run
    hash before this run's ``run.json`` is written, so an interrupted forced run never leaves the
    new ``run.json`` beside the old run's results. Only the files a run writes are removed, and
    never a folder holding ``keep`` (the model cache, should it live there)."""
    try:
        old = json.loads((out / "run.json").read_text(encoding="utf-8"))
        if isinstance(old, dict) and old.get("run_hash") == run_hash:
            return  # the same run: its finished categories are recomputed or reused as usual
    except (OSError, ValueError):
        pass
    for name in RUN_FILES:
        (out / name).unlink(missing_ok=True)
    kept = Path(keep).resolve() if keep else None
    for name in RUN_FOLDERS:
        folder = out / name
        if folder.is_dir() and not (kept and (kept == folder.resolve() or folder.resolve() in kept.parents)):
            shutil.rmtree(folder)


def _read_json(path: Path) -> Any:
    """Parsed JSON of ``path``, or PadimBenchError naming it."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise PadimBenchError(f"{path}: unreadable ({e}); use --force to start over or --out elsewhere") from None


def _unchanged_results(out: Path, run_hash: str, categories: list[str]) -> dict[str, Any] | None:
    """The run record in ``out/results.json`` when it is readable, of ``run_hash`` and this
    record version, holds exactly ``categories`` (the finished ones) and its ``.csv`` and ``.md``
    are there, i.e. writing it again would only change its environment; else None."""
    try:
        old = json.loads((out / "results.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(old, dict) or old.get("run_hash") != run_hash or not isinstance(old.get("categories"), list):
        return None
    if old.get("record_version") != RECORD_VERSION or not all((out / f).is_file() for f in RUN_FILES):
        return None  # an older record, or a deleted table: written again
    if [c.get("category") if isinstance(c, dict) else None for c in old["categories"]] != categories:
        return None
    return old


def _finished(path: Path, run_hash: str, console: Console, split: CategorySplit,
              metrics: list[str]) -> dict[str, Any] | None:
    """The finished category record at ``path`` if it is valid, of this run hash, of this category
    and of the same data files; a damaged file is reported and recomputed, never trusted."""
    if not path.exists():
        return None
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
        ok = (isinstance(rec, dict) and rec.get("run_hash") == run_hash and rec.get("category") == split.name
              and isinstance(rec.get("metrics"), dict) and sorted(rec["metrics"]) == sorted(set(metrics))
              and all(v is None or 0.0 <= v <= 1.0 for v in rec["metrics"].values())
              and isinstance(rec.get("time", {}).get("fit_s"), (int, float)))
        if ok and rec.get("data_fingerprint") != data_fingerprint(split):
            console.print(f"[yellow]warning:[/] {split.name}: the data files changed since {path} was written; "
                          "recomputing that category", highlight=False)
            return None
    except (OSError, ValueError, TypeError, AttributeError):
        ok, rec = False, None
    if not ok:
        if isinstance(rec, dict) and rec.get("run_hash") not in (None, run_hash):
            return None  # another run's record (after --force elsewhere): recompute quietly
        console.print(f"[yellow]warning:[/] {path} is damaged or incomplete; recomputing that category", highlight=False)
        return None
    return rec


def finished_record(cfg: RunConfig, split: CategorySplit) -> dict[str, Any] | None:
    """The finished record of category ``split`` in ``cfg.output.dir`` when :func:`run` would
    skip it (same run hash, same category, same data files, complete); else None. Prints nothing
    (a damaged record is simply not finished). Used by sweeps to skip jobs before scheduling."""
    path = Path(cfg.output.dir) / "categories" / f"{split.name}.json"
    return _finished(path, cfg.run_hash(), Console(quiet=True), split, cfg.evaluation.metrics)


BUSY_CORES = 0.5
"""Mean CPU cores used by other processes during a timed span above which the run warns that its
time figures are not a quiet machine's (``profiling.Span.other_cpu_cores``)."""


def _timing_pass(method: Method, cfg: RunConfig, split: CategorySplit, prep: Preprocess) -> dict[str, Any]:
    """Batch-1 timing over ``timing_images`` test images after ``warmup_images`` (see module doc)."""
    ev, rt = cfg.evaluation, cfg.runtime
    n_warm = min(rt.warmup_images, max(0, len(split.test) - 1))  # keep at least one image to time
    chosen = list(split.test[:n_warm]) + list(split.test[n_warm : n_warm + rt.timing_images])
    total, model_only = [], []
    for i, s in enumerate(chosen):
        t0 = time.perf_counter()
        img = prep.image(load_image(s.path, cfg.dataset.bit_depth))[None]
        t1 = time.perf_counter()
        raw, image_scores = method.score_images(img)
        postprocess(raw, (prep.size, prep.size), ev.sigma, ev.map_interpolation, image_scores)
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


def _loader(cfg: RunConfig, samples: Any, prep: Preprocess, augment: Augment | None,
            which: str) -> Iterable:
    """The DataLoader of a split's ``train`` or ``test`` samples for the dataset's format: MVTec AD
    images (:func:`make_loader`), or STC videos decoded as they stream and test frames with their
    mask slices (:func:`padim_bench.data.stc.make_stc_loader`)."""
    ds, rt = cfg.dataset, cfg.runtime
    if ds.name == "stc":
        from .data.stc import make_stc_loader

        return make_stc_loader(samples, prep, rt.batch_size, rt.workers)
    return make_loader(samples, prep, rt.batch_size, rt.workers, augment, which, ds.bit_depth)


def run_category(
    cfg: RunConfig, method: Method, split: CategorySplit, device: torch.device,
    progress: Progress | None = None, models_dir: Path | None = None, cache_path: Path | None = None,
    report_dir: Path | None = None, stc_hist_path: Path | None = None,
) -> dict[str, Any]:
    """Fit on ``split.train`` (or load the fit from ``cache_path`` when it holds a model of the same
    config hash and training files), score ``split.test``, time and measure. With ``report_dir``
    (the run's output folder), the report's curves and the maps of a few selected test images are
    saved into ``report_dir/report_data`` (:func:`padim_bench.report.data.save_category`; outside
    every timed span, and read by no metric). On STC the record gets an ``stc`` part (the scene's
    protocol figures and the frame-level ROC-AUC of the map maxima) and the scene's pixel-score
    histogram is written to ``stc_hist_path`` for the ROC-AUC pooled over all scenes.

    Returns:
        The category record (plain data, see ``results.json``).
    """
    ds, ev, rt = cfg.dataset, cfg.evaluation, cfg.runtime
    prep = Preprocess(ds.resize, ds.crop, ds.interpolation)
    augment = None
    if ds.augment == "nonaligned":
        augment = Augment(ds.augment_rotation_deg, cfg.method.seed if ds.augment_seed is None else ds.augment_seed)

    method.set_train_size(len(split.train))
    try:  # the fitted state's size, predicted from the architecture before any image is read
        predicted = type(method).predict_state_nbytes(cfg.method.params, cfg.method.backbone, list(cfg.method.layers),
                                                      prep.size, len(split.train))
    except NotImplementedError:
        predicted = None
    fingerprint = train_fingerprint(split)
    cached = _load_cached(method, cache_path, fingerprint) if cache_path is not None else None
    if cached is None:
        task = progress.add_task(f"{split.name}: fit", total=len(split.train)) if progress else None
        train_loader = _loader(cfg, split.train, prep, augment, "train")
        with measure(device) as span:
            method.fit(TrainBatches(train_loader, progress, task))
        fit = {"fit_s": span.seconds, "fit_peak_rss_bytes": span.peak_rss_bytes,
               "fit_start_rss_bytes": span.start_rss_bytes, "fit_peak_cuda_bytes": span.peak_cuda_bytes,
               "rss_method": span.rss_method, "fit_from_cache": None, "other_cpu_cores": span.other_cpu_cores}
        if cache_path is not None:
            _save_model(method, cache_path, {"fingerprint": fingerprint, "fit": fit})
    else:
        fit = {**cached["fit"], "fit_from_cache": str(cache_path)}
    if models_dir is not None:
        _save_model(method, models_dir / f"{split.name}.pt", {"fingerprint": fingerprint, "fit": fit})

    task = progress.add_task(f"{split.name}: score", total=len(split.test)) if progress else None
    maps, scores, masks, labels = [], [], [], []
    with measure(device) as score_span:
        for images, mask, label, _ in _loader(cfg, split.test, prep, augment, "test"):
            raw, image_scores = method.score_images(images)
            m, s = postprocess(raw, (prep.size, prep.size), ev.sigma, ev.map_interpolation, image_scores)
            maps.append(m), scores.append(s), masks.append(mask.numpy()), labels.append(label.numpy())
            if progress is not None:
                progress.advance(task, len(images))
    maps_a, masks_a = np.concatenate(maps), np.concatenate(masks)
    scores_a, labels_a = np.concatenate(scores), np.concatenate(labels)

    predicted_score = _predict_score(method, cfg, prep.size, len(split.train), device)
    with measure(device) as infer_span:
        timing = _timing_pass(method, cfg, split, prep)
    busy = {"fit": None if fit["fit_from_cache"] else fit.get("other_cpu_cores"),
            "batch-1 timing": infer_span.other_cpu_cores}
    contended = {k: v for k, v in busy.items() if v is not None and v > BUSY_CORES}
    if contended:
        warnings.warn(f"{split.name}: other processes kept "
                      + " and ".join(f"{v:.1f} of {os.cpu_count()} cores busy during the {k}" for k, v in contended.items())
                      + "; those time figures are not a quiet machine's (re-run there; on a shared machine "
                      "runtime.threads: 1 is steadier)", UserWarning, stacklevel=2)
    if predicted_score is not None:
        predicted_score["measured_model_s_per_image"] = timing["infer_model_s_per_image"]
        predicted_score["measured_peak_increase_bytes"] = infer_span.peak_rss_bytes - infer_span.start_rss_bytes

    metric_values: dict[str, float | None] = {}
    undefined = []
    fns: dict[str, Callable[[], float | None]] = {
        "image_roc_auc": lambda: M.image_roc_auc(scores_a, labels_a),
        "pixel_roc_auc": lambda: M.pixel_roc_auc(maps_a, masks_a),
        "pro": lambda: M.pro_auc(maps_a, masks_a, ev.pro_fpr_limit),
    }
    for name in ev.metrics:
        metric_values[name] = fns[name]()
        if metric_values[name] is None:
            undefined.append(name)
    if undefined:
        warnings.warn(
            f"{split.name}: {', '.join(undefined)} undefined (test set has "
            f"{int(labels_a.sum())} anomalous and {int((labels_a == 0).sum())} normal images)"
        )
    if report_dir is not None:
        from .report.data import save_category  # numpy and scikit-learn only

        try:
            save_category(report_dir, split.name, maps_a, masks_a, scores_a, labels_a, [s.path for s in split.test],
                          [s.defect for s in split.test], k=cfg.output.report_images, fpr_limit=ev.pro_fpr_limit,
                          run_hash=cfg.run_hash(), config_hash=cfg.config_hash())
        except OSError as e:
            raise PadimBenchError(f"{report_dir}: cannot write the report data ({e.strerror or e})") from None
    stc = None
    if ds.name == "stc":  # frame-level ROC-AUC of the map maxima; pixel histogram for the pooled ROC-AUC
        map_max = maps_a.reshape(len(maps_a), -1).max(1)
        stc = {**split.describe(), "frame_roc_auc": M.image_roc_auc(map_max, labels_a),
               "map_max": map_max.tolist()}
        if stc_hist_path is not None:
            _save_histogram(stc_hist_path, M.score_histogram(maps_a, masks_a))
    state = method.state_nbytes()
    return {
        "category": split.name,
        "kind": "scene" if ds.name == "stc" else category_kind(split.name, ds.texture_categories),
        "n_train": len(split.train),
        "n_test": len(split.test),
        "n_test_anomalous": int(labels_a.sum()),
        "metrics": metric_values,
        "undefined_metrics": undefined,
        "time": {
            "fit_s": fit["fit_s"],
            "fit_s_per_train_image": fit["fit_s"] / len(split.train),
            "fit_from_cache": fit["fit_from_cache"],
            "infer_batched_s_per_image": score_span.seconds / len(split.test),
            "batch_size": rt.batch_size,
            **timing,
            "other_cpu_cores_fit": fit.get("other_cpu_cores"),  # mean cores other processes used (profiling.Span)
            "other_cpu_cores_timing": infer_span.other_cpu_cores,
        },
        "memory": {
            "state_bytes": state,
            "predicted_state_bytes": predicted,
            "predicted_score": predicted_score,
            "state_gb": sum(state.values()) / 1e9,
            "state_gb_without_backbone": sum(v for k, v in state.items() if k != "backbone") / 1e9,
            "fit_peak_rss_bytes": fit["fit_peak_rss_bytes"],
            "fit_start_rss_bytes": fit["fit_start_rss_bytes"],
            "score_peak_rss_bytes": score_span.peak_rss_bytes,
            "infer_peak_rss_bytes": infer_span.peak_rss_bytes,
            "infer_start_rss_bytes": infer_span.start_rss_bytes,
            "fit_peak_cuda_bytes": fit["fit_peak_cuda_bytes"],
            "infer_peak_cuda_bytes": infer_span.peak_cuda_bytes,
            "rss_method": fit["rss_method"],
            "note": (f"main process only; {rt.workers} DataLoader worker process(es) decode images separately"
                     if rt.workers else "whole run: images are decoded by a thread of this process"),
        },
        "model": method.describe(),
        "image_scores": scores_a.tolist(),
        "labels": labels_a.tolist(),
        "image_paths": [str(s.path) for s in split.test],
        **({"stc": stc} if stc is not None else {}),
    }


def _save_histogram(path: Path, hist: dict[str, np.ndarray]) -> None:
    """Write a pixel-score histogram (:func:`padim_bench.metrics.score_histogram`) atomically as
    ``.npz`` (plain arrays, read back with ``allow_pickle=False``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    try:
        np.savez(tmp, **hist)
        os.replace(tmp, path)
    except OSError as e:
        raise PadimBenchError(f"{path}: cannot write the scene's pixel histogram ({e.strerror or e})") from None


def _load_histogram(path: Path) -> dict[str, np.ndarray] | None:
    """The histogram at ``path``, or None when it is missing or damaged."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in ("keys", "pos", "neg", "bits")}
    except (OSError, ValueError, KeyError):
        return None


def _predict_score(method: Method, cfg: RunConfig, size: int, n_train: int,
                   device: torch.device) -> dict[str, Any] | None:
    """Predicted cost of scoring one test image (methods that define ``predict_score_cost``, i.e.
    SPADE): multiply-adds, temporary bytes, and seconds = multiply-adds / the float32 matrix-product
    rate measured now (:func:`padim_bench.profiling.gemm_rate`; the backbone is not included).
    The runner adds the measured batch-1 figures next to it."""
    predict = getattr(type(method), "predict_score_cost", None)
    if predict is None:
        return None
    cost = predict(cfg.method.params, cfg.method.backbone, list(cfg.method.layers), size, n_train)
    rate = gemm_rate(device)
    return {**cost, "gemm_macs_per_s": rate, "predicted_s_per_image": cost["macs"] / rate,
            "note": "kNN distance products only (backbone excluded); rate measured just before the timing pass"}


def _fingerprint(paths: list[Path], mtime: bool, salt: str = "") -> str:
    h = hashlib.sha256(salt.encode())
    for p in paths:
        st = p.stat()
        h.update(f"{p.parent.name}/{p.name}\0{st.st_size}\0{st.st_mtime_ns if mtime else ''}\n".encode())
    return h.hexdigest()[:16]


def train_fingerprint(split: CategorySplit) -> str:
    """SHA-256 (16 hex digits) of the training files' names, sizes and modification times (keys
    the model cache: any touched file refits). STC: the scene's videos and the stride that
    selects their frames."""
    if hasattr(split, "data_files"):
        return _fingerprint(split.data_files(train_only=True), mtime=True, salt=split.fingerprint_salt)
    return _fingerprint([s.path for s in split.train], mtime=True)


def data_fingerprint(split: CategorySplit) -> str:
    """SHA-256 (16 hex digits) of the names and sizes of every file of the category (training and
    test images, masks): a finished category is reused only over the same files. Modification
    times are left out so a copy of the same dataset on another machine matches. STC: the
    scene's videos, selected test frames and mask files, and the strides."""
    if hasattr(split, "data_files"):
        return _fingerprint(split.data_files(), mtime=False, salt=split.fingerprint_salt)
    return _fingerprint([p for s in split.train + split.test for p in (s.path, s.mask_path) if p is not None],
                        mtime=False)


def _save_model(method: Method, path: Path, extra: dict[str, Any]) -> None:
    """Save ``method.state_dict()`` plus ``extra`` atomically (tensors and plain data only)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save({"state": method.state_dict(), **extra}, tmp)
    os.replace(tmp, path)


def _load_cached(method: Method, path: Path, fingerprint: str) -> dict[str, Any] | None:
    """Load a cached fit into ``method`` when ``path`` exists and matches ``fingerprint``."""
    if not path.is_file():
        return None
    blob = load_model_state(path)
    if blob.get("fingerprint") != fingerprint:
        return None
    method.load_state_dict(blob["state"])
    return blob


def load_model_state(path: str | Path) -> dict[str, Any]:
    """Read a saved model with ``torch.load(weights_only=True)`` (tensors and plain data only)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def scan_splits(cfg: RunConfig) -> tuple[list[Any], dict[str, list[str]], Any]:
    """Every category's split, checked (layout, alignment, decodability), before any model.

    Returns:
        ``(splits, skipped, stc_plan)``: MVTec AD categories or STC scenes; per category the
        files skipped under ``dataset.on_unreadable: skip``; the STC plan
        (:class:`padim_bench.data.stc.StcPlan`, its protocol figures) or None.

    Raises:
        ConfigError, DataError: unknown categories or scenes, a broken layout, an unreadable file.
    """
    ds = cfg.dataset
    if ds.name == "stc":
        from .data.stc import prepare

        plan, skipped = prepare(ds)
        return list(plan.splits), skipped, plan
    splits, skipped = [], {}
    for c in resolve_categories(ds.root, ds.categories):
        split, skipped[c] = check_split(scan_category(ds.root, c), ds.on_unreadable)
        splits.append(split)
    return splits, skipped, None


def stc_summary(info: dict[str, Any], records: list[dict[str, Any]], cat_dir: Path, resize: int) -> dict[str, Any]:
    """The run-level STC part of ``results.json``: the protocol, the scenes reported without a
    model, and the metrics over all scenes: ``pooled`` (every test pixel / frame of every finished
    scene as one set; the pixel ROC-AUC from the scenes' histograms, see
    :func:`padim_bench.metrics.pooled_roc_auc`, with its binning bound) and ``scene_mean`` (the mean
    of the per-scene values)."""
    from .data.stc import protocol_text

    hists = [_load_histogram(cat_dir / f"{r['category']}.pixhist.npz") for r in records]
    pixel = bound = None
    if records and all(hh is not None for hh in hists):
        pixel, bound = M.pooled_roc_auc(hists)
    scores = np.concatenate([np.asarray(r["image_scores"], dtype=np.float64) for r in records]) if records else np.zeros(0)
    labels = np.concatenate([np.asarray(r["labels"], dtype=np.int64) for r in records]) if records else np.zeros(0)
    maxima = np.concatenate([np.asarray((r.get("stc") or {}).get("map_max", []), dtype=np.float64) for r in records]) \
        if records else np.zeros(0)
    means: dict[str, float | None] = {}
    for key, get in (("pixel_roc_auc", lambda r: r["metrics"].get("pixel_roc_auc")),
                     ("image_roc_auc", lambda r: r["metrics"].get("image_roc_auc")),
                     ("frame_roc_auc", lambda r: (r.get("stc") or {}).get("frame_roc_auc"))):
        vals = [v for v in map(get, records) if v is not None]
        means[key] = float(np.mean(vals)) if vals else None
    return {
        **info,
        "protocol": protocol_text(info, resize),
        "scenes_pooled": [r["category"] for r in records],
        "pooled": {
            "scenes": len(records),
            "pixel_roc_auc": pixel,
            "pixel_roc_auc_binning_bound": bound,
            "pixel_method": "ROC-AUC of every test pixel of every scene together, from per-scene histograms of "
                            "float32 scores binned on their top 24 bits (15 mantissa bits); exact for the binned "
                            "scores, within pixel_roc_auc_binning_bound of the unbinned ones",
            "image_roc_auc": M.image_roc_auc(scores, labels) if len(labels) else None,
            "frame_roc_auc": M.image_roc_auc(maxima, labels) if len(maxima) == len(labels) and len(labels) else None,
            "frame_method": "image_roc_auc: the method's image score over every selected test frame of every scene "
                            "(PaDiM: the map maximum); per scene, frame_roc_auc is the map maximum for every method",
        },
        "scene_mean": means,
    }


def run(
    cfg: RunConfig, *, force: bool = False, console: Console | None = None, show_progress: bool = True
) -> dict[str, Any]:
    """Run the experiment described by ``cfg`` (see module doc); returns the run record.

    Raises:
        ConfigError, DataError, WeightsError: before any fitting starts.
        PadimBenchError: numerical failures (e.g. too few training images).
    """
    console = console or Console(stderr=True)
    device = resolve_device(cfg.runtime.device)
    if cfg.runtime.threads:
        torch.set_num_threads(cfg.runtime.threads)
    check_names(cfg)  # method, backbone, layers: before any file is read
    splits, skipped, stc_plan = scan_splits(cfg)  # every file's layout and decodability, before any model
    size = Preprocess(cfg.dataset.resize, cfg.dataset.crop, cfg.dataset.interpolation).size
    memory = check_run(cfg, splits, device, size)  # refuses a fit that will not fit, with the figures
    origin = synthetic_origin(cfg.dataset.root)
    root_resolved = str(Path(cfg.dataset.root).resolve())  # the report finds images from any working folder
    if origin:
        console.print(f"[yellow]synthetic data:[/] {cfg.dataset.root} is a {origin['what']}; "
                      "its values are not comparable with the paper's", highlight=False)
    if stc_plan is not None:
        from .data.stc import protocol_text

        console.print(protocol_text(stc_plan.info, cfg.dataset.resize), highlight=False)
    method = build_method(cfg, device)  # weights and d are checked here, before any fit
    out = prepare_output(cfg, force)  # only a run that can start claims the output folder
    extractor = method.extractor
    h, rh = cfg.config_hash(), cfg.run_hash()
    cat_dir = out / "categories"
    records = []
    computed = False  # any category fitted and evaluated by this invocation
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=console, disable=not show_progress, transient=True)
    with progress:
        for split in splits:
            done = cat_dir / f"{split.name}.json"
            rec = None if force else _finished(done, rh, console, split, cfg.evaluation.metrics)
            hist = cat_dir / f"{split.name}.pixhist.npz" if stc_plan is not None else None
            if rec is not None and hist is not None and _load_histogram(hist) is None:
                console.print(f"[yellow]warning:[/] {hist} is missing or damaged; recomputing scene {split.name}",
                              highlight=False)
                rec = None
            if rec is not None:
                console.print(f"[dim]{split.name}: already done in {done}, skipped (use --force to recompute)[/]")
                records.append(rec)
                continue
            fresh = METHODS.get(cfg.method.name).cls(cfg.method.params, extractor, device=device, seed=cfg.method.seed)
            fresh.attach_progress(progress)  # methods that train report in the run's display
            cache = Path(cfg.output.model_cache) / h / f"{split.name}.pt" if cfg.output.model_cache else None
            rec = run_category(cfg, fresh, split, device, progress,
                               out / "models" if cfg.output.save_models else None, cache, report_dir=out,
                               stc_hist_path=hist)
            rec["memory"]["fit_memory_check"] = memory[split.name]
            rec["config_hash"], rec["run_hash"] = h, rh
            rec["skipped_files"] = skipped[split.name]
            rec["data_fingerprint"] = data_fingerprint(split)
            rec["dataset_root_resolved"] = root_resolved  # per category: a folder may gather categories
            if origin:  # from several invocations, each with its own --data-root
                rec["synthetic_data"] = origin
            rec["method"] = {"name": cfg.method.name, "backbone": extractor.name, "weights": extractor.weights,
                             "weights_source": extractor.weights_source}
            rec["environment"] = environment(device)  # per category: a resumed run may span sessions
            try:
                atomic_write_json(done, rec)
            except OSError as e:
                raise PadimBenchError(f"{done}: cannot write the category result ({e.strerror or e})") from None
            records.append(rec)
            computed = True
            m = rec["metrics"]
            console.print(
                f"{split.name}: " + ", ".join(f"{k} {'undefined' if v is None else f'{100 * v:.1f}'}" for k, v in m.items())
                + f"; fit {rec['time']['fit_s']:.1f} s, "
                + (f"{rec['time']['infer_s_per_image']:.3f} s/img" if rec["time"]["infer_s_per_image"] is not None else "not timed")
            )
    # the folder's results cover every finished category of this run, not only this invocation's
    done_here = {r["category"] for r in records}
    for path in sorted(cat_dir.glob("*.json")):
        if path.stem in done_here:
            continue
        try:
            other = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(other, dict) and other.get("run_hash") == rh and other.get("category") == path.stem:
            records.append(other)
    records.sort(key=lambda r: r["category"])
    if not computed and not force:  # everything was already done: the folder's results stay as they are
        old = _unchanged_results(out, rh, [r["category"] for r in records])
        if old is not None:
            console.print(f"[dim]nothing new to compute; {out / 'results.json'} unchanged[/]", highlight=False)
            return old
    config = cfg.to_dict()
    config["dataset"]["categories"] = [r["category"] for r in records]  # what the results hold, over invocations
    record = {
        "record_version": RECORD_VERSION,
        "name": cfg.name,
        "config_hash": h,
        "run_hash": rh,
        "config": config,
        "backbone": {
            "name": extractor.name,
            "weights": extractor.weights,
            "weights_source": extractor.weights_source,
            "normalization": extractor.normalization,
            "layers": list(extractor.layers),
            "channels": dict(extractor.channels),
            "full_param_count": int(extractor.full_param_count),
        },
        "timed_spans": TIMED_SPANS,
        "environment": environment(device),
        "categories": records,
    }
    record["dataset_root_resolved"] = root_resolved
    synthetic = origin or next((c["synthetic_data"] for c in records if c.get("synthetic_data")), None)
    if synthetic:  # any category on generated data labels the whole run
        record["synthetic_data"] = synthetic
    if stc_plan is not None:
        record["stc"] = stc_summary(stc_plan.info, records, cat_dir, cfg.dataset.resize)
    try:
        write_run_files(out, record)
    except OSError as e:
        raise PadimBenchError(f"{out}: cannot write the results ({e.strerror or e})") from None
    if cfg.output.report:  # matplotlib is imported only here
        from .report.build import build_report

        summary = build_report([out], out / "report")
        for problem in summary.problems:
            console.print(f"[yellow]report:[/] {problem}", highlight=False)
        console.print(f"report: {summary.html} ({summary.total_bytes / 1e6:.2f} MB in {summary.n_files} files)",
                      highlight=False)
    return record
