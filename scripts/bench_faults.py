"""Fault injection: kill -9 at random moments of `padim-bench run` and `padim-bench sweep`, resume,
and compare with an uninterrupted run; records the figure in results/bench/faults.{md,json}.

    .venv/bin/python scripts/bench_faults.py                 # 16 run kills + 6 sweep kills
    .venv/bin/python scripts/bench_faults.py --run-kills 4 --sweep-kills 2 --out results/bench/faults_quick

Data: the demo dataset (generated, 2 categories at 64 px); PaDiM on EfficientNet-Lite0 with its
real ImageNet weights, d 20, one thread (so that two processes give the same floats). A run is
killed with SIGKILL (its whole process group) while it is in a chosen phase (fit, scoring,
timing: the child reports entering each, the kill comes after a random delay within half that
phase's length in the uninterrupted run; the phase it hit is recorded) or in the middle of a write (the child kills itself
with SIGKILL after writing half of the k-th atomically written file, k random). A sweep (2
variants x 2 categories, one job at a time, each in its own process) is killed at a uniformly
random moment. After every kill: every JSON file in the folder must parse; then the same command
resumes (sometimes killed again first), and the finished folder must hold the same categories,
metrics, image scores, labels and image paths as the uninterrupted run, no temporary file and no
lock file. Mismatches are counted, not asserted: the record says what happened.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PHASES = ("fit", "scoring", "timing", "writes")
COMPARED = ("metrics", "image_scores", "labels", "image_paths", "n_train", "n_test", "undefined_metrics")

CHILD = r"""
import os, signal, sys, time
marks = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
die_at = int(sys.argv[2])
def mark(what):
    os.write(marks, f"{time.time():.6f} {what}\n".encode())
from padim_bench import runner
from padim_bench.store import files
for name, phase in (("fit_category", "fit"), ("score_category", "scoring"), ("time_category", "timing")):
    real = getattr(runner, name)
    def wrapped(*a, _real=real, _phase=phase, **k):
        mark(_phase)
        out = _real(*a, **k)
        mark("other")
        return out
    setattr(runner, name, wrapped)
real_write = files._write_via_temporary
count = [0]
def write(path, blob):
    count[0] += 1
    mark("writes")
    if count[0] == die_at:  # killed in the middle of the write: half of the temporary file written
        tmp = path.parent / f".{path.name}.killed.tmp"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(blob[: len(blob) // 2])
            f.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    real_write(path, blob)
    mark("other")
files._write_via_temporary = write
from padim_bench.cli import app
sys.exit(app(sys.argv[3:], prog_name="padim-bench"))
"""


def _child_cmd(marks: Path, die_at: int, args: list[str]) -> list[str]:
    return [sys.executable, "-c", CHILD, str(marks), str(die_at), *args]


def _launch(cmd: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # its own process group: the kill takes its children


def _kill9(p: subprocess.Popen) -> None:
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    p.wait()


def _marks(path: Path) -> list[tuple[float, str]]:
    if not path.exists():
        return []
    return [(float(t), w) for t, w in (ln.split() for ln in path.read_text().splitlines() if ln.strip())]


def _phase_lengths(marks: list[tuple[float, str]]) -> dict[str, float]:
    """Longest uninterrupted stretch of each phase in a reference run's marks (seconds)."""
    out: dict[str, float] = {}
    for (t0, w), (t1, _) in zip(marks, marks[1:]):
        out[w] = max(out.get(w, 0.0), t1 - t0)
    return out


def _check_folder(folder: Path) -> dict[str, list[str]]:
    """JSON files that do not parse, temporary files, lock files under ``folder``."""
    bad, tmp = [], []
    for p in folder.rglob("*"):
        if not p.is_file():
            continue
        if ".tmp" in p.name:
            tmp.append(str(p.relative_to(folder)))
        elif p.suffix == ".json":
            try:
                json.loads(p.read_text(encoding="utf-8"))
            except ValueError:
                bad.append(str(p.relative_to(folder)))
    return {"unparsable_json": bad, "temporary_files": tmp,
            "lock_files": [str(p.relative_to(folder)) for p in folder.rglob(".padim-bench.lock")]}


def _summary(folder: Path) -> dict:
    """What must not change: per run folder, its categories and their compared fields."""
    out = {}
    for res in sorted(folder.rglob("results.json")):
        rec = json.loads(res.read_text())
        out[str(res.parent.relative_to(folder))] = {
            "run_hash": rec["run_hash"], "categories": {c["category"]: {k: c.get(k) for k in COMPARED}
                                                        for c in rec["categories"]}}
    return out


def _config(tmp: Path, data: Path) -> tuple[Path, Path]:
    import yaml

    base = {"name": "faults", "dataset": {"name": "mvtec_folder", "root": str(data), "categories": ["brick", "grass"],
                                          "resize": 64, "crop": None, "texture_categories": ["brick", "grass"]},
            "method": {"name": "padim", "backbone": "efficientnet_lite0", "weights": "imagenet", "d": 20, "seed": 0},
            "runtime": {"device": "cpu", "threads": 1, "batch_size": 4, "workers": 0, "timing_images": 3,
                        "warmup_images": 1},
            "output": {"dir": "out", "report_images": 2}}
    run_cfg = tmp / "run.yaml"
    run_cfg.write_text(yaml.safe_dump(base))
    sweep = {**base, "variants": [{"name": "d10", "set": {"method.d": 10}}, {"name": "d20", "set": {"method.d": 20}}]}
    sweep_cfg = tmp / "sweep.yaml"
    sweep_cfg.write_text(yaml.safe_dump(sweep))
    return run_cfg, sweep_cfg


def _resume(cmd_args: list[str], work: Path, rng: random.Random, timeout: float) -> tuple[int, int, str]:
    """Resume until the command finishes; one in three resumes is itself killed at a random moment
    first. Returns (resumes, extra kills, last stderr)."""
    resumes = kills = 0
    while True:
        resumes += 1
        p = _launch(_child_cmd(work / "resume.marks", 0, cmd_args), work)
        if rng.random() < 1 / 3 and kills < 2:
            try:
                p.wait(timeout=rng.uniform(0.5, timeout))
            except subprocess.TimeoutExpired:
                _kill9(p)
                kills += 1
                continue
        err = p.communicate(timeout=600)[1]
        if p.returncode != 0:
            raise RuntimeError(f"resume failed ({p.returncode}): {err[-2000:]}")
        return resumes, kills, err


def _trial(kind: str, args: list[str], tmp: Path, ref: dict, lengths: dict[str, float], phase: str | None,
           duration: float, n_writes: int, rng: random.Random) -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"{kind}_", dir=tmp))
    marks = work / "kill.marks"
    die_at = rng.randint(1, max(1, n_writes)) if phase == "writes" else 0
    t0 = time.monotonic()
    p = _launch(_child_cmd(marks, die_at, args), work)
    hit = None
    if phase in ("fit", "scoring", "timing"):
        wanted = rng.choice([1, 2])  # the first or the second category's phase
        while p.poll() is None and sum(w == phase for _, w in _marks(marks)) < wanted:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.5 * lengths.get(phase, 0.1)))
        _kill9(p)
    elif phase == "writes":
        p.wait(timeout=600)
    else:  # a sweep: a uniformly random moment of its uninterrupted length
        try:
            p.wait(timeout=rng.uniform(0.5, 0.95 * duration))
        except subprocess.TimeoutExpired:
            _kill9(p)
    killed_at = time.monotonic() - t0
    seen = _marks(marks)
    hit = (seen[-1][1] if seen else "start-up").replace("other", "between phases (metrics, record)")
    if kind == "sweep":
        hit = f"sweep ({len(list((work / 'out').rglob('categories/*.json')))} of 4 category records written)"
    killed = p.returncode == -signal.SIGKILL
    after_kill = _check_folder(work / "out") if (work / "out").exists() else {}
    resumes, extra, _ = _resume(args, work, rng, max(duration, 1.0))
    final = _check_folder(work / "out")
    same = _summary(work / "out") == ref
    return {"kind": kind, "target": phase or "random moment", "phase_hit": hit, "killed": killed,
            "killed_after_s": round(killed_at, 2), "extra_kills_while_resuming": extra, "resumes": resumes,
            "after_kill": after_kill, "after_resume": final, "identical": same}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-kills", type=int, default=16, help="killed runs (spread over fit, scoring, timing, writes)")
    ap.add_argument("--sweep-kills", type=int, default=6, help="killed sweeps")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "results" / "bench" / "faults"), help="record stem (.json, .md)")
    args = ap.parse_args()
    from padim_bench.data.demo import make_demo_dataset
    from padim_bench.envinfo import environment
    from padim_bench.store import write_json_and_markdown

    rng = random.Random(args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="bench_faults_"))
    data = make_demo_dataset(tmp / "data", n_train=6, n_test_good=2, n_test_defect=3, size=64)
    run_cfg, sweep_cfg = _config(tmp, data)
    refs, lengths, durations, writes = {}, {}, {}, {}
    for kind, cfg in (("run", run_cfg), ("sweep", sweep_cfg)):
        cmd = [kind, str(cfg), "--quiet"] + (["--jobs", "1"] if kind == "sweep" else [])
        work = tmp / f"reference_{kind}"
        work.mkdir()
        t0 = time.monotonic()
        p = _launch(_child_cmd(work / "ref.marks", 0, cmd), work)
        err = p.communicate()[1]
        if p.returncode != 0:
            print(f"error: the uninterrupted {kind} failed: {err[-2000:]}", file=sys.stderr)
            return 1
        durations[kind] = time.monotonic() - t0
        refs[kind], marks = _summary(work / "out"), _marks(work / "ref.marks")
        lengths[kind], writes[kind] = _phase_lengths(marks), sum(w == "writes" for _, w in marks)
    trials = []
    for i in range(args.run_kills):
        cmd = ["run", str(run_cfg), "--quiet"]
        trials.append(_trial("run", cmd, tmp, refs["run"], lengths["run"], PHASES[i % len(PHASES)],
                             durations["run"], writes["run"], rng))
        print(json.dumps({k: trials[-1][k] for k in ("kind", "target", "phase_hit", "killed", "identical")}), flush=True)
    for _ in range(args.sweep_kills):
        cmd = ["sweep", str(sweep_cfg), "--quiet", "--jobs", "1"]
        trials.append(_trial("sweep", cmd, tmp, refs["sweep"], {}, None, durations["sweep"], 0, rng))
        print(json.dumps({k: trials[-1][k] for k in ("kind", "target", "phase_hit", "killed", "identical")}), flush=True)
    record = _record(trials, durations, lengths, run_cfg, sweep_cfg, args.seed, environment)
    write_json_and_markdown(args.out, record, _markdown(record))
    print(f"wrote {args.out}.json and .md: {record['summary']}")
    return 0 if record["summary"]["mismatches"] == 0 and record["summary"]["half_written_files"] == 0 else 1


def _record(trials, durations, lengths, run_cfg, sweep_cfg, seed, environment) -> dict:
    import torch
    import yaml

    kills = sum(t["killed"] for t in trials) + sum(t["extra_kills_while_resuming"] for t in trials)
    half = sum(len(t["after_kill"].get("unparsable_json", [])) + len(t["after_resume"]["unparsable_json"]) for t in trials)
    hits: dict[str, int] = {}
    for t in trials:  # the first kill of each trial by the phase it hit, then the resumes' kills
        key = t["phase_hit"] if t["kind"] == "run" else "sweep, random moment"
        hits[key] = hits.get(key, 0) + int(t["killed"])
        hits["a resume, random moment"] = hits.get("a resume, random moment", 0) + t["extra_kills_while_resuming"]
    summary = {"kills": kills, "killed_trials": sum(t["killed"] for t in trials), "trials": len(trials),
               "resumes": sum(t["resumes"] for t in trials), "mismatches": sum(not t["identical"] for t in trials),
               "half_written_files": half,
               "temporary_files_left_after_kill": sum(len(t["after_kill"].get("temporary_files", [])) for t in trials),
               "temporary_or_lock_files_left_after_resume": sum(len(t["after_resume"]["temporary_files"])
                                                               + len(t["after_resume"]["lock_files"]) for t in trials),
               "kills_by_phase_hit": hits}
    return {"what": "kill -9 during padim-bench run / sweep, then resume; compared with an uninterrupted run",
            "compared_fields": list(COMPARED), "seed": seed, "summary": summary,
            "uninterrupted_s": {k: round(v, 2) for k, v in durations.items()},
            "reference_phase_lengths_s": {kind: {k: round(v, 3) for k, v in ph.items()} for kind, ph in lengths.items()},
            "configs": {"run": yaml.safe_load(run_cfg.read_text()), "sweep": yaml.safe_load(sweep_cfg.read_text())},
            "environment": environment(torch.device("cpu")), "code_commit": _commit(), "trials": trials}


def _commit() -> str | None:
    """The commit of this checkout (the code the children ran; PYTHONPATH may point at a copy of it)."""
    rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True)
    return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "") if rev.returncode == 0 else None


def _markdown(rec: dict) -> str:
    s, env = rec["summary"], rec["environment"]
    lines = ["# Fault injection: kill -9 during `run` and `sweep`, then resume", "",
             f"**{s['kills']} kills** (in {s['killed_trials']} of {s['trials']} trials; the others ended before the "
             f"kill), **{s['resumes']} resumes**, **{s['mismatches']} mismatches** with the uninterrupted run, "
             f"**{s['half_written_files']} half-written files** (JSON that does not parse) after a kill or a resume; "
             f"temporary files a kill left: {s['temporary_files_left_after_kill']}, removed by the resume "
             f"(left after it: {s['temporary_or_lock_files_left_after_resume']} temporary or lock files).", "",
             "Kills by the phase they hit: " + ", ".join(f"{k} {v}" for k, v in sorted(s["kills_by_phase_hit"].items()))
             + ".", "",
             f"Compared: {', '.join(rec['compared_fields'])} of every category, in every run folder's results.json. "
             "Timings and memory figures differ between runs by nature and are not compared.", "",
             "| # | kind | target | phase hit | killed after s | extra kills while resuming | resumes | identical |",
             "|---|---|---|---|---|---|---|---|"]
    for i, t in enumerate(rec["trials"], 1):
        lines.append(f"| {i} | {t['kind']} | {t['target']} | {t['phase_hit']} | {t['killed_after_s']} | "
                     f"{t['extra_kills_while_resuming']} | {t['resumes']} | {'yes' if t['identical'] else '**no**'} |")
    lines += ["", f"Data: the demo dataset (2 categories, 64 px); PaDiM, EfficientNet-Lite0 (ImageNet weights), d 20 "
              "(sweep: d 10 and d 20), 1 thread; configs in faults.json. Uninterrupted: "
              + ", ".join(f"{k} {v} s" for k, v in rec["uninterrupted_s"].items()) + ".",
              f"Machine: {env['cpu']}, {env['cpu_count']} cores, load average {env['load_average']} at the end (shared "
              f"with other work), Python {env['python']}, torch {env['versions'].get('torch')}, "
              f"{env['date_utc']}, commit {rec.get('code_commit')}. Command: `.venv/bin/python scripts/bench_faults.py`.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
