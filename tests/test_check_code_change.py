"""Results carry the code that made them, and a resumed run of other code recomputes: the code
identity (version + source hash; git commit and dirty flag), the resume rule and
``--reuse-results``, the labels of dirty or mixed code, and the acceptance test: a deliberate code
change makes a resumed CI-style run recompute and ``check --direction drop`` fail, while the
unchanged code passes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import padim_bench
from padim_bench import envinfo
from padim_bench.cli import app
from padim_bench.store.code import code_note

runner = CliRunner()
PACKAGE = Path(padim_bench.__file__).resolve().parent


def copy_package(dest: Path) -> Path:
    """A copy of the padim_bench sources at ``dest/padim_bench`` (no caches); returns it."""
    return Path(shutil.copytree(PACKAGE, dest / "padim_bench", ignore=shutil.ignore_patterns("__pycache__")))


def write_config(path: Path, data: Path, out: Path) -> Path:
    cfg = {
        "dataset": {"root": str(data), "categories": ["brick", "gravel"], "resize": 64, "crop": 56},
        "method": {"name": "padim", "backbone": "resnet18", "weights": "random", "d": 20},
        "runtime": {"device": "cpu", "batch_size": 4, "workers": 0, "timing_images": 1, "warmup_images": 0},
        "output": {"dir": str(out)},
    }
    path.write_text(yaml.safe_dump(cfg))
    return path


# ------------------------------------------------------------------------------ the identity
def test_source_hash_follows_the_sources_not_the_location(tmp_path):
    copy = copy_package(tmp_path / "a")
    assert envinfo.source_hash(copy) == envinfo.source_hash(PACKAGE)  # same files elsewhere: same code
    assert envinfo.git_state(copy) == (None, None)  # not a git checkout: no commit, no dirty flag, no error
    (copy / "notes.txt").write_text("not code")
    assert envinfo.source_hash(copy) == envinfo.source_hash(PACKAGE)
    before = envinfo.source_hash(copy)
    base = copy / "methods" / "base.py"
    base.write_text(base.read_text() + "\n# an edit\n")
    assert envinfo.source_hash(copy) != before
    ident = envinfo.code_identity(copy)
    assert ident["key"] == f"{ident['version']}+{ident['source_sha256']}" and ident["git_commit"] is None


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_git_commit_and_dirty_flag_of_the_package_sources(tmp_path):
    repo = tmp_path / "repo"
    copy = copy_package(repo)
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    assert envinfo.git_state(copy) == (head, False)
    (repo / "README.txt").write_text("outside the package")  # a results or docs change is not a code change
    (copy / "notes.txt").write_text("not a source file")
    assert envinfo.git_state(copy) == (head, False)
    (copy / "extra.py").write_text("X = 1\n")  # an untracked module is
    assert envinfo.git_state(copy) == (head, True)
    (copy / "extra.py").unlink()
    (copy / "metrics.py").write_text((copy / "metrics.py").read_text() + "\n")
    assert envinfo.git_state(copy) == (head, True)
    ident = envinfo.code_identity(copy)
    assert ident["git_commit"] == head and ident["dirty"] is True


def test_dirty_and_mixed_code_are_labelled():
    code = {"key": "0.1.0+abc", "version": "0.1.0", "source_sha256": "abc", "git_commit": "1234567890", "dirty": True}
    rec = {"environment": {"code": code}, "code": {"same": True, "dirty": True, "categories": {"bottle": "0.1.0+abc"}}}
    assert "UNCOMMITTED" in code_note(rec) and "git 1234567" in code_note(rec)
    mixed = {"environment": {"code": {**code, "dirty": False}},
             "code": {"same": False, "dirty": False, "categories": {"bottle": "0.1.0+abc", "grid": None}}}
    assert "2 different code versions (0.1.0+abc, unknown" in code_note(mixed)
    assert code_note({"environment": {}}) is None  # a record from before the code identity: no label


# ------------------------------------------------------------------------------ resume
def test_resume_recomputes_categories_of_other_code_unless_reuse_results(tmp_path, demo_data):
    out = tmp_path / "out"
    cfg = write_config(tmp_path / "c.yaml", demo_data, out)
    assert runner.invoke(app, ["run", str(cfg), "--quiet"]).exit_code == 0
    record = json.loads((out / "results.json").read_text())
    me = envinfo.code_identity()
    assert record["environment"]["code"]["key"] == me["key"]
    assert record["code"] == {"same": True, "dirty": bool(me["dirty"]),
                              "categories": {"brick": me["key"], "gravel": me["key"]}}
    flat = (out / "results_flat.csv").read_text().splitlines()
    assert flat[0].startswith("run,row,kind,n_categories,method") and len(flat) == 1 + 2 + 1  # 2 categories, all
    assert all(me["key"] in line for line in flat[1:])

    # a record without the field (as the committed ones) or of other code is recomputed ...
    brick = out / "categories" / "brick.json"
    old = json.loads(brick.read_text())
    del old["environment"]["code"]
    brick.write_text(json.dumps(old))
    gravel = out / "categories" / "gravel.json"
    other = json.loads(gravel.read_text())
    other["environment"]["code"] = {**me, "key": "0.0.1+0123456789abcdef", "source_sha256": "0123456789abcdef"}
    gravel.write_text(json.dumps(other))
    kept = gravel.read_bytes()
    res = runner.invoke(app, ["run", str(cfg), "--quiet", "--categories", "brick"], env={"COLUMNS": None})
    assert res.exit_code == 0, res.output
    assert "unknown code" in res.output and "recomputing" in res.output and "already done" not in res.output
    assert json.loads(brick.read_text())["environment"]["code"]["key"] == me["key"]
    # ... while gravel (not asked for) is kept in the results, which say the code differs
    record = json.loads((out / "results.json").read_text())
    assert record["code"]["same"] is False and record["code"]["categories"]["gravel"] == "0.0.1+0123456789abcdef"
    assert "different code versions" in (out / "results.md").read_text()
    # --reuse-results keeps the old behaviour: a category of other code is skipped
    res = runner.invoke(app, ["run", str(cfg), "--quiet", "--reuse-results"])
    assert res.exit_code == 0 and res.output.count("already done") == 2
    assert gravel.read_bytes() == kept
    # without it, gravel is recomputed too and the run is one code's again
    res = runner.invoke(app, ["run", str(cfg), "--quiet"], env={"COLUMNS": None})
    assert res.exit_code == 0 and res.output.count("already done") == 1
    assert "gravel.json was made by padim-bench 0.1.0, source 0123456789abcdef" in res.output
    assert json.loads((out / "results.json").read_text())["code"]["same"] is True


def test_a_run_of_uncommitted_code_says_so(tmp_path, demo_data, monkeypatch):
    dirty = {"key": "0.1.0+feedfacefeedface", "version": "0.1.0", "source_sha256": "feedfacefeedface",
             "git_commit": "abcdef0123456789", "dirty": True}
    monkeypatch.setattr(envinfo, "code_identity", lambda root=None: dict(dirty))
    monkeypatch.setattr("padim_bench.runner.code_identity", lambda root=None: dict(dirty))
    out = tmp_path / "out"
    res = runner.invoke(app, ["run", str(write_config(tmp_path / "c.yaml", demo_data, out)), "--quiet",
                              "--categories", "brick"], env={"COLUMNS": None})
    assert res.exit_code == 0, res.output
    record = json.loads((out / "results.json").read_text())
    assert record["environment"]["code"]["dirty"] is True and record["code"]["dirty"] is True
    assert record["environment"]["git_commit"] == "abcdef0123456789+dirty"
    assert "UNCOMMITTED changes" in res.output and "UNCOMMITTED changes" in (out / "results.md").read_text()


def test_sweep_plan_recomputes_jobs_of_other_code(tmp_path, demo_data):
    from padim_bench.sweep.plan import plan_sweep

    out = tmp_path / "out"
    cfg = write_config(tmp_path / "c.yaml", demo_data, out)
    assert runner.invoke(app, ["run", str(cfg), "--quiet"]).exit_code == 0
    assert [j.status for j in plan_sweep(cfg).jobs] == ["finished", "finished"]
    brick = out / "categories" / "brick.json"
    rec = json.loads(brick.read_text())
    rec["environment"]["code"]["key"] = "0.0.1+0123456789abcdef"
    brick.write_text(json.dumps(rec))
    jobs = plan_sweep(cfg).jobs
    assert [j.status for j in jobs] == ["todo", "finished"] and "made by padim-bench" in jobs[0].reason
    assert [j.status for j in plan_sweep(cfg, reuse_results=True).jobs] == ["finished", "finished"]
    res = runner.invoke(app, ["sweep", str(cfg), "--dry-run", "--reuse-results"], env={"COLUMNS": None})
    assert res.exit_code == 0 and "2 finished (skipped), 0 to run" in res.output


# ------------------------------------------------------------------------------ acceptance
def cli(code: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``padim-bench ARGS`` in a fresh process importing the package copy under ``code``."""
    env = {**os.environ, "PYTHONPATH": str(code), "COLUMNS": "250"}
    return subprocess.run([sys.executable, "-m", "padim_bench.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.slow
def test_a_code_change_makes_a_resumed_ci_run_recompute_and_check_fail(tmp_path, demo_data):
    """CI as docs/ci.md runs it, but into a folder that already holds results: code A (these
    sources) makes the run, which is also taken as the baseline; code A again resumes (nothing
    recomputed) and passes ``check --direction drop``; code B, the same sources with the map
    smoothing's sigma multiplied by 12 inside the methods' post-processing (a deliberate regression
    the config does not show), recomputes the resumed run, and ``check`` fails on the pixel
    ROC-AUC. (``--reuse-results``, which would keep the old numbers, is tested in-process above.)"""
    code_a, code_b = tmp_path / "code_a", tmp_path / "code_b"
    copy_package(code_a)
    base_py = copy_package(code_b) / "methods" / "base.py"
    src = base_py.read_text()
    assert src.count("    if sigma > 0:\n") == 1
    base_py.write_text(src.replace("    if sigma > 0:\n", "    sigma = 12 * sigma  # deliberate regression\n    if sigma > 0:\n"))
    cfg = write_config(tmp_path / "ci.yaml", demo_data, tmp_path / "unused")
    doc = yaml.safe_load(cfg.read_text())
    doc["method"].update(backbone="efficientnet_lite0", weights="imagenet")  # the real weights: meaningful numbers
    cfg.write_text(yaml.safe_dump(doc))
    junit = tmp_path / "check.xml"

    def run(code: Path) -> subprocess.CompletedProcess:
        res = cli(code, "run", str(cfg), "--out", "ci", "--quiet", cwd=tmp_path)
        assert res.returncode == 0, res.stderr[-3000:]
        return res

    def check(code: Path) -> subprocess.CompletedProcess:
        return cli(code, "check", "ci", "--against", "baseline", "--direction", "drop", "--junit", str(junit),
                   cwd=tmp_path)

    assert "already done" not in run(code_a).stderr
    shutil.copytree(tmp_path / "ci", tmp_path / "baseline")  # the committed baseline of a project
    again = run(code_a)  # resumed by the same code: nothing recomputed
    assert again.stderr.count("already done") == 2 and "unchanged" in again.stderr
    res = check(code_a)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "<failure" not in junit.read_text()
    changed = run(code_b)  # other code: the resumed run is recomputed
    assert changed.stderr.count("recomputing (--reuse-results keeps it)") == 2 and "already done" not in changed.stderr
    res = check(code_b)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "MOVED: brick pixel_roc_auc" in res.stderr and "MOVED: gravel pixel_roc_auc" in res.stderr
    assert 'type="MOVED"' in junit.read_text()
    ci, base = (json.loads((tmp_path / f / "results.json").read_text()) for f in ("ci", "baseline"))
    assert ci["environment"]["code"]["source_sha256"] != base["environment"]["code"]["source_sha256"]
    for a, b in zip(base["categories"], ci["categories"]):  # the smoothing change lowered the pixel ROC-AUC
        assert b["metrics"]["pixel_roc_auc"] < a["metrics"]["pixel_roc_auc"] - 0.001
