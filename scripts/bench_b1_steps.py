#!/usr/bin/env python
"""Benchmark (not a test): where batch-1 PaDiM inference spends its time, and what ``import torch``
alone keeps resident.

Usage::

    python scripts/bench_b1_steps.py [--repeats 3] [--data-root ../shared/data/mvtec_ad]
                                     [--python /other/venv/bin/python ...] [--out results/bench/b1_steps]

1. R18-Rd100 (RANDOM weights: time only; fitted on 16 random images, since scoring cost does not
   depend on the fit), paper protocol (resize 256 bicubic, crop 224, layer1..3, sigma 4), batch 1,
   over MVTec AD bottle's 83 test images, each image once per pass (a different file each time, as
   in a run), the steps in the order a run takes them, ms per image (median over passes):
   decode (``load_image``), pre-processing (``Preprocess.image``), embedding (backbone forward,
   channel selection, upsampling, concatenation: ``Padim.embed``), Mahalanobis distance
   (``GaussianGrid.distance``), post-processing (upsampling, Gaussian filter, max:
   ``methods.base.postprocess``); then the backbone forward alone on the same tensors.
2. For this interpreter and each ``--python``: resident memory (VmRSS, GB = 1e9 bytes) of a fresh
   process after ``import torch``, with the torch version and whether it is a CUDA build.

Writes ``<out>.json`` and ``<out>.md`` atomically (hardware, versions, load average, seed) and prints
the Markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

SEED = 0
STEPS = ("decode", "preprocess", "embedding", "distance", "postprocess")
PROBE = ("import re, json\nimport torch\n"
         "rss = int(re.search(r'VmRSS:\\s+(\\d+) kB', open('/proc/self/status').read()).group(1)) * 1024\n"
         "print(json.dumps({'torch': torch.__version__, 'cuda_build': torch.version.cuda, 'rss_bytes': rss}))")


def bench_steps(repeats: int, data_root: Path) -> dict:
    import torch

    from padim_bench.backbones import load_backbone
    from padim_bench.data.images import load_image
    from padim_bench.data.mvtec import scan_category
    from padim_bench.data.transforms import Preprocess
    from padim_bench.methods.base import postprocess
    from padim_bench.methods.padim import Padim, PadimParams

    torch.manual_seed(SEED)
    ext = load_backbone("resnet18", ["layer1", "layer2", "layer3"], weights="random", seed=SEED)
    model = Padim(PadimParams(d=100), ext, seed=SEED)
    g = torch.Generator().manual_seed(SEED)
    model.fit([torch.rand(8, 3, 224, 224, generator=g) for _ in range(2)])
    grid = model.gaussians[0]
    prep = Preprocess(256, 224, "bicubic")
    paths = [s.path for s in scan_category(data_root, "bottle").test]
    passes: dict[str, list[float]] = {k: [] for k in (*STEPS, "backbone_alone")}
    with torch.inference_mode():
        for _ in range(repeats + 1):  # the first pass warms up and is not kept
            times = {k: 0.0 for k in passes}
            inputs = []
            for p in paths:
                t0 = time.perf_counter()
                arr = load_image(p)
                t1 = time.perf_counter()
                img = prep.image(arr)[None]
                t2 = time.perf_counter()
                emb = model.embed(img)
                t3 = time.perf_counter()
                raw = grid.distance(emb)
                t4 = time.perf_counter()
                postprocess(raw, (224, 224), 4.0, "bilinear")
                t5 = time.perf_counter()
                for k, a, b in zip(STEPS, (t0, t1, t2, t3, t4), (t1, t2, t3, t4, t5)):
                    times[k] += b - a
                inputs.append(img)
            t0 = time.perf_counter()
            for img in inputs:
                ext(img)
            times["backbone_alone"] = time.perf_counter() - t0
            for k, v in times.items():
                passes[k].append(v / len(paths) * 1000)
    row = {k: statistics.median(v[1:]) for k, v in passes.items()}
    row["total_ms"] = sum(row[k] for k in STEPS)
    row["images"] = len(paths)
    return row


def import_floor(pythons: list[str]) -> list[dict]:
    rows = []
    for py in pythons:
        res = subprocess.run([py, "-c", PROBE], capture_output=True, text=True)
        if res.returncode != 0:
            rows.append({"python": py, "error": (res.stderr.strip().splitlines() or ["failed"])[-1]})
        else:
            rows.append({"python": py, **json.loads(res.stdout.strip().splitlines()[-1])})
    return rows


def render(record: dict) -> str:
    env, r = record["environment"], record["steps"]
    lines = ["# Batch-1 PaDiM inference by step, and the torch import floor (CPU)\n",
             f"- date (UTC) {record['date_utc']}; load average at start {record['load_average_start']}, at end "
             f"{record['load_average_end']}; median of {record['repeats']} passes after a warm-up pass; seed {SEED}",
             f"- machine: {env['cpu']}, {env['cpu_count']} logical cores; torch {env['versions']['torch']}, "
             f"threads {env.get('torch_threads')}; git {env['git_commit']}\n",
             f"R18-Rd100, random weights, bottle test ({r['images']} PNGs, 900 x 900 RGB), batch 1, ms per image:\n",
             "| " + " | ".join((*STEPS, "total", "backbone forward alone")) + " |",
             "|" + "---|" * (len(STEPS) + 2),
             "| " + " | ".join(f"{r[k]:.1f}" for k in (*STEPS, "total_ms", "backbone_alone")) + " |", "",
             "Resident memory after `import torch` in a fresh process (GB = 1e9 bytes):\n",
             "| python | torch | CUDA build | RSS GB |", "|---|---|---|---|"]
    for f in record["import_floor"]:
        if "error" in f:
            lines.append(f"| {f['python']} | error: {f['error']} | | |")
        else:
            lines.append(f"| {f['python']} | {f['torch']} | {f['cuda_build'] or 'no (CPU only)'} | {f['rss_bytes'] / 1e9:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--data-root", default=str(REPO.parent / "shared" / "data" / "mvtec_ad"))
    ap.add_argument("--python", action="append", default=[], help="another interpreter for the import floor (repeatable)")
    ap.add_argument("--out", default=str(REPO / "results" / "bench" / "b1_steps"))
    args = ap.parse_args()
    if args.repeats < 1:
        sys.exit(f"error: --repeats must be >= 1, got {args.repeats}")
    if not (Path(args.data_root) / "bottle" / "test").is_dir():
        sys.exit(f"error: {args.data_root}/bottle/test not found (MVTec AD layout); set --data-root")
    import torch

    from padim_bench.envinfo import environment
    from padim_bench.store import write_json_and_markdown

    start, started = list(os.getloadavg()), time.time()
    record = {"date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)), "repeats": args.repeats,
              "seed": SEED, "environment": environment(torch.device("cpu")),
              "steps": bench_steps(args.repeats, Path(args.data_root)),
              "import_floor": import_floor([sys.executable, *args.python])}
    record["load_average_start"], record["load_average_end"] = start, list(os.getloadavg())
    md = render(record)
    write_json_and_markdown(args.out, record, md)
    print(md)


if __name__ == "__main__":
    main()
