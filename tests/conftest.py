"""Shared test fixtures.

``make_mvtec``: a factory writing a tiny category in the MVTec AD layout under ``tmp_path``, with
defects drawn as bright squares and masks that cover exactly those squares. Used by the data tests
and by end-to-end runner / CLI tests::

    def test_something(make_mvtec):
        ds = make_mvtec(category="widget", n_train=4, n_test_good=2, defects={"scratch": 2})
        ds.root                # dataset root, i.e. what ``dataset.root`` / ``--data-root`` takes
        ds.path                # ds.root / "widget"
        ds.defects["scratch"]  # [DefectFile(image, mask, box), ...]
        make_mvtec(root=ds.root, category="gadget", grey=True)  # a second category, same root

Files written (stems are zero-padded indices, as in MVTec AD)::

    ROOT/CATEGORY/train/good/000<ext> ...           n_train normal images
    ROOT/CATEGORY/test/good/000<ext> ...            n_test_good normal images
    ROOT/CATEGORY/test/<defect>/000<ext> ...        defective images, one bright square each
    ROOT/CATEGORY/ground_truth/<defect>/000_mask<mask_ext>   uint8 greyscale {0, 255}

Pixels: normal texture = seeded noise around grey level 100 (values in [70, 130], each RGB channel
drawn separately unless ``grey``); a defect = a ``defect_size`` x ``defect_size`` square of value
255 (all channels) at a seeded random position, different per image; its mask is 255 on exactly
that square and 0 elsewhere. Everything is deterministic for a given ``seed``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pytest
from PIL import Image


@dataclass(frozen=True)
class DefectFile:
    """One defective test image, its mask and the square ``box = (top, left, height, width)``."""

    image: Path
    mask: Path
    box: tuple[int, int, int, int]

    def mask_array(self, shape: tuple[int, int]) -> np.ndarray:
        """The exact boolean mask ``(H, W)`` of this defect (True inside ``box``)."""
        m = np.zeros(shape, dtype=bool)
        t, l, h, w = self.box
        m[t : t + h, l : l + w] = True
        return m


@dataclass(frozen=True)
class FakeCategory:
    """What ``make_mvtec`` wrote. ``os.fspath(ds)`` / ``Path(ds)`` give the dataset ``root``."""

    root: Path
    name: str
    size: tuple[int, int]  # (width, height)
    grey: bool
    train: tuple[Path, ...]
    test_good: tuple[Path, ...]
    defects: dict[str, list[DefectFile]] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        """The category folder, ``root / name``."""
        return self.root / self.name

    @property
    def n_test_defect(self) -> int:
        """Number of defective test images over all defect types."""
        return sum(len(v) for v in self.defects.values())

    def __fspath__(self) -> str:
        return os.fspath(self.root)


def _texture(rng: np.random.Generator, width: int, height: int, grey: bool) -> np.ndarray:
    shape = (height, width) if grey else (height, width, 3)
    return rng.integers(70, 131, size=shape, dtype=np.uint8)


def _save(arr: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def write_mvtec(
    root: str | Path,
    category: str = "widget",
    *,
    n_train: int = 4,
    n_test_good: int = 2,
    defects: Mapping[str, int] | Sequence[str] = (("scratch", 2),),
    size: int | tuple[int, int] = 64,
    grey: bool = False,
    defect_size: int = 8,
    ext: str = ".png",
    mask_ext: str = ".png",
    seed: int = 0,
) -> FakeCategory:
    """Write one tiny MVTec-layout category under ``root`` (see the module doc) and describe it.

    Args:
        root: dataset root (created if needed); other categories may already be there.
        category: category folder name.
        n_train: images in ``train/good``.
        n_test_good: images in ``test/good`` (0 allowed).
        defects: ``{defect_type: count}``, or a sequence of names (2 images each), or
            ``(name, count)`` pairs.
        size: side of square images, or ``(width, height)``.
        grey: write 8-bit greyscale (mode ``L``) images instead of RGB.
        defect_size: side in pixels of each defect square (must fit in the image).
        ext: image file extension (any Pillow-writable one: ``.png``, ``.bmp``, ``.tif``; a lossy
            ``.jpg`` changes pixel values but not the layout).
        mask_ext: mask file extension; masks are named ``<stem>_mask<mask_ext>``.
        seed: seed of every random choice (textures, defect positions).
    """
    root = Path(root)
    w, h = (size, size) if isinstance(size, int) else size
    if not (0 < defect_size <= min(w, h)):
        raise ValueError(f"defect_size {defect_size} does not fit in a {w}x{h} image")
    if isinstance(defects, Mapping):
        defect_counts = dict(defects)
    else:
        defect_counts = dict(d if isinstance(d, tuple) else (d, 2) for d in defects)
    rng = np.random.default_rng(seed)
    base = root / category

    def normals(folder: Path, n: int) -> tuple[Path, ...]:
        out = []
        for i in range(n):
            p = folder / f"{i:03d}{ext}"
            _save(_texture(rng, w, h, grey), p)
            out.append(p)
        return tuple(out)

    train = normals(base / "train" / "good", n_train)
    test_good = normals(base / "test" / "good", n_test_good)
    (base / "test").mkdir(parents=True, exist_ok=True)
    written: dict[str, list[DefectFile]] = {}
    for defect, count in defect_counts.items():
        written[defect] = []
        for i in range(count):
            img = _texture(rng, w, h, grey)
            top = int(rng.integers(0, h - defect_size + 1))
            left = int(rng.integers(0, w - defect_size + 1))
            img[top : top + defect_size, left : left + defect_size] = 255
            mask = np.zeros((h, w), dtype=np.uint8)
            mask[top : top + defect_size, left : left + defect_size] = 255
            ip = base / "test" / defect / f"{i:03d}{ext}"
            mp = base / "ground_truth" / defect / f"{i:03d}_mask{mask_ext}"
            _save(img, ip)
            _save(mask, mp)
            written[defect].append(DefectFile(ip, mp, (top, left, defect_size, defect_size)))
    return FakeCategory(root, category, (w, h), grey, train, test_good, written)


@pytest.fixture
def make_mvtec(tmp_path):
    """Factory fixture: ``make_mvtec(root=None, category="widget", **kw) -> FakeCategory``.

    ``root`` defaults to ``tmp_path / "mvtec"`` (shared by every call in the test, so several
    categories end up under one dataset root). Keyword arguments: see :func:`write_mvtec`.
    """

    def _make(root: str | Path | None = None, category: str = "widget", **kw) -> FakeCategory:
        return write_mvtec(tmp_path / "mvtec" if root is None else root, category, **kw)

    return _make


# ------------------------------------------------------------------------------ shared fixtures
@dataclass(frozen=True)
class ProHandCase:
    """Two 10x10 images, one 3x3 defect each, hand-computed PRO (FPR limit 0.3): the first defect
    scores 1.0, the second 0.5, and 5 of the 182 normal pixels 0.9, so PRO is 0.5 up to FPR
    5/182 and 1 from there to 0.3."""

    maps: np.ndarray
    masks: np.ndarray
    expected: float


@pytest.fixture
def pro_hand_case() -> ProHandCase:
    masks = np.zeros((2, 10, 10), dtype=bool)
    masks[0, 2:5, 2:5] = True
    masks[1, 5:8, 5:8] = True
    maps = np.zeros((2, 10, 10))
    maps[0, 2:5, 2:5] = 1.0
    maps[1, 5:8, 5:8] = 0.5
    maps[0, 0, :5] = 0.9  # 5 of the 182 normal pixels
    return ProHandCase(maps, masks, (0.5 * 5 / 182 + 1.0 * (0.3 - 5 / 182)) / 0.3)


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory) -> Path:
    """Synthetic MVTec-layout data (padim_bench/data/demo.py): brick, grass, gravel at 64 px, 6
    training, 3 good and 4 defective test images each. Shared by the session: read it, never
    write into it."""
    from padim_bench.data.demo import make_demo_dataset

    root = tmp_path_factory.mktemp("demo_data") / "demo"
    return make_demo_dataset(root, n_train=6, n_test_good=3, n_test_defect=4, size=64)
