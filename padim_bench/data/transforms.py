"""Resize and centre-crop of images and masks, and the torch Dataset that applies them.

Paper protocol (Sec. IV-A): MVTec AD images resized to 256x256 and centre-cropped to 224x224;
STC frames resized to 256x256 without crop. Images use the configured filter (bicubic by default,
antialiased, clamped to [0, 1]); masks use nearest-neighbour so they stay exactly {0, 1}.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from torchvision.transforms import InterpolationMode

from .images import load_image
from .masks import load_merged_mask
from .mvtec import Sample
from .prefetch import ThreadPrefetcher
from .shapes import hw, output_shape

_MODES = {
    "nearest": InterpolationMode.NEAREST,
    "bilinear": InterpolationMode.BILINEAR,
    "bicubic": InterpolationMode.BICUBIC,
}


@dataclass(frozen=True)
class Geometry:
    """A per-sample random geometry (paper Table VI's non-aligned protocol): rotation in degrees
    (counter-clockwise) and the crop's top-left corner in the resized image."""

    angle: float
    top: int
    left: int


@dataclass(frozen=True)
class Augment:
    """Non-aligned MVTec AD (paper Sec. IV-D, Table VI): every train and test image (and its mask)
    is rotated by a random angle in [-rotation_deg, rotation_deg] and cropped at a random place
    instead of the centre. Deterministic: the draw depends only on ``seed``, the split and the
    sample's index."""

    rotation_deg: float = 10.0
    seed: int = 0

    def draw(self, split: str, index: int, resize: int | Sequence[int], crop: int | Sequence[int] | None) -> Geometry:
        """The geometry of sample ``index`` of ``split``; ``resize`` and ``crop`` as
        :class:`Preprocess` takes them (a square draws exactly as before ``[H, W]`` existed)."""
        key = int.from_bytes(hashlib.sha256(f"{self.seed}/{split}/{index}".encode()).digest()[:8], "little")
        g = torch.Generator().manual_seed(key)
        angle = float((torch.rand((), generator=g) * 2 - 1) * self.rotation_deg)
        (rh, rw), (ch, cw) = hw(resize), output_shape(resize, crop)
        if rh == rw and ch == cw:  # one draw for both corners, as the square protocol always drew
            top, left = (int(v) for v in torch.randint(0, rh - ch + 1, (2,), generator=g))
        else:
            top = int(torch.randint(0, rh - ch + 1, (), generator=g))
            left = int(torch.randint(0, rw - cw + 1, (), generator=g))
        return Geometry(angle, top, left)


@dataclass(frozen=True)
class Preprocess:
    """Resize, then a centre crop (or, with a :class:`Geometry`, a rotation and a crop at the
    given place). Sizes are one side (square, the paper's protocol) or ``[H, W]``
    (:mod:`padim_bench.data.shapes`).

    Attributes:
        resize: side in pixels after resizing, or ``[H, W]``.
        crop: side in pixels after cropping, ``[H, W]``, or None.
        interpolation: image filter: ``nearest``, ``bilinear`` or ``bicubic``.
    """

    resize: int | Sequence[int] = 256
    crop: int | Sequence[int] | None = 224
    interpolation: str = "bicubic"

    @property
    def shape(self) -> tuple[int, int]:
        """Output ``(H, W)`` in pixels: of the images, the masks and the anomaly maps."""
        return output_shape(self.resize, self.crop)

    @property
    def size(self) -> int:
        """Output side in pixels; for a non-square output the longer side (the memory model's
        square of that side over-estimates, never under-estimates, what a fit needs)."""
        return max(self.shape)

    def _place(self, t: torch.Tensor, geom: Geometry | None, mode: InterpolationMode) -> torch.Tensor:
        if geom is not None and geom.angle:
            t = TF.rotate(t, geom.angle, interpolation=mode, fill=0.0)
        if self.crop:
            ch, cw = hw(self.crop)
            if geom is None:
                t = TF.center_crop(t, [ch, cw])
            else:
                t = TF.crop(t, geom.top, geom.left, ch, cw)
        return t

    def image(self, arr: np.ndarray, geom: Geometry | None = None) -> torch.Tensor:
        """float32 ``(H, W, 3)`` in [0, 1] -> float32 ``(3, *shape)`` in [0, 1]."""
        t = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)
        t = TF.resize(t, list(hw(self.resize)), interpolation=_MODES[self.interpolation], antialias=True)
        t = self._place(t, geom, InterpolationMode.BILINEAR)
        return t.clamp_(0.0, 1.0).contiguous()

    def mask(self, arr: np.ndarray, geom: Geometry | None = None) -> torch.Tensor:
        """bool ``(H, W)`` -> uint8 ``shape`` holding exactly {0, 1} (nearest-neighbour)."""
        t = torch.from_numpy(arr.astype(np.uint8))[None]
        t = TF.resize(t, list(hw(self.resize)), interpolation=InterpolationMode.NEAREST_EXACT)
        t = self._place(t, geom, InterpolationMode.NEAREST)
        return t[0].contiguous()


class SampleDataset(torch.utils.data.Dataset):
    """Decoded, pre-processed samples: ``(image (3,H,W) float32, mask (H,W) uint8, label, index)``
    (``(H, W)``: :attr:`Preprocess.shape`).

    Normal samples get an all-zero mask. With ``augment``, each sample gets its own
    deterministic :class:`Geometry` (keyed by ``split`` and its index).
    """

    def __init__(self, samples: Sequence[Sample], prep: Preprocess, augment: Augment | None = None, split: str = "",
                 bit_depth: int | None = None):
        self.bit_depth = bit_depth
        self.samples = list(samples)
        self.prep = prep
        self.augment = augment
        self.split = split

    def __len__(self) -> int:
        return len(self.samples)

    def geometry(self, i: int) -> Geometry | None:
        """The random geometry of sample ``i`` (None without augmentation)."""
        if self.augment is None:
            return None
        return self.augment.draw(self.split, i, self.prep.resize, self.prep.crop)

    def __getitem__(self, i: int):
        s = self.samples[i]
        geom = self.geometry(i)
        img = self.prep.image(load_image(s.path, self.bit_depth), geom)
        if s.mask_path is not None:
            mask = self.prep.mask(load_merged_mask(s.mask_path), geom)
        else:
            mask = torch.zeros(self.prep.shape, dtype=torch.uint8)
        return img, mask, s.label, i


def make_loader(samples: Sequence[Sample], prep: Preprocess, batch_size: int, workers: int,
                augment: Augment | None = None, split: str = "", bit_depth: int | None = None) -> Iterable:
    """A DataLoader over ``samples`` in order (no shuffling), ``workers`` decoding processes; with
    0, decoded by a thread of this process one batch ahead of the consumer
    (:class:`~padim_bench.data.prefetch.ThreadPrefetcher`: same batches, same order, errors raised
    where they occur). Yields ``(images, masks, labels, indices)`` as :class:`SampleDataset`."""
    loader = torch.utils.data.DataLoader(
        SampleDataset(samples, prep, augment, split, bit_depth),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        persistent_workers=False,
    )
    return loader if workers else ThreadPrefetcher(loader)
