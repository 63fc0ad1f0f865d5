"""Two processes writing one run folder (its lock, padim_bench/store/lock.py): two `run`s, a
`run` beside a sweep, `--force` while another process writes; a dead holder's lock taken over.
Kill -9 at random moments is scripts/bench_faults.py (results/bench/faults.md), too slow for here."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from rich.console import Console
from typer.testing import CliRunner

from padim_bench import store
from padim_bench.cli import app
from padim_bench.store.lock import LOCK_NAME, run_folder_lock

runner = CliRunner()
HOLD = """
import sys, time
from padim_bench.store import run_folder_lock
with run_folder_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(120)
"""


@pytest.fixture
def holder(tmp_path):
    """``holder(folder)``: another process holding ``folder``'s lock (killed at the end)."""
    procs: list[subprocess.Popen] = []

    def _start(folder: Path) -> subprocess.Popen:
        p = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "held"
        procs.append(p)
        return p

    yield _start
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()


def _kill9(p: subprocess.Popen) -> None:
    os.kill(p.pid, signal.SIGKILL)
    p.wait()


def test_a_second_writer_is_refused_with_the_holders_pid_and_command(tmp_path, holder):
    out = tmp_path / "out"
    p = holder(out)
    with pytest.raises(store.FolderLocked) as e:
        with run_folder_lock(out):
            pass
    assert f"pid {p.pid}" in str(e.value) and str(out) in str(e.value) and "-c" in str(e.value)
    assert store.read_holder(out)["pid"] == p.pid
    # the same process locking twice (e.g. a sweep's run folder given to `run` in one process) too
    other = tmp_path / "other"
    with run_folder_lock(other):
        with pytest.raises(store.FolderLocked, match=f"pid {os.getpid()}"):
            with run_folder_lock(other):
                pass
    assert not (other / LOCK_NAME).exists()  # released and removed at the end


def test_a_dead_holders_lock_is_taken_over_with_a_message(tmp_path, holder):
    out = tmp_path / "out"
    p = holder(out)
    _kill9(p)
    assert (out / LOCK_NAME).exists() and store.read_holder(out)["pid"] == p.pid  # left behind
    buf = io.StringIO()
    with run_folder_lock(out, console=Console(file=buf, width=300)):
        assert store.read_holder(out)["pid"] == os.getpid()
    assert f"pid {p.pid}" in buf.getvalue() and "taking it over" in buf.getvalue()
    assert not (out / LOCK_NAME).exists()


def test_jobs_write_under_their_sweeps_token_only(tmp_path):
    out = tmp_path / "out"
    with run_folder_lock(out) as token:
        with run_folder_lock(out, token=token) as same:  # a job of the holding sweep: no second lock
            assert same == token
        with pytest.raises(store.FolderLocked, match="no longer holds"):
            with run_folder_lock(out, token="0" * 32):
                pass
    with pytest.raises(store.FolderLocked, match="no longer holds"):  # the sweep has ended
        with run_folder_lock(out, token=token):
            pass


def _config(path: Path, data: Path, out: Path) -> Path:
    cfg = {"dataset": {"root": str(data), "categories": ["brick"], "resize": 64, "crop": 56},
           "method": {"name": "padim", "backbone": "resnet18", "weights": "random", "d": 20},
           "runtime": {"device": "cpu", "batch_size": 4, "workers": 0, "timing_images": 2, "warmup_images": 1},
           "output": {"dir": str(out)}}
    path.write_text(yaml.safe_dump(cfg))
    return path


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_run_force_and_sweep_refuse_a_folder_another_process_writes(tmp_path, demo_data, holder):
    out = tmp_path / "out"
    cfg = _config(tmp_path / "c.yaml", demo_data, out)
    assert runner.invoke(app, ["run", str(cfg), "--quiet"]).exit_code == 0
    before = _snapshot(out)
    p = holder(out)
    for args in (["run", str(cfg), "--quiet"], ["run", str(cfg), "--quiet", "--force"], ["sweep", str(cfg), "--quiet"]):
        res = runner.invoke(app, args)
        assert res.exit_code == 2 and f"pid {p.pid}" in " ".join(res.output.split()), (args, res.output)
    assert _snapshot(out) == {**before, LOCK_NAME: (out / LOCK_NAME).read_bytes()}  # nothing written or removed
    _kill9(p)
    res = runner.invoke(app, ["run", str(cfg)])
    assert res.exit_code == 0 and "taking it over" in res.output, res.output
    assert not (out / LOCK_NAME).exists()
    assert json.loads((out / "results.json").read_text())["categories"][0]["category"] == "brick"


def test_taking_the_lock_removes_what_a_killed_atomic_write_left(tmp_path):
    """Temporary files of the atomic writers (a kill between writing and renaming leaves them) go
    when a writer takes the folder's lock; the records and the user's own files stay."""
    out = tmp_path / "out"
    (out / "categories").mkdir(parents=True)
    left = [out / ".results.json.ab12cd.tmp", out / "categories" / ".bottle.json.x1y2.tmp",
            out / "categories" / ".bottle.pixhist.tmp.npz"]
    kept = [out / "results.json", out / "categories" / "bottle.json", out / "notes.tmp.txt"]
    for p in left + kept:
        p.write_text("x")
    with run_folder_lock(out):
        assert not any(p.exists() for p in left) and all(p.read_text() == "x" for p in kept)
