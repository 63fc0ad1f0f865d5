"""End-to-end: the ``padim-bench`` CLI on a tiny generated dataset (random ResNet18, 64 px)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from padim_bench.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def tiny_data(demo_data) -> Path:
    """The session's synthetic MVTec-layout data (conftest ``demo_data``)."""
    return demo_data


def write_config(path: Path, data: Path, out: Path, **method) -> Path:
    cfg = {
        "dataset": {"root": str(data), "categories": ["brick", "gravel"], "resize": 64, "crop": 56,
                    "texture_categories": ["brick"]},
        "method": {"name": "padim", "backbone": "resnet18", "weights": "random", "d": 20, **method},
        "runtime": {"device": "cpu", "batch_size": 4, "workers": 0, "timing_images": 2, "warmup_images": 1},
        "output": {"dir": str(out)},
    }
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_run_writes_labelled_results_and_resumes(tmp_path, tiny_data):
    out = tmp_path / "out"
    cfg = write_config(tmp_path / "c.yaml", tiny_data, out)
    res = runner.invoke(app, ["run", str(cfg), "--quiet"])
    assert res.exit_code == 0, res.output
    record = json.loads((out / "results.json").read_text())
    assert [c["category"] for c in record["categories"]] == ["brick", "gravel"]
    brick = record["categories"][0]
    assert brick["n_train"] == 6 and brick["n_test"] == 7 and brick["n_test_anomalous"] == 4
    assert brick["kind"] == "texture" and record["categories"][1]["kind"] == "object"
    for c in record["categories"]:
        for v in c["metrics"].values():
            assert 0.0 <= v <= 1.0
        assert c["time"]["fit_s"] > 0 and c["time"]["infer_s_per_image"] > 0
        assert c["memory"]["fit_peak_rss_bytes"] > 0
        # mean + covariance + every resnet18 parameter (11,689,512), float32, 14x14 grid, d = 20
        assert c["memory"]["state_bytes"] == {"mean": 196 * 20 * 4, "cov": 196 * 400 * 4, "backbone": 11_689_512 * 4}
        assert c["memory"]["predicted_state_bytes"] == c["memory"]["state_bytes"]  # predicted before fitting
    assert record["backbone"]["weights"] == "random"
    assert "RANDOM" in (out / "results.md").read_text()
    assert ",random," in (out / "results.csv").read_text()
    assert "RANDOM" in res.output
    assert record["synthetic_data"]["marker"] == ".padim_bench_demo.json"  # the demo generator's data
    assert "SYNTHETIC data" in (out / "results.md").read_text() and "synthetic data:" in res.output
    assert record["config"]["dataset"]["categories"] == ["brick", "gravel"]
    # same command again: resumes, both categories skipped, same numbers; nothing is rewritten
    files = {p: p.read_bytes() for p in (out / "results.json", out / "results.md", out / "run.json")}
    res2 = runner.invoke(app, ["run", str(cfg), "--quiet"])
    assert res2.exit_code == 0, res2.output
    assert res2.output.count("already done") == 2 and "unchanged" in res2.output
    assert all(p.read_bytes() == b for p, b in files.items())
    (out / "results.md").unlink()  # a deleted table is written again, even with nothing to compute
    assert runner.invoke(app, ["run", str(cfg), "--quiet"]).exit_code == 0
    assert (out / "results.md").read_bytes() == files[out / "results.md"]
    files[out / "results.json"] = (out / "results.json").read_bytes()
    # one category asked for: skipped too; the folder's results still hold both, and say so
    res3 = runner.invoke(app, ["run", str(cfg), "--quiet", "--categories", "gravel"])
    assert res3.exit_code == 0 and res3.output.count("already done") == 1
    assert all(p.read_bytes() == b for p, b in files.items())


def test_results_config_lists_the_categories_the_results_hold(tmp_path, tiny_data):
    """Two invocations with different categories into one folder: results.json's config names both."""
    out = tmp_path / "out"
    cfg = write_config(tmp_path / "c.yaml", tiny_data, out)
    for cat in ("gravel", "brick"):
        assert runner.invoke(app, ["run", str(cfg), "--quiet", "--categories", cat]).exit_code == 0
    rec = json.loads((out / "results.json").read_text())
    assert [c["category"] for c in rec["categories"]] == ["brick", "gravel"]
    assert rec["config"]["dataset"]["categories"] == ["brick", "gravel"]


def test_same_seed_same_numbers(tmp_path, tiny_data):
    a = write_config(tmp_path / "a.yaml", tiny_data, tmp_path / "a")
    b = write_config(tmp_path / "b.yaml", tiny_data, tmp_path / "b")
    for cfg in (a, b):
        assert runner.invoke(app, ["run", str(cfg), "--quiet", "--categories", "brick"]).exit_code == 0
    ra = json.loads((tmp_path / "a" / "results.json").read_text())["categories"][0]
    rb = json.loads((tmp_path / "b" / "results.json").read_text())["categories"][0]
    assert ra["metrics"] == rb["metrics"] and ra["image_scores"] == rb["image_scores"]
    assert ra["model"]["channel_indices"] == rb["model"]["channel_indices"]


def test_another_config_never_overwrites_silently(tmp_path, tiny_data):
    out = tmp_path / "out"
    cfg = write_config(tmp_path / "c.yaml", tiny_data, out)
    assert runner.invoke(app, ["run", str(cfg), "--quiet", "--categories", "brick"]).exit_code == 0
    before = (out / "results.json").read_bytes()
    res = runner.invoke(app, ["run", str(cfg), "--quiet", "--categories", "brick", "--set", "method.d=10"])
    assert res.exit_code == 2
    assert "another configuration" in res.output and "--force" in res.output
    assert (out / "results.json").read_bytes() == before
    res = runner.invoke(app, ["run", str(cfg), "--quiet", "--categories", "brick", "--set", "method.d=10", "--force"])
    assert res.exit_code == 0, res.output
    assert json.loads((out / "results.json").read_text())["config"]["method"]["d"] == 10


def test_missing_weights_fail_at_once_with_file_and_folder(tmp_path, tiny_data, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    cfg = write_config(tmp_path / "c.yaml", tiny_data, tmp_path / "out", weights="imagenet")
    res = runner.invoke(app, ["run", str(cfg), "--quiet"])
    assert res.exit_code == 2
    assert "resnet18-f37072fd.pth" in res.output
    assert str(tmp_path / "torch_home") in res.output.replace("\n", "")
    assert not (tmp_path / "out" / "categories" / "brick.json").exists()


def test_config_errors_exit_2_naming_the_key(tmp_path, tiny_data):
    cfg = write_config(tmp_path / "c.yaml", tiny_data, tmp_path / "out")
    res = runner.invoke(app, ["run", str(cfg), "--set", "method.backbone=resnet19"])
    assert res.exit_code == 2 and "resnet18" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["run", str(cfg), "--set", "method.layers=[layer1, layer9]"])
    assert res.exit_code == 2 and "layer9" in res.output
    res = runner.invoke(app, ["run", str(cfg), "--set", "method.d=100000"])
    assert res.exit_code == 2 and "larger than the embedding" in res.output
    res = runner.invoke(app, ["run", str(cfg), "--data-root", str(tmp_path / "nowhere")])
    assert res.exit_code == 2 and "nowhere" in res.output


def test_validate_lists_counts(tmp_path, tiny_data):
    cfg = write_config(tmp_path / "c.yaml", tiny_data, tmp_path / "out")
    res = runner.invoke(app, ["validate", str(cfg)])
    assert res.exit_code == 0, res.output
    assert "brick: 6 train, 3 test good, 4 test defective" in res.output
    if not torch.cuda.is_available():  # validate refuses what run would refuse
        res = runner.invoke(app, ["validate", str(cfg), "--set", "runtime.device=cuda"])
        assert res.exit_code == 2 and "'cuda' requested but torch sees no CUDA device" in res.output


def test_validate_takes_weights_like_run(tmp_path, tiny_data, monkeypatch):
    """``validate --weights random`` checks a ResNet config without its ImageNet file (as ``run``
    does); without the option the missing checkpoint is reported."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no_weights_here"))
    cfg = write_config(tmp_path / "c.yaml", tiny_data, tmp_path / "out")
    res = runner.invoke(app, ["validate", str(cfg), "--set", "method.backbone=resnet18", "--weights", "random"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["validate", str(cfg), "--set", "method.backbone=resnet18", "--set", "method.weights=imagenet"])
    assert res.exit_code == 2 and "resnet18" in res.output


def test_forced_run_clears_the_other_runs_files_before_writing_its_run_file(tmp_path):
    """--force over a folder of another run: the old results go before the new run.json is
    written (an interrupted forced run must not leave the new run.json beside old results); the
    user's own files and a model cache inside the folder stay; the same run is left alone."""
    from padim_bench.config import config_from_dict
    from padim_bench.store import claim_run_folder

    out = tmp_path / "out"
    (out / "categories").mkdir(parents=True)
    (out / "models").mkdir()
    (out / "cache").mkdir()
    for name in ("results.json", "results.csv", "results.md", "categories/bottle.json", "models/bottle.pt",
                 "notes.txt", "cache/x.pt"):
        (out / name).write_text("old")
    (out / "run.json").write_text(json.dumps({"run_hash": "0ld0ld0ld0ld"}))

    def cfg(d, cache=None):
        return config_from_dict({"name": "t", "method": {"backbone": "resnet18", "d": d},
                                 "output": {"dir": str(out), "model_cache": cache}})

    same = cfg(10)
    (out / "run.json").write_text(json.dumps({"run_hash": same.run_hash()}))
    claim_run_folder(same, force=True)
    assert (out / "results.json").exists() and (out / "categories" / "bottle.json").exists()

    (out / "run.json").write_text(json.dumps({"run_hash": "0ld0ld0ld0ld"}))
    new = cfg(12, cache=str(out / "cache"))
    claim_run_folder(new, force=True)
    assert json.loads((out / "run.json").read_text())["run_hash"] == new.run_hash()
    for gone in ("results.json", "results.csv", "results.md", "categories/bottle.json", "models/bottle.pt"):
        assert not (out / gone).exists(), gone
    assert (out / "notes.txt").read_text() == "old" and (out / "cache" / "x.pt").read_text() == "old"


def test_categories_from_two_data_roots_keep_their_own_root_and_label(tmp_path, tiny_data):
    """One output folder, brick from the (generated) demo data, gravel from a copy without the
    generator's marker: each category records its own root; the run is labelled synthetic because
    one of its categories is, whichever invocation came last."""
    import shutil

    plain = tmp_path / "plain"
    shutil.copytree(tiny_data, plain)
    (plain / ".padim_bench_demo.json").unlink()
    out = tmp_path / "out"
    cfg = write_config(tmp_path / "c.yaml", tiny_data, out)
    assert runner.invoke(app, ["run", str(cfg), "--quiet", "--categories", "brick"]).exit_code == 0
    res = runner.invoke(app, ["run", str(cfg), "--quiet", "--categories", "gravel", "--data-root", str(plain)])
    assert res.exit_code == 0, res.output
    rec = json.loads((out / "results.json").read_text())
    roots = {c["category"]: c["dataset_root_resolved"] for c in rec["categories"]}
    assert roots == {"brick": str(tiny_data.resolve()), "gravel": str(plain.resolve())}
    assert rec["categories"][0]["synthetic_data"]["marker"] == ".padim_bench_demo.json"
    assert "synthetic_data" not in rec["categories"][1] and rec["synthetic_data"]["marker"] == ".padim_bench_demo.json"
