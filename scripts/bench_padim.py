#!/usr/bin/env python
"""Benchmark (not a test) of PaDiM's fit / inference time and memory on MVTec AD ``bottle``.

Usage::

    python scripts/bench_padim.py [--backbones effl0,r18,wr50] [--data-root ../shared/data/mvtec_ad]
                                  [--repeats 3] [--quick] [--out results/bench/padim_cpu]

Rows (paper protocol: resize 256 bicubic, centre crop 224, layer1..layer3, epsilon 0.01, sigma 4):

* ``effl0``: EfficientNet-Lite0, ImageNet weights (the shipped checkpoint), d = 100;
* ``r18``:   ResNet18-Rd100, RANDOM weights (no ImageNet checkpoint offline): time/memory only;
* ``wr50``:  WideResNet50-2-Rd550, RANDOM weights: time/memory only.

What is measured (CPU, DataLoader workers = 0, torch threads = os.cpu_count(), seed 0):

* fit: every measurement is a FRESH child process (``scripts/bench_padim_child.py fit``) that
  loads the backbone, builds PaDiM, then fits on the first N training images with the run's own
  step ``padim_bench.steps.fit_category`` (the training loader + ``Padim.fit`` inside
  ``padim_bench.profiling.measure``). The child prints one JSON line: the span's seconds, the peak
  RSS of the span (kernel VmHWM reset at span start), the RSS just before the fit (python + torch +
  backbone), the whole-process peak (``getrusage`` ru_maxrss, taken before and after the span since
  the VmHWM reset also resets ru_maxrss), and a breakdown of the fit (decode / backbone+embedding /
  covariance update / Cholesky + inverse factor) obtained by wrapping the instance's methods.
* flat memory: fit peak with N = 20 vs N = all (209) must agree within 10 %.
* inference: one fresh child per backbone (``bench_padim_child.py infer``) loads the model saved
  by the last fit child (``store.load_model_state`` + ``Padim.load_state_dict``; N = all, 20 with
  --quick) and then, per repeat: ``padim_bench.steps.time_category`` (batch 1, 2 warm-up images,
  then the timing images: end-to-end = decode .. smoothed map, model-only = backbone .. smoothed
  map, mean per image); the backbone forward alone on the same pre-processed images (same layers, inference_mode, 2 warm-up
  images); the batched scoring pass (batch 8) over the test set, ``padim_bench.steps.score_category``
  (decode included, workers 0), and the same pass on pre-decoded tensors (model-only,
  ``padim_bench.steps.score_batch``).
* each timing figure is the median over repeats (WR50 fits: at most 2 repeats per N).

Results: ``<out>.json`` and ``<out>.md`` (written atomically), and the Markdown table on stdout.
No timing assertion lives in the test suite; targets here are reported as PASS/FAIL only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench_padim_child import CATEGORY, CONFIGS, SEED, WARMUP_IMAGES  # noqa: E402  (scripts/, this file's folder)

CHILD = Path(__file__).resolve().parent / "bench_padim_child.py"
FLAT_MEMORY_TOLERANCE = 0.10  # fit peak N=20 vs N=all within 10 %
MODEL_OVER_BACKBONE_TARGET = 1.3  # R18-Rd100 on CPU: inference model-only / backbone forward
WR50_MAX_FIT_REPEATS = 2
FIT_SMALL_N = 20


def run_child(argv: list[str], log) -> dict[str, Any]:
    from padim_bench.profiling import OtherCpuLoad

    cmd = [sys.executable, str(CHILD), *argv]
    env = dict(os.environ, PYTHONHASHSEED=str(SEED))
    t0 = time.perf_counter()
    with OtherCpuLoad() as fl:  # the child is reaped inside the span: its CPU counts as ours
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    if proc.returncode != 0:
        raise RuntimeError(f"child {' '.join(argv)} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError(f"child {' '.join(argv)} printed no JSON:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    res = json.loads(lines[-1])
    res["child_wall_s"] = time.perf_counter() - t0
    res["foreign_cpu_cores"] = fl.cores
    log(f"  {' '.join(argv[:5])} ... done in {res['child_wall_s']:.1f} s "
        f"(other processes kept {fl.cores if fl.cores is None else round(fl.cores, 2)} cores busy)")
    return res


def _med(values: list[float]) -> float:
    return statistics.median(values)


def _max_opt(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return max(vals) if vals else None


def cores(v: float | None) -> str:
    return "?" if v is None else f"{v:.2f}"


def summarise_fit(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "repeats": len(runs),
        "fit_s": _med([r["fit_s"] for r in runs]),
        "fit_s_all": [r["fit_s"] for r in runs],
        "fit_s_per_image": _med([r["fit_s"] / r["n_train"] for r in runs]),
        "fit_peak_rss_bytes": _med([r["fit_peak_rss_bytes"] for r in runs]),
        "fit_peak_rss_bytes_all": [r["fit_peak_rss_bytes"] for r in runs],
        "rss_before_fit_bytes": _med([r["rss_before_fit_bytes"] for r in runs]),
        "fit_increment_bytes": _med([r["fit_peak_rss_bytes"] - r["rss_before_fit_bytes"] for r in runs]),
        "process_peak_rss_bytes": _med([r["process_peak_rss_bytes"] for r in runs]),
        "breakdown_s": {k: _med([r["breakdown_s"][k] for r in runs]) for k in runs[0]["breakdown_s"]},
        "phase_memory": runs[-1]["phase_memory"],
        "foreign_cpu_cores_max": _max_opt([r.get("foreign_cpu_cores") for r in runs]),
        "runs": runs,
    }


def summarise_infer(res: dict[str, Any]) -> dict[str, Any]:
    reps = res["repeats"]
    keys = ["infer_s_per_image", "infer_model_s_per_image", "backbone_forward_s", "batched_s_per_image",
            "batched_model_s_per_image", "batch1_peak_rss_bytes", "batched_peak_rss_bytes"]
    out = {k: _med([r[k] for r in reps]) for k in keys}
    out["model_over_backbone"] = out["infer_model_s_per_image"] / out["backbone_forward_s"]
    out["model_over_backbone_per_repeat"] = [r["model_over_backbone"] for r in reps]
    out["repeats"] = len(reps)
    out["timing_images"] = reps[0]["timing_images"]
    out["warmup_images"] = reps[0]["warmup_images"]
    out["batch_size"] = res["batch_size"]
    out["batched_images"] = res["batched_images"]
    out["fit_n_for_scoring_model"] = res["fit_n_for_scoring_model"]
    out["scoring_model_source"] = res["scoring_model_source"]
    out["foreign_cpu_cores"] = res.get("foreign_cpu_cores")
    out["raw"] = res
    return out


def gb(b: float | None) -> str:
    return "-" if b is None else f"{b / 1e9:.2f}"


def weights_label(c: dict[str, Any]) -> str:
    return "imagenet" if c["weights"] == "imagenet" else "RANDOM"


def render_markdown(rec: dict[str, Any]) -> str:
    env = rec["environment"]
    L = []
    L.append(f"# PaDiM CPU benchmark ({'QUICK smoke run' if rec['quick'] else 'full run'})\n")
    L.append(f"- date (UTC): {env['date_utc']}; git: {env['git_commit']}")
    L.append(f"- CPU: {env['cpu']}, {env['cpu_count']} logical cores, {env['memory_total_bytes'] / 1e9:.1f} GB RAM; "
             f"{env['platform']}; python {env['python']}")
    L.append("- versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()))
    L.append(f"- torch threads {rec['threads']}, DataLoader workers 0, seed {rec['seed']}, category {CATEGORY}, "
             "resize 256 bicubic, crop 224, layers layer1..layer3, epsilon 0.01, sigma 4")
    la = rec["load_average"]
    L.append(f"- load average (1/5/15 min) at start {la['start']}, at end {la['end']}; "
             f"wall time of the benchmark {rec['wall_s']:.0f} s")
    L.append(f"- contention: other processes kept {cores(rec['foreign_cpu_cores'])} of {env['cpu_count']} cores "
             "busy on average during the benchmark (/proc/stat busy time minus this benchmark's own CPU "
             "time); figures measured under contention are distorted"
             + (" -- THIS RUN WAS CONTENDED" if (rec['foreign_cpu_cores'] or 0) > 0.2 else ""))
    L.append(f"- repeats: timing figures are medians over {rec['repeats']} repeat(s); WR50 fits at most "
             f"{WR50_MAX_FIT_REPEATS} repeats per N (see the `fit reps` column)")
    L.append("- RANDOM = random backbone weights (no ImageNet checkpoint offline): time and memory only")
    L.append("")
    L.append("## Fit (fresh process per measurement; GB = 1e9 bytes)\n")
    L.append("| backbone | weights | d | N | fit reps | fit s | fit s/img | fit peak GB | RSS before fit GB | "
             "fit increment GB | process peak GB | decode s | backbone+embed s | cov update s | "
             "Cholesky+inverse s | other s | other-proc cores |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rec["rows"]:
        for n, f in row["fit"].items():
            b = f["breakdown_s"]
            L.append(f"| {row['label']} | {weights_label(row)} | {row['d']} | {n} | {f['repeats']} | "
                     f"{f['fit_s']:.1f} | {f['fit_s_per_image']:.3f} | {gb(f['fit_peak_rss_bytes'])} | "
                     f"{gb(f['rss_before_fit_bytes'])} | {gb(f['fit_increment_bytes'])} | "
                     f"{gb(f['process_peak_rss_bytes'])} | "
                     f"{b['decode_s']:.1f} | {b['embed_s']:.1f} | {b['covariance_update_s']:.1f} | "
                     f"{b['inverse_factor_s']:.1f} | {b['other_s']:.1f} | {cores(f['foreign_cpu_cores_max'])} |")
    L.append("")
    L.append("## Inference (batch 1 after 2 warm-up images; seconds per image)\n")
    L.append("| backbone | weights | model N | images | reps | end-to-end s/img | model-only s/img | backbone fwd s/img | "
             "model / backbone | batched e2e s/img (bs) | batched model s/img | batch-1 peak GB | "
             "batched peak GB | other-proc cores |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rec["rows"]:
        i = row["infer"]
        L.append(f"| {row['label']} | {weights_label(row)} | {i['fit_n_for_scoring_model']} | "
                 f"{i['timing_images']} | {i['repeats']} | "
                 f"{i['infer_s_per_image']:.4f} | {i['infer_model_s_per_image']:.4f} | "
                 f"{i['backbone_forward_s']:.4f} | {i['model_over_backbone']:.2f} | "
                 f"{i['batched_s_per_image']:.4f} ({i['batch_size']}) | {i['batched_model_s_per_image']:.4f} | "
                 f"{gb(i['batch1_peak_rss_bytes'])} | {gb(i['batched_peak_rss_bytes'])} | "
                 f"{cores(i['foreign_cpu_cores'])} |")
    for row in rec["rows"]:
        if not row["infer"]["scoring_model_source"].startswith("loaded"):
            L.append(f"\nNote: {row['label']}: scoring model {row['infer']['scoring_model_source']}")
    L.append("")
    L.append("## Targets\n")
    L.append("| target | backbone | value | limit | result |")
    L.append("|---|---|---|---|---|")
    for t in rec["targets"]:
        L.append(f"| {t['name']} | {t['label']} | {t['value_text']} | {t['limit_text']} | {t['result']} |")
    L.append("")
    L.append("Definitions: " + "; ".join(f"**{k}**: {v}" for k, v in rec["definitions"].items()))
    return "\n".join(L) + "\n"


DEFINITIONS = {
    "fit s": "padim_bench.profiling.measure span around Padim.fit on the first N training images, decode "
             "(DataLoader workers 0, so in the timed process) included; median over fit reps",
    "fit peak": "VmHWM of the child process over the fit span (reset at span start): what the fit needs "
                "on top of nothing, i.e. it includes the already-resident python + torch + backbone",
    "RSS before fit": "resident set just before the fit span (python + torch + backbone + file list)",
    "fit increment": "fit peak - RSS before fit: the memory the fit itself adds",
    "other-proc cores": "CPU cores kept busy by other processes during that measurement (max over its "
                        "child runs): /proc/stat busy time minus this benchmark's own CPU time, per second",
    "process peak": "whole child-process peak, max of getrusage ru_maxrss before and after the span",
    "breakdown": "decode = time in the DataLoader's next(); backbone+embed = Padim.embed; cov update = "
                 "GaussianGrid.update (streaming mean / co-moment); Cholesky+inverse = GaussianGrid.finalize "
                 "(Padim._inverse_factor in older versions, where cov update is the remainder); other = the rest",
    "end-to-end": "padim_bench.steps.time_category: load_image + Preprocess + Padim.score + postprocess "
                  "(upsample, Gaussian filter, max), mean per image over the timing images",
    "model-only": "the same span without load_image + Preprocess",
    "backbone fwd": "method.extractor(image) (normalise + truncated trunk, same layers) under "
                    "torch.inference_mode on the same pre-processed images, mean per image after 2 warm-up",
    "batched": "padim_bench.steps.score_category over the first test images (batch, workers 0; decode "
               "included) / images; batched model = padim_bench.steps.score_batch on pre-decoded tensors",
    "scoring model": "the inference child loads the model saved by the last fit child (N = all "
                      "training images; N = 20 with --quick)",
}


def measure_backbone(key: str, args: argparse.Namespace, data_root: Path, split, ns: list[int], repeats: int,
                     timing_images: int, log) -> dict[str, Any]:
    """Fit children (each N, interleaved, fresh process each), then the inference child; one row."""
    c = CONFIGS[key]
    fit_reps = min(repeats, WR50_MAX_FIT_REPEATS) if key == "wr50" else repeats
    log(f"{c['label']} ({c['backbone']}, weights {c['weights']}): fit N={ns} x {fit_reps}, then inference")
    fits: dict[int, list] = {n: [] for n in ns}
    with tempfile.TemporaryDirectory(prefix="bench_padim_") as tmp:
        state = str(Path(tmp) / f"{key}.pt")
        for rep_i in range(fit_reps):  # interleave N so that drifting load hits both alike
            for n in ns:
                last = rep_i == fit_reps - 1 and n == ns[-1]  # its model is scored below
                fits[n].append(run_child(["fit", "--key", key, "--n", str(n), "--data-root", str(data_root)]
                                         + (["--save-state", state] if last else []), log))
        batched = c["batch_size"] if args.quick else len(split.test)
        inf = run_child(["infer", "--key", key, "--data-root", str(data_root), "--timing-images",
                         str(timing_images), "--batched-images", str(batched), "--repeats", str(repeats),
                         "--load-state", state], log)
    first = fits[ns[0]][0]
    return {
        "key": key, "label": c["label"], "backbone": c["backbone"], "weights": c["weights"],
        "weights_label": weights_label(c), "weights_source": first["weights_source"], "d": first["d"],
        "batch_size": c["batch_size"], "grid": first["grid"], "state_bytes": first["state_bytes"],
        "fit": {str(n): summarise_fit(fits[n]) for n in ns},
        "infer": summarise_infer(inf),
    }


def build_targets(rows: list[dict[str, Any]], n_all: int) -> list[dict[str, Any]]:
    """Flat-memory check per row and the model/backbone ratio (target only for R18-Rd100)."""
    targets = []
    for row in rows:
        f = row["fit"]
        if str(n_all) in f and str(FIT_SMALL_N) in f:
            small, large = f[str(FIT_SMALL_N)]["fit_peak_rss_bytes"], f[str(n_all)]["fit_peak_rss_bytes"]
            ratio = large / small
            inc_s, inc_l = f[str(FIT_SMALL_N)]["fit_increment_bytes"], f[str(n_all)]["fit_increment_bytes"]
            row["flat_memory_ratio"] = ratio
            row["flat_memory_increment_ratio"] = inc_l / inc_s if inc_s > 0 else None
            targets.append({"name": f"fit peak N={n_all} / N={FIT_SMALL_N}", "key": row["key"],
                            "label": row["label"], "value": ratio,
                            "value_text": f"{ratio:.3f} ({gb(large)} / {gb(small)} GB; increment over the "
                                          f"pre-fit RSS: {gb(inc_l)} / {gb(inc_s)} GB)",
                            "limit_text": f"within {FLAT_MEMORY_TOLERANCE:.0%} (0.90 .. 1.10)",
                            "result": "PASS" if abs(ratio - 1) <= FLAT_MEMORY_TOLERANCE else "FAIL"})
        else:
            targets.append({"name": f"fit peak N={n_all} / N={FIT_SMALL_N}", "key": row["key"],
                            "label": row["label"], "value": None, "value_text": "not measured (--quick: N=20 only)",
                            "limit_text": f"within {FLAT_MEMORY_TOLERANCE:.0%}", "result": "N/A"})
    for row in rows:
        ratio = row["infer"]["model_over_backbone"]
        has_target = row["key"] == "r18"
        targets.append({"name": "inference model-only / backbone forward (batch 1)", "key": row["key"],
                        "label": row["label"], "value": ratio, "value_text": f"{ratio:.2f}",
                        "limit_text": f"<= {MODEL_OVER_BACKBONE_TARGET} (R18-Rd100, CPU)" if has_target
                        else "(no target; reported)",
                        "result": ("PASS" if ratio <= MODEL_OVER_BACKBONE_TARGET else "FAIL") if has_target
                        else "info"})
    return targets


@dataclass(frozen=True)
class Settings:
    """The benchmark's checked command line: backbone keys, repeats per timing figure, batch-1
    timing images, output stem (``.json`` / ``.md`` are added) and the data root, resolved."""

    keys: list[str]
    repeats: int
    timing_images: int
    out_stem: Path
    data_root: Path


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbones", default="effl0,r18,wr50", help=f"comma list of {', '.join(CONFIGS)}")
    ap.add_argument("--data-root", default="../shared/data/mvtec_ad", help="MVTec AD root (holding bottle/)")
    ap.add_argument("--repeats", type=int, default=3, help="repeats per timing figure (median is reported)")
    ap.add_argument("--quick", action="store_true", help="smoke run: N=20 only, 5 timing images, 1 repeat")
    ap.add_argument("--out", default=None, help="output stem (default results/bench/padim_cpu, "
                                                "results/bench/padim_cpu_quick with --quick)")
    return ap


def _settings(ap: argparse.ArgumentParser, args: argparse.Namespace) -> Settings:
    """Checks the arguments (``ap.error`` exits with status 2 on a bad one)."""
    keys = [k.strip() for k in args.backbones.split(",") if k.strip()]
    bad = [k for k in keys if k not in CONFIGS]
    if not keys or bad:
        ap.error(f"--backbones: unknown {', '.join(bad) or '(empty)'}; valid: {', '.join(CONFIGS)}")
    if args.repeats < 1:
        ap.error("--repeats must be >= 1")
    repeats = 1 if args.quick else args.repeats
    timing_images = 5 if args.quick else 20
    out_stem = Path(args.out or ("results/bench/padim_cpu_quick" if args.quick else "results/bench/padim_cpu"))
    if not out_stem.is_absolute():
        out_stem = REPO / out_stem

    data_root = Path(args.data_root).expanduser()
    if not data_root.is_absolute():
        data_root = (REPO / data_root) if not data_root.exists() else data_root.resolve()
    return Settings(keys, repeats, timing_images, out_stem, data_root)


def _bottle_split(data_root_arg: str, data_root: Path):
    """The ``bottle`` split under ``data_root``, or ``None`` after printing why not."""
    from padim_bench.data.mvtec import scan_category
    from padim_bench.errors import PadimBenchError

    try:
        if not data_root.is_dir():
            raise PadimBenchError(f"--data-root {data_root_arg}: folder not found (resolved to {data_root})")
        return scan_category(data_root, CATEGORY)
    except PadimBenchError as e:
        print(f"error: {e}\n(--data-root must hold the MVTec AD '{CATEGORY}' category: "
              f"{CATEGORY}/train/good, {CATEGORY}/test, {CATEGORY}/ground_truth)", file=sys.stderr)
        return None


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _record(args: argparse.Namespace, argv: list[str] | None, st: Settings, split, ns: list[int], threads: int,
            t_start: float, load_start: list[float], whole, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The benchmark's record (``<out>.json``): the targets, the environment, the settings and the
    rows; ``wall_s`` and the final load average are taken now."""
    import torch

    from padim_bench.envinfo import environment

    n_all = len(split.train)
    targets = build_targets(rows, n_all)
    env = environment(torch.device("cpu"))
    return {
        "benchmark": "padim_cpu",
        "command": [Path(sys.executable).name, "scripts/bench_padim.py", *(argv if argv is not None else sys.argv[1:])],
        "quick": bool(args.quick),
        "environment": env,
        "threads": threads,
        "seed": SEED,
        "repeats": st.repeats,
        "wr50_max_fit_repeats": WR50_MAX_FIT_REPEATS,
        "config": {"data_root": str(st.data_root), "category": CATEGORY, "n_train_all": n_all,
                   "n_test": len(split.test), "fit_n": ns, "resize": 256, "crop": 224,
                   "interpolation": "bicubic", "layers": ["layer1", "layer2", "layer3"], "epsilon": 0.01,
                   "sigma": 4.0, "map_interpolation": "bilinear", "workers": 0, "device": "cpu",
                   "warmup_images": WARMUP_IMAGES, "timing_images": st.timing_images,
                   "backbones": {k: CONFIGS[k] for k in st.keys}},
        "load_average": {"start": load_start, "end": [round(x, 2) for x in os.getloadavg()]},
        "wall_s": time.perf_counter() - t_start,
        "foreign_cpu_cores": whole.cores,
        "definitions": DEFINITIONS,
        "random_weights_note": "RANDOM backbone weights: time and memory only; no accuracy is implied",
        "targets": targets,
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> int:
    ap = _parser()
    args = ap.parse_args(argv)
    st = _settings(ap, args)
    split = _bottle_split(args.data_root, st.data_root)
    if split is None:
        return 2

    import torch

    from padim_bench.store import write_json_and_markdown

    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so temporary model files are removed
    threads = os.cpu_count() or 1
    torch.set_num_threads(threads)
    n_all = len(split.train)
    ns = [FIT_SMALL_N] if args.quick else [FIT_SMALL_N, n_all]

    t_start = time.perf_counter()
    load_start = [round(x, 2) for x in os.getloadavg()]
    _log(f"bench: {', '.join(st.keys)}; {n_all} train / {len(split.test)} test images; threads {threads}; "
         f"repeats {st.repeats}; load average {load_start}")
    from padim_bench.profiling import OtherCpuLoad

    whole = OtherCpuLoad().start()
    try:
        rows = [measure_backbone(key, args, st.data_root, split, ns, st.repeats, st.timing_images, _log)
                for key in st.keys]
    except RuntimeError as e:  # a child failed: its stderr tail is in the message
        print(f"error: {e}", file=sys.stderr)
        return 1
    whole.stop()
    rec = _record(args, argv, st, split, ns, threads, t_start, load_start, whole, rows)
    md = render_markdown(rec)
    write_json_and_markdown(st.out_stem, rec, md)
    print(md)
    _log(f"wrote {st.out_stem.with_suffix('.json')} and {st.out_stem.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
