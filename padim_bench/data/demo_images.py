"""The demo dataset's pixels (:mod:`padim_bench.data.demo`): crops of scikit-image's texture
photographs, and the synthetic defects painted on them with exact masks."""

from __future__ import annotations

import functools
import math

import numpy as np
from PIL import Image, ImageDraw

from ..errors import DataError

DEMO_CATEGORIES: tuple[str, ...] = ("brick", "grass", "gravel")  # all textures
"""Categories written by :func:`~padim_bench.data.demo.make_demo_dataset`, in order."""

DEMO_DEFECTS: tuple[str, ...] = ("scratch", "patch")
"""Defect types of every category; ``n_test_defect`` is split between them (scratch first)."""

_CROP_RANGE = (192, 320)  # crop window side in source pixels (source is 512x512)
_AREA_RANGE = (0.005, 0.05)  # accepted defect area, as a fraction of the image
# Dihedral transforms allowed per texture: bricks keep their (vertical) orientation.
_ALLOW_ROT90 = {"brick": False, "grass": True, "gravel": True}


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


def crop(category: str, top: int, left: int, window: int, flip_h: bool, flip_v: bool,
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


def random_crop_params(rng: np.random.Generator, category: str) -> tuple[int, int, int, bool, bool, bool]:
    """A random crop of ``category``'s photograph for :func:`crop`: ``(top, left, window, flip_h,
    flip_v, rot90)``, the window side in source pixels in ``_CROP_RANGE``."""
    src = _source(category)
    window = int(rng.integers(_CROP_RANGE[0], _CROP_RANGE[1] + 1))
    top = int(rng.integers(0, src.shape[0] - window + 1))
    left = int(rng.integers(0, src.shape[1] - window + 1))
    flip_h = bool(rng.integers(2))
    flip_v = bool(rng.integers(2))
    rot90 = bool(rng.integers(2)) if _ALLOW_ROT90[category] else False
    return top, left, window, flip_h, flip_v, rot90


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


def apply_defect(rng: np.random.Generator, category: str, clean: np.ndarray, defect: str,
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
        donor = crop(donor_cat, *random_crop_params(rng, donor_cat), size=size).astype(np.float64)
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
