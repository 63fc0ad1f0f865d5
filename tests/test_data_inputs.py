"""Inputs that used to slip through, and the shapes and encodings people keep their data in
(issue 17): LOCO-style mask folders, two masks for one image, corrupt compressed PNG data, the
advance warnings of ``validate``, non-square sizes, categories outside MVTec AD's, and the map
post-processing parameters in the record. Tiny generated files; expected values by hand, numpy
or scipy, never by the code under test."""

from __future__ import annotations

import hashlib
import io
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import scipy.ndimage
import torch
import yaml
from PIL import Image
from typer.testing import CliRunner

from padim_bench import runner, tables
from padim_bench.cli import app
from padim_bench.config import config_from_dict
from padim_bench.data import dataset_for
from padim_bench.data.masks import load_merged_mask
from padim_bench.data.mvtec import scan_category
from padim_bench.data.shapes import aspect_note
from padim_bench.data.transforms import Augment, Preprocess, SampleDataset
from padim_bench.data.verify import check_split, file_problem
from padim_bench.errors import ConfigError, DataError
from padim_bench.methods.base import MAP_FILTER, map_postprocessing, postprocess

cli = CliRunner()


def _save(arr: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def corrupt_idat(path: Path) -> None:
    """Flip bytes inside the PNG's compressed image data and rewrite the chunk's CRC, so the
    chunk structure and every checksum stay valid and only the decode fails."""
    b = bytearray(path.read_bytes())
    i = 8
    while i < len(b):
        n, kind = struct.unpack(">I4s", bytes(b[i:i + 8]))
        if kind == b"IDAT":
            for j in range(i + 8 + 20, i + 8 + n - 10, 7):
                b[j] ^= 0x5A
            b[i + 8 + n:i + 12 + n] = struct.pack(">I", zlib.crc32(kind + bytes(b[i + 8:i + 8 + n])) & 0xFFFFFFFF)
            break
        i += 12 + n
    path.write_bytes(bytes(b))


def config_file(path: Path, root: Path, out: Path, **dataset) -> Path:
    """A run config at ``path``: random ResNet18 PaDiM (d 10) on CPU, ``dataset`` keys over 64 / 56."""
    cfg = {"dataset": {"root": str(root), "resize": 64, "crop": 56, **dataset},
           "method": {"name": "padim", "backbone": "resnet18", "weights": "random", "d": 10},
           "runtime": {"device": "cpu", "batch_size": 4, "workers": 0, "threads": 1, "timing_images": 1,
                       "warmup_images": 0},
           "output": {"dir": str(out)}}
    path.write_text(yaml.safe_dump(cfg))
    return path


# ------------------------------------------------------------------------------- LOCO masks
def test_a_loco_mask_folder_is_merged_into_one_mask(make_mvtec):
    ds = make_mvtec(n_train=2, n_test_good=1, defects={"logical": 1}, size=16)
    single = ds.defects["logical"][0].mask
    folder = single.parent / "000"
    a, b = np.zeros((16, 16), np.uint8), np.zeros((16, 16), np.uint8)
    a[1:4, 1:4], b[10:12, 5:15] = 255, 7  # two annotated defects, two encodings
    _save(a, folder / "000.png"), _save(b, folder / "001.png")
    single.unlink()
    split = scan_category(ds.root, ds.name)
    bad = [s for s in split.test if s.label]
    assert [s.mask_path for s in bad] == [folder]
    assert split.data_files()[-2:] == [folder / "000.png", folder / "001.png"]  # both fingerprinted
    with pytest.warns(UserWarning, match="maximum is 7"):
        merged = load_merged_mask(folder)
    np.testing.assert_array_equal(merged, (a > 0) | (b > 0))
    with pytest.warns(UserWarning):
        _, mask, label, _ = SampleDataset(bad, Preprocess(16, None))[0]
    assert label == 1 and mask.dtype == torch.uint8
    np.testing.assert_array_equal(mask.numpy(), ((a > 0) | (b > 0)).astype(np.uint8))


def test_loco_mask_files_of_another_size_and_an_empty_mask_folder_are_errors(make_mvtec, tmp_path):
    ds = make_mvtec(n_train=2, n_test_good=1, defects={"logical": 1}, size=16)
    single = ds.defects["logical"][0].mask
    folder = single.parent / "000"
    _save(np.zeros((16, 16), np.uint8), folder / "000.png")
    _save(np.zeros((8, 16), np.uint8), folder / "001.png")
    single.unlink()
    with pytest.raises(DataError, match="mask size differs from its image: .*001.png is 16x8"):
        scan_category(ds.root, ds.name)
    (folder / "001.png").unlink(), (folder / "000.png").unlink()
    with pytest.raises(DataError, match="000: mask folder without any mask file"):
        scan_category(ds.root, ds.name)


def test_two_candidate_masks_for_one_image_is_an_error_naming_both(make_mvtec):
    ds = make_mvtec(n_train=2, n_test_good=1, defects={"crack": 2}, size=16)
    mask = ds.defects["crack"][1].mask  # 001_mask.png
    (mask.parent / "001.png").write_bytes(mask.read_bytes())
    with pytest.raises(DataError) as e:
        scan_category(ds.root, ds.name)
    assert "001.png" in str(e.value) and "001_mask.png" in str(e.value) and "two masks" in str(e.value)


# ----------------------------------------------------------------------- full decode check
def test_a_png_with_valid_checksums_but_corrupt_data_stops_before_any_model(make_mvtec, tmp_path, monkeypatch):
    ds = make_mvtec(n_train=4, n_test_good=1, defects={"spot": 1}, size=32)
    bad = ds.train[2]
    corrupt_idat(bad)
    with Image.open(bad) as img:
        img.verify()  # the chunk checksums are valid: Pillow's verify() passes it
    with Image.open(bad) as img, pytest.raises(OSError):
        img.load()  # ... and the pixels do not decode
    assert file_problem(bad) is not None and file_problem(ds.train[0]) is None
    res = cli.invoke(app, ["validate", str(config_file(tmp_path / "c.yaml", ds.root, tmp_path / "o",
                                                     name="mvtec_folder"))])
    assert res.exit_code == 2 and "002.png" in res.output and "unreadable" in res.output
    monkeypatch.setattr(runner, "build_method", lambda *a, **k: pytest.fail("a model was loaded"))
    cfg = config_from_dict({"dataset": {"name": "mvtec_folder", "root": str(ds.root), "resize": 32, "crop": None},
                            "method": {"weights": "random"}, "runtime": {"device": "cpu"},
                            "output": {"dir": str(tmp_path / "out")}})
    with pytest.raises(DataError, match="002.png"):
        runner.run(cfg, show_progress=False)
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------- advance warnings
def _texture(rng, n=16):
    return rng.integers(70, 131, (n, n), dtype=np.uint8)


@pytest.mark.parametrize("blank", [1, 2])
def test_all_black_masks_are_warned_about_in_advance(make_mvtec, blank):
    ds = make_mvtec(n_train=2, n_test_good=1, defects={"crack": 2}, size=16)
    for d in ds.defects["crack"][:blank]:
        _save(np.zeros((16, 16), np.uint8), d.mask)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        check_split(scan_category(ds.root, ds.name))
    text = " | ".join(str(x.message) for x in w)
    if blank == 2:
        assert "pixel ROC-AUC and PRO will be undefined: every one of the 2 masks is all black" in text
    else:
        assert "1 of 2 masks are all black" in text and "will be undefined" not in text


def test_validate_warns_what_a_run_will_report_undefined_and_about_mask_encodings(make_mvtec, tmp_path):
    ds = make_mvtec(n_train=3, n_test_good=0, defects={"crack": 2}, size=16)
    _save(ds.defects["crack"][0].mask_array((16, 16)).astype(np.uint8) * 3, ds.defects["crack"][0].mask)  # class id 3
    res = cli.invoke(app, ["validate", str(config_file(tmp_path / "c.yaml", ds.root, tmp_path / "o", name="mvtec_folder"))])
    assert res.exit_code == 0, res.output
    out = " ".join(res.output.split())
    assert "image ROC-AUC will be undefined: the test set has 2 defective and 0 good images" in out
    assert "mask maximum is 3" in out


# ------------------------------------------------------------------------------ non-square
def test_non_square_sizes_resize_and_crop_to_height_and_width():
    prep = Preprocess([20, 40], [12, 30])
    assert prep.shape == (12, 30) and prep.size == 30
    img = np.random.default_rng(0).random((50, 70, 3)).astype(np.float32)
    assert tuple(prep.image(img).shape) == (3, 12, 30)
    mask = np.zeros((50, 70), bool)
    mask[:, 35:] = True  # the right half
    m = prep.mask(mask).numpy()
    assert m.shape == (12, 30)
    # resized to 20 x 40 the right half is columns 20..39; the centre crop keeps columns 5..34
    np.testing.assert_array_equal(m, np.tile((np.arange(5, 35) >= 20).astype(np.uint8), (12, 1)))
    geom = Augment(10.0, seed=3).draw("test", 1, [20, 40], [12, 30])
    assert 0 <= geom.top <= 8 and 0 <= geom.left <= 10


def test_a_square_augmentation_draws_as_it_always_did():
    """The draw the square protocol made before [H, W] existed, computed here step by step."""
    key = int.from_bytes(hashlib.sha256(b"5/train/7").digest()[:8], "little")
    g = torch.Generator().manual_seed(key)
    angle = float((torch.rand((), generator=g) * 2 - 1) * 10.0)
    top, left = (int(v) for v in torch.randint(0, 256 - 224 + 1, (2,), generator=g))
    got = Augment(10.0, seed=5).draw("train", 7, 256, 224)
    assert (got.angle, got.top, got.left) == (angle, top, left)


@pytest.mark.parametrize("keys, message", [
    ({"resize": [64]}, "dataset.resize: one side, or \\[height, width\\]"),
    ({"resize": [64, 4], "crop": None}, "dataset.resize: every side must be >= 8"),
    ({"resize": [64, 48], "crop": 56}, "dataset.crop: must fit inside dataset.resize"),
    ({"resize": 64, "crop": [32, 80]}, "dataset.crop: must fit inside dataset.resize"),
])
def test_bad_sizes_are_config_errors(keys, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict({"dataset": keys})


def test_an_int_size_hashes_as_before_and_a_pair_is_another_experiment():
    square = config_from_dict({"dataset": {"resize": 256, "crop": 224}})
    assert square.config_hash() == config_from_dict({}).config_hash()  # the defaults are these ints
    assert square.to_dict()["dataset"]["resize"] == 256  # an int stays an int in the record
    pair = config_from_dict({"dataset": {"resize": [256, 256], "crop": [224, 224]}})
    assert pair.to_dict()["dataset"]["resize"] == [256, 256]


def test_a_resize_that_changes_the_aspect_ratio_says_so_once(make_mvtec):
    assert aspect_note({(64, 48)}, [48, 64]) is None  # 4:3 kept
    assert aspect_note({(900, 900)}, 256) is None
    root = make_mvtec(category="a", size=(64, 48), n_train=2, n_test_good=1, defects={"x": 1}).root
    make_mvtec(category="b", size=(64, 48), n_train=2, n_test_good=1, defects={"x": 1})
    cfg = config_from_dict({"dataset": {"name": "mvtec_folder", "root": str(root), "resize": 32, "crop": None}})
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        dataset_for(cfg.dataset).prepare()
    notes = [str(x.message) for x in w if "aspect ratio" in str(x.message)]
    assert len(notes) == 1 and "64x48" in notes[0] and "32x32" in notes[0]


# ------------------------------------------------------------------- map post-processing
def test_the_map_filter_and_its_recorded_parameters_agree_with_scipy():
    raw = torch.from_numpy(np.random.default_rng(1).random((2, 5, 7)).astype(np.float32))
    maps, scores = postprocess(raw, (10, 14), 2.0, "bilinear")
    up = torch.nn.functional.interpolate(raw[:, None], size=(10, 14), mode="bilinear", align_corners=False)[:, 0]
    expected = np.stack([scipy.ndimage.gaussian_filter(m, sigma=2.0, truncate=4.0, mode="reflect") for m in up.numpy()])
    np.testing.assert_allclose(maps, expected, rtol=1e-6)
    np.testing.assert_allclose(scores, expected.reshape(2, -1).max(axis=1), rtol=1e-6)
    rec = map_postprocessing(2.0, "bilinear", (10, 14))
    assert rec["smoothing"] == {"sigma": 2.0, "filter": "scipy.ndimage.gaussian_filter", "truncate": 4.0,
                                "mode": "reflect", "cval": 0.0}
    assert rec["upsample"] == {"mode": "bilinear", "align_corners": False, "size": [10, 14]}
    assert MAP_FILTER["truncate"] == 4.0


# ----------------------------------------------------------- categories outside MVTec AD's
def test_a_custom_category_on_mvtec_ad_is_its_own_group_and_out_of_the_papers_means(tmp_path):
    cfg = config_from_dict({"dataset": {"name": "mvtec_ad", "root": str(tmp_path)}})
    ds = dataset_for(cfg.dataset)
    assert (ds.kind("bottle"), ds.kind("grid"), ds.kind("mybottle")) == ("object", "texture", "custom")

    def cat(name, kind, v):
        return {"category": name, "kind": kind, "metrics": {"image_roc_auc": v, "pixel_roc_auc": v, "pro": v},
                "time": {"fit_s": 1.0}, "memory": {"fit_peak_rss_bytes": 1e9, "state_gb": 0.1}}

    # an old record, written when mybottle was counted as an object, reads the same way
    rec = {"config_hash": "x", "name": "mine", "categories": [cat("bottle", "object", 0.98), cat("grid", "texture", 0.96),
                                                              cat("mybottle", "object", 0.50)],
           "config": {"method": {"name": "padim", "backbone": "resnet18", "d": 100, "weights": "imagenet"},
                      "dataset": {"name": "mvtec_ad"}}}
    groups, _ = tables.build("3", [rec])
    row = dict(groups.rows)["PaDiM-R18-Rd100"]
    objects = row[groups.columns.index(("objects", "pixel_roc_auc"))]
    every = row[groups.columns.index(("all", "pixel_roc_auc"))]
    assert objects.ours == pytest.approx(98.0) and (objects.covered, objects.of) == (1, 10)
    assert every.ours == pytest.approx(97.0) and (every.covered, every.of) == (2, 15)  # (98 + 96) / 2
    assert any("mybottle" in n and "mvtec_ad" in n and "kept out of the paper's means" in n for n in groups.notes)
