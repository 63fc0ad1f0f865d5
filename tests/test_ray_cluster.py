"""A sweep through ``--address`` on a real local Ray cluster started with ``ray start --head``,
with token authentication as Ray ships it (2.5x and later: ``RAY_AUTH_MODE=token`` and the
token in ``RAY_AUTH_TOKEN`` or a file named by ``RAY_AUTH_TOKEN_PATH``; see docs/ci.md).

The cluster gets its own temporary folder, home folder and port, is started as its own process
group and stopped at the end, even on failure (its process group, then any process naming its
folder: never ``ray stop``, which would stop every Ray cluster of this user). Ray turns
``--node-ip-address 127.0.0.1`` into the machine's address and listens on every interface, which
is why the token matters. Every step has a timeout. Skipped without the ``ray`` extra.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.slow, pytest.mark.ray]
ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install -e '.[test,ray]' (make test installs it)")

START_TIMEOUT_S = 240
SWEEP_TIMEOUT_S = 480


@dataclass(frozen=True)
class Cluster:
    address: str
    token: str
    folder: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen, folder: Path) -> None:
    """Stop the cluster this test started: its process group (SIGTERM, then SIGKILL), then any
    process left whose command line names the cluster's folder."""
    import psutil

    for sig, wait in ((signal.SIGTERM, 60), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    strays = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if any(str(folder) in arg for arg in (p.info["cmdline"] or [])):
                strays.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    for p in strays:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(strays, timeout=10)


@pytest.fixture
def cluster():
    folder = Path(tempfile.mkdtemp(prefix="pbray", dir="/tmp"))  # Ray's socket paths must stay short
    token, port = secrets.token_hex(32), _free_port()
    env = {**os.environ, "HOME": str(folder / "home"), "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token,
           "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    log = folder / "start.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
                                 "--node-ip-address", "127.0.0.1", "--port", str(port), "--temp-dir", str(folder / "t"),
                                 "--num-cpus", "2", "--include-dashboard", "false", "--disable-usage-stats"],
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while "Ray runtime started" not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"ray start --head did not start in {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")
            time.sleep(1)
        yield Cluster(f"127.0.0.1:{port}", token, folder)
    finally:
        _stop(proc, folder)
        shutil.rmtree(folder, ignore_errors=True)


def _sweep(tmp: Path, data: Path) -> Path:
    doc = {"name": "cluster",
           "dataset": {"root": str(data), "categories": ["brick", "gravel"], "resize": 64, "crop": 56},
           "method": {"name": "padim", "backbone": "resnet18", "weights": "random", "d": 20},
           "runtime": {"device": "cpu", "batch_size": 4, "workers": 0, "timing_images": 1, "warmup_images": 0},
           "output": {"dir": str(tmp / "out")}, "seeds": [0]}
    path = tmp / "sweep.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _driver(tmp: Path, args: list[str], **auth: str) -> subprocess.CompletedProcess:
    """``padim-bench ARGS`` as a user runs it, with a home folder of its own (no token file) and
    only the authentication variables given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(HOME=str(tmp / "driver_home"), COLUMNS="250", **auth)
    return subprocess.run([sys.executable, "-m", "padim_bench.cli", *args], cwd=tmp, env=env, capture_output=True,
                          text=True, timeout=SWEEP_TIMEOUT_S)


def test_a_sweep_through_address_on_a_token_authenticated_cluster(cluster, tmp_path, demo_data):
    import torch

    from padim_bench.runner import run as run_alone
    from padim_bench.sweep.plan import plan_sweep

    sweep = _sweep(tmp_path, demo_data)
    args = ["sweep", str(sweep), "--executor", "ray", "--address", cluster.address, "--threads", "1", "--quiet"]
    # without the token the driver is refused, and the error says how to pass it
    res = _driver(tmp_path, args)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "RAY_AUTH_TOKEN" in res.stderr and "InvalidAuthToken" in res.stderr
    # with it (as a user passes it: environment variables), every job runs on the cluster
    res = _driver(tmp_path, args, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=cluster.token)
    assert res.returncode == 0, res.stdout + res.stderr[-4000:]
    assert "2 done, 0 failed" in res.stdout
    index = json.loads((tmp_path / "out" / "sweep.json").read_text())
    assert index["executor"]["executor"] == "ray" and index["executor"]["nodes"] == 1
    assert index["executor"]["address"] == cluster.address
    assert [j["status"] for j in index["jobs"]] == ["done", "done"]
    record = json.loads((tmp_path / "out" / "base_seed0" / "results.json").read_text())
    # the same numbers as each job run alone in this process (1 thread, as the Ray jobs)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for job in plan_sweep(sweep, reuse_results=True).jobs:
            cfg = dataclasses.replace(job.config, output=dataclasses.replace(job.config.output,
                                                                             dir=str(tmp_path / "alone")))
            alone = run_alone(cfg, show_progress=False)
    finally:
        torch.set_num_threads(threads)
    ours = {c["category"]: (c["metrics"], c["image_scores"]) for c in record["categories"]}
    assert ours == {c["category"]: (c["metrics"], c["image_scores"]) for c in alone["categories"]}
