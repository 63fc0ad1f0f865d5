"""The run's and the sweep's progress on stderr: the overall bar's ETA, "category i of N", a status
line for every phase, and a sweep ETA that moves with the clock."""

from __future__ import annotations

import io
from types import SimpleNamespace

import pytest
from rich.console import Console

from padim_bench.progress import RunProgress


def _console() -> Console:
    return Console(file=io.StringIO(), force_terminal=True, width=150, color_system=None)


def test_overall_eta_counts_the_images_of_the_current_category():
    """2 categories of 10 images each: 5 images of the first done in 10 s is 0.25 of the run in
    10 s, so 30 s are left (0.75 / 0.025 per s)."""
    now = [0.0]
    console = _console()
    with RunProgress(console, 2, get_time=lambda: now[0]) as progress:
        progress.start_category(0, "bottle", 10)
        task = progress.add_task("bottle: fit", total=10, unit="images")
        for _ in range(5):
            now[0] += 2.0
            progress.advance(task, 1)
        overall = progress.tasks[0]
        assert overall.completed == pytest.approx(0.5)  # of 2 categories
        assert overall.time_remaining == pytest.approx(30.0)
        progress.phase("metrics")
        text = console.file.getvalue()
    assert "category 1 of 2 (bottle): metrics" in text and "ETA 0:00:30" in text and "0/2 categories" in text
    assert "5/10 images" in text


def test_run_shows_every_phase_and_the_category_count(tmp_path, demo_data):
    from padim_bench.config import config_from_dict
    from padim_bench.runner import run

    cfg = config_from_dict({
        "dataset": {"root": str(demo_data), "categories": ["brick", "gravel"], "resize": 64, "crop": 56},
        "method": {"name": "padim", "backbone": "resnet18", "weights": "random", "d": 20},
        "runtime": {"device": "cpu", "batch_size": 4, "workers": 0, "timing_images": 2, "warmup_images": 1},
        "output": {"dir": str(tmp_path / "out")},
    })
    console = _console()
    run(cfg, console=console, show_progress=True)
    text = console.file.getvalue()
    for line in ("scanning and checking the data", "loading resnet18 (random weights)",
                 "category 1 of 2 (brick): fit", "category 2 of 2 (gravel): score",
                 "category 2 of 2 (gravel): batch-1 timing (2 images)", "(gravel): metrics",
                 "(gravel): writing the report data", "writing the results", "ETA", "/2 categories"):
        assert line in text, line


def _tracker(clock):
    from padim_bench.sweep.tracking import JobTracker, SweepResult

    jobs = [SimpleNamespace(id=f"j{i}", run=SimpleNamespace(run_name="r")) for i in range(3)]
    index = SimpleNamespace(update=lambda *a, **k: None)
    return JobTracker(SimpleNamespace(), SweepResult(), index, jobs, lambda j: 1, _console(), False, clock=clock), jobs


def test_sweep_eta_moves_with_the_clock_between_job_ends():
    """3 jobs, the first took 10 s; the second has run for 4 s: 6 s left of it and 10 s for the
    third = 16 s; 4 s later, 12 s, without any job ending."""
    now = [0.0]
    tracker, jobs = _tracker(lambda: now[0])
    assert tracker.eta_s() is None  # nothing measured yet
    tracker.durations.append(10.0)
    tracker.state["done"] = 1
    tracker.on_start(jobs[1])
    now[0] = 4.0
    assert tracker.eta_s() == pytest.approx(16.0)
    now[0] = 8.0
    assert tracker.eta_s() == pytest.approx(12.0)
    now[0] = 30.0  # a job past the mean counts as ending now
    assert tracker.eta_s() == pytest.approx(10.0)
