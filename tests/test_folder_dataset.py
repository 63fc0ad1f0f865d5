"""The ``image_folder`` dataset (padim_bench.data.folder): plain folders of normal, defective and
mask images, after anomalib's Folder. Tiny generated images; expected splits and pairings by hand."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from padim_bench.cli import app
from padim_bench.config import config_from_dict
from padim_bench.data import dataset_for
from padim_bench.errors import ConfigError, DataError

from .test_data_inputs import config_file

cli = CliRunner()
H, W = 48, 64  # non-square on purpose


def _save(arr: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def write_folders(root: Path, n_normal=10, defects=(("scratch", 3), ("dent", 2)), masks="per_defect",
                  normal_test=0, suffix="_mask", seed=0) -> Path:
    """``root/good``, ``root/<defect>`` and masks: ``per_defect`` (``root/masks/<defect>/``),
    ``flat`` (``root/masks/``, stems unique over the defects), or None (no masks). Each defect is a
    bright 10 x 10 square, its mask exactly that square (255)."""
    rng = np.random.default_rng(seed)
    tex = lambda: rng.integers(70, 131, (H, W, 3), dtype=np.uint8)  # noqa: E731
    for i in range(n_normal):
        _save(tex(), root / "good" / f"{i:03d}.png")
    for i in range(normal_test):
        _save(tex(), root / "good_test" / f"{i:03d}.png")
    k = 0
    for defect, n in defects:
        for _ in range(n):
            img, mask = tex(), np.zeros((H, W), np.uint8)
            t, l = int(rng.integers(0, H - 10)), int(rng.integers(0, W - 10))
            img[t:t + 10, l:l + 10] = 255
            mask[t:t + 10, l:l + 10] = 255
            _save(img, root / defect / f"{k:03d}.png")
            if masks == "per_defect":
                _save(mask, root / "masks" / defect / f"{k:03d}{suffix}.png")
            elif masks == "flat":
                _save(mask, root / "masks" / f"{k:03d}{suffix}.png")
            k += 1
    return root


def _cfg(root: Path, **keys):
    base = {"name": "image_folder", "root": str(root), "normal_dir": "good", "abnormal_dir": ["scratch", "dent"],
            "resize": [H, W], "crop": None}
    return config_from_dict({"dataset": {**base, **keys}, "method": {"weights": "random"}, "runtime": {"device": "cpu"}})


def test_the_normal_folder_is_split_by_a_seeded_permutation(tmp_path):
    root = write_folders(tmp_path / "d", masks=None)
    split, info = dataset_for(_cfg(root, normal_split_ratio=0.3, split_seed=4).dataset).scan()
    normals = sorted((root / "good").iterdir())
    train, good = [s.path for s in split.train], [s.path for s in split.test if not s.label]
    assert len(good) == 3 and len(train) == 7  # round(0.3 x 10)
    assert sorted(train + good) == normals and not set(train) & set(good)
    assert train == sorted(train) and good == sorted(good)  # kept in file order
    assert info["held_out"] == [p.name for p in good] and info["split_seed"] == 4
    again, _ = dataset_for(_cfg(root, normal_split_ratio=0.3, split_seed=4).dataset).scan()
    assert again == split  # the seed alone decides
    held = {tuple(s.path.name for s in dataset_for(_cfg(root, normal_split_ratio=0.3, split_seed=k).dataset).scan()[0].test
                  if not s.label) for k in range(6)}
    assert len(held) > 1  # another seed, another split
    assert split.name == "d"  # the root folder's name, unless dataset.category says otherwise
    assert dataset_for(_cfg(root, category="pcb").dataset).scan()[0].name == "pcb"


def test_a_normal_test_folder_keeps_every_normal_image_for_training(tmp_path):
    root = write_folders(tmp_path / "d", masks=None, normal_test=2)
    split, info = dataset_for(_cfg(root, normal_test_dir="good_test").dataset).scan()
    assert len(split.train) == 10 and [s.path.parent.name for s in split.test if not s.label] == ["good_test"] * 2
    assert info["normal_test"] == "good_test" and "held_out" not in info


@pytest.mark.parametrize("layout", ["per_defect", "flat", "list", "no_suffix"])
def test_masks_are_paired_by_file_stem_in_every_layout(tmp_path, layout):
    root = tmp_path / "d"
    masks = {"per_defect": "per_defect", "list": "per_defect", "flat": "flat", "no_suffix": "per_defect"}[layout]
    write_folders(root, masks=masks, suffix="" if layout == "no_suffix" else "_mask")
    keys = {"mask_dir": ["masks/scratch", "masks/dent"]} if layout == "list" else {"mask_dir": "masks"}
    split, info = dataset_for(_cfg(root, **keys).dataset).scan()
    bad = [s for s in split.test if s.label]
    assert [(s.defect, s.path.name) for s in bad] == [("scratch", "000.png"), ("scratch", "001.png"),
                                                      ("scratch", "002.png"), ("dent", "003.png"), ("dent", "004.png")]
    for s in bad:
        assert s.mask_path.stem.removesuffix("_mask") == s.path.stem
    assert info["masks"] is True


def test_mask_problems_are_errors_naming_the_files(tmp_path):
    root = write_folders(tmp_path / "d", masks="per_defect")
    (root / "masks/dent/004_mask.png").unlink()
    with pytest.raises(DataError, match="004.png: defective test image without a mask"):
        dataset_for(_cfg(root, mask_dir="masks").dataset).scan()
    root = write_folders(tmp_path / "e", masks="per_defect")
    m = root / "masks/dent/004_mask.png"
    (m.parent / "004.png").write_bytes(m.read_bytes())
    with pytest.raises(DataError, match="two masks for image '004'.*004_mask.png.*004.png|two masks.*004.png.*004_mask"):
        dataset_for(_cfg(root, mask_dir="masks").dataset).scan()


@pytest.mark.parametrize("keys, message", [
    ({"normal_dir": None}, "dataset.normal_dir: required"),
    ({"normal_split_ratio": 1.0}, "dataset.normal_split_ratio: must be in \\[0, 1\\)"),
    ({"mask_dir": ["masks/scratch"]}, "dataset.mask_dir: a list of 1 folder\\(s\\) for 2 abnormal"),
    ({"categories": ["other"]}, "dataset.categories: a folder dataset has one category, 'd'"),
    ({"normal_dirs": "good"}, "Did you mean 'normal_dir'"),
])
def test_bad_keys_are_config_errors(tmp_path, keys, message):
    with pytest.raises(ConfigError, match=message):
        _cfg(tmp_path / "d", **keys)


def test_missing_folders_are_data_errors(tmp_path):
    root = write_folders(tmp_path / "d", masks=None)
    with pytest.raises(DataError, match="nope: folder not found \\(dataset.abnormal_dir\\)"):
        dataset_for(_cfg(root, abnormal_dir="nope").dataset).scan()
    with pytest.raises(DataError, match="would leave none for training"):
        dataset_for(_cfg(write_folders(tmp_path / "one", n_normal=1, masks=None), normal_split_ratio=0.9).dataset).scan()


def _config_file(path: Path, root: Path, out: Path, **keys) -> Path:
    return config_file(path, root, out, name="image_folder", normal_dir="good", abnormal_dir=["scratch", "dent"],
                       resize=[H, W], crop=None, **keys)


def test_classification_only_data_runs_with_image_metrics_and_says_why_pixels_are_undefined(tmp_path):
    root = write_folders(tmp_path / "d", masks=None)
    cfg = _config_file(tmp_path / "c.yaml", root, tmp_path / "out")
    res = cli.invoke(app, ["validate", str(cfg)])
    assert res.exit_code == 0, res.output
    out = " ".join(res.output.split())
    assert "pixel ROC-AUC and PRO will be undefined: no defective test image has a mask" in out
    assert "2 of 10 normal images held out for the test (normal_split_ratio 0.2, split_seed 0)" in out
    res = cli.invoke(app, ["run", str(cfg), "--quiet"])
    assert res.exit_code == 0, res.output
    assert "no anomalous pixel in any mask" in " ".join(res.output.split())
    record = json.loads((tmp_path / "out/results.json").read_text())
    (cat,) = record["categories"]
    assert cat["metrics"]["pixel_roc_auc"] is None and cat["metrics"]["pro"] is None
    assert 0.0 <= cat["metrics"]["image_roc_auc"] <= 1.0
    assert sorted(cat["undefined_metrics"]) == ["pixel_roc_auc", "pro"]
    assert (cat["n_train"], cat["n_test"], cat["n_test_anomalous"], cat["kind"]) == (8, 7, 5, "custom")
    split = record["image_folder"]
    assert (split["normal_split_ratio"], split["split_seed"], split["n_test_good"]) == (0.2, 0, 2)
    held = {Path(p).name for p, label in zip(cat["image_paths"], cat["labels"]) if not label}
    assert held == set(split["held_out"])
    assert cat["map_postprocessing"]["upsample"]["size"] == [H, W]


def test_a_run_with_masks_compares_non_square_maps_at_the_masks_shape(tmp_path):
    root = write_folders(tmp_path / "d", masks="per_defect")
    res = cli.invoke(app, ["run", str(_config_file(tmp_path / "c.yaml", root, tmp_path / "out", mask_dir="masks")),
                           "--quiet"])
    assert res.exit_code == 0, res.output
    (cat,) = json.loads((tmp_path / "out/results.json").read_text())["categories"]
    assert all(0.0 <= v <= 1.0 for v in cat["metrics"].values())
    kept = np.load(tmp_path / "out/report_data/d.npz")
    assert kept["maps"].shape[1:] == (H, W)
    res = cli.invoke(app, ["table", "3", str(tmp_path / "out"), "--format", "md"])
    assert res.exit_code == 0 and "on image_folder" in res.output  # a row of its own, not the paper's


def test_the_sweep_planner_scans_without_decoding_and_the_run_decodes_everything(tmp_path):
    root = write_folders(tmp_path / "d", masks=None)
    (root / "dent/004.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    ds = dataset_for(_cfg(root).dataset)
    planned = ds.plan_splits(["d", "other"])
    assert len(planned["d"].train) == 8 and isinstance(planned["other"], KeyError)
    with pytest.raises(DataError, match="004.png"):
        ds.prepare()
