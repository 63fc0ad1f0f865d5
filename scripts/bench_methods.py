"""Benchmark of every method side by side: fit time, fit peak memory, inference time per image and
fitted-state size for PaDiM, SPADE and the VAE (EfficientNet-Lite0, real weights) on one category.

    .venv/bin/python scripts/bench_methods.py --run            # fit and score each method afresh
    .venv/bin/python scripts/bench_methods.py                  # tabulate the runs already there
    .venv/bin/python scripts/bench_methods.py --from results/runs   # or those of the shipped configs

Each method runs as its own `padim-bench run` process (so one method's memory never counts for
another) into results/bench/methods/<config name>/; the table and the raw figures, with the machine,
versions and load average of every run, go to results/bench/methods.{md,json} (written atomically).
The figures are those the runner measures (see README: what is measured, exactly). A benchmark,
not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from padim_bench.store import atomic_write_json, atomic_write_text, read_run  # noqa: E402

CONFIGS = ["configs/mvtec_effl0.yaml", "configs/mvtec_spade_effl0.yaml", "configs/mvtec_vae_cpu.yaml"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", action="store_true", help="run each method now (else read results/bench/methods/)")
    ap.add_argument("--from", dest="src", default=None,
                    help="tabulate the runs in this folder (e.g. results/runs) instead of results/bench/methods")
    ap.add_argument("--category", default="bottle")
    ap.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data" / "mvtec_ad"))
    args = ap.parse_args()
    out_root = ROOT / "results" / "bench" / "methods"
    if args.run and not (Path(args.data_root) / args.category).is_dir():
        print(f"error: {Path(args.data_root) / args.category} not found (--data-root)", file=sys.stderr)
        return 2
    rows, raw = [], []
    for cfg in CONFIGS:
        out = (Path(args.src) if args.src else out_root) / Path(cfg).stem
        if args.run:
            cmd = [str(ROOT / ".venv" / "bin" / "padim-bench"), "run", cfg, "--categories", args.category,
                   "--data-root", args.data_root, "--out", str(out), "--force", "--quiet"]
            if subprocess.run(cmd, cwd=ROOT).returncode != 0:
                print(f"error: {' '.join(cmd)} failed", file=sys.stderr)
                return 1
        if not (out / "results.json").exists():
            print(f"skipped {cfg}: no results in {out} (use --run)", file=sys.stderr)
            continue
        rec = read_run(out)
        (c,) = [c for c in rec["categories"] if c["category"] == args.category]
        t, m = c["time"], c["memory"]
        env = c.get("environment") or rec["environment"]
        rows.append([rec["config"]["method"]["name"], rec["config"]["method"]["backbone"], f"{t['fit_s']:.1f}",
                     f"{m['fit_peak_rss_bytes'] / 1e9:.2f}", f"{t['infer_s_per_image']:.3f}",
                     f"{t['infer_model_s_per_image']:.3f}", f"{t['infer_batched_s_per_image']:.3f}",
                     f"{m['state_gb']:.3f}", str([round(x, 1) for x in env.get("load_average") or []])])
        raw.append({"config": cfg, "category": args.category, "time": t, "memory": m, "environment": env,
                    "model": c["model"]})
    head = ["method", "backbone", "fit s", "fit peak GB", "infer s/img (b=1)", "model-only s/img",
            "batched s/img", "state GB", "load avg (1, 5, 15 min)"]
    md = [f"**Methods on {args.category}: time and memory (GB = 1e9 bytes)**", "",
          "| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |" for r in rows]
    text = "\n".join(md) + "\n"
    atomic_write_text(ROOT / "results" / "bench" / "methods.md", text)
    atomic_write_json(ROOT / "results" / "bench" / "methods.json", raw)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
