"""Recompute committed runs with the current code and compare their numbers (regression check).

Every run folder under ``results/`` (one holding ``run.json`` and ``results.json``) is run again
from its stored configuration into a fresh folder under ``--work`` (nothing under ``results/`` is
written but the summary), with ``padim-bench run`` in a fresh process each, and compared per
category with what is committed: the three metrics (image ROC-AUC, pixel ROC-AUC, PRO) and every
image score. A refactor moves no number: the largest absolute difference must be <= ``--tol``
(default 1e-9).

Usage::

    .venv/bin/python scripts/recompute_results.py                       # every committed run
    .venv/bin/python scripts/recompute_results.py --runs 'results/paper/table1/*' --runs results/runs/mvtec_effl0

Writes ``results/bench/recompute.json`` and ``.md`` (``--out`` to change): per run the largest
metric and image-score differences, the seconds it took, and the environment. Exits 1 when any
difference exceeds the tolerance or a run fails.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from padim_bench.store import write_json_and_markdown

ROOT = Path(__file__).resolve().parents[1]
METRICS = ("image_roc_auc", "pixel_roc_auc", "pro")


def committed_runs(patterns: list[str]) -> list[Path]:
    """Run folders matching ``patterns`` (globs relative to the repository root) that hold a
    ``run.json`` and a ``results.json``, sorted."""
    found = set()
    for pat in patterns:
        for p in glob.glob(str(ROOT / pat), recursive=True):
            p = Path(p)
            for folder in ([p] if (p / "run.json").is_file() else [q.parent for q in p.rglob("run.json")]):
                if (folder / "results.json").is_file():
                    found.add(folder.resolve())
    return sorted(found)


def largest_differences(old: dict, new: dict) -> dict:
    """Per-category comparison of two run records: the largest absolute metric difference, the
    largest image-score difference, and categories present in one only.

    Returns:
        ``{"metric": float, "image_score": float, "missing": [names], "undefined_mismatch": [..]}``.
    """
    o = {c["category"]: c for c in old["categories"]}
    n = {c["category"]: c for c in new["categories"]}
    worst_m = worst_s = 0.0
    mismatch = []
    for name in sorted(set(o) & set(n)):
        for k in METRICS:
            a, b = o[name]["metrics"].get(k), n[name]["metrics"].get(k)
            if (a is None) != (b is None):
                mismatch.append(f"{name}/{k}")
            elif a is not None:
                worst_m = max(worst_m, abs(a - b))
        sa, sb = o[name]["image_scores"], n[name]["image_scores"]
        if len(sa) != len(sb):
            mismatch.append(f"{name}/image_scores length")
        else:
            worst_s = max([worst_s] + [abs(x - y) / max(1.0, abs(x)) for x, y in zip(sa, sb)])
    return {"metric": worst_m, "image_score": worst_s, "missing": sorted(set(o) ^ set(n)),
            "undefined_mismatch": mismatch}


def _work_name(folder: Path) -> str:
    """The recomputed run's folder name under ``--work``: its path in the repository, flattened."""
    return folder.relative_to(ROOT).as_posix().replace("/", "__")


def recompute(folder: Path, work: Path) -> tuple[dict, float]:
    """Run ``folder``'s stored config again into ``work/<name>``; returns its record and seconds.

    Raises:
        RuntimeError: the run failed (its output is in the message).
    """
    stored = json.loads((folder / "run.json").read_text(encoding="utf-8"))["config"]
    out = work / _work_name(folder)
    cfg = {k: v for k, v in stored.items() if k in ("dataset", "method", "evaluation", "runtime")}
    cfg["name"] = stored.get("name", folder.name)
    cfg["output"] = {"dir": str(out)}
    path = work / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    exe = Path(sys.executable).with_name("padim-bench")
    t0 = time.perf_counter()
    proc = subprocess.run([str(exe), "run", str(path), "--quiet"], cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{folder}: exit {proc.returncode}\n{proc.stderr[-2000:]}")
    return json.loads((out / "results.json").read_text(encoding="utf-8")), seconds


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", action="append", help="glob of run folders (repeatable; default results/**)")
    ap.add_argument("--work", type=Path, default=None, help="folder for the recomputed runs (default: a temp folder)")
    ap.add_argument("--tol", type=float, default=1e-9, help="largest allowed absolute difference")
    ap.add_argument("--out", type=Path, default=ROOT / "results/bench/recompute")
    ap.add_argument("--reference", type=Path, default=None,
                    help="compare with the runs recomputed into this --work folder of an earlier invocation "
                         "(e.g. by the code before a refactor) instead of the committed results")
    args = ap.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="padim-recompute-"))
    work.mkdir(parents=True, exist_ok=True)
    rows, failed = [], False
    for folder in committed_runs(args.runs or ["results"]):
        ref = folder if args.reference is None else args.reference / _work_name(folder)
        old = json.loads((ref / "results.json").read_text(encoding="utf-8"))
        try:
            new, seconds = recompute(folder, work)
            diff = largest_differences(old, new)
            ok = diff["metric"] <= args.tol and diff["image_score"] <= args.tol and not diff["missing"] \
                and not diff["undefined_mismatch"]
        except RuntimeError as e:
            diff, seconds, ok = {"error": str(e)}, None, False
        failed |= not ok
        rows.append({"run": str(folder.relative_to(ROOT)), "ok": ok, "seconds": seconds, **diff})
        print(f"{'ok  ' if ok else 'FAIL'} {rows[-1]['run']}: {json.dumps(diff)[:300]}", flush=True)
    import torch

    record = {"tolerance": args.tol, "runs": rows, "python": platform.python_version(),
              "torch": torch.__version__, "machine": platform.machine(), "cpu_count": os.cpu_count(),
              "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    against = "the committed results" if args.reference is None else f"the runs recomputed in {args.reference}"
    record["compared_with"] = against
    lines = ["# Committed runs recomputed with the current code", "", f"Compared with {against}.", "",
             f"Tolerance {args.tol:g} (absolute, metrics; image scores relative to max(1, |score|)); "
             f"torch {torch.__version__}, Python {platform.python_version()}, {os.cpu_count()} CPUs, {record['date']}.", "",
             "| run | ok | largest metric diff | largest image-score diff | s |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['run']} | {'yes' if r['ok'] else 'NO'} | {r.get('metric', '-')} | "
                     f"{r.get('image_score', '-')} | {r['seconds'] and round(r['seconds'])} |")
    write_json_and_markdown(args.out, record, "\n".join(lines) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
