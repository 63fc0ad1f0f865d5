#!/usr/bin/env python
"""Benchmark (not a test) of three PaDiM steps on CPU, each against the variant it replaced.

Usage::

    python scripts/bench_kernels.py [--repeats 5] [--data-root ../shared/data/mvtec_ad] [--out results/bench/kernels]

1. Backbone layer1..layer3 forward, random weights, 224 input: NCHW vs channels_last (NHWC)
   (``runtime.channels_last``), R18 at batch 32 and EfficientNet-Lite0 at batch 16, ms per image.
2. Mahalanobis distance step for 3,136 positions (a 56 x 56 grid) with a random well-conditioned
   factor: one product with the full ``L^-T`` ``(P, d, d)`` vs the two stored blocks
   (``GaussianGrid``: first ceil(d/2) rows, lower-right block), d = 100 and 550, batch 1 and 8, ms.
3. Decoding and pre-processing MVTec AD bottle's 83 test images (900 x 900 RGB PNG -> float32 in
   [0, 1] -> resize 256, crop 224, bicubic): the uint8 -> float32 step dividing into a second
   array vs ``load_image`` writing one array (``_unit_rgb``), ms per image, each image once per
   pass (a different file each time, as in a run), the better of two interleaved medians;
   skipped without the data.

Each figure is the median of ``--repeats`` timed calls after one warm-up, in this process, with
torch's default threads. Writes ``<out>.json`` and ``<out>.md`` atomically (hardware, versions and
load average included) and prints the Markdown.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

SEED = 0
POSITIONS = 56 * 56


def _median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def bench_backbones(repeats: int) -> list[dict]:
    import torch

    from padim_bench.backbones import load_backbone

    rows = []
    for name, batch in (("resnet18", 32), ("efficientnet_lite0", 16)):
        x = torch.rand(batch, 3, 224, 224, generator=torch.Generator().manual_seed(SEED))
        row = {"backbone": name, "batch": batch}
        for label, cl in (("nchw_ms_per_image", False), ("channels_last_ms_per_image", True)):
            ex = load_backbone(name, ["layer1", "layer2", "layer3"], weights="random", seed=SEED, channels_last=cl)
            with torch.inference_mode():
                row[label] = _median_ms(lambda: ex(x), repeats) / batch
        rows.append(row)
    return rows


def bench_distance(repeats: int) -> list[dict]:
    import torch

    from padim_bench.methods.padim import GaussianGrid, PadimParams

    rows = []
    g = torch.Generator().manual_seed(SEED)
    for d in (100, 550):
        a = torch.randn(16, 2 * d, d, generator=g, dtype=torch.float64)
        cov = a.transpose(1, 2) @ a / (2 * d) + 0.01 * torch.eye(d, dtype=torch.float64)
        inv_t = torch.linalg.inv(torch.linalg.cholesky(cov)).transpose(1, 2).float()
        full = inv_t.repeat(POSITIONS // 16 + 1, 1, 1)[:POSITIONS].contiguous()
        grid = GaussianGrid(d, PadimParams(d=d), torch.device("cpu"))
        grid.mean, grid.grid, grid.n = torch.zeros(POSITIONS, d), (56, 56), 2
        grid._set_factor(full)
        for batch in (1, 8):
            emb = torch.randn(batch, d, 56, 56, generator=g)

            def with_full_factor():  # GaussianGrid.distance before the blocks, the same steps
                x = emb.reshape(batch, d, POSITIONS).permute(2, 0, 1)
                y = torch.bmm((x - grid.mean[:, None, :]).contiguous(), full)
                return y.square_().sum(2).sqrt_().T.reshape(batch, 56, 56)

            with torch.inference_mode():
                full_ms = _median_ms(with_full_factor, repeats)
                blocks_ms = _median_ms(lambda: grid.distance(emb), repeats)
                ref = with_full_factor()
                diff = float(((grid.distance(emb) - ref).abs() / ref).max())
            rows.append({"d": d, "batch": batch, "full_factor_ms": full_ms, "two_blocks_ms": blocks_ms,
                         "max_rel_diff": diff})
    return rows


def bench_decode(repeats: int, data_root: Path) -> dict | None:
    import numpy as np
    import torch
    from PIL import Image

    from padim_bench.data.images import load_image
    from padim_bench.data.mvtec import scan_category
    from padim_bench.data.transforms import Preprocess

    if not (data_root / "bottle").is_dir():
        print(f"{data_root}/bottle not found: the decode benchmark is skipped", file=sys.stderr)
        return None
    paths = [s.path for s in scan_category(data_root, "bottle").test]
    prep = Preprocess(256, 224, "bicubic")

    def before(p):  # load_image's RGB step before _unit_rgb: the division makes a second array
        with Image.open(p) as img:
            return prep.image(np.asarray(img, dtype=np.float32) / 255.0)

    variants = {"two_arrays_ms": before, "one_array_ms": lambda p: prep.image(load_image(p))}
    diff = max(float((before(p) - prep.image(load_image(p))).abs().max()) for p in paths)
    row: dict = {"images": len(paths), "max_abs_diff": diff}
    for _ in range(2):  # interleaved: the host's speed drifts
        for key, fn in variants.items():
            row.setdefault(key, []).append(_median_ms(lambda: [fn(p) for p in paths], repeats) / len(paths))
    for key in variants:
        row[key] = min(row[key])
    row["torch_threads"] = torch.get_num_threads()
    return row


def render(record: dict) -> str:
    env = record["environment"]
    lines = ["# PaDiM kernels on CPU: what replaced what\n",
             f"- date (UTC) {record['date_utc']}; load average at start {record['load_average_start']}, at end "
             f"{record['load_average_end']}; median of {record['repeats']} calls after a warm-up",
             f"- machine: {env['cpu']}, {env['cpu_count']} logical cores; torch {env['versions']['torch']}, "
             f"threads {env.get('torch_threads')}; git {env['git_commit']}\n",
             "| backbone (layer1..3, random weights, 224) | batch | NCHW ms/image | channels_last ms/image | speed-up |",
             "|---|---|---|---|---|"]
    for r in record["backbones"]:
        lines.append(f"| {r['backbone']} | {r['batch']} | {r['nchw_ms_per_image']:.1f} | "
                     f"{r['channels_last_ms_per_image']:.1f} | {r['nchw_ms_per_image'] / r['channels_last_ms_per_image']:.2f}x |")
    lines += ["", "| distance step, 3,136 positions | batch | full L^-T ms | two blocks ms | speed-up | max rel. diff |",
              "|---|---|---|---|---|---|"]
    for r in record["distance"]:
        lines.append(f"| d = {r['d']} | {r['batch']} | {r['full_factor_ms']:.1f} | {r['two_blocks_ms']:.1f} | "
                     f"{r['full_factor_ms'] / r['two_blocks_ms']:.2f}x | {r['max_rel_diff']:.1e} |")
    r = record.get("decode")
    if r:
        lines += ["", f"| decode + resize 256 + crop 224, bottle test ({r['images']} PNGs, 900 x 900 RGB) | "
                  "/ 255 into a second array, ms/image | into one array, ms/image | speed-up | max abs. diff |",
                  "|---|---|---|---|---|",
                  f"| Pillow decode + load_image's float step + Preprocess.image | {r['two_arrays_ms']:.1f} | "
                  f"{r['one_array_ms']:.1f} | {r['two_arrays_ms'] / r['one_array_ms']:.2f}x | {r['max_abs_diff']:.1e} |"]
    else:
        lines += ["", "Decode benchmark skipped: MVTec AD bottle not found."]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--data-root", default=str(REPO.parent / "shared" / "data" / "mvtec_ad"))
    ap.add_argument("--out", default=str(REPO / "results" / "bench" / "kernels"))
    args = ap.parse_args()
    if args.repeats < 1:
        sys.exit(f"error: --repeats must be >= 1, got {args.repeats}")
    import torch

    from padim_bench.envinfo import environment
    from padim_bench.store import write_json_and_markdown

    start, started = list(os.getloadavg()), time.time()
    record = {"date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)), "repeats": args.repeats,
              "seed": SEED, "environment": environment(torch.device("cpu")),
              "backbones": bench_backbones(args.repeats), "distance": bench_distance(args.repeats),
              "decode": bench_decode(args.repeats, Path(args.data_root))}
    record["load_average_start"], record["load_average_end"] = start, list(os.getloadavg())
    md = render(record)
    write_json_and_markdown(args.out, record, md)
    print(md)


if __name__ == "__main__":
    main()
