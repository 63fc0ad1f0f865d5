"""Multi-layer feature code shared by the methods built on backbone feature maps (PaDiM, SPADE).

The pieces of the PaDiM paper's embedding (Sec. III-A) and of its per-layer variants: channels
selected per layer, maps upsampled to the finest grid and concatenated (nearest, as the reference
implementation's ``embedding_concat``), and per-layer anomaly maps brought to one grid (bilinear)
and combined by a sum or a mean. Tensors are channels-first ``(B, C, h, w)`` throughout.
"""

from __future__ import annotations

from typing import Literal, Mapping, Sequence

import torch
import torch.nn.functional as F

from ..errors import ConfigError


def select_channels(total: int, d: int | None, seed: int) -> torch.Tensor:
    """The ``d`` embedding channels kept, drawn once from ``torch.Generator(seed)`` (the paper's
    random dimensionality reduction, Sec. III-B, "Rd100").

    Returns:
        int64 tensor ``(d,)`` of sorted channel indices in ``[0, total)`` (all when ``d`` is None).

    Raises:
        ConfigError: ``d`` larger than ``total``.
    """
    if d is None:
        return torch.arange(total)
    if d > total:
        raise ConfigError(f"method.d = {d} is larger than the embedding ({total} channels)")
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(total, generator=g)[:d].sort().values


def split_by_layer(idx: torch.Tensor, channels: Sequence[int]) -> list[torch.Tensor]:
    """Global channel indices of the concatenated embedding, split into each layer's own indices.

    Args:
        idx: int64 ``(d,)`` indices into the concatenation of layers with ``channels`` channels.
        channels: channels per layer, in concatenation order.

    Returns:
        one int64 tensor per layer (possibly empty): the indices that fall in that layer, minus the
        layer's offset, in the order of ``idx``.
    """
    bounds = torch.tensor([0, *channels]).cumsum(0).tolist()
    return [idx[(idx >= lo) & (idx < hi)] - lo for lo, hi in zip(bounds[:-1], bounds[1:])]


def layer_maps(feats: Mapping[str, torch.Tensor], layers: Sequence[str],
               local_idx: Sequence[torch.Tensor] | None = None) -> list[torch.Tensor]:
    """Each layer's feature map as float32, with only its selected channels.

    Args:
        feats: ``{layer: (B, C_l, h_l, w_l)}`` as a feature extractor returns them.
        layers: the layers to take, in order.
        local_idx: per layer, the channels to keep (see :func:`split_by_layer`); ``None`` keeps all.

    Returns:
        ``[(B, d_l, h_l, w_l)]`` float32, on the features' device.
    """
    if local_idx is None:
        return [feats[name].float() for name in layers]
    return [feats[name].index_select(1, local).float() for name, local in zip(layers, local_idx)]


def finest_grid(maps: Sequence[torch.Tensor]) -> tuple[int, int]:
    """``(h, w)`` of the map with the most cells among ``maps`` (each ``(..., h, w)``); the first on ties."""
    return tuple(max((m.shape[-2:] for m in maps), key=lambda hw: hw[0] * hw[1]))


def upsample_concat(maps: Sequence[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
    """Nearest-upsample every map to ``size`` and concatenate along the channels.

    Args:
        maps: ``[(B, C_l, h_l, w_l)]``; maps with no channel are left out.
        size: ``(H, W)``, usually :func:`finest_grid` of the maps.

    Returns:
        ``(B, sum C_l, H, W)`` (maps already at ``size`` are used as they are).
    """
    size = tuple(size)
    return torch.cat([m if tuple(m.shape[-2:]) == size else F.interpolate(m, size=size, mode="nearest")
                      for m in maps if m.shape[1]], 1)


def combine_maps(maps: Sequence[torch.Tensor], size: tuple[int, int], how: Literal["sum", "mean"]) -> torch.Tensor:
    """Per-layer anomaly maps brought to one grid and combined.

    Each map is upsampled bilinearly (``align_corners=False``) to ``size`` where it differs, then
    the maps are added in order (``sum``: PaDiM's Table I "sum of the single-layer maps") or
    averaged (``mean``: SPADE's per-layer pixel scores, as its public reference code does).

    Args:
        maps: ``[(B, h_l, w_l)]`` float maps, at least one.
        size: ``(H, W)`` of the result.
        how: ``sum`` or ``mean``.

    Returns:
        ``(B, H, W)``.

    Raises:
        ValueError: an unknown ``how`` or no map.
    """
    if how not in ("sum", "mean") or not maps:
        raise ValueError(f"combine_maps: need at least one map and how = sum or mean, got {len(maps)} maps, {how!r}")
    size = tuple(size)
    up = []
    for m in maps:
        m = m[:, None]
        if tuple(m.shape[-2:]) != size:
            m = F.interpolate(m, size=size, mode="bilinear", align_corners=False)
        up.append(m[:, 0])
    if how == "mean":
        return torch.stack(up).mean(0)
    total = up[0]
    for m in up[1:]:
        total = total + m
    return total
