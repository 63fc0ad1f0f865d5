"""Tests of image / mask decoding, pre-processing and the MVTec AD folder layout
(padim_bench.data.images, .transforms, .mvtec). Every expected value is computed here with numpy
or by hand, never by the code under test. Small generated files keep the file to a few seconds;
the real-data tests read ../shared/data/mvtec_ad and skip where it is absent."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from padim_bench.data.images import ALPHA_BACKGROUND, load_image, load_mask, png_sbit
from padim_bench.data.mvtec import list_categories, resolve_categories, scan_category
from padim_bench.data.transforms import Preprocess
from padim_bench.errors import ConfigError, DataError

REAL_ROOT = Path(__file__).resolve().parents[1].parent / "shared/data/mvtec_ad"


def _save(arr: np.ndarray, path: Path, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(arr) if mode is None else Image.fromarray(arr, mode=mode)
    img.save(path)
    return path


def _grey(h: int = 6, w: int = 5) -> np.ndarray:
    return (np.arange(h * w, dtype=np.uint8) * 7).reshape(h, w)  # 0, 7, ..., 203


# ---------------------------------------------------------------------------------------- images


def test_grey_rgb_and_opaque_rgba_decode_identically(tmp_path):
    g = _grey()
    expected = np.repeat((g.astype(np.float64) / 255.0)[..., None], 3, axis=2)
    p_l = _save(g, tmp_path / "l.png")
    p_rgb = _save(np.stack([g, g, g], axis=2), tmp_path / "rgb.png")
    p_rgba = _save(np.stack([g, g, g, np.full_like(g, 255)], axis=2), tmp_path / "rgba.png")
    with Image.open(p_l) as a, Image.open(p_rgb) as b, Image.open(p_rgba) as c:
        assert (a.mode, b.mode, c.mode) == ("L", "RGB", "RGBA")
    arrays = [load_image(p) for p in (p_l, p_rgb, p_rgba)]
    for arr in arrays:
        assert arr.dtype == np.float32 and arr.shape == (6, 5, 3)
        np.testing.assert_allclose(arr, expected, atol=1e-6)
    np.testing.assert_array_equal(arrays[0], arrays[1])
    np.testing.assert_array_equal(arrays[0], arrays[2])


def test_transparent_pixels_are_composited_on_black(tmp_path):
    assert ALPHA_BACKGROUND == 0.0  # documented background: black
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[..., :3] = [200, 100, 50]
    rgba[..., 3] = [[255, 0], [51, 255]]  # opaque, transparent, 20 % opaque, opaque
    arr = load_image(_save(rgba, tmp_path / "a.png"))
    np.testing.assert_allclose(arr[0, 0], [200 / 255, 100 / 255, 50 / 255], atol=1e-6)
    np.testing.assert_array_equal(arr[0, 1], [0.0, 0.0, 0.0])
    np.testing.assert_allclose(arr[1, 0], [0.2 * 200 / 255, 0.2 * 100 / 255, 0.2 * 50 / 255], atol=1e-6)


def test_palette_png_decodes_to_its_colours(tmp_path):
    idx = np.array([[0, 1], [2, 1]], dtype=np.uint8)
    img = Image.fromarray(idx, mode="P")
    img.putpalette([255, 0, 0, 0, 128, 0, 10, 20, 30] + [0] * (256 * 3 - 9))
    p = tmp_path / "p.png"
    img.save(p)
    with Image.open(p) as back:
        assert back.mode == "P"
    expected = np.array([[[255, 0, 0], [0, 128, 0]], [[10, 20, 30], [0, 128, 0]]]) / 255.0
    np.testing.assert_allclose(load_image(p), expected, atol=1e-6)


def _write_16bit(values: np.ndarray, path: Path) -> Path:
    img = Image.fromarray(values.astype(np.uint16))
    assert img.mode == "I;16"
    img.save(path)
    return path


def test_16bit_full_range_gradient_is_scaled_by_65535(tmp_path):
    row = np.round(np.linspace(0, 65535, 1024)).astype(np.uint16)
    p = _write_16bit(np.tile(row, (4, 1)), tmp_path / "g16.png")
    arr = load_image(p)
    assert arr.dtype == np.float32 and arr.shape == (4, 1024, 3)
    np.testing.assert_allclose(arr[0, :, 0], row / 65535.0, atol=1e-6)
    assert arr[0, 0, 0] == 0.0 and arr[0, -1, 0] == 1.0
    assert np.all(np.diff(arr[0, :, 0]) > 0)  # still a strictly increasing gradient, not saturated
    assert len(np.unique(arr[..., 0])) >= 1000
    np.testing.assert_array_equal(arr[..., 0], arr[..., 1])
    np.testing.assert_array_equal(arr[..., 0], arr[..., 2])


def _add_sbit(path: Path, bits: int) -> Path:
    """Insert a PNG sBIT chunk (significant bits) right after IHDR, with its CRC."""
    import struct
    import zlib

    data = path.read_bytes()
    ihdr_end = 8 + 8 + 13 + 4  # signature, IHDR header, IHDR data, CRC
    chunk = struct.pack(">I4sB", 1, b"sBIT", bits) + struct.pack(">I", zlib.crc32(b"sBIT" + bytes([bits])))
    path.write_bytes(data[:ihdr_end] + chunk + data[ihdr_end:])
    return path


def test_12bit_data_in_16bit_png_is_scaled_by_its_declared_depth(tmp_path):
    row = np.arange(0, 4096, 4, dtype=np.uint16)
    row[-1] = 4095
    plain = _write_16bit(np.tile(row, (3, 1)), tmp_path / "g12.png")
    with_sbit = _add_sbit(_write_16bit(np.tile(row, (3, 1)), tmp_path / "g12_sbit.png"), 12)
    assert png_sbit(with_sbit) == 12 and png_sbit(plain) is None
    for arr in (load_image(with_sbit), load_image(plain, bit_depth=12)):
        np.testing.assert_allclose(arr[1, :, 0], row / 4095.0, atol=1e-6)
        assert arr.max() == 1.0 and arr[0, 512, 0] == pytest.approx(2048 / 4095, abs=1e-6)
    # no declaration: the PNG's own 16 bits; still a gradient of 1024 levels, never saturated
    arr = load_image(plain)
    np.testing.assert_allclose(arr[1, :, 0], row / 65535.0, atol=1e-6)
    assert len(np.unique(arr[1, :, 0])) == 1024


def test_16bit_scaling_is_the_same_for_every_image(tmp_path):
    """A dark 12-bit image is not brightened by its own maximum: two images of one dataset keep
    their relative brightness (scaling by each image's peak made defects invisible)."""
    bright = _write_16bit(np.full((4, 4), 4000, np.uint16), tmp_path / "bright.png")
    dark = _write_16bit(np.full((4, 4), 250, np.uint16), tmp_path / "dark.png")
    ratio = load_image(bright, bit_depth=12)[0, 0, 0] / load_image(dark, bit_depth=12)[0, 0, 0]
    assert ratio == pytest.approx(16.0)


def test_16bit_value_beyond_the_declared_depth_is_an_error(tmp_path):
    p = _write_16bit(np.full((4, 4), 5000, np.uint16), tmp_path / "over.png")
    with pytest.raises(DataError, match="exceeds the declared 12-bit range"):
        load_image(p, bit_depth=12)


def test_truncated_png_raises_data_error_naming_the_file(tmp_path):
    rng = np.random.default_rng(0)
    good = _save(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), tmp_path / "whole.png")
    data = good.read_bytes()
    bad = tmp_path / "half.png"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="half.png"):
        load_image(bad)


def test_non_image_with_png_extension_raises_data_error(tmp_path):
    p = tmp_path / "notes.png"
    p.write_text("this is not an image\n")
    with pytest.raises(DataError, match="notes.png"):
        load_image(p)
    with pytest.raises(DataError, match="notes.png"):
        load_mask(p)


def test_missing_image_raises_data_error(tmp_path):
    with pytest.raises(DataError, match="absent.png"):
        load_image(tmp_path / "absent.png")


# ----------------------------------------------------------------------------------------- masks


def _square(h: int = 16, w: int = 16) -> np.ndarray:
    m = np.zeros((h, w), dtype=bool)
    m[3:9, 5:12] = True
    return m


@pytest.mark.parametrize("on, other", [(255, None), (1, None), (1, 2), (240, None)])
def test_mask_encodings_give_the_same_boolean_mask(tmp_path, on, other):
    truth = _square()
    arr = np.where(truth, on, 0).astype(np.uint8)
    if other is not None:  # class ids {0, 1, 2}: class 2 on a part of the defect
        arr[3:5, 5:12] = other
    p = _save(arr, tmp_path / "m.png")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = load_mask(p)
    assert m.dtype == bool and m.shape == (16, 16)
    np.testing.assert_array_equal(m, truth)
    assert int(m.sum()) == 6 * 7


@pytest.mark.parametrize("peak", [2, 240])
def test_mask_warns_when_max_is_neither_1_nor_255(tmp_path, peak):
    arr = np.where(_square(), peak, 0).astype(np.uint8)
    p = _save(arr, tmp_path / "m.png")
    with pytest.warns(UserWarning, match=str(peak)):
        load_mask(p)


@pytest.mark.parametrize("peak", [1, 255])
def test_mask_does_not_warn_for_1_or_255(tmp_path, peak):
    arr = np.where(_square(), peak, 0).astype(np.uint8)
    p = _save(arr, tmp_path / "m.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_mask(p)


def test_rgb_mask_is_reduced_to_one_channel(tmp_path):
    truth = _square()
    rgb = np.zeros((16, 16, 3), dtype=np.uint8)
    rgb[truth] = [255, 255, 255]
    np.testing.assert_array_equal(load_mask(_save(rgb, tmp_path / "m.png")), truth)


# ------------------------------------------------------------------------------------ transforms


def _mask64() -> np.ndarray:
    m = np.zeros((64, 64), dtype=bool)
    m[20:28, 33:41] = True  # 8 x 8 defect
    return m


def test_mask_resize_is_exact_nearest_neighbour():
    m = _mask64()
    out = Preprocess(resize=256, crop=None).mask(m)
    assert tuple(out.shape) == (256, 256)
    arr = out.numpy()
    assert set(np.unique(arr).tolist()) == {0, 1}
    assert int(arr.sum()) == 8 * 8 * 4 * 4 == 1024
    expected = np.kron(m.astype(np.uint8), np.ones((4, 4), dtype=np.uint8))  # each pixel -> 4x4
    np.testing.assert_array_equal(arr, expected)


def test_resize_and_centre_crop_shapes_and_range():
    prep = Preprocess(resize=256, crop=224)
    # a 0/1 checkerboard makes bicubic overshoot beyond [0, 1] before the clamp
    img = (np.indices((64, 64)).sum(axis=0) % 2).astype(np.float32)
    img = np.repeat(img[..., None], 3, axis=2)
    t = prep.image(img)
    assert tuple(t.shape) == (3, 224, 224) and t.dtype.is_floating_point
    assert float(t.min()) >= 0.0 and float(t.max()) <= 1.0
    m = prep.mask(_mask64())
    assert tuple(m.shape) == (224, 224)
    # centre crop of 256 -> 224 drops 16 pixels on each side
    expected = np.kron(_mask64().astype(np.uint8), np.ones((4, 4), dtype=np.uint8))[16:240, 16:240]
    np.testing.assert_array_equal(m.numpy(), expected)
    assert prep.size == 224 and Preprocess(256, None).size == 256


def test_constant_image_stays_constant():
    img = np.full((40, 30, 3), 0.25, dtype=np.float32)
    t = Preprocess(resize=32, crop=16, interpolation="bilinear").image(img)
    assert tuple(t.shape) == (3, 16, 16)
    np.testing.assert_allclose(t.numpy(), 0.25, atol=1e-6)


# ---------------------------------------------------------------------------------------- layout


def test_make_mvtec_layout_scans_with_exact_masks(make_mvtec):
    ds = make_mvtec(n_train=5, n_test_good=3, defects={"crack": 2, "hole": 3}, size=(48, 40))
    split = scan_category(ds.root, ds.name)
    assert split.name == "widget" and split.root == ds.path
    assert [s.path.name for s in split.train] == ["000.png", "001.png", "002.png", "003.png", "004.png"]
    assert all(s.label == 0 and s.mask_path is None for s in split.train)
    labels = [s.label for s in split.test]
    assert labels.count(0) == 3 and labels.count(1) == 5
    by_image = {s.path: s for s in split.test}
    for defect, files in ds.defects.items():
        for f in files:
            s = by_image[f.image]
            assert (s.label, s.defect, s.mask_path) == (1, defect, f.mask)
            np.testing.assert_array_equal(load_mask(s.mask_path), f.mask_array((40, 48)))


def test_natural_order_and_pairing_by_stem(tmp_path):
    root = tmp_path / "data"
    cat = root / "c"
    rng = np.random.default_rng(1)
    for stem in ("10", "1", "2"):  # created in scrambled order
        _save(rng.integers(0, 256, (16, 16), dtype=np.uint8), cat / "train" / "good" / f"{stem}.png")
    # defect images and masks created in different scrambled orders; mask of stem k covers k pixels
    for stem in ("2", "10", "1"):
        _save(rng.integers(0, 256, (16, 16), dtype=np.uint8), cat / "test" / "dent" / f"{stem}.png")
    for stem in ("1", "10", "2"):
        m = np.zeros((16, 16), dtype=np.uint8)
        m.flat[: int(stem)] = 255
        _save(m, cat / "ground_truth" / "dent" / f"{stem}_mask.png")
    split = scan_category(root, "c")
    assert [s.path.name for s in split.train] == ["1.png", "2.png", "10.png"]
    assert [s.path.name for s in split.test] == ["1.png", "2.png", "10.png"]
    for s in split.test:
        assert s.mask_path.name == f"{s.path.stem}_mask.png"
        assert int(load_mask(s.mask_path).sum()) == int(s.path.stem)


def test_extensions_are_matched_case_insensitively(tmp_path):
    root = tmp_path / "data"
    good = root / "c" / "train" / "good"
    rng = np.random.default_rng(2)
    names = ["a.PNG", "b.jpg", "c.jpeg", "d.bmp", "e.tif", "f.JPG"]
    for n in names:
        _save(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8), good / n)
    (good / "readme.txt").write_text("not an image")
    (good / "sub.png").mkdir()  # a folder is not an image
    _save(rng.integers(0, 256, (16, 16), dtype=np.uint8), root / "c" / "test" / "scratch" / "000.PNG")
    _save(np.full((16, 16), 255, np.uint8), root / "c" / "ground_truth" / "scratch" / "000_mask.Png")
    split = scan_category(root, "c")
    assert sorted(s.path.name for s in split.train) == names
    (t,) = split.test
    assert t.path.name == "000.PNG" and t.mask_path.name == "000_mask.Png" and t.label == 1


def test_image_without_mask_names_image_and_expected_mask(make_mvtec):
    ds = make_mvtec(defects={"crack": 2})
    f = ds.defects["crack"][1]
    f.mask.unlink()
    with pytest.raises(DataError) as e:
        scan_category(ds.root, ds.name)
    msg = str(e.value)
    assert str(f.image) in msg
    assert str(ds.path / "ground_truth" / "crack" / "001_mask.png") in msg


def test_image_without_mask_folder(make_mvtec):
    ds = make_mvtec(defects={"crack": 1})
    f = ds.defects["crack"][0]
    f.mask.unlink()
    f.mask.parent.rmdir()
    with pytest.raises(DataError, match="000_mask.png"):
        scan_category(ds.root, ds.name)


def test_mask_without_image(make_mvtec):
    ds = make_mvtec(defects={"crack": 2})
    ds.defects["crack"][0].image.unlink()
    with pytest.raises(DataError, match="000_mask.png"):
        scan_category(ds.root, ds.name)


def test_mask_folder_without_test_folder(make_mvtec):
    ds = make_mvtec(defects={"crack": 1})
    extra = ds.path / "ground_truth" / "hole" / "000_mask.png"
    _save(np.zeros((64, 64), np.uint8), extra)
    with pytest.raises(DataError, match="hole"):
        scan_category(ds.root, ds.name)


def test_mask_size_differs_from_image(make_mvtec):
    ds = make_mvtec(size=(64, 48), defects={"crack": 1})
    f = ds.defects["crack"][0]
    _save(np.zeros((32, 32), np.uint8), f.mask)  # overwrite with a 32x32 mask
    with pytest.raises(DataError) as e:
        scan_category(ds.root, ds.name)
    msg = str(e.value)
    assert str(f.image) in msg and str(f.mask) in msg
    assert "64x48" in msg and "32x32" in msg  # width x height of each


def test_empty_train_good_names_folder_and_extensions(make_mvtec):
    ds = make_mvtec(n_train=1)
    ds.train[0].unlink()
    (ds.path / "train" / "good" / "notes.txt").write_text("x")
    with pytest.raises(DataError) as e:
        scan_category(ds.root, ds.name)
    msg = str(e.value)
    assert str(ds.path / "train" / "good") in msg
    for ext in (".png", ".jpg", ".jpeg", ".bmp", ".tif"):
        assert ext in msg


def test_missing_dataset_root(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match="nowhere"):
        list_categories(missing)
    with pytest.raises(DataError, match="nowhere"):
        resolve_categories(missing, "all")
    with pytest.raises(DataError):
        scan_category(missing, "bottle")


def test_categories_listing_and_resolution(make_mvtec):
    ds = make_mvtec(category="zeta")
    make_mvtec(category="alpha", grey=True)
    (ds.root / "not_a_category").mkdir()  # no train/ folder: ignored
    (ds.root / "license.txt").write_text("x")
    assert list_categories(ds.root) == ["alpha", "zeta"]
    assert resolve_categories(ds.root, "all") == ["alpha", "zeta"]
    assert resolve_categories(ds.root, ["zeta"]) == ["zeta"]
    assert resolve_categories(ds.root, ["zeta", "alpha", "zeta"]) == ["zeta", "alpha"]
    assert resolve_categories(ds.root, "alpha") == ["alpha"]
    with pytest.raises(ConfigError) as e:
        resolve_categories(ds.root, ["alpha", "bottle"])
    msg = str(e.value)
    assert "bottle" in msg and "alpha, zeta" in msg


def test_empty_root_has_no_category(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no category"):
        list_categories(tmp_path / "empty")


def test_grey_fixture_images_decode_to_equal_channels(make_mvtec):
    ds = make_mvtec(grey=True, n_train=1, defects={"crack": 1})
    with Image.open(ds.train[0]) as img:
        assert img.mode == "L"
        raw = np.asarray(img)
    arr = load_image(ds.train[0])
    for c in range(3):
        np.testing.assert_allclose(arr[..., c], raw / 255.0, atol=1e-6)


# ------------------------------------------------------------------------------------- real data

needs_real = pytest.mark.skipif(
    not REAL_ROOT.is_dir(), reason=f"real MVTec AD not found at {REAL_ROOT} (expected ../shared/data/mvtec_ad)"
)


def _needs_category(name: str):
    return pytest.mark.skipif(
        not (REAL_ROOT / name).is_dir(), reason=f"real MVTec AD category {name!r} not found under {REAL_ROOT}"
    )


@pytest.mark.real_data
@needs_real
@_needs_category("bottle")
def test_real_bottle_counts_and_pairing():
    split = scan_category(REAL_ROOT, "bottle")
    assert len(split.train) == 209
    good = [s for s in split.test if s.label == 0]
    bad = [s for s in split.test if s.label == 1]
    assert len(good) == 20 and len(bad) == 63
    for s in bad:
        assert s.mask_path is not None
        assert s.mask_path.parent.name == s.path.parent.name == s.defect
        assert s.mask_path.name == f"{s.path.stem}_mask.png"


@pytest.mark.real_data
@needs_real
@_needs_category("grid")
def test_real_grid_counts_and_greyscale():
    split = scan_category(REAL_ROOT, "grid")
    assert len(split.train) == 25
    assert sum(s.label == 0 for s in split.test) == 3
    assert sum(s.label == 1 for s in split.test) == 11
    path = split.train[0].path
    with Image.open(path) as img:
        assert img.mode == "L"
        raw = np.asarray(img).astype(np.float64) / 255.0
    arr = load_image(path)
    assert arr.shape == raw.shape + (3,)
    for c in range(3):
        np.testing.assert_allclose(arr[..., c], raw, atol=1e-6)
    bad = next(s for s in split.test if s.label == 1)
    m = load_mask(bad.mask_path)
    assert m.shape == raw.shape and 0 < m.sum() < m.size


def test_generator_markers_label_the_data_synthetic(tmp_path):
    from padim_bench.data import demo, stc_synth
    from padim_bench.data.origin import synthetic_origin

    assert synthetic_origin(tmp_path) is None  # no marker: genuine, as far as we can tell
    (tmp_path / stc_synth.MARKER_NAME).write_text('{"seed": 3}')
    assert synthetic_origin(tmp_path) == {"marker": stc_synth.MARKER_NAME, "params": {"seed": 3},
                                          "what": "padim-bench synthetic ShanghaiTech Campus (STC layout, generated videos)"}
    other = tmp_path / "other"
    other.mkdir()
    (other / demo.MARKER_NAME).write_text("not json {")  # damaged: still generated data
    got = synthetic_origin(other)
    assert got["marker"] == demo.MARKER_NAME and got["params"] is None and "demo" in got["what"]
