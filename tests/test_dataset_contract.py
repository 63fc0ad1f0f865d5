"""The dataset contract (padim_bench.data.base): the registrations, the MVTec-layout folder
dataset's kinds, MVTec AD's warning for categories that are not its own, a dataset's own keys in
the config (flat in YAML and in the recorded config, hashes unchanged), and the demo hook."""

from __future__ import annotations

import warnings

import pytest
from typer.testing import CliRunner

from padim_bench.cli import app
from padim_bench.config import config_from_dict, load_config
from padim_bench.data import DATASETS, DEFAULT_DEMO, Dataset, dataset_class, dataset_for, demo_names, record_dataset
from padim_bench.errors import ConfigError

from .conftest import write_mvtec


def test_four_registrations_and_a_generic_fallback():
    assert DATASETS.names() == ["image_folder", "mvtec_ad", "mvtec_folder", "stc"]
    assert dataset_class("someone_elses_dataset") is Dataset
    assert record_dataset({"config": {"dataset": {"name": "stc"}}}) is DATASETS.get("stc")
    assert DATASETS.get("mvtec_ad").group_sizes == {"textures": 5, "objects": 10, "all": 15}  # MVTec AD's 5 + 10
    assert DATASETS.get("stc").group_sizes == {"all": 12}  # real STC's scenes with test clips
    assert demo_names() == ["mvtec_folder", "stc"] and DEFAULT_DEMO == "mvtec_folder"


def _cfg(name, root, **keys):
    return config_from_dict({"dataset": {"name": name, "root": str(root), **keys}})


def test_the_folder_dataset_scans_like_mvtec_ad_with_its_own_kinds(tmp_path):
    for i, c in enumerate(("widget", "gadget")):
        write_mvtec(tmp_path, c, n_train=2, n_test_good=1, defects={"dent": 1}, size=16, seed=i)
    folder = dataset_for(_cfg("mvtec_folder", tmp_path).dataset)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a folder of one's own: nothing to warn about
        splits = folder.prepare().splits
    assert [s.name for s in splits] == ["gadget", "widget"]
    assert [str(p) for p in splits[1].data_files()] == [str(tmp_path / "widget" / f) for f in (
        "train/good/000.png", "train/good/001.png", "test/dent/000.png", "ground_truth/dent/000_mask.png",
        "test/good/000.png")]
    assert [folder.kind(c) for c in ("widget", "carpet")] == ["custom", "custom"]  # no list: one group
    textures = dataset_for(_cfg("mvtec_folder", tmp_path, texture_categories=["widget"]).dataset)
    assert [textures.kind(c) for c in ("widget", "gadget", "carpet")] == ["texture", "object", "object"]
    mvtec = dataset_for(_cfg("mvtec_ad", tmp_path).dataset)
    # a made-up name under MVTec AD is its own group, never one of the paper's objects (issue 17)
    assert [mvtec.kind(c) for c in ("carpet", "bottle", "widget")] == ["texture", "object", "custom"]
    with pytest.warns(UserWarning, match=r"gadget, widget are not among MVTec AD's 15 categories.*mvtec_folder"):
        same = mvtec.prepare().splits  # kept: today's behaviour for made-up names under MVTec AD
    assert [s.test for s in same] == [s.test for s in splits]


def test_mvtec_ad_does_not_warn_for_its_own_categories(tmp_path):
    write_mvtec(tmp_path, "bottle", n_train=2, n_test_good=1, defects={"broken_large": 1}, size=16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [s.name for s in dataset_for(_cfg("mvtec_ad", tmp_path).dataset).prepare().splits] == ["bottle"]


def test_a_datasets_own_keys_are_flat_and_checked():
    cfg = _cfg("stc", "/nowhere", crop=None, test_stride=3)
    d = cfg.to_dict()["dataset"]
    assert list(d) == ["name", "root", "categories", "resize", "crop", "interpolation", "texture_categories",
                       "on_unreadable", "augment", "bit_depth", "augment_rotation_deg", "augment_seed",
                       "train_stride", "train_frames_total", "test_stride"]
    assert (d["train_stride"], d["train_frames_total"], d["test_stride"]) == (None, 5000, 3)
    assert "test_stride" not in load_config("configs/mvtec_r18.yaml").to_dict()["dataset"]
    assert config_from_dict({"dataset": cfg.to_dict()["dataset"]}) == cfg  # what a run.json holds reads back
    with pytest.raises(ConfigError, match=r"dataset.name: unknown dataset 'mvtec'\. Did you mean 'mvtec_ad'\?"):
        config_from_dict({"dataset": {"name": "mvtec"}})
    with pytest.raises(ConfigError, match=r"unknown key 'dataset.test_strid'\. Did you mean 'test_stride'\?"):
        config_from_dict({"dataset": {"name": "stc", "crop": None, "test_strid": 3}})
    with pytest.raises(ConfigError, match="dataset.test_stride: a key of dataset 'stc' only"):
        config_from_dict({"dataset": {"name": "mvtec_folder", "test_stride": 3}})


@pytest.mark.parametrize("path, config_hash, run_hash", [
    ("configs/stc_r18.yaml", "67f134360d3a", "4dca18207fd9"),
    ("configs/stc_effl0.yaml", "03219ce3a046", "151425070089"),
    ("configs/stc_spade.yaml", "a38c13622051", "e77f3aeb564a"),
    ("padim_bench/data/demo_stc.yaml", "03219ce3a046", "df9860f083e3"),
])
def test_stc_configs_keep_the_hashes_they_had_before_the_dataset_contract(path, config_hash, run_hash):
    """The values the code before the dataset contract gave (commit 921ce15, SPADE's block size
    already out of its config): STC's keys moved into its own parameters without changing a
    recorded config."""
    cfg = load_config(path)
    assert (cfg.config_hash(), cfg.run_hash()) == (config_hash, run_hash)


def test_demo_names_the_datasets_that_have_one():
    res = CliRunner().invoke(app, ["demo", "--dataset", "mvtec_ad"])
    assert res.exit_code == 2 and "has no demo; datasets with one: mvtec_folder, stc" in res.output
    res = CliRunner().invoke(app, ["demo", "--dataset", "nope"])
    assert res.exit_code == 2 and "unknown dataset 'nope'" in res.output
    # the embedded configs the demos run name their own dataset
    assert load_config("padim_bench/data/demo.yaml").dataset.name == "mvtec_folder"
    assert load_config("padim_bench/data/demo_stc.yaml").dataset.name == "stc"
