"""The frozen feature extractor every family's trunk is wrapped in."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from .base import BackboneSpec

_DUMMY_SIZE = 128  # side of the zero image used to derive channels and strides


class FeatureExtractor(nn.Module):
    """Frozen backbone returning the activations of named layers.

    Attributes:
        name, layers, weights (``"imagenet"``/``"random"``/``"file"``), weights_source (file or
        seed), weights_sha256 (hex sha256 of the file loaded; ``None`` for random weights),
        normalization (its description), mean and std (the RGB values applied), full_param_count (whole classification network incl. its classifier),
        channels and strides (per requested layer, measured by a dummy forward), nodes (alias ->
        resolved model node), memory_format (``torch.channels_last`` by default, see
        :meth:`set_memory_format`).
    """

    def __init__(self, spec: BackboneSpec, layers: tuple[str, ...], trunk: nn.Module,
                 nodes: dict[str, str], full_param_count: int, weights: str,
                 weights_source: str, weights_sha256: str | None = None) -> None:
        super().__init__()
        self.name, self.layers, self.nodes = spec.name, layers, nodes
        self.weights, self.weights_source, self.weights_sha256 = weights, weights_source, weights_sha256
        self.mean, self.std = tuple(spec.mean), tuple(spec.std)
        self.normalization, self.full_param_count = spec.normalization, full_param_count
        self.normalize, self.trunk = Normalize(spec.mean, spec.std), trunk
        self.requires_grad_(False)
        self.train(False)
        self.memory_format = torch.contiguous_format
        with torch.inference_mode():
            out = self(torch.zeros(1, 3, _DUMMY_SIZE, _DUMMY_SIZE))
        self.channels = {k: int(v.shape[1]) for k, v in out.items()}
        self.strides = {k: _DUMMY_SIZE // int(v.shape[-1]) for k, v in out.items()}

    def set_memory_format(self, channels_last: bool) -> "FeatureExtractor":
        """Run the convolutions in NHWC (``channels_last``) or NCHW layout; returns ``self``.

        Changes no result beyond float32 rounding (max relative difference of the layer maps about
        3e-6 for R18/WR50 with random weights, 1e-6 for EfficientNet-Lite0; tests/test_backbones.py).
        On CPU (oneDNN) channels_last is faster: on this project's 2-core machine, random weights,
        the layer1..3 forward took 21.3 instead of 29.2 ms per image for R18 at batch 32 and 22.5
        instead of 33.7 ms for EfficientNet-Lite0 at batch 16 (scripts/bench_kernels.py,
        results/bench/kernels.md; 1.2-1.6x over the session's runs, the host's load varying).
        """
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.trunk.to(memory_format=fmt)
        self.memory_format = fmt
        return self

    def train(self, mode: bool = True) -> "FeatureExtractor":
        """Always stays in eval mode (frozen BatchNorm statistics)."""
        return super().train(False)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Normalise ``x`` and return the requested activations.

        Args:
            x: (N, 3, H, W) float32 RGB in [0, 1], not normalised.

        Returns:
            ``{layer: (N, C_layer, H / stride, W / stride) float32}`` in ``self.layers`` order,
            in ``self.memory_format`` (index them by dimension, not by stride).

        Raises:
            ValueError: ``x`` is not (N, 3, H, W).
        """
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected (N, 3, H, W) input, got {tuple(x.shape)}")
        out = self.trunk(self.normalize(x).contiguous(memory_format=self.memory_format))
        return {k: out[k].float() for k in self.layers}


class Normalize(nn.Module):
    """(x - mean) / std per RGB channel of (N, 3, H, W) input."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std
