"""Experiment files (variants x seeds) and the non-aligned augmentation of Table VI."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from padim_bench.config import load_experiments
from padim_bench.data.transforms import Augment, Geometry, Preprocess
from padim_bench.errors import ConfigError


def test_variants_and_seeds_expand_into_runs(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump({"method": {"backbone": "resnet18", "d": 100}, "output": {"dir": "x"}}))
    exp = tmp_path / "exp.yaml"
    exp.write_text(yaml.safe_dump({
        "extends": "base.yaml", "name": "t2", "output": {"dir": str(tmp_path / "out")},
        "seeds": [0, 1], "variants": [{"name": "rd", "set": {"method.d": 50}},
                                      {"name": "pca", "set": {"method.reduction": "pca"}}]}))
    runs = load_experiments(exp, sets=["method.epsilon=0.02"])
    assert [r.name for r in runs] == ["t2/rd_seed0", "t2/rd_seed1", "t2/pca_seed0", "t2/pca_seed1"]
    assert [r.method.seed for r in runs] == [0, 1, 0, 1]
    assert [r.method.params.d for r in runs] == [50, 50, 100, 100]
    assert runs[2].method.params.reduction == "pca" and runs[0].method.params.reduction == "random"
    assert all(r.method.params.epsilon == 0.02 for r in runs)  # command-line overrides reach every run
    assert runs[1].output.dir == str(tmp_path / "out" / "rd_seed1")
    assert len({r.config_hash() for r in runs}) == 4


def test_shipped_paper_experiment_files_load():
    assert len(load_experiments("configs/paper/table1.yaml")) == 5
    assert len(load_experiments("configs/paper/table2.yaml")) == 30
    runs = load_experiments("configs/paper/table6.yaml")
    assert len(runs) == 5 and all(r.dataset.augment == "nonaligned" for r in runs)


def test_bad_experiment_files_are_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"variants": [{"name": "a", "sett": {}}]}))
    with pytest.raises(ConfigError, match="unknown keys"):
        load_experiments(bad)
    bad.write_text(yaml.safe_dump({"seeds": ["x"]}))
    with pytest.raises(ConfigError, match="seeds must be a non-empty list of integers"):
        load_experiments(bad)
    bad.write_text(yaml.safe_dump({"variants": [{"name": "a", "set": {"method.dd": 1}}]}))
    with pytest.raises(ConfigError, match=r"variant a.*method.dd"):
        load_experiments(bad)


def test_nonaligned_geometry_is_deterministic_and_in_range():
    aug = Augment(rotation_deg=10.0, seed=3)
    draws = [aug.draw("train", i, 256, 224) for i in range(200)]
    assert draws == [aug.draw("train", i, 256, 224) for i in range(200)]
    assert draws != [Augment(10.0, 4).draw("train", i, 256, 224) for i in range(200)]
    assert draws[0] != aug.draw("test", 0, 256, 224)
    assert all(-10 <= g.angle <= 10 and 0 <= g.top <= 32 and 0 <= g.left <= 32 for g in draws)
    assert min(g.angle for g in draws) < -8 and max(g.angle for g in draws) > 8


def test_image_and_mask_get_the_same_geometry():
    """A bright square drawn in the image and marked in the mask stays aligned after a rotation
    and an off-centre crop."""
    img = np.zeros((256, 256, 3), np.float32)
    mask = np.zeros((256, 256), bool)
    img[40:80, 150:200] = 1.0
    mask[40:80, 150:200] = True
    prep = Preprocess(256, 224, "bilinear")
    geom = Geometry(angle=7.0, top=5, left=30)
    ti, tm = prep.image(img, geom), prep.mask(mask, geom)
    bright = ti[0] > 0.5
    inter = (bright & (tm == 1)).sum().item()
    assert tm.sum() > 1500 and inter / tm.sum().item() > 0.95 and inter / bright.sum().item() > 0.95
    # no rotation: exactly the slice of the resized image
    plain = prep.image(img, Geometry(0.0, 5, 30))
    assert torch.equal(plain[0] > 0.5, torch.from_numpy(img[5:229, 30:254, 0] > 0.5))


def test_runs_on_two_data_roots_are_two_experiments(tmp_path):
    """The data root is not in the config hash, but two roots in one sweep are two datasets."""
    path = tmp_path / "roots.yaml"
    path.write_text(yaml.safe_dump({"axes": {"dataset.root": [str(tmp_path / "a"), str(tmp_path / "b")]},
                                    "method": {"weights": "random"}}))
    runs = load_experiments(path)
    assert len(runs) == 2 and runs[0].config_hash() == runs[1].config_hash()
    path.write_text(yaml.safe_dump({"axes": {"dataset.root": [str(tmp_path / "a"), str(tmp_path / "b" / ".." / "a")]}}))
    with pytest.raises(ConfigError, match="are the same experiment"):
        load_experiments(path)
