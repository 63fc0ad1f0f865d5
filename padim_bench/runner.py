"""One experiment end to end: config -> data -> backbone -> method -> metrics -> files.

Order of work, so that every error a user can cause comes before any long computation:

1. the config is already validated (:func:`padim_bench.config.load_config`);
2. the output folder is checked (a run with another config is never overwritten silently);
3. every category's layout is scanned by the configured dataset (:mod:`padim_bench.data`: missing
   masks, empty folders, size mismatches; STC: every video's frame count and every clip's frame /
   label / mask alignment, one scene per category), and each fit's memory is predicted and refused
   when it will not fit (:func:`padim_bench.memory.check_run`);
4. the backbone is loaded (missing weights fail here, at once) and ``d`` checked against it;
5. per category, :func:`run_category`: the steps of :mod:`padim_bench.steps` (fit, timed, or
   loaded from the model cache; batched scoring of the test set; the batch-1 timing pass; the
   metrics and the curves they integrate), which a benchmark script can also call alone; the
   category's record is written atomically as soon as it is done (:mod:`padim_bench.store` owns
   the run folder), so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import Progress

from . import metrics as M
from . import store
from .backbones import check_weights, layer_names, layer_shapes, load_backbone
from .config import RunConfig
from .contention import BUSY_CORES  # run warns above it (a module global: tests set runner.BUSY_CORES)
from .data import Dataset, dataset_for
from .data.mvtec import CategorySplit
from .data.origin import synthetic_origin
from .data.transforms import Preprocess
from .console import make_console
from .envinfo import code_identity, environment
from .errors import ConfigError, PadimBenchError
from .memory import check_run
from .methods import METHODS, Method
from .methods.base import map_postprocessing
from .progress import RunProgress, phase
from .steps import (TIMED_SPANS, Evaluation, FitResult, ScoreResult, TimeResult, evaluate, fit_category,
                    score_category, time_category)


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


# ------------------------------------------------------------------------------ a category, a run
def run_category(
    cfg: RunConfig, method: Method, split: CategorySplit, device: torch.device,
    progress: Progress | None = None, models_dir: Path | None = None, cache_path: Path | None = None,
    report_dir: Path | None = None, hist_path: Path | None = None,
) -> dict[str, Any]:
    """One category through the steps: :func:`fit_category`, :func:`score_category`,
    :func:`time_category`, :func:`evaluate`. With ``report_dir`` (the run's output folder), the
    curves the metrics integrated and the maps of a few selected test images are saved into
    ``report_dir/report_data`` (:func:`padim_bench.report.data.save_category`; outside every timed
    span). The dataset adds its own part to the record (:meth:`Dataset.category_extras`, e.g. STC's
    frame-level ROC-AUC of the map maxima), and where it pools pixels over categories
    (:attr:`Dataset.keeps_histograms`) the category's pixel-score histogram is written to
    ``hist_path``.

    Returns:
        The category record (plain data, see ``results.json``).

    Raises:
        PadimBenchError: the method's failures, or a file that cannot be written.
    """
    dataset = dataset_for(cfg.dataset)
    phase(progress, "fit")
    fitted = fit_category(cfg, method, split, device, progress, cache_path, models_dir)
    phase(progress, "score")
    scored = score_category(cfg, method, split, device, progress)
    phase(progress, f"batch-1 timing ({cfg.runtime.timing_images} images)")
    timed = time_category(cfg, method, split, device)
    _warn_contended(split.name, fitted, timed)
    phase(progress, "metrics")
    ev = evaluate(cfg, split.name, scored, curves=report_dir is not None)
    if report_dir is not None:
        from .report.data import save_category  # numpy and scikit-learn only

        phase(progress, "writing the report data")
        try:
            save_category(report_dir, split.name, scored.maps, scored.masks, scored.scores, scored.labels,
                          [s.path for s in split.test], [s.defect for s in split.test], k=cfg.output.report_images,
                          roc=ev.roc, pro=ev.pro, run_hash=cfg.run_hash(), config_hash=cfg.config_hash())
        except OSError as e:
            raise PadimBenchError(f"{e.filename or report_dir}: cannot write the report data ({e.strerror or e})") from None
    extras = dataset.category_extras(split, scored.maps, scored.masks, scored.labels)
    if hist_path is not None and dataset.keeps_histograms:  # for the pixel ROC-AUC pooled over categories
        store.save_histogram(hist_path, M.score_histogram(scored.maps, scored.masks))
    return _category_record(cfg, dataset, method, split, fitted, scored, timed, ev, extras)


def _warn_contended(name: str, fitted: FitResult, timed: TimeResult) -> None:
    busy = {"fit": None if fitted.fit["fit_from_cache"] else fitted.fit.get("other_cpu_cores"),
            "batch-1 timing": timed.span.other_cpu_cores}
    contended = {k: v for k, v in busy.items() if v is not None and v > BUSY_CORES}
    if contended:
        warnings.warn(f"{name}: other processes kept "
                      + " and ".join(f"{v:.1f} of {os.cpu_count()} cores busy during the {k}" for k, v in contended.items())
                      + "; those time figures are not a quiet machine's (re-run there; on a shared machine "
                      "runtime.threads: 1 is steadier)", UserWarning, stacklevel=3)


def _category_record(cfg: RunConfig, dataset: Dataset, method: Method, split: CategorySplit, fitted: FitResult,
                     scored: ScoreResult, timed: TimeResult, ev: Evaluation,
                     extras: dict[str, Any] | None) -> dict[str, Any]:
    """The category record (``results.json: categories[]``) from the steps' results, the
    dataset's own part (``extras``) last, under its record key."""
    rt, fit, infer = cfg.runtime, fitted.fit, timed.span
    state = method.state_nbytes()
    return {
        "category": split.name,
        "kind": dataset.kind(split.name),
        "n_train": len(split.train),
        "n_test": len(split.test),
        "n_test_anomalous": int(scored.labels.sum()),
        "metrics": ev.metrics,
        "undefined_metrics": ev.undefined,
        "time": {
            "fit_s": fit["fit_s"],
            "fit_s_per_train_image": fit["fit_s"] / len(split.train),
            "fit_from_cache": fit["fit_from_cache"],
            "infer_batched_s_per_image": scored.seconds_per_image,
            "batch_size": rt.batch_size,
            **timed.figures,
            "other_cpu_cores_fit": fit.get("other_cpu_cores"),  # mean cores other processes used (profiling.Span)
            "other_cpu_cores_timing": infer.other_cpu_cores,
        },
        "memory": {
            "state_bytes": state,
            "predicted_state_bytes": fitted.predicted_state_bytes,
            "predicted_score": timed.predicted_score,
            "state_gb": sum(state.values()) / 1e9,
            "state_gb_without_backbone": sum(v for k, v in state.items() if k != "backbone") / 1e9,
            "fit_peak_rss_bytes": fit["fit_peak_rss_bytes"],
            "fit_start_rss_bytes": fit["fit_start_rss_bytes"],
            "score_peak_rss_bytes": scored.span.peak_rss_bytes,
            "infer_peak_rss_bytes": infer.peak_rss_bytes,
            "infer_start_rss_bytes": infer.start_rss_bytes,
            "fit_peak_cuda_bytes": fit["fit_peak_cuda_bytes"],
            "infer_peak_cuda_bytes": infer.peak_cuda_bytes,
            "rss_method": fit["rss_method"],
            "note": (f"main process only; {rt.workers} DataLoader worker process(es) decode images separately"
                     if rt.workers else "whole run: images are decoded by a thread of this process"),
        },
        "model": method.describe(),
        "map_postprocessing": map_postprocessing(cfg.evaluation.sigma, cfg.evaluation.map_interpolation,
                                                 scored.maps.shape[1:]),
        "image_scores": scored.scores.tolist(),
        "labels": scored.labels.tolist(),
        "image_paths": [str(s.path) for s in split.test],
        **({dataset.record_key: extras} if extras is not None else {}),
    }


def run(
    cfg: RunConfig, *, force: bool = False, console: Console | None = None, show_progress: bool = True,
    reuse_results: bool = False, lock_token: str | None = None,
) -> dict[str, Any]:
    """Run the experiment described by ``cfg`` (see module doc); returns the run record. A
    finished category is skipped when this code made it (:func:`padim_bench.envinfo.code_identity`),
    or, with ``reuse_results``, whatever code made it. The output folder's lock
    (:func:`padim_bench.store.run_folder_lock`) is held from the claim to the last write;
    ``lock_token``: a sweep job's, whose sweep holds it.

    Raises:
        ConfigError, DataError, WeightsError: before any fitting starts.
        PadimBenchError: numerical failures (e.g. too few training images), an output folder of
            another run, one that cannot be written, or one another process is writing
            (``store.FolderLocked``, naming it).
    """
    console = console or make_console(stderr=True)
    progress = RunProgress(console, disable=not show_progress)
    with progress:
        device, dataset, data, memory, method, origin = _start(cfg, console, progress)
        with store.run_folder_lock(cfg.output.dir, lock_token, console):  # one writer per folder
            folder = store.claim_run_folder(cfg, force)  # only a run that can start claims the output folder
            return _run_in_folder(cfg, force, console, progress, device, dataset, data, memory, method, folder,
                                  origin, None if reuse_results else code_identity())


def _run_in_folder(cfg: RunConfig, force: bool, console: Console, progress: RunProgress, device: torch.device,
                   dataset: Dataset, data: Any, memory: dict[str, Any], method: Method, folder: store.RunFolder,
                   origin: dict[str, Any] | None, code: dict[str, Any] | None) -> dict[str, Any]:
    """:func:`run`'s work in its claimed, locked ``folder``: the categories, then the run's files."""
    records, computed = _run_categories(cfg, force, console, progress, device, dataset, data, memory, method,
                                        folder, origin, code)
    progress.phase("writing the results")
    records = folder.with_other_categories(records)  # every finished category of this run, over invocations
    if not computed and not force:  # everything was already done: the folder's results stay as they are
        old = folder.unchanged_results([r["category"] for r in records])
        if old is not None:
            console.print(f"[dim]nothing new to compute; {folder.path / store.RESULTS} unchanged[/]", highlight=False)
            return old
    record = store.run_record(cfg, records, method.extractor, environment(device), TIMED_SPANS,
                              str(Path(cfg.dataset.root).resolve()), origin)
    hists = [store.load_histogram(folder.histogram_file(r["category"])) for r in records] \
        if dataset.keeps_histograms else None
    summary = dataset.run_summary(data.info, records, hists)
    if summary is not None:
        record[dataset.record_key] = summary
    folder.write_results(record)
    if cfg.output.report:  # matplotlib is imported only here
        progress.phase("writing the HTML report")
        _write_report(console, folder.path)
    return record


def _start(cfg: RunConfig, console: Console, progress: RunProgress) -> tuple:
    """Everything before the first category, each phase shown: the names, the data scan, the
    memory check, the backbone. Returns ``(device, dataset, prepared data, the predicted memory
    per category, the method, the synthetic-data origin)``."""
    device = resolve_device(cfg.runtime.device)
    if cfg.runtime.threads:
        torch.set_num_threads(cfg.runtime.threads)
    progress.phase("checking the names")
    check_names(cfg)  # method, backbone, layers: before any file is read
    check_weights(cfg.method.backbone, cfg.method.weights)  # a missing weights file: before any data is read
    dataset = dataset_for(cfg.dataset)
    progress.phase("scanning and checking the data")
    data = dataset.prepare()  # every file's layout and decodability, before any model
    progress.set_categories(len(data.splits))
    size = Preprocess(cfg.dataset.resize, cfg.dataset.crop, cfg.dataset.interpolation).size
    progress.phase("predicting each fit's memory")
    memory = check_run(cfg, data.splits, device, size)  # refuses a fit that will not fit, with the figures
    origin = synthetic_origin(cfg.dataset.root)
    if origin:
        console.print(f"[yellow]synthetic data:[/] {cfg.dataset.root} is a {origin['what']}; "
                      "its values are not comparable with the paper's", highlight=False)
    for line in dataset.protocol_lines(data.info):
        console.print(line, highlight=False)
    progress.phase(f"loading {cfg.method.backbone} ({cfg.method.weights} weights)")
    method = build_method(cfg, device)  # weights and d are checked here, before any fit
    return device, dataset, data, memory, method, origin


def _run_categories(cfg: RunConfig, force: bool, console: Console, progress: RunProgress, device: torch.device,
                    dataset: Dataset, data: Any, memory: dict[str, Any], method: Method, folder: store.RunFolder,
                    origin: dict[str, Any] | None, code: dict[str, Any] | None) -> tuple[list[dict[str, Any]], bool]:
    """Each category: found finished in ``folder`` (unless ``force``; made by ``code``, any code
    when ``None``) or computed and written. Returns the records and whether any category was computed by this invocation."""
    root_resolved = str(Path(cfg.dataset.root).resolve())  # the report finds images from any working folder
    records, computed = [], False
    for i, split in enumerate(data.splits):
        progress.start_category(i, split.name, len(split.train) + len(split.test))
        rec = None if force else folder.finished(split, cfg.evaluation.metrics,
                                                 histogram=dataset.keeps_histograms, console=console, code=code)
        if rec is not None:
            console.print(f"[dim]{split.name}: already done in {folder.category_file(split.name)}, "
                          "skipped (use --force to recompute)[/]")
        else:
            rec = _run_fresh(cfg, method, split, device, progress, folder, dataset.keeps_histograms)
            store.stamp_category(rec, cfg, split, method.extractor, environment(device), memory[split.name],
                                 data.skipped[split.name], root_resolved, origin)
            progress.phase("writing its record")
            folder.write_category(rec)
            computed = True
            _print_category(console, rec)
        records.append(rec)
        progress.end_category()
    return records, computed


def _run_fresh(cfg: RunConfig, method: Method, split: Any, device: torch.device, progress: Progress,
               folder: store.RunFolder, histogram: bool) -> dict[str, Any]:
    """:func:`run_category` with a fresh method on the shared backbone, its files in ``folder``."""
    fresh = METHODS.get(cfg.method.name).cls(cfg.method.params, method.extractor, device=device, seed=cfg.method.seed)
    fresh.attach_progress(progress)  # methods that train report in the run's display
    return run_category(cfg, fresh, split, device, progress, folder.models_dir if cfg.output.save_models else None,
                        store.model_cache_path(cfg.output.model_cache, cfg.config_hash(), split.name),
                        report_dir=folder.path, hist_path=folder.histogram_file(split.name) if histogram else None)


def _write_report(console: Console, folder: Path) -> None:
    from .report.build import build_report

    summary = build_report([folder], folder / "report")
    for problem in summary.problems:
        console.print(f"[yellow]report:[/] {problem}", highlight=False)
    console.print(f"report: {summary.html} ({summary.total_bytes / 1e6:.2f} MB in {summary.n_files} files)",
                  highlight=False)


def _print_category(console: Console, rec: dict[str, Any]) -> None:
    t = rec["time"]
    console.print(
        f"{rec['category']}: " + ", ".join(f"{k} {'undefined' if v is None else f'{100 * v:.1f}'}"
                                          for k, v in rec["metrics"].items())
        + f"; fit {t['fit_s']:.1f} s, "
        + (f"{t['infer_s_per_image']:.3f} s/img" if t["infer_s_per_image"] is not None else "not timed")
    )
