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

import functools
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..errors import DataError

__all__ = ["DEMO_CATEGORIES", "DEMO_DEFECTS", "MARKER_NAME", "make_demo_dataset"]

DEMO_CATEGORIES: tuple[str, ...] = ("brick", "grass", "gravel")  # all textures
"""Categories written by :func:`make_demo_dataset`, in order."""

DEMO_DEFECTS: tuple[str, ...] = ("scratch", "patch")
"""Defect types of every category; ``n_test_defect`` is split between them (scratch first)."""

MARKER_NAME = ".padim_bench_demo.json"
"""Name of the marker file written at the dataset root."""

_FORMAT_VERSION = 1  # bump whenever the generated pixels change for the same parameters
_MIN_SIZE = 64
_CROP_RANGE = (192, 320)  # crop window side in source pixels (source is 512x512)
_AREA_RANGE = (0.005, 0.05)  # accepted defect area, as a fraction of the image
# Dihedral transforms allowed per texture: bricks keep their (vertical) orientation.
_ALLOW_ROT90 = {"brick": False, "grass": True, "gravel": True}
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


# --------------------------------------------------------------------------------------- sources


@functools.lru_cache(maxsize=None)
def _source(category: str) -> np.ndarray:
    """Return the read-only 2-D uint8 source photograph of ``category``."""
    try:
        from skimage import data as skdata

        img = np.asarray(getattr(skdata, category)())
    except Exception as exc:  # pragma: no cover - depends on the installed scikit-image
        raise DataError(
            f"cannot load the demo source photograph skimage.data.{category}() ({exc}); "
            "is scikit-image installed with its bundled data?"
        ) from exc
    if img.ndim == 3:  # pragma: no cover - the bundled textures are greyscale
        img = np.asarray(Image.fromarray(img).convert("L"))
    img = np.ascontiguousarray(img, dtype=np.uint8)
    img.setflags(write=False)
    return img


def _crop(category: str, top: int, left: int, window: int, flip_h: bool, flip_v: bool,
          rot90: bool, size: int) -> np.ndarray:
    """Cut, orient and resize one square window of a source photograph to ``size`` x ``size``."""
    src = _source(category)
    patch = src[top : top + window, left : left + window]
    if flip_h:
        patch = patch[:, ::-1]
    if flip_v:
        patch = patch[::-1, :]
    if rot90:
        patch = np.rot90(patch)
    img = Image.fromarray(np.ascontiguousarray(patch), mode="L")
    img = img.resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(img, dtype=np.uint8).copy()


def _random_crop_params(rng: np.random.Generator, category: str) -> tuple[int, int, int, bool, bool, bool]:
    src = _source(category)
    window = int(rng.integers(_CROP_RANGE[0], _CROP_RANGE[1] + 1))
    top = int(rng.integers(0, src.shape[0] - window + 1))
    left = int(rng.integers(0, src.shape[1] - window + 1))
    flip_h = bool(rng.integers(2))
    flip_v = bool(rng.integers(2))
    rot90 = bool(rng.integers(2)) if _ALLOW_ROT90[category] else False
    return top, left, window, flip_h, flip_v, rot90


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
            top, left, window, flip_h, flip_v, rot90 = _random_crop_params(rng, category)
            if all(abs(top - t) + abs(left - l) + abs(window - w) >= 8 for t, l, w in taken):
                break
        taken.append((top, left, window))
        specs.append(_Spec(split, kind, index, top, left, window, flip_h, flip_v, rot90,
                           int(rng.integers(2**63))))
    return specs


# --------------------------------------------------------------------------------------- defects


def _scratch_mask(rng: np.random.Generator, size: int) -> np.ndarray:
    """A thin quadratic-Bezier stroke, 3-5 px wide at 256 px, 35%-70% of the side long."""
    scale = size / 256
    for _ in range(100):
        length = rng.uniform(0.35, 0.7) * size
        angle = rng.uniform(0, math.pi)
        cx, cy = rng.uniform(0.25 * size, 0.75 * size, 2)
        dx, dy = 0.5 * length * math.cos(angle), 0.5 * length * math.sin(angle)
        p0, p2 = np.array([cx - dx, cy - dy]), np.array([cx + dx, cy + dy])
        bend = rng.uniform(-0.25, 0.25) * length  # control point off the chord: a gentle curve
        p1 = np.array([cx, cy]) + bend * np.array([-math.sin(angle), math.cos(angle)])
        t = np.linspace(0.0, 1.0, 48)[:, None]
        pts = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2
        width = max(2, int(round(rng.uniform(3, 5) * scale)))
        canvas = Image.new("L", (size, size), 0)
        ImageDraw.Draw(canvas).line([tuple(p) for p in pts], fill=255, width=width, joint="curve")
        mask = np.asarray(canvas) > 0
        if _AREA_RANGE[0] <= mask.mean() <= _AREA_RANGE[1]:
            return mask
    return mask  # pragma: no cover - only for absurd sizes


def _blob_mask(rng: np.random.Generator, size: int) -> np.ndarray:
    """An irregular star-shaped polygon covering 0.8%-4% of the image."""
    for _ in range(100):
        area = rng.uniform(0.008, 0.04) * size * size
        radius = math.sqrt(area / math.pi)
        cx, cy = rng.uniform(radius + 2, size - radius - 2, 2)
        n = 24
        # Smooth random radii: a few low-frequency harmonics make a lumpy, irregular outline.
        theta = np.linspace(0, 2 * math.pi, n, endpoint=False)
        r = np.ones(n)
        for k in (2, 3, 5):
            r += rng.uniform(0.05, 0.22) * np.cos(k * theta + rng.uniform(0, 2 * math.pi))
        r *= radius * rng.uniform(0.9, 1.1)
        sx = rng.uniform(0.75, 1.3)  # mild anisotropy
        pts = [(cx + sx * ri * math.cos(a), cy + ri * math.sin(a) / sx) for ri, a in zip(r, theta)]
        canvas = Image.new("L", (size, size), 0)
        ImageDraw.Draw(canvas).polygon(pts, fill=255)
        mask = np.asarray(canvas) > 0
        if _AREA_RANGE[0] <= mask.mean() <= _AREA_RANGE[1]:
            return mask
    return mask  # pragma: no cover - only for absurd sizes


def _force_change(clean: np.ndarray, new: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Nudge masked pixels that the defect happened to leave unchanged, so the mask stays exact."""
    same = mask & (new == clean)
    if same.any():
        c = clean[same].astype(np.int16)
        new = new.copy()
        new[same] = np.where(c < 128, c + 12, c - 12).astype(np.uint8)
    return new


def _apply_defect(rng: np.random.Generator, category: str, clean: np.ndarray, defect: str,
                  size: int) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(defective, mask)``: ``defective`` differs from ``clean`` exactly on ``mask``."""
    cf = clean.astype(np.float64)
    if defect == "scratch":
        mask = _scratch_mask(rng, size)
        bright = bool(rng.integers(2))
        target = rng.uniform(205, 240) if bright else rng.uniform(10, 40)
        vals = 0.3 * cf[mask] + 0.7 * target + rng.normal(0, 5, int(mask.sum()))
    elif defect == "patch":
        mask = _blob_mask(rng, size)
        donor_cat = [c for c in DEMO_CATEGORIES if c != category][int(rng.integers(2))]
        donor = _crop(donor_cat, *_random_crop_params(rng, donor_cat), size=size).astype(np.float64)
        # Match the donor's grey level to the clean image, with a small random offset, so the
        # patch shows as foreign texture rather than as an obvious flat intensity step.
        d, ref = donor[mask], cf
        d = (d - d.mean()) / (d.std() + 1e-6) * ref.std() + ref.mean()
        d = d + rng.choice([-1.0, 1.0]) * rng.uniform(8, 20)
        vals = d
    else:  # pragma: no cover - internal misuse
        raise ValueError(f"unknown demo defect {defect!r}; expected one of {DEMO_DEFECTS}")
    defective = clean.copy()
    defective[mask] = np.clip(np.rint(vals), 0, 255).astype(np.uint8)
    defective = _force_change(clean, defective, mask)
    return defective, mask


def _render(category: str, spec: _Spec, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    clean = _crop(category, spec.top, spec.left, spec.window, spec.flip_h, spec.flip_v, spec.rot90,
                  size)
    if spec.kind == "good":
        return clean, clean.copy(), np.zeros_like(clean, dtype=bool)
    rng = np.random.default_rng(spec.seed)
    defective, mask = _apply_defect(rng, category, clean, spec.kind, size)
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
