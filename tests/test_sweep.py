"""Sweeps: expansion into jobs, dry run, memory-aware scheduling, skipping finished jobs, failed
jobs, and the acceptance test: the same numbers from the local executor, from Ray and from each
job run alone."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from padim_bench import tables
from padim_bench.cli import app
from padim_bench.config import axis_label, expand_experiments, load_experiments
from padim_bench.data.demo import make_demo_dataset
from padim_bench.errors import ConfigError
from padim_bench.runner import run as run_alone
from padim_bench.sweep.driver import run_sweep
from padim_bench.sweep.execute import MemoryScheduler, drive
from padim_bench.memory import predict_memory
from padim_bench.store import read_results
from padim_bench.data.mvtec_ad import MVTEC_COUNTS
from padim_bench.sweep.plan import plan_sweep

cli = CliRunner()
GB = 1_000_000_000


@pytest.fixture(scope="module")
def demo_root(demo_data) -> Path:
    """The session's synthetic MVTec-layout data (conftest ``demo_data``)."""
    return demo_data


def small_sweep(path: Path, data: Path, out: Path, **extra) -> Path:
    """2 categories x 2 seeds of PaDiM with a random ResNet18 at 64 px: 2 runs, 4 jobs."""
    doc = {
        "name": "small",
        "dataset": {"root": str(data), "categories": ["brick", "gravel"], "resize": 64, "crop": 56},
        "method": {"name": "padim", "backbone": "resnet18", "weights": "random", "d": 20},
        "runtime": {"device": "cpu", "batch_size": 4, "workers": 0, "timing_images": 1, "warmup_images": 0},
        "output": {"dir": str(out)},
        "seeds": [0, 1],
        **extra,
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


# ------------------------------------------------------------------------------- expansion
def test_axes_variants_and_seeds_expand_into_jobs(tmp_path, demo_root):
    spade = tmp_path / "spade.yaml"
    spade.write_text(yaml.safe_dump({"method": {"name": "spade", "backbone": "resnet18", "k": 3}}))
    sweep = tmp_path / "s.yaml"
    sweep.write_text(yaml.safe_dump({
        "name": "grid", "dataset": {"root": str(demo_root), "resize": 64, "crop": 56},
        "method": {"backbone": "resnet18", "weights": "random"},
        "output": {"dir": str(tmp_path / "out")},
        "axes": {"dataset.categories": ["brick", "grass"], "method.d": [10, 20]},
        "seeds": [0, 1],
        "variants": [{"name": "rd", "set": {"method.reduction": "random"}},
                     {"name": "pca", "set": {"method.reduction": "pca"}}],
    }, sort_keys=False))
    plan = plan_sweep(sweep, dry_run=True)
    # 2 variants x 2 d x 2 seeds = 8 runs, x 2 categories = 16 jobs (categories are not runs)
    assert len(plan.runs) == 8 and len(plan.jobs) == 16
    assert [r.run_name for r in plan.runs][:4] == ["rd_d10_seed0", "rd_d10_seed1", "rd_d20_seed0", "rd_d20_seed1"]
    assert plan.jobs[0].id == "rd_d10_seed0/brick" and plan.jobs[1].id == "rd_d10_seed0/grass"
    assert plan.jobs[-1].id == "pca_d20_seed1/grass"
    assert plan.out == tmp_path / "out"
    for j in plan.jobs:
        assert j.folder.parent == tmp_path / "out"  # inside the sweep folder
        assert j.config.dataset.categories == [j.category]
        assert j.config.run_hash() == j.run.config.run_hash()  # a run's jobs share its folder and hash
        assert j.run.config.dataset.categories == ["brick", "grass"]
        assert j.config.method.params.d == j.run.values["method.d"]
        assert j.config.method.seed == j.run.values["method.seed"]
        assert (j.status, j.counts, j.n_train) == ("todo", "scanned", 6)
    assert len({j.run.config.run_hash() for j in plan.jobs}) == 8

    # a variant with its own base config: another method in the same sweep
    doc = yaml.safe_load(sweep.read_text())
    doc["variants"].append({"name": "spade", "extends": "spade.yaml"})
    doc["axes"] = {"dataset.categories": ["brick"]}
    sweep.write_text(yaml.safe_dump(doc))
    runs = expand_experiments(sweep)
    assert [r.run_name for r in runs] == ["rd_seed0", "rd_seed1", "pca_seed0", "pca_seed1", "spade_seed0", "spade_seed1"]
    assert runs[-1].config.method.name == "spade" and runs[-1].config.method.params.k == 3
    assert runs[-1].config.dataset.root == str(demo_root)  # the sweep file's sections apply to it too


def test_axis_labels_and_bad_sweep_files(tmp_path):
    assert axis_label("method.seed", 3) == "seed3"
    assert axis_label("method.d", None) == "d-null"
    assert axis_label("method.backbone", "wide_resnet50_2") == "backbone-wide_resnet50_2"
    assert axis_label("method.layers", ["layer1", "layer2"]) == "layers-layer1+layer2"
    assert axis_label("dataset.interpolation", "a/../b c") == "interpolation-a-..-b-c"
    assert axis_label("method.epsilon", -0.5) == "epsilonm0.5"
    bad = tmp_path / "bad.yaml"
    for doc, match in [
        ({"variants": [{"name": "../up"}]}, "names a folder"),
        ({"axes": {"method.d": []}}, "non-empty lists"),
        ({"axes": {"output.dir": ["a", "b"]}}, "output folder follow"),
        ({"axes": {"method.seed": [1]}, "seeds": [0]}, "give the seeds once"),
        ({"axes": {"method.backbone": ["resnet18", "resnet18 "]}}, "share the folder"),
        ({"variants": [{"name": "a", "extends": "missing.yaml"}]}, "not found"),
        ({"axes": {"evaluation.sigma": [1.0, 1]}}, "'base_sigma1.0' and 'base_sigma1' are the same experiment"),
        ({"extends": "bad.yaml"}, "bad.yaml: extends itself"),
        ({"variants": [], "seeds": [0]}, "variants is empty"),
    ]:
        bad.write_text(yaml.safe_dump(doc))
        with pytest.raises(ConfigError, match=match):
            load_experiments(bad)


def test_paper_table_files_are_sweeps_that_resume_the_committed_runs():
    """The committed runs are finished for this config and data; they were made before records
    carried their code (or by an earlier version of it), so by default they count as other code
    (recomputed), and with ``reuse_results`` they are reused."""
    plan = plan_sweep("configs/paper/table1.yaml", dry_run=True, reuse_results=True)
    assert plan.out == Path("results/paper/table1")
    if Path("../shared/data/mvtec_ad/bottle").is_dir():  # the categories there; the committed runs are finished
        assert [j.id for j in plan.jobs][:2] == ["layer1/bottle", "layer1/grid"] and len(plan.jobs) == 10
        assert all(j.status == "finished" for j in plan.jobs), [(j.id, j.reason) for j in plan.jobs]
        again = plan_sweep("configs/paper/table1.yaml", dry_run=True)
        assert all(j.status == "todo" and "category record made by" in j.reason for j in again.jobs), \
            [j.reason for j in again.jobs]
    else:  # no data here: a dry run assumes MVTec AD's 15 categories for each of the 5 runs, and says so
        assert len(plan.jobs) == 75 and any("15 MVTec AD categories assumed" in n for n in plan.notes)


# -------------------------------------------------------------------------------- dry run
def test_dry_run_lists_jobs_memory_and_status(tmp_path, demo_root):
    sweep = small_sweep(tmp_path / "s.yaml", demo_root, tmp_path / "out")
    res = cli.invoke(app, ["sweep", str(sweep), "--dry-run"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    for job in ("base_seed0/brick", "base_seed0/gravel", "base_seed1/brick", "base_seed1/gravel"):
        assert job in res.output
    assert "memory GB" in res.output and "GB = 1e9 bytes" in res.output
    assert "4 jobs: 0 finished (skipped), 4 to run" in res.output
    assert not (tmp_path / "out").exists()  # a dry run writes nothing


def test_dry_run_says_a_missing_category_will_fail_when_the_data_root_is_here(tmp_path, demo_root):
    """With the data root present, a category that is not there is an error the run will hit, not
    a category 'not scanned here' with assumed image counts."""
    sweep = tmp_path / "s.yaml"
    small_sweep(sweep, demo_root, tmp_path / "out")
    doc = yaml.safe_load(sweep.read_text())
    doc["dataset"]["categories"] = ["brick", "nosuchcat"]
    sweep.write_text(yaml.safe_dump(doc))
    res = cli.invoke(app, ["sweep", str(sweep), "--dry-run"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "fails: data" in res.output and "will fail before starting (2 job(s)" in res.output
    assert "nosuchcat not found under" in res.output and "not scanned here (counts from" not in res.output


def test_mvtec_all_dry_run_covers_tables_3_5_7_8_without_the_data(tmp_path):
    res = cli.invoke(app, ["sweep", "configs/paper/mvtec_all.yaml", "--dry-run", "--data-root", str(tmp_path / "none")],
                     env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "75 jobs" in res.output and "not found" in res.output
    plan = plan_sweep("configs/paper/mvtec_all.yaml", dry_run=True, data_root=str(tmp_path / "none"))
    assert len(plan.jobs) == 75 and {j.category for j in plan.jobs} == set(MVTEC_COUNTS)
    assert all(j.counts == "MVTec AD paper" and j.memory_bytes > GB for j in plan.jobs)
    records = [{"config": r.config.to_dict()} for r in plan.runs]
    for table in ("3", "5", "7", "8"):  # every paper row with a measurable method has a run
        from padim_bench import reference

        wanted = {c.row for c in reference.cells(table)} - {"cavga_ru"}
        have = {tables.row_for(table, rec) for rec in records}
        assert wanted <= have, (table, wanted - have)


# ------------------------------------------------------------------------------ scheduling
@dataclasses.dataclass
class FakeJob:
    id: str
    memory_bytes: int
    needs_gpu: bool = False


def simulate(jobs, scheduler, durations):
    """Run ``drive`` against a fake clock: each job ends ``durations[id]`` after it starts."""
    clock, running, log, peak = [0.0], {}, [], [0, 0]

    def submit(job):
        running[job.id] = (clock[0] + durations[job.id], job)
        log.append(("start", clock[0], job.id, sorted(running)))
        peak[0] = max(peak[0], sum(j.memory_bytes for _, j in running.values()))
        peak[1] = max(peak[1], len(running))
        return job.id

    def wait_any(handles):
        end = min(running[h][0] for h in handles)
        clock[0] = end
        done = [h for h in handles if running[h][0] == end]
        return [(h, {"status": "done"}) for h in done if running.pop(h)]

    finished = []
    drive(jobs, scheduler, submit, wait_any, lambda j: None, lambda j, r: finished.append(j.id))
    return log, peak, finished


def test_two_15gb_jobs_never_run_together_on_24gb():
    big = [FakeJob("wr50/a", 15 * GB), FakeJob("wr50/b", 15 * GB)]
    small = [FakeJob(f"r18/{i}", 2 * GB) for i in range(4)]
    scheduler = MemoryScheduler(budget_bytes=24 * GB, slots=4)
    log, peak, finished = simulate(big + small, scheduler, {j.id: 10.0 for j in big + small})
    assert sorted(finished) == sorted(j.id for j in big + small)
    for _, _, _, running in log:
        assert not {"wr50/a", "wr50/b"} <= set(running)
    assert peak[0] <= 24 * GB and peak[1] <= 4
    assert log[0][2] == "wr50/a"  # largest first; small ones fill the remaining 9 GB beside it
    assert [e[2] for e in log if e[1] == 0.0] == ["wr50/a", "r18/0", "r18/1", "r18/2"]


def test_scheduler_slots_gpus_and_oversized_jobs():
    s = MemoryScheduler(budget_bytes=10 * GB, slots=2, gpu_slots=1)
    a, b, c = FakeJob("a", 1 * GB), FakeJob("b", 1 * GB), FakeJob("c", 1 * GB)
    assert s.pick([c], [a, b]) is None  # both slots taken
    g1, g2 = FakeJob("g1", GB, True), FakeJob("g2", GB, True)
    assert s.pick([g2, c], [g1]) is c  # one job per GPU: the CPU job goes first
    huge = FakeJob("huge", 30 * GB)
    assert s.pick([huge], []) is None and not s.fits_alone(huge)
    assert s.pick([huge], [], alone_ok={"huge"}) is huge  # --allow-oversize: alone
    assert s.pick([huge], [a], alone_ok={"huge"}) is None


def test_memory_prediction_is_above_the_measured_peak_of_committed_runs():
    """Calibration check on the committed baseline (a fresh process, one category, CPU)."""
    path = Path("results/baselines/padim_effl0_bottle/results.json")
    rec = json.loads(path.read_text())
    from padim_bench.config import config_from_dict

    cfg = config_from_dict({k: v for k, v in rec["config"].items() if k != "name"})
    cat = rec["categories"][0]
    est = predict_memory(cfg, cat["n_train"], cat["n_test"])
    measured = max(cat["memory"]["fit_peak_rss_bytes"], cat["memory"].get("score_peak_rss_bytes") or 0)
    assert measured <= est.total <= 1.35 * measured, (measured / GB, est.gb, est.parts)
    # WR50-Rd550's fit peak measured in results/bench/padim_cpu.md: 5.50-5.61 GB (workers 0, batch 16)
    wr50 = dataclasses.replace(load_experiments("configs/mvtec_wr50.yaml")[0],
                               runtime=dataclasses.replace(cfg.runtime, workers=0, batch_size=16))
    assert 5.61 * GB <= predict_memory(wr50, 209, 83).total <= 1.35 * 5.50 * GB


# ------------------------------------------------------------------- failures and skipping
def test_a_failing_job_is_recorded_and_the_others_finish(tmp_path, demo_root):
    data = tmp_path / "data"
    make_demo_dataset(data, n_train=6, n_test_good=3, n_test_defect=4, size=64)
    for extra in list((data / "grass" / "train" / "good").iterdir())[1:]:
        extra.unlink()  # one training image: PaDiM cannot estimate a covariance (fails in the worker)
    sweep = small_sweep(tmp_path / "s.yaml", data, tmp_path / "out", seeds=[0])
    doc = yaml.safe_load(sweep.read_text())
    doc["dataset"]["categories"] = ["brick", "grass", "nothere"]  # nothere: refused before it starts
    sweep.write_text(yaml.safe_dump(doc))
    res = cli.invoke(app, ["sweep", str(sweep), "--quiet", "--threads", "1"])
    assert res.exit_code == 1, res.output
    assert "FAILED base_seed0/grass" in res.output and "FAILED base_seed0/nothere" in res.output
    assert "1 done, 2 failed" in res.output
    err = json.loads((tmp_path / "out" / "_errors" / "base_seed0__grass.json").read_text())
    assert err["error_type"] == "PadimBenchError" and "at least 2 training images" in err["message"]
    assert "Traceback" in err["traceback"] and err["category"] == "grass"
    missing = json.loads((tmp_path / "out" / "_errors" / "base_seed0__nothere.json").read_text())
    assert "nothere not found" in missing["message"]
    index = json.loads((tmp_path / "out" / "sweep.json").read_text())
    assert {j["id"]: j["status"] for j in index["jobs"]} == {
        "base_seed0/brick": "done", "base_seed0/grass": "failed", "base_seed0/nothere": "failed"}
    results = json.loads((tmp_path / "out" / "base_seed0" / "results.json").read_text())
    assert [c["category"] for c in results["categories"]] == ["brick"]


# --------------------------------------------------------------------------- acceptance
def _numbers(folder: Path) -> dict[tuple[str, str], tuple]:
    """(run, category) -> (metrics, image scores) of every category record below ``folder``."""
    out = {}
    for p in sorted(folder.glob("*/categories/*.json")):
        rec = json.loads(p.read_text())
        out[(p.parent.parent.name, rec["category"])] = (rec["metrics"], rec["image_scores"])
    return out


@pytest.fixture(scope="module")
def alone(tmp_path_factory, demo_root):
    """Every job of the small sweep run alone with ``runner.run`` in this process (1 thread)."""
    tmp = tmp_path_factory.mktemp("alone")
    plan = plan_sweep(small_sweep(tmp / "s.yaml", demo_root, tmp / "plan"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for j in plan.jobs:
            cfg = dataclasses.replace(j.config, output=dataclasses.replace(j.config.output, dir=str(tmp / "ref" / j.run.run_name)))
            run_alone(cfg, show_progress=False)
    finally:
        torch.set_num_threads(threads)
    return _numbers(tmp / "ref")


@pytest.mark.slow
def test_local_sweep_equals_each_job_alone_and_rerun_skips_everything(tmp_path, demo_root, alone):
    sweep = small_sweep(tmp_path / "s.yaml", demo_root, tmp_path / "out")
    plan = plan_sweep(sweep)
    assert [j.status for j in plan.jobs] == ["todo"] * 4
    result = run_sweep(plan, executor="local", threads=1, show_progress=False)
    assert result.ok and sorted(result.done) == sorted(j.id for j in plan.jobs)
    assert result.executor["slots"] == min(2, os.cpu_count() or 1) or result.executor["slots"] >= 1
    got = _numbers(tmp_path / "out")
    assert len(alone) == 4 and got == alone  # exactly the same metrics and image scores
    for run in ("base_seed0", "base_seed1"):  # each run folder covers both categories, as `run` writes it
        rec = json.loads((tmp_path / "out" / run / "results.json").read_text())
        assert [c["category"] for c in rec["categories"]] == ["brick", "gravel"]
        assert rec["config"]["dataset"]["categories"] == ["brick", "gravel"]
    records = read_results([tmp_path / "out"])  # the tables read the sweep folder
    assert len(records) == 2 and all(len(r["categories"]) == 2 for r in records)
    res = cli.invoke(app, ["table", "3", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output

    again = plan_sweep(sweep)  # a re-run schedules nothing
    assert [j.status for j in again.jobs] == ["finished"] * 4
    stale = again.error_file(again.jobs[0])  # a failure recorded before the job finished elsewhere
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_text("{}")
    submitted = []
    import padim_bench.sweep.execute as ex

    original = ex.LocalBackend.submit
    ex.LocalBackend.submit = lambda self, job: submitted.append(job) or original(self, job)
    try:
        result = run_sweep(again, executor="local", show_progress=False)
    finally:
        ex.LocalBackend.submit = original
    assert submitted == [] and result.done == [] and len(result.skipped) == 4
    assert not stale.exists()
    res = cli.invoke(app, ["sweep", str(sweep), "--quiet"])
    assert res.exit_code == 0 and "0 done, 0 failed, 4 already finished" in res.output


@pytest.mark.slow
def test_ray_sweep_equals_each_job_alone(tmp_path, demo_root, alone):
    ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'padim-bench[ray]'")
    sweep = small_sweep(tmp_path / "s.yaml", demo_root, tmp_path / "out")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        result = run_sweep(plan_sweep(sweep), executor="ray", threads=1, show_progress=False)
    finally:
        ray.shutdown()
    assert result.ok, result.failed
    assert result.executor["executor"] == "ray" and result.executor["nodes"] == 1
    assert _numbers(tmp_path / "out") == alone
    index = json.loads((tmp_path / "out" / "sweep.json").read_text())
    assert all(j["status"] == "done" and j["peak_rss_bytes"] > 0 for j in index["jobs"])


def test_ray_missing_is_a_clear_error(tmp_path, demo_root, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray":
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    sweep = small_sweep(tmp_path / "s.yaml", demo_root, tmp_path / "out")
    res = cli.invoke(app, ["sweep", str(sweep), "--executor", "ray", "--quiet"])
    assert res.exit_code == 2 and "pip install 'padim-bench[ray]'" in res.output


def test_empty_seeds_list_is_a_clear_error(tmp_path):
    """``seeds: []`` would expand into no run at all: refused with the file named."""
    from padim_bench.config import load_experiments
    from padim_bench.errors import ConfigError

    f = tmp_path / "s.yaml"
    f.write_text("extends: " + str(Path("configs/mvtec_effl0.yaml").resolve()) + "\nseeds: []\n")
    with pytest.raises(ConfigError, match="seeds must be a non-empty list"):
        load_experiments(f)


def test_ray_dry_run_does_not_print_the_local_plan(tmp_path, demo_root):
    sweep = small_sweep(tmp_path / "s.yaml", demo_root, tmp_path / "out")
    res = cli.invoke(app, ["sweep", str(sweep), "--dry-run", "--executor", "ray"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "executor ray: not contacted" in res.output and "local executor here" not in res.output


def test_job_peak_memory_keeps_the_measured_span_peaks():
    """ru_maxrss is reset with the high-water mark at each measured span, so a job's reported peak
    is at least the largest span peak its record holds."""
    import resource

    from padim_bench.sweep.worker import _peak_rss_bytes

    now = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    assert _peak_rss_bytes() >= now > 0
    spans = {"fit_peak_rss_bytes": 10**15, "infer_peak_rss_bytes": 5, "fit_peak_cuda_bytes": 10**16}
    assert _peak_rss_bytes(spans) == 10**15
