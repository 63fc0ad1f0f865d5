"""The run folder's owner (padim_bench.store): fingerprints of the declared data files, the resume
check of a category record, consolidation, and the one reader of results."""

from __future__ import annotations

import hashlib
import json
import os

import pytest
from rich.console import Console

from padim_bench import store
from padim_bench.config import config_from_dict
from padim_bench.data.mvtec import scan_category
from padim_bench.errors import PadimBenchError


def _by_hand(paths, mtime: bool, salt: str = "") -> str:
    """The fingerprint rule written out: SHA-256 of the salt, then per file ``parent/name``, size
    and (train only) modification time, 16 hex digits."""
    h = hashlib.sha256(salt.encode())
    for p in paths:
        st = os.stat(p)
        h.update(f"{p.parent.name}/{p.name}\0{st.st_size}\0{st.st_mtime_ns if mtime else ''}\n".encode())
    return h.hexdigest()[:16]


def test_fingerprints_hash_the_files_the_split_declares(make_mvtec):
    ds = make_mvtec(n_train=3, n_test_good=1, defects={"scratch": 2})
    split = scan_category(ds.root, ds.name)
    assert split.fingerprint_salt == ""
    assert split.data_files(train_only=True) == list(ds.train)
    files = split.data_files()
    masks = [d.mask for d in ds.defects["scratch"]]
    assert sorted(files) == sorted([*ds.train, *ds.test_good, *(d.image for d in ds.defects["scratch"]), *masks])
    for d in ds.defects["scratch"]:  # each mask right after its image
        assert files.index(d.mask) == files.index(d.image) + 1
    assert store.train_fingerprint(split) == _by_hand(ds.train, mtime=True)
    assert store.data_fingerprint(split) == _by_hand(files, mtime=False)

    data, train = store.data_fingerprint(split), store.train_fingerprint(split)
    os.utime(ds.train[0], ns=(10**18, 10**18))  # touched: refit, but the same data
    assert store.train_fingerprint(split) != train and store.data_fingerprint(split) == data
    with open(ds.test_good[0], "ab") as f:  # a test file's size changes: the category is recomputed
        f.write(b"\0")
    assert store.data_fingerprint(split) != data


def _cfg(out):
    return config_from_dict({"name": "t", "method": {"backbone": "resnet18", "d": 10}, "output": {"dir": str(out)}})


def _record(cfg, category, fingerprint):
    return {"category": category, "kind": "object", "run_hash": cfg.run_hash(), "data_fingerprint": fingerprint,
            "metrics": {m: 0.5 for m in cfg.evaluation.metrics},
            "time": {"fit_s": 1.0, "infer_s_per_image": 0.1},
            "memory": {"fit_peak_rss_bytes": 10**9, "state_gb": 0.1}}


def test_a_category_record_is_reused_only_when_complete_of_this_run_and_data(make_mvtec, tmp_path):
    ds = make_mvtec(n_train=2, n_test_good=1, defects={"scratch": 1})
    split = scan_category(ds.root, ds.name)
    cfg = _cfg(tmp_path / "out")
    folder = store.claim_run_folder(cfg, force=False)
    assert json.loads((folder.path / "run.json").read_text())["run_hash"] == cfg.run_hash()
    rec = _record(cfg, split.name, store.data_fingerprint(split))
    folder.write_category(rec)
    metrics = cfg.evaluation.metrics
    assert folder.finished(split, metrics) == rec
    assert store.finished_record(cfg, split) == rec
    log = tmp_path / "log"
    with open(log, "w") as f:
        console = Console(file=f)
        assert folder.finished(split, metrics, histogram=True, console=console) is None  # no histogram file
        folder.write_category({**rec, "data_fingerprint": "0" * 16})
        assert folder.finished(split, metrics, console=console) is None
        folder.write_category({**rec, "metrics": {"pro": 1.5}})
        assert folder.finished(split, metrics, console=console) is None
        folder.write_category({**rec, "run_hash": "another"})
        assert folder.finished(split, metrics, console=console) is None
    text = log.read_text()
    assert "missing or damaged" in text and "data files changed" in text and "damaged or incomplete" in text
    assert text.count("warning") == 3  # another run's record is recomputed quietly
    other = config_from_dict({"name": "t", "method": {"backbone": "resnet18", "d": 12},
                              "output": {"dir": str(tmp_path / "out")}})
    with pytest.raises(PadimBenchError, match="another configuration"):
        store.claim_run_folder(other, force=False)


def test_consolidation_covers_every_category_of_the_run(tmp_path):
    cfg = _cfg(tmp_path / "out")
    folder = store.claim_run_folder(cfg, force=False)
    folder.write_category(_record(cfg, "zeta", "f"))
    record = {"run_hash": cfg.run_hash(), "config": cfg.to_dict(), "categories": [_record(cfg, "zeta", "f")]}
    folder.write_results(record)
    assert not store.consolidate_run(folder.path, cfg, only_if_incomplete=True)  # complete: nothing written
    folder.write_category(_record(cfg, "alpha", "f"))
    folder.write_category({**_record(cfg, "other", "f"), "run_hash": "x"})  # another run's: left out
    assert store.consolidate_run(folder.path, cfg, only_if_incomplete=True)
    res = json.loads((folder.path / "results.json").read_text())
    assert [c["category"] for c in res["categories"]] == ["alpha", "zeta"]
    assert (folder.path / "results.md").read_text().count("| alpha |") == 1
    assert store.other_run_hash(folder.path, cfg.run_hash()) is None
    assert store.other_run_hash(folder.path, "mine") == cfg.run_hash()


def test_the_reader_finds_each_run_once_and_names_what_is_wrong(tmp_path):
    for run in ("a", "b"):
        (tmp_path / "sweep" / run).mkdir(parents=True)
        (tmp_path / "sweep" / run / "results.json").write_text(json.dumps({"config": {"name": run}, "categories": []}))
    sweep, a = tmp_path / "sweep", tmp_path / "sweep" / "a"
    assert [r["config"]["name"] for r in store.read_results([sweep])] == ["a", "b"]
    assert len(store.read_results([sweep, a, a / "results.json"])) == 2  # reached three times, read once
    assert store.read_run(a)["_path"] == str(a / "results.json")
    with pytest.raises(PadimBenchError, match="expected one results.json, found 2"):
        store.read_run(sweep)
    (tmp_path / "empty").mkdir()
    with pytest.raises(PadimBenchError, match="not a padim-bench run folder"):
        store.read_results([tmp_path / "empty"])
    with pytest.raises(PadimBenchError, match="nowhere: no such"):
        store.read_results([tmp_path / "nowhere"])
    (a / "results.json").write_text("{not json")
    with pytest.raises(PadimBenchError, match="not a readable results file"):
        store.read_run(a)
    (a / "results.json").write_text(json.dumps({"categories": []}))
    with pytest.raises(PadimBenchError, match="no 'config'"):
        store.read_run(a)


def test_a_folder_of_someone_elses_results_is_never_overwritten(tmp_path):
    """Files a run would write, in a folder without run.json, are refused (named), kept byte for
    byte, and replaced only under --force (found by a fresh-user test)."""
    out = tmp_path / "mine"
    (out / "categories").mkdir(parents=True)
    (out / "results.json").write_text('{"my": "data"}')
    (out / "categories" / "notes.json").write_text("{}")
    cfg = _cfg(out)
    with pytest.raises(PadimBenchError, match=r"holds results.json, categories/ but no run.json"):
        store.claim_run_folder(cfg, force=False)
    assert (out / "results.json").read_text() == '{"my": "data"}' and not (out / "run.json").exists()
    empty = tmp_path / "empty"
    (empty / "categories").mkdir(parents=True)  # a run interrupted before its run.json: nothing to lose
    assert store.claim_run_folder(_cfg(empty), force=False).path == empty
    assert store.claim_run_folder(cfg, force=True).path == out and (out / "run.json").is_file()
