"""Resize and centre-crop of images and masks, and the torch Dataset that applies them.

Paper protocol (Sec. IV-A): MVTec AD images resized to 256x256 and centre-cropped to 224x224;
STC frames resized to 256x256 without crop. Images use the configured filter (bicubic by default,
antialiased, clamped to [0, 1]); masks use nearest-neighbour so they stay exactly {0, 1}.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from torchvision.transforms import InterpolationMode

from .images import load_image, load_mask
from .mvtec import Sample

_MODES = {
    "nearest": InterpolationMode.NEAREST,
    "bilinear": InterpolationMode.BILINEAR,
    "bicubic": InterpolationMode.BICUBIC,
}


@dataclass(frozen=True)
class Preprocess:
    """Square resize then optional centre crop.

    Attributes:
        resize: side in pixels after resizing.
        crop: side in pixels after centre-cropping, or None.
        interpolation: image filter: ``nearest``, ``bilinear`` or ``bicubic``.
    """

    resize: int = 256
    crop: int | None = 224

    interpolation: str = "bicubic"

    @property
    def size(self) -> int:
        """Output side in pixels."""
        return self.crop or self.resize

    def image(self, arr: np.ndarray) -> torch.Tensor:
        """float32 ``(H, W, 3)`` in [0, 1] -> float32 ``(3, size, size)`` in [0, 1]."""
        t = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)
        t = TF.resize(t, [self.resize, self.resize], interpolation=_MODES[self.interpolation], antialias=True)
        if self.crop:
            t = TF.center_crop(t, [self.crop, self.crop])
        return t.clamp_(0.0, 1.0).contiguous()

    def mask(self, arr: np.ndarray) -> torch.Tensor:
        """bool ``(H, W)`` -> uint8 ``(size, size)`` holding exactly {0, 1} (nearest-neighbour)."""
        t = torch.from_numpy(arr.astype(np.uint8))[None]
        t = TF.resize(t, [self.resize, self.resize], interpolation=InterpolationMode.NEAREST_EXACT)
        if self.crop:
            t = TF.center_crop(t, [self.crop, self.crop])
        return t[0].contiguous()


class SampleDataset(torch.utils.data.Dataset):
    """Decoded, pre-processed samples: ``(image (3,S,S) float32, mask (S,S) uint8, label, index)``.

    Normal samples get an all-zero mask.
    """

    def __init__(self, samples: Sequence[Sample], prep: Preprocess):
        self.samples = list(samples)
        self.prep = prep

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        s = self.samples[i]
        img = self.prep.image(load_image(s.path))
        if s.mask_path is not None:
            mask = self.prep.mask(load_mask(s.mask_path))
        else:
            mask = torch.zeros(self.prep.size, self.prep.size, dtype=torch.uint8)
        return img, mask, s.label, i


def make_loader(samples: Sequence[Sample], prep: Preprocess, batch_size: int, workers: int) -> torch.utils.data.DataLoader:
    """A DataLoader over ``samples`` in order (no shuffling), ``workers`` decoding processes."""
    return torch.utils.data.DataLoader(
        SampleDataset(samples, prep),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        persistent_workers=False,
    )
