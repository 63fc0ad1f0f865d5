"""Activation bytes of a network's forward pass, from its architecture on PyTorch's ``meta``
device (no weights, no pixels, no memory).

Used by the memory model (:mod:`padim_bench.memory.model`: the frozen backbone's activations of a
batch) and by methods that predict their own networks (the VAE).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import torch
from torch import nn

#: share of the summed layer outputs of one forward pass resident at the peak (calibrated on R18,
#: WR50 and EfficientNet-Lite0 fits: 0.15-0.35 of the sum; 0.25 with the other terms' slack keeps
#: every prediction above the measured peak; see :mod:`padim_bench.memory.model`).
ACTIVATION_FRACTION = 0.25


def leaf_output_bytes(module: nn.Module, shape: tuple[int, ...], call: Callable[[torch.Tensor], Any] | None = None) -> int:
    """Bytes (float32, 4 per element) of every leaf module's output when ``module`` (or ``call``)
    runs once on a ``meta`` tensor of ``shape`` (e.g. ``(1, 3, S, S)``).

    Leaf outputs that are dicts, tuples or lists count every tensor in them.
    """
    total = [0]

    def hook(_m: Any, _i: Any, out: Any) -> None:
        for t in out.values() if isinstance(out, dict) else out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor):
                total[0] += t.numel() * 4

    handles = [m.register_forward_hook(hook) for m in module.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            x = torch.empty(shape, device="meta")
            (call or module)(x)
    finally:
        for h in handles:
            h.remove()
    return total[0]


@functools.lru_cache(maxsize=64)
def forward_output_bytes(backbone: str, layers: tuple[str, ...], size: int) -> int:
    """Bytes (float32) of every leaf module's output in one forward pass of the backbone trunk
    cut after the deepest of ``layers``, for one ``size`` x ``size`` image.

    Raises:
        ConfigError: unknown backbone or layer.
    """
    from ..backbones import meta_trunk

    return leaf_output_bytes(meta_trunk(backbone, layers), (1, 3, size, size))


def backbone_activation_bytes(backbone: str, layers: Sequence[str], size: int) -> int:
    """Resident activation bytes of the frozen backbone per image at the peak:
    ``ACTIVATION_FRACTION`` x :func:`forward_output_bytes` (rounded down)."""
    return int(ACTIVATION_FRACTION * forward_output_bytes(backbone, tuple(layers), size))
