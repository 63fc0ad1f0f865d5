"""Bad input and interrupted runs, end to end through the runner (random ResNet18, 64 px images)."""

from __future__ import annotations

import json
import shutil

import pytest
from PIL import Image

from padim_bench import runner
from padim_bench.config import config_from_dict
from padim_bench.errors import ConfigError, DataError
from padim_bench.store import atomic_write_json


def make_cfg(root, out, categories="all", **sections):
    data = {
        "dataset": {"root": str(root), "categories": categories, "resize": 64, "crop": 56},
        "method": {"name": "padim", "backbone": "resnet18", "weights": "random", "d": 16},
        "runtime": {"device": "cpu", "batch_size": 4, "workers": 0, "timing_images": 1, "warmup_images": 0},
        "output": {"dir": str(out)},
    }
    for key, extra in sections.items():
        data[key].update(extra)
    return config_from_dict(data)


def test_truncated_image_is_named_before_the_backbone_loads(make_mvtec, tmp_path, monkeypatch):
    ds = make_mvtec(n_train=5, n_test_good=2, defects={"spot": 2})
    bad = ds.path / "train" / "good" / "003.png"
    bad.write_bytes(bad.read_bytes()[: len(bad.read_bytes()) // 2])
    monkeypatch.setattr(runner, "build_method", lambda *a, **k: pytest.fail("backbone loaded"))
    with pytest.raises(DataError, match="003.png"):
        runner.run(make_cfg(ds.root, tmp_path / "out"), show_progress=False)
    assert not (tmp_path / "out").exists()


def test_unreadable_files_can_be_skipped_and_are_counted(make_mvtec, tmp_path):
    ds = make_mvtec(n_train=5, n_test_good=2, defects={"spot": 2})
    (ds.path / "train" / "good" / "001.png").write_text("not an image")
    cfg = make_cfg(ds.root, tmp_path / "out", dataset={"on_unreadable": "skip"})
    with pytest.warns(UserWarning, match="skipped 1 unreadable"):
        rec = runner.run(cfg, show_progress=False)
    (cat,) = rec["categories"]
    assert cat["n_train"] == 4
    assert len(cat["skipped_files"]) == 1 and "001.png" in cat["skipped_files"][0]


def test_an_unreadable_defective_test_image_gets_the_same_error_and_skip_as_any_file(make_mvtec, tmp_path):
    """A defective test image is paired with its mask by size while scanning; a garbage file there
    is left to the decoding check, which names it with the way out (or skips it)."""
    ds = make_mvtec(n_train=4, n_test_good=2, defects={"spot": 2})
    bad = sorted((ds.path / "test" / "spot").glob("*.png"))[0]
    bad.write_text("not an image")
    with pytest.raises(DataError, match=rf"1 unreadable file\(s\): {bad}.*dataset.on_unreadable: skip"):
        runner.run(make_cfg(ds.root, tmp_path / "out"), show_progress=False)
    with pytest.warns(UserWarning, match="skipped 1 unreadable"):
        rec = runner.run(make_cfg(ds.root, tmp_path / "out2", dataset={"on_unreadable": "skip"}), show_progress=False)
    assert rec["categories"][0]["n_test_anomalous"] == 1


def test_category_without_defects_reports_undefined_metrics(make_mvtec, tmp_path):
    ds = make_mvtec(n_train=4, n_test_good=3, defects={})
    with pytest.warns(UserWarning, match="image_roc_auc, pixel_roc_auc, pro undefined"):
        rec = runner.run(make_cfg(ds.root, tmp_path / "out"), show_progress=False)
    (cat,) = rec["categories"]
    assert cat["metrics"] == {"image_roc_auc": None, "pixel_roc_auc": None, "pro": None}
    assert "undefined" in (tmp_path / "out" / "results.md").read_text()


def test_category_with_only_defects_still_scores_pixels(make_mvtec, tmp_path):
    ds = make_mvtec(n_train=4, n_test_good=0, defects={"spot": 3})
    with pytest.warns(UserWarning, match="image_roc_auc undefined"):
        rec = runner.run(make_cfg(ds.root, tmp_path / "out"), show_progress=False)
    m = rec["categories"][0]["metrics"]
    assert m["image_roc_auc"] is None
    assert 0.0 <= m["pixel_roc_auc"] <= 1.0 and 0.0 <= m["pro"] <= 1.0


def test_grey_rgb_and_opaque_rgba_pngs_give_identical_scores(make_mvtec, tmp_path):
    ds = make_mvtec(n_train=4, n_test_good=2, defects={"spot": 2}, grey=True)
    scores = {}
    for mode in ("L", "RGB", "RGBA"):
        root = tmp_path / mode
        shutil.copytree(ds.root, root)
        for png in (root / ds.name).glob("*/*/*.png"):
            if "ground_truth" not in png.parts:
                Image.open(png).convert(mode).save(png)
        rec = runner.run(make_cfg(root, tmp_path / f"out_{mode}"), show_progress=False)
        scores[mode] = rec["categories"][0]["image_scores"]
    assert scores["L"] == scores["RGB"] == scores["RGBA"]


def test_d_larger_than_the_embedding_fails_before_any_file_is_read(tmp_path):
    cfg = make_cfg(tmp_path / "does_not_exist", tmp_path / "out", method={"d": 449})
    with pytest.raises(ConfigError, match=r"d = 449 is larger than the embedding \(448 channels"):
        runner.run(cfg, show_progress=False)


def test_interrupted_run_keeps_finished_categories_and_resumes(make_mvtec, tmp_path, monkeypatch):
    ds = make_mvtec(category="aaa", n_train=4, n_test_good=2, defects={"spot": 2})
    make_mvtec(root=ds.root, category="bbb", n_train=4, n_test_good=2, defects={"spot": 2})
    out = tmp_path / "out"
    real = runner.run_category
    calls = []

    def interrupt_second(cfg, method, split, *a, **k):
        calls.append(split.name)
        if split.name == "bbb":
            raise KeyboardInterrupt
        return real(cfg, method, split, *a, **k)

    monkeypatch.setattr(runner, "run_category", interrupt_second)
    with pytest.raises(KeyboardInterrupt):
        runner.run(make_cfg(ds.root, out), show_progress=False)
    assert json.loads((out / "categories" / "aaa.json").read_text())["category"] == "aaa"
    assert not (out / "categories" / "bbb.json").exists()
    monkeypatch.setattr(runner, "run_category", real)
    rec = runner.run(make_cfg(ds.root, out), show_progress=False)
    assert [c["category"] for c in rec["categories"]] == ["aaa", "bbb"]


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "results.json"
    atomic_write_json(path, {"ok": 1})
    with pytest.raises(ValueError):
        atomic_write_json(path, {"bad": float("nan")})  # NaN is refused before anything is replaced
    with pytest.raises(TypeError):
        atomic_write_json(path, {"bad": object()})
    assert json.loads(path.read_text()) == {"ok": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no temporary file left


def test_model_cache_reuses_the_fit_and_gives_the_same_scores(make_mvtec, tmp_path, monkeypatch):
    ds = make_mvtec(n_train=4, n_test_good=2, defects={"spot": 2})
    cache = tmp_path / "cache"
    first = runner.run(make_cfg(ds.root, tmp_path / "a", output={"model_cache": str(cache)}), show_progress=False)
    (cached,) = list(cache.glob("*/widget.pt"))
    assert cached.parent.name == first["config_hash"]
    from padim_bench.methods.padim import Padim

    monkeypatch.setattr(Padim, "fit", lambda *a, **k: pytest.fail("fitted again"))
    second = runner.run(make_cfg(ds.root, tmp_path / "b", output={"model_cache": str(cache)}), show_progress=False)
    a, b = first["categories"][0], second["categories"][0]
    assert a["image_scores"] == b["image_scores"]
    assert b["time"]["fit_from_cache"] == str(cached) and a["time"]["fit_from_cache"] is None
    assert b["time"]["fit_s"] == a["time"]["fit_s"]  # the figure measured when the fit was made


def test_duplicated_yaml_keys_are_an_error(tmp_path):
    from padim_bench.config import load_config

    p = tmp_path / "dup.yaml"
    p.write_text("method:\n  d: 20\n  d: 5\n")
    with pytest.raises(ConfigError, match="duplicated key 'd'"):
        load_config(p)


def test_two_test_images_with_two_warmup_images_are_still_timed(make_mvtec, tmp_path):
    ds = make_mvtec(n_train=3, n_test_good=1, defects={"spot": 1})
    rec = runner.run(make_cfg(ds.root, tmp_path / "out", runtime={"warmup_images": 2, "timing_images": 5}),
                     show_progress=False)
    t = rec["categories"][0]["time"]
    assert t["warmup_images"] == 1 and t["timing_images"] == 1 and t["infer_s_per_image"] > 0


def test_unwritable_output_folder_is_a_clear_error(make_mvtec, tmp_path):
    from padim_bench.errors import PadimBenchError

    ds = make_mvtec(n_train=3, n_test_good=1, defects={"spot": 1})
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(PadimBenchError, match="cannot write there"):
        runner.run(make_cfg(ds.root, blocker / "sub"), show_progress=False)


def test_damaged_category_record_is_recomputed_and_runtime_changes_are_not_resumed(make_mvtec, tmp_path, capsys):
    from padim_bench.errors import PadimBenchError
    from rich.console import Console

    ds = make_mvtec(n_train=3, n_test_good=1, defects={"spot": 1})
    out = tmp_path / "out"
    first = runner.run(make_cfg(ds.root, out), show_progress=False)
    (out / "categories" / "widget.json").write_text("{bad")
    again = runner.run(make_cfg(ds.root, out), show_progress=False, console=Console(file=open(tmp_path / "log", "w")))
    assert "damaged" in (tmp_path / "log").read_text()
    assert again["categories"][0]["metrics"] == first["categories"][0]["metrics"]
    with pytest.raises(PadimBenchError, match="runtime settings"):
        runner.run(make_cfg(ds.root, out, runtime={"batch_size": 1}), show_progress=False)


def test_layer_order_does_not_change_the_grid():
    from padim_bench.methods.padim import Padim, PadimParams
    from tests.test_padim import FakeExtractor, images

    class Reversed(FakeExtractor):
        layers = ("layer2", "layer1")

    m = Padim(PadimParams(d=None), Reversed())
    m.fit([images(6, 0)])
    assert tuple(m.score(images(1, 1)).shape) == (1, 8, 8)


def test_layers_must_go_from_shallow_to_deep(tmp_path):
    cfg = make_cfg(tmp_path / "nowhere", tmp_path / "out", method={"layers": ["layer3", "layer2", "layer1"]})
    with pytest.raises(ConfigError, match="shallow to deep"):
        runner.run(cfg, show_progress=False)


def test_changed_data_or_a_misplaced_record_is_recomputed(make_mvtec, tmp_path):
    from rich.console import Console

    ds = make_mvtec(n_train=4, n_test_good=1, defects={"spot": 1})
    out = tmp_path / "out"
    runner.run(make_cfg(ds.root, out), show_progress=False)
    (ds.path / "train" / "good" / "003.png").unlink()
    log = tmp_path / "log"
    rec = runner.run(make_cfg(ds.root, out), show_progress=False, console=Console(file=open(log, "w")))
    assert "data files changed" in log.read_text() and rec["categories"][0]["n_train"] == 3
    bad = json.loads((out / "categories" / "widget.json").read_text())
    bad["category"] = "other"
    (out / "categories" / "widget.json").write_text(json.dumps(bad))
    rec = runner.run(make_cfg(ds.root, out), show_progress=False, console=Console(file=open(log, "w")))
    assert rec["categories"][0]["category"] == "widget" and "damaged" in log.read_text()


def test_a_subset_rerun_keeps_every_finished_category_in_the_results(make_mvtec, tmp_path):
    ds = make_mvtec(category="aaa", n_train=3, n_test_good=1, defects={"spot": 1})
    make_mvtec(root=ds.root, category="bbb", n_train=3, n_test_good=1, defects={"spot": 1})
    out = tmp_path / "out"
    runner.run(make_cfg(ds.root, out), show_progress=False)
    rec = runner.run(make_cfg(ds.root, out, categories=["bbb"]), show_progress=False)
    assert [c["category"] for c in rec["categories"]] == ["aaa", "bbb"]


def test_an_error_raised_in_a_dataloader_worker_is_shown_as_its_own_message(capsys):
    """torch re-raises a worker's exception with its traceback in the message; the CLI shows the
    original one-line message, not the traceback."""
    import typer

    from padim_bench import cli
    from padim_bench.errors import DataError

    wrapped = DataError("Caught DataError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
                        '  File "x.py", line 1, in f\npadim_bench.errors.DataError: v.avi: only 14 frames decode\n')
    with pytest.raises(typer.Exit):
        cli._fail(wrapped)
    err = capsys.readouterr().err
    assert "error: v.avi: only 14 frames decode" in err and "Original Traceback" not in err


# ------------------------------------------------------------ a full disk, a read-only folder
def _two_category_config(tmp_path, demo_data, categories):
    import yaml

    cfg = {"dataset": {"root": str(demo_data), "categories": categories, "resize": 64, "crop": 56},
           "method": {"name": "padim", "backbone": "resnet18", "weights": "random", "d": 16},
           "runtime": {"device": "cpu", "batch_size": 4, "workers": 0, "timing_images": 1, "warmup_images": 0},
           "output": {"dir": str(tmp_path / "out")}}
    path = tmp_path / f"{'_'.join(categories)}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _files(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _fail_writes_of(monkeypatch, name: str, err: int):
    """Make the atomic write of a file called ``name`` fail as a full disk / read-only folder does:
    ENOSPC when its data is flushed, EROFS / EACCES when its temporary file is created."""
    import errno
    import os as _os
    import tempfile as _tempfile

    from padim_bench.store import files

    real_fsync, real_mkstemp = _os.fsync, _tempfile.mkstemp

    def fsync(fd):
        if err == errno.ENOSPC and _os.readlink(f"/proc/self/fd/{fd}").split("/")[-1].startswith(f".{name}."):
            raise OSError(errno.ENOSPC, _os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    def mkstemp(*a, **k):
        if err != errno.ENOSPC and k.get("prefix") == f".{name}.":
            raise PermissionError(err, _os.strerror(err), str(k.get("dir")))
        return real_mkstemp(*a, **k)

    monkeypatch.setattr(files.os, "fsync", fsync)
    monkeypatch.setattr(files.tempfile, "mkstemp", mkstemp)


@pytest.mark.parametrize("err_name", ["ENOSPC", "EROFS"])
@pytest.mark.parametrize("victim", ["gravel.json", "results.json"])
def test_a_failed_record_write_keeps_the_existing_records_and_names_the_file(tmp_path, demo_data, monkeypatch,
                                                                              err_name, victim):
    """A full disk (ENOSPC at the flush) or a read-only folder (EROFS at the temporary file) while
    the second category's record or the results are written: exit status 2, a one-line error
    naming the file, every existing file byte for byte as before, no temporary file left, and the
    run resumes once the disk has room."""
    import errno

    from typer.testing import CliRunner

    from padim_bench.cli import app

    runner_ = CliRunner()
    assert runner_.invoke(app, ["run", str(_two_category_config(tmp_path, demo_data, ["brick"])), "--quiet"]).exit_code == 0
    out = tmp_path / "out"
    before = _files(out)
    _fail_writes_of(monkeypatch, victim, getattr(errno, err_name))
    both = _two_category_config(tmp_path, demo_data, ["brick", "gravel"])
    res = runner_.invoke(app, ["run", str(both), "--quiet"])
    assert res.exit_code == 2, res.output
    errors = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and victim in errors[0] and errors == res.output.strip().splitlines()[-1:], res.output
    assert ("No space left" if err_name == "ENOSPC" else "Read-only") in errors[0]
    after = _files(out)
    assert {k: v for k, v in after.items() if k in before} == before  # existing records intact
    assert not [k for k in after if k.endswith(".tmp")] and not (out / ".padim-bench.lock").exists()
    for name, blob in after.items():
        if name.endswith(".json"):
            json.loads(blob)  # no half-written record
    monkeypatch.undo()
    res = runner_.invoke(app, ["run", str(both), "--quiet"])
    assert res.exit_code == 0, res.output
    assert [c["category"] for c in json.loads((out / "results.json").read_text())["categories"]] == ["brick", "gravel"]


def test_a_read_only_output_folder_is_refused_before_any_fit(tmp_path, demo_data, monkeypatch):
    """chmod'ed read-only for real (skipped as root, where permissions do not deny writes; the
    injected EROFS above covers that case)."""
    import os as _os
    import stat

    from typer.testing import CliRunner

    from padim_bench.cli import app

    if _os.geteuid() == 0:
        pytest.skip("running as root: chmod does not make a folder read-only (see the injected EROFS test)")
    cfg = _two_category_config(tmp_path, demo_data, ["brick"])
    runner_ = CliRunner()
    assert runner_.invoke(app, ["run", str(cfg), "--quiet"]).exit_code == 0
    out = tmp_path / "out"
    before = _files(out)
    monkeypatch.setattr(runner, "_run_fresh", lambda *a, **k: pytest.fail("fitted into a read-only folder"))
    for folder in (out, out / "categories"):
        folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        res = CliRunner().invoke(app, ["run", str(cfg), "--quiet", "--force"])
    finally:
        for folder in (out, out / "categories"):
            folder.chmod(stat.S_IRWXU)
    assert res.exit_code == 2 and "cannot write there" in res.output and str(out) in " ".join(res.output.split())
    assert _files(out) == before
