"""The span measurement (padim_bench.profiling.measure): peak memory and the CPU other processes
use during a span, and the run's warning when that makes its time figures unrepresentative."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

from padim_bench import profiling, runner
from padim_bench.config import config_from_dict
from padim_bench.profiling import measure


def test_span_peak_covers_an_allocation_inside_it():
    with measure("cpu") as span:
        block = np.ones(200_000_000 // 8)  # 200 MB, touched
        del block
    assert span.peak_rss_bytes - span.start_rss_bytes >= 180e6
    assert span.seconds > 0


def test_span_counts_the_cpu_another_process_keeps_busy():
    """A busy-looping child that is not reaped during the span is another process's CPU: about one
    core while this process sleeps (>= 0.5 even on a loaded 2-core machine)."""
    child = subprocess.Popen([sys.executable, "-c", "import time\nt = time.time()\nwhile time.time() - t < 5: pass"])
    try:
        time.sleep(0.3)  # the child is running
        with measure("cpu") as span:
            time.sleep(1.0)
    finally:
        child.kill()
        child.wait()
    assert span.other_cpu_cores is not None and span.other_cpu_cores >= 0.5
    with measure("cpu") as short:
        time.sleep(0.1)
    assert short.other_cpu_cores is None  # too short for the kernel's tick-based CPU counts


def test_a_run_warns_when_other_processes_share_its_cpus(demo_data, tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "BUSY_CORES", -1.0)  # any figure counts as busy: the warning path
    monkeypatch.setattr(profiling, "MIN_CPU_SPAN_S", 0.0)  # this run's spans are far shorter than a second
    cfg = config_from_dict({
        "dataset": {"root": str(demo_data), "categories": ["brick"], "resize": 64, "crop": 56},
        "method": {"name": "padim", "backbone": "resnet18", "weights": "random", "d": 8},
        "runtime": {"device": "cpu", "batch_size": 4, "workers": 0, "timing_images": 1, "warmup_images": 0},
        "output": {"dir": str(tmp_path / "out")},
    })
    with pytest.warns(UserWarning, match=r"brick: other processes kept .* cores busy during the fit and .* during "
                                         r"the batch-1 timing; those time figures are not a quiet machine's"):
        rec = runner.run(cfg, show_progress=False)
    t = rec["categories"][0]["time"]
    assert t["other_cpu_cores_fit"] >= 0 and t["other_cpu_cores_timing"] >= 0
