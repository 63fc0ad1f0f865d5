#!/usr/bin/env python
"""One measurement of ``scripts/bench_padim.py`` in a fresh process: PaDiM's fit or its inference
on MVTec AD ``bottle``; prints one JSON line. Run by the benchmark, not by hand.

Usage::

    python scripts/bench_padim_child.py fit --key r18 --n 20 --data-root ../shared/data/mvtec_ad [--save-state F]
    python scripts/bench_padim_child.py infer --key r18 --data-root ../shared/data/mvtec_ad --timing-images 20 \
        --batched-images 8 --repeats 3 [--load-state F]

``fit``: loads the backbone, builds PaDiM and fits it on the first N training images with the
run's own step ``padim_bench.steps.fit_category``; reports the span's seconds and memory and a
breakdown of the fit (see :func:`_instrument_fit`). ``infer``: loads the model the last fit child
saved (or refits it on ``INFER_FIT_N`` images) and times batch-1 inference, the backbone forward
alone and batched scoring (see :func:`child_infer`). The benchmark's module doc defines every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

SEED = 0
CATEGORY = "bottle"
WARMUP_IMAGES = 2
INFER_FIT_N = 20

CONFIGS: dict[str, dict[str, Any]] = {
    "effl0": {"label": "EffLite0-Rd100", "backbone": "efficientnet_lite0", "weights": "imagenet",
              "d": 100, "batch_size": 8},
    "r18": {"label": "R18-Rd100", "backbone": "resnet18", "weights": "random", "d": 100, "batch_size": 8},
    "wr50": {"label": "WR50-Rd550", "backbone": "wide_resnet50_2", "weights": "random", "d": 550,
             "batch_size": 8},
}



def _child_setup(key: str, data_root: str, timing_images: int):
    """Seeded, threaded torch; the run config, the bottle split and the (unfitted) method."""
    import random

    import numpy as np
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    random.seed(SEED)
    np.random.seed(SEED)
    torch.manual_seed(SEED)
    from padim_bench.config import config_from_dict
    from padim_bench.data.mvtec import scan_category
    from padim_bench.runner import build_method, check_names

    c = CONFIGS[key]
    cfg = config_from_dict({
        "name": f"bench_{key}",
        "dataset": {"root": data_root, "categories": [CATEGORY], "resize": 256, "crop": 224,
                    "interpolation": "bicubic"},
        "method": {"name": "padim", "backbone": c["backbone"], "weights": c["weights"],
                   "layers": ["layer1", "layer2", "layer3"], "d": c["d"], "seed": SEED, "epsilon": 0.01},
        "evaluation": {"sigma": 4.0, "map_interpolation": "bilinear"},
        "runtime": {"device": "cpu", "batch_size": c["batch_size"], "workers": 0,
                    "threads": os.cpu_count() or 1, "timing_images": timing_images,
                    "warmup_images": WARMUP_IMAGES},
        "output": {"dir": "results/bench/_unused"},
    })
    check_names(cfg)
    split = scan_category(data_root, CATEGORY)
    method = build_method(cfg, torch.device("cpu"))
    return cfg, split, method


def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def _maxrss() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: kB


def _instrument_fit(method) -> tuple[dict[str, float], dict[str, Any]]:
    """Wrap (in this child process only; the package files are untouched) the pieces of the fit so
    that their time adds up: ``decode_s`` (waiting for the next batch of the training loader),
    ``embed_s`` (backbone + embedding), ``covariance_update_s`` (the streaming mean / co-moment
    update) and ``inverse_factor_s`` (Cholesky + ``L^-1``), and record the memory just before the
    factorisation (``GaussianGrid.update`` / ``finalize``); what cannot be attributed stays in
    ``other_s``. Overhead: a
    few ``perf_counter`` calls per batch."""
    import padim_bench.methods.padim as padim_mod
    from padim_bench.profiling import _vm_hwm

    br = {"decode_s": 0.0, "embed_s": 0.0, "covariance_update_s": 0.0, "inverse_factor_s": 0.0}
    phase: dict[str, Any] = {}

    def timed(key, fn, before=None, after=None):
        def wrapper(*a, **k):
            if before is not None:
                before(*a)
            t0 = time.perf_counter()
            out = fn(*a, **k)
            br[key] += time.perf_counter() - t0
            if after is not None:
                after(out, *a)
            return out
        return wrapper

    def before_factor(m2) -> None:
        phase["peak_rss_before_inverse_bytes"] = _vm_hwm()  # streaming-phase peak (VmHWM not reset)
        phase["rss_before_inverse_bytes"] = _rss()
        chunks = m2 if isinstance(m2, list) else [m2]  # position chunks (GaussianGrid) or one tensor
        phase["accumulate_dtype"] = str(chunks[0].dtype).replace("torch.", "")
        phase["accumulator_bytes"] = int(sum(c.numel() * c.element_size() for c in chunks))

    def after_factor() -> None:
        phase["rss_after_inverse_bytes"] = _rss()

    class TimedBatches:  # re-iterable, as the runner's training batches are
        def __init__(self, batches):
            self.batches = batches

        def __iter__(self):
            it = iter(self.batches)
            while True:
                t0 = time.perf_counter()
                try:
                    images = next(it)
                except StopIteration:
                    return
                br["decode_s"] += time.perf_counter() - t0
                yield images

    fit = method.fit
    method.fit = lambda batches: fit(TimedBatches(batches))
    method.embed = timed("embed_s", method.embed)
    grid_cls = padim_mod.GaussianGrid
    grid_cls.update = timed("covariance_update_s", grid_cls.update)
    grid_cls.finalize = timed("inverse_factor_s", grid_cls.finalize,
                              before=lambda g: before_factor(g._m2), after=lambda out, g: after_factor())
    phase["instrumented"] = "GaussianGrid.update / GaussianGrid.finalize"
    return br, phase


def child_fit(args: argparse.Namespace) -> dict[str, Any]:
    import dataclasses
    import gc

    import torch

    from padim_bench.steps import fit_category

    cfg, split, method = _child_setup(args.key, args.data_root, 1)
    n = min(args.n, len(split.train))
    rt = cfg.runtime

    br, phase = _instrument_fit(method)
    gc.collect()
    load_avg = os.getloadavg()
    rss_before = _rss()
    maxrss_before = _maxrss()  # peak of loading (read before measure() resets the high-water mark)
    span = fit_category(cfg, method, dataclasses.replace(split, train=split.train[:n]), torch.device("cpu")).fit
    maxrss_after = _maxrss()
    br["other_s"] = span["fit_s"] - sum(br.values())
    state = method.state_nbytes()
    if args.save_state:  # for the inference child; after every measurement of this process
        torch.save(method.state_dict(), args.save_state)
    return {
        "mode": "fit", "key": args.key, "n_train": n, "batch_size": rt.batch_size, "workers": rt.workers,
        "torch_threads": torch.get_num_threads(), "load_avg_at_start": list(load_avg),
        "fit_s": span["fit_s"],
        "fit_peak_rss_bytes": span["fit_peak_rss_bytes"],
        "rss_method": span["rss_method"],
        "rss_before_fit_bytes": rss_before,
        "rss_after_fit_bytes": _rss(),
        "process_peak_rss_bytes": max(maxrss_before, maxrss_after),
        "process_peak_before_fit_bytes": maxrss_before,
        "breakdown_s": br,
        "phase_memory": phase,
        "state_bytes": state,
        "weights": method.extractor.weights,
        "weights_source": method.extractor.weights_source,
        "d": method.d,
        "grid": list(method.gaussians[0].grid),
    }


def _scoring_model(args: argparse.Namespace, cfg, split, method) -> tuple[int, str]:
    """Load the model the last fit child saved into ``method`` or, failing that, fit it (untimed)
    on the first ``INFER_FIT_N`` training images; returns the training images it saw and how it
    was obtained."""
    import dataclasses

    import torch

    from padim_bench.errors import PadimBenchError
    from padim_bench.steps import fit_category
    from padim_bench.store import load_model_state

    source = "refit"
    if args.load_state:  # the model fitted (and saved) by the last fit child
        try:
            method.load_state_dict(load_model_state(args.load_state))
            return method.n_train, f"loaded from the last fit child ({args.load_state})"
        except (KeyError, OSError, RuntimeError, PadimBenchError) as e:  # e.g. the package changed meanwhile
            print(f"warning: cannot load {args.load_state} ({type(e).__name__}: {e}); refitting on "
                  f"{INFER_FIT_N} images", file=sys.stderr)
            source = f"refit on {INFER_FIT_N} images (loading the saved model failed: {type(e).__name__}: {e})"
    n_fit = min(INFER_FIT_N, len(split.train))
    if source == "refit":
        source = f"refit on {n_fit} training images (untimed)"
    fit_category(cfg, method, dataclasses.replace(split, train=split.train[:n_fit]), torch.device("cpu"))
    return n_fit, source


def child_infer(args: argparse.Namespace) -> dict[str, Any]:
    import dataclasses

    import torch

    from padim_bench.data.images import load_image
    from padim_bench.data.transforms import Preprocess
    from padim_bench.steps import score_batch, score_category, time_category

    cfg, split, method = _child_setup(args.key, args.data_root, args.timing_images)
    ds, rt = cfg.dataset, cfg.runtime
    prep = Preprocess(ds.resize, ds.crop, ds.interpolation)
    cpu = torch.device("cpu")
    n_fit, source = _scoring_model(args, cfg, split, method)

    n_warm = min(WARMUP_IMAGES, len(split.test))
    chosen = list(split.test[: n_warm + rt.timing_images])  # the images time_category uses
    singles = [prep.image(load_image(s.path))[None] for s in chosen]
    batched = dataclasses.replace(split, test=split.test[: args.batched_images])
    batched_samples = list(batched.test)
    pre_batches = [torch.cat([prep.image(load_image(s.path))[None] for s in batched_samples[i : i + rt.batch_size]])
                   for i in range(0, len(batched_samples), rt.batch_size)]

    def backbone_pass() -> float:
        times = []
        with torch.inference_mode():
            for i, img in enumerate(singles):
                t0 = time.perf_counter()
                method.extractor(img)
                t1 = time.perf_counter()
                if i >= n_warm:
                    times.append(t1 - t0)
        return statistics.fmean(times)

    def batched_model_pass() -> float:
        t0 = time.perf_counter()
        for images in pre_batches:
            score_batch(cfg, method, images)
        return (time.perf_counter() - t0) / len(batched_samples)

    score_batch(cfg, method, pre_batches[0])  # batched warm-up
    reps = []
    for _ in range(args.repeats):
        load_avg = os.getloadavg()
        timed = time_category(cfg, method, split, cpu)
        t, span1 = timed.figures, timed.span
        bb = backbone_pass()
        spanb = score_category(cfg, method, batched, cpu).span
        b_e2e = spanb.seconds / len(batched_samples)
        b_model = batched_model_pass()
        reps.append({
            "load_avg_at_start": list(load_avg),
            "infer_s_per_image": t["infer_s_per_image"],
            "infer_s_per_image_median_over_images": t["infer_s_per_image_median"],
            "infer_model_s_per_image": t["infer_model_s_per_image"],
            "backbone_forward_s": bb,
            "model_over_backbone": t["infer_model_s_per_image"] / bb,
            "batched_s_per_image": b_e2e,
            "batched_model_s_per_image": b_model,
            "batch1_peak_rss_bytes": span1.peak_rss_bytes,
            "batched_peak_rss_bytes": spanb.peak_rss_bytes,
            "timing_images": t["timing_images"],
            "warmup_images": t["warmup_images"],
        })
    return {
        "mode": "infer", "key": args.key, "torch_threads": torch.get_num_threads(),
        "fit_n_for_scoring_model": n_fit, "scoring_model_source": source, "batch_size": rt.batch_size,
        "batched_images": len(batched_samples), "repeats": reps,
        "weights": method.extractor.weights, "weights_source": method.extractor.weights_source,
        "d": method.d, "state_bytes": method.state_nbytes(),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["fit", "infer"], help="what to measure")
    ap.add_argument("--key", help=f"one of {', '.join(CONFIGS)}")
    ap.add_argument("--data-root", help="MVTec AD root (holding bottle/)")
    ap.add_argument("--n", type=int, help="fit: training images")
    ap.add_argument("--timing-images", type=int, default=20, help="infer: batch-1 timing images")
    ap.add_argument("--batched-images", type=int, default=10**9, help="infer: test images of the batched pass")
    ap.add_argument("--repeats", type=int, default=3, help="infer: repeats per timing figure")
    ap.add_argument("--save-state", help="fit: save the fitted model here")
    ap.add_argument("--load-state", help="infer: load the model saved by a fit child")
    args = ap.parse_args(argv)
    res = child_fit(args) if args.mode == "fit" else child_infer(args)
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
