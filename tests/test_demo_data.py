"""Tests of the embedded demo dataset (padim_bench.data.demo): layout, exact masks, determinism,
refusal to overwrite, defect sizes. Small images keep the whole file to a few seconds."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from padim_bench.data.demo import (
    DEMO_CATEGORIES,
    DEMO_DEFECTS,
    MARKER_NAME,
    _demo_sample,
    make_demo_dataset,
)
from padim_bench.errors import DataError

# Small but not degenerate: odd n_test_defect checks the split between defect types.
PARAMS = dict(seed=3, n_train=5, n_test_good=3, n_test_defect=5, size=96)


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory) -> Path:
    return make_demo_dataset(tmp_path_factory.mktemp("demo") / "root", **PARAMS)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _load(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img)


def test_layout_counts_and_masks(demo_root: Path) -> None:
    assert sorted(p.name for p in demo_root.iterdir() if p.is_dir()) == sorted(DEMO_CATEGORIES)
    assert (demo_root / MARKER_NAME).is_file()
    for cat in DEMO_CATEGORIES:
        c = demo_root / cat
        assert sorted(p.name for p in (c / "train").iterdir()) == ["good"]
        assert sorted(p.name for p in (c / "test").iterdir()) == sorted(["good", *DEMO_DEFECTS])
        assert sorted(p.name for p in (c / "ground_truth").iterdir()) == sorted(DEMO_DEFECTS)
        train = sorted(p.name for p in (c / "train" / "good").iterdir())
        assert train == [f"{i:03d}.png" for i in range(PARAMS["n_train"])]
        assert len(list((c / "test" / "good").iterdir())) == PARAMS["n_test_good"]
        counts = {d: len(list((c / "test" / d).iterdir())) for d in DEMO_DEFECTS}
        assert sum(counts.values()) == PARAMS["n_test_defect"]
        assert max(counts.values()) - min(counts.values()) <= 1
        for defect in DEMO_DEFECTS:
            images = sorted((c / "test" / defect).glob("*.png"))
            masks = sorted((c / "ground_truth" / defect).glob("*.png"))
            assert [m.name for m in masks] == [f"{p.stem}_mask.png" for p in images]
            for img_path, mask_path in zip(images, masks):
                with Image.open(img_path) as img, Image.open(mask_path) as mask:
                    assert img.size == mask.size == (PARAMS["size"], PARAMS["size"])
                    assert mask.mode == "L"
                    values = set(np.unique(np.asarray(mask)).tolist())
                assert values == {0, 255}
        for good in [*(c / "train" / "good").iterdir(), *(c / "test" / "good").iterdir()]:
            with Image.open(good) as img:
                assert img.size == (PARAMS["size"], PARAMS["size"])
        assert not (c / "ground_truth" / "good").exists()


def test_masks_are_exact(demo_root: Path) -> None:
    for cat in DEMO_CATEGORIES:
        for defect in DEMO_DEFECTS:
            for index in range(2):
                clean, defective, mask = _demo_sample(cat, defect, index, **PARAMS)
                assert mask.dtype == bool and mask.any()
                np.testing.assert_array_equal(defective[~mask], clean[~mask])
                assert (defective[mask] != clean[mask]).mean() > 0.5
                # The helper reproduces exactly what was written.
                name = f"{index:03d}"
                np.testing.assert_array_equal(_load(demo_root / cat / "test" / defect / f"{name}.png"), defective)
                written = _load(demo_root / cat / "ground_truth" / defect / f"{name}_mask.png")
                np.testing.assert_array_equal(written == 255, mask)
        clean, image, mask = _demo_sample(cat, "good", 0, split="train", **PARAMS)
        assert not mask.any()
        np.testing.assert_array_equal(image, clean)
        np.testing.assert_array_equal(_load(demo_root / cat / "train" / "good" / "000.png"), image)


def test_defect_area_fraction() -> None:
    params = dict(PARAMS, size=256, n_test_defect=10)
    for cat in DEMO_CATEGORIES:
        for defect in DEMO_DEFECTS:
            for index in range(5):
                _, _, mask = _demo_sample(cat, defect, index, **params)
                assert 0.002 <= mask.mean() <= 0.08, (cat, defect, index, mask.mean())


def test_train_and_test_crops_differ(demo_root: Path) -> None:
    for cat in DEMO_CATEGORIES:
        train = {p.read_bytes() for p in (demo_root / cat / "train" / "good").iterdir()}
        test = {p.read_bytes() for p in (demo_root / cat / "test" / "good").iterdir()}
        assert len(train) == PARAMS["n_train"] and len(test) == PARAMS["n_test_good"]
        assert not train & test


def test_deterministic(demo_root: Path, tmp_path: Path) -> None:
    again = make_demo_dataset(tmp_path / "again", **PARAMS)
    assert _files(again) == _files(demo_root)
    other = make_demo_dataset(tmp_path / "other", **dict(PARAMS, seed=PARAMS["seed"] + 1))
    a, b = _files(demo_root), _files(other)
    assert a.keys() == b.keys()
    images = [k for k in a if k.endswith(".png")]
    assert sum(a[k] != b[k] for k in images) == len(images)


def test_reuse_is_idempotent(demo_root: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in demo_root.rglob("*")}
    assert make_demo_dataset(demo_root, **PARAMS) == demo_root
    assert {p: p.stat().st_mtime_ns for p in demo_root.rglob("*")} == before
    # No leftover temporary folder next to root.
    assert [p.name for p in demo_root.parent.iterdir()] == [demo_root.name]


def test_empty_root_folder_is_filled(tmp_path: Path) -> None:
    root = tmp_path / "empty"
    root.mkdir()
    make_demo_dataset(root, **dict(PARAMS, n_train=1, n_test_good=0, n_test_defect=2))
    assert json.loads((root / MARKER_NAME).read_text())["n_train"] == 1
    # Every folder of the layout exists, even the empty test/good.
    assert (root / "brick" / "test" / "good").is_dir()
    assert not any((root / "brick" / "test" / "good").iterdir())


def test_refuses_foreign_folder(tmp_path: Path) -> None:
    root = tmp_path / "mvtec"
    (root / "brick" / "train" / "good").mkdir(parents=True)
    user_file = root / "brick" / "train" / "good" / "000.png"
    user_file.write_bytes(b"user data")
    with pytest.raises(DataError, match=re.escape(str(root))):
        make_demo_dataset(root, **PARAMS)
    assert user_file.read_bytes() == b"user data"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mvtec"]


def test_refuses_demo_with_other_parameters(demo_root: Path) -> None:
    before = _files(demo_root)
    with pytest.raises(DataError, match="seed"):
        make_demo_dataset(demo_root, **dict(PARAMS, seed=PARAMS["seed"] + 1))
    assert _files(demo_root) == before


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="n_train"):
        make_demo_dataset(tmp_path / "x", n_train=0)
    with pytest.raises(ValueError, match="size"):
        make_demo_dataset(tmp_path / "x", size=16)
    assert not (tmp_path / "x").exists()
