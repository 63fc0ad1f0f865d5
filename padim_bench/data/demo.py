"""An embedded, deterministic demo dataset laid out exactly like MVTec AD.

What it is: three texture categories (``brick``, ``grass``, ``gravel``) cut from the real
photographs that scikit-image ships inside its wheel (``skimage.data.brick()`` etc., 512x512
greyscale), so ``make demo`` can exercise the whole pipeline offline in a few minutes on
real-looking data. Normal images are random crops (192-320 px windows, plus flips, and 90-degree
rotations for the orientation-free textures) resized to ``size`` x ``size``. Defective test images
are normal crops with one *synthetic* defect painted on:

* ``scratch`` -- a thin (about 3-5 px at 256 px), gently curved bright or dark stroke;
* ``patch`` -- an irregular blob filled with a *different* texture (e.g. gravel inside brick),
  whose grey level is matched to the surrounding image so it stands out by texture, not by a
  flat intensity jump.

Every ground-truth mask is exact: it is drawn first and then exactly its pixels are altered, so
``mask == (defective != clean)`` holds pixel for pixel. Defects cover 0.5%-5% of the image.

What it is not: a benchmark. The defects are synthetic, the three categories come from one photo
each (train and test crops overlap in content, though no two crops are identical), and the scores
obtained on it say nothing about MVTec AD. Use it for smoke tests, demos and debugging only.

Images are greyscale PNGs (mode ``L``), like MVTec AD's ``grid``, ``screw`` and ``zipper``
categories; loaders must convert to RGB as they do for those. Masks are mode ``L`` with values
exactly ``{0, 255}``. Layout under ``root/<category>/`` (the official MVTec AD one)::

    train/good/000.png ...
    test/good/000.png ...
    test/<defect>/000.png ...
    ground_truth/<defect>/000_mask.png ...

plus a marker ``root/.padim_bench_demo.json`` recording the generator parameters.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import DataError
from .demo_images import DEMO_CATEGORIES, DEMO_DEFECTS, apply_defect, crop, random_crop_params

__all__ = ["DEMO_CATEGORIES", "DEMO_DEFECTS", "MARKER_NAME", "make_demo_dataset"]

MARKER_NAME = ".padim_bench_demo.json"
"""Name of the marker file written at the dataset root."""

_FORMAT_VERSION = 1  # bump whenever the generated pixels change for the same parameters
_MIN_SIZE = 64
_PNG_PARAMS = {"format": "PNG", "optimize": False, "compress_level": 6}


@dataclass(frozen=True)
class _Spec:
    """One planned sample: where it goes, which crop it is, and the seed of its defect."""

    split: str  # "train" or "test"
    kind: str  # "good" or a defect name
    index: int
    top: int
    left: int
    window: int
    flip_h: bool
    flip_v: bool
    rot90: bool
    seed: int


# ------------------------------------------------------------------------------------------ plan


def _defect_counts(n_test_defect: int) -> dict[str, int]:
    """Split ``n_test_defect`` between the defect types, the first ones getting the remainder."""
    base, extra = divmod(n_test_defect, len(DEMO_DEFECTS))
    return {d: base + (1 if i < extra else 0) for i, d in enumerate(DEMO_DEFECTS)}


def _plan(category: str, *, seed: int, n_train: int, n_test_good: int, n_test_defect: int) -> list[_Spec]:
    """Plan every sample of one category: distinct crops (no two share their window) and seeds."""
    cat_index = DEMO_CATEGORIES.index(category)
    rng = np.random.default_rng([_FORMAT_VERSION, seed, cat_index])
    slots: list[tuple[str, str, int]] = [("train", "good", i) for i in range(n_train)]
    slots += [("test", "good", i) for i in range(n_test_good)]
    for defect, count in _defect_counts(n_test_defect).items():
        slots += [("test", defect, i) for i in range(count)]
    taken: list[tuple[int, int, int]] = []
    specs = []
    for split, kind, index in slots:
        # Reject near-duplicates (same window within a few pixels) so no two images are the same
        # crop; the space is large, so this almost never loops more than once.
        for _ in range(1000):
            top, left, window, flip_h, flip_v, rot90 = random_crop_params(rng, category)
            if all(abs(top - t) + abs(left - l) + abs(window - w) >= 8 for t, l, w in taken):
                break
        taken.append((top, left, window))
        specs.append(_Spec(split, kind, index, top, left, window, flip_h, flip_v, rot90,
                           int(rng.integers(2**63))))
    return specs


def _render(category: str, spec: _Spec, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    clean = crop(category, spec.top, spec.left, spec.window, spec.flip_h, spec.flip_v, spec.rot90,
                  size)
    if spec.kind == "good":
        return clean, clean.copy(), np.zeros_like(clean, dtype=bool)
    rng = np.random.default_rng(spec.seed)
    defective, mask = apply_defect(rng, category, clean, spec.kind, size)
    return clean, defective, mask


def _demo_sample(category: str, kind: str, index: int, *, split: str = "test", seed: int = 0,
                 n_train: int = 40, n_test_good: int = 10, n_test_defect: int = 10,
                 size: int = 256) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Regenerate one sample exactly as :func:`make_demo_dataset` writes it (for tests).

    Args:
        category: One of :data:`DEMO_CATEGORIES`.
        kind: ``"good"`` or one of :data:`DEMO_DEFECTS`.
        index: Image number within its folder (``000.png`` is index 0).
        split: ``"train"`` or ``"test"`` (only ``"test"`` has defects).
        seed, n_train, n_test_good, n_test_defect, size: As for :func:`make_demo_dataset`; they
            must match the call that wrote the dataset.

    Returns:
        ``(clean, defective, mask)``: two ``size`` x ``size`` uint8 arrays and a bool mask.
        ``clean`` is the crop before the defect was painted; for good images ``defective`` equals
        ``clean`` and ``mask`` is all False. Always ``mask == (defective != clean)``.
    """
    _check_args(seed, n_train, n_test_good, n_test_defect, size)
    if category not in DEMO_CATEGORIES:
        raise ValueError(f"unknown demo category {category!r}; expected one of {DEMO_CATEGORIES}")
    plan = _plan(category, seed=seed, n_train=n_train, n_test_good=n_test_good,
                 n_test_defect=n_test_defect)
    for spec in plan:
        if (spec.split, spec.kind, spec.index) == (split, kind, index):
            return _render(category, spec, size)
    raise ValueError(f"no demo sample {category}/{split}/{kind}/{index:03d} with these parameters")


# ------------------------------------------------------------------------------------ generation


def _check_args(seed: int, n_train: int, n_test_good: int, n_test_defect: int, size: int) -> None:
    for name, value, low in (("seed", seed, 0), ("n_train", n_train, 1),
                             ("n_test_good", n_test_good, 0), ("n_test_defect", n_test_defect, 0),
                             ("size", size, _MIN_SIZE)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"make_demo_dataset: {name} must be an integer >= {low}, got {value!r}")
    if n_train + n_test_good + n_test_defect > 1000:
        raise ValueError("make_demo_dataset: at most 1000 images per category (3-digit names)")


def _params(seed: int, n_train: int, n_test_good: int, n_test_defect: int, size: int) -> dict:
    return {
        "generator": "padim_bench.data.demo",
        "format_version": _FORMAT_VERSION,
        "categories": list(DEMO_CATEGORIES),
        "defects": list(DEMO_DEFECTS),
        "seed": int(seed),
        "n_train": int(n_train),
        "n_test_good": int(n_test_good),
        "n_test_defect": int(n_test_defect),
        "size": int(size),
    }


def _read_marker(root: Path) -> dict | None:
    try:
        data = json.loads((root / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _existing_ok(root: Path, params: dict) -> bool:
    """True if ``root`` is a complete demo dataset with ``params``; DataError if it is anything
    else that is not an empty folder; False if ``root`` is absent or empty."""
    if not root.exists():
        return False
    if not root.is_dir():
        raise DataError(f"demo dataset root {root} exists and is not a folder; refusing to touch it")
    marker = _read_marker(root)
    if marker is None:
        if any(root.iterdir()):
            raise DataError(
                f"{root} exists and is not a padim-bench demo dataset (no {MARKER_NAME}); "
                "refusing to overwrite it. Choose another folder or remove it."
            )
        return False
    if marker != params:
        diff = sorted(k for k in set(marker) | set(params) if marker.get(k) != params.get(k))
        raise DataError(
            f"{root} holds a demo dataset made with different parameters ({', '.join(diff)}: "
            f"{ {k: marker.get(k) for k in diff} } != { {k: params.get(k) for k in diff} }); "
            "delete it or choose another folder."
        )
    missing = [c for c in DEMO_CATEGORIES if not (root / c).is_dir()]
    if missing:
        raise DataError(
            f"demo dataset {root} is incomplete (missing {', '.join(missing)}); delete it and rerun."
        )
    return True


def _save_png(arr: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode="L").save(path, **_PNG_PARAMS)


def _write_category(out: Path, category: str, plan: list[_Spec], size: int) -> None:
    cat_dir = out / category
    # Every folder of the layout exists even when its count is 0, as loaders expect.
    for kind in ("good", *DEMO_DEFECTS):
        (cat_dir / ("train" if kind == "good" else "test") / kind).mkdir(parents=True, exist_ok=True)
        if kind != "good":
            (cat_dir / "ground_truth" / kind).mkdir(parents=True, exist_ok=True)
    (cat_dir / "test" / "good").mkdir(parents=True, exist_ok=True)
    for spec in plan:
        _, image, mask = _render(category, spec, size)
        name = f"{spec.index:03d}"
        _save_png(image, cat_dir / spec.split / spec.kind / f"{name}.png")
        if spec.kind != "good":
            _save_png(np.where(mask, 255, 0).astype(np.uint8),
                      cat_dir / "ground_truth" / spec.kind / f"{name}_mask.png")


def make_demo_dataset(root: str | Path, *, seed: int = 0, n_train: int = 40, n_test_good: int = 10,
                      n_test_defect: int = 10, size: int = 256) -> Path:
    """Write (or reuse) the demo dataset under ``root`` in the MVTec AD layout.

    The dataset holds :data:`DEMO_CATEGORIES`, each with ``n_train`` normal training images,
    ``n_test_good`` normal test images and ``n_test_defect`` defective test images split between
    :data:`DEMO_DEFECTS` (the first type gets the odd one), each with an exact ``{0, 255}`` mask.
    See the module docstring for what the images look like and why it is not a benchmark. The
    default dataset takes about a second to generate and about 10 MB of disk.

    The output depends only on the arguments (and the installed Pillow/scikit-image): the same
    ``seed`` gives byte-identical PNG files. The dataset is generated in a temporary folder next to
    ``root`` and renamed into place, with a marker file ``root/.padim_bench_demo.json`` recording the
    parameters; a later call with the same parameters reuses it without writing anything.

    Args:
        root: Folder to hold the dataset (``root/brick``, ``root/grass``, ...). It may be absent
            or an empty folder; its parent folders are created.
        seed: Seed of every random choice (crops, defects).
        n_train: Normal training images per category (``train/good``), at least 1.
        n_test_good: Normal test images per category (``test/good``).
        n_test_defect: Defective test images per category, over all defect types.
        size: Side of the square images in pixels, at least 64.

    Returns:
        ``root`` as a :class:`~pathlib.Path`.

    Raises:
        DataError: ``root`` exists and is not an empty folder nor a demo dataset made with the
            same parameters (it is never overwritten), or the source photographs are unavailable.
        ValueError: An argument is out of range.
    """
    _check_args(seed, n_train, n_test_good, n_test_defect, size)
    root = Path(root)
    params = _params(seed, n_train, n_test_good, n_test_defect, size)
    if _existing_ok(root, params):
        return root

    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    try:
        for category in DEMO_CATEGORIES:
            plan = _plan(category, seed=seed, n_train=n_train, n_test_good=n_test_good,
                         n_test_defect=n_test_defect)
            _write_category(tmp, category, plan, size)
        # The marker goes in last: its presence means the folder is complete.
        (tmp / MARKER_NAME).write_text(json.dumps(params, indent=2, sort_keys=True) + "\n",
                                       encoding="utf-8")
        os.chmod(tmp, 0o755)  # mkdtemp makes it 0700; give it the permissions of a normal folder
        try:
            if root.is_dir() and not any(root.iterdir()):
                root.rmdir()
            os.rename(tmp, root)
        except OSError:
            # Someone else created root meanwhile (e.g. a concurrent `make demo`): accept theirs
            # if it is the same dataset, otherwise report it.
            if _existing_ok(root, params):
                return root
            raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return root
