"""The shared multi-layer feature code (methods/features.py) against independent computations:
index arithmetic by hand, and F.interpolate + torch.cat written out in the test. The results must
be bit-identical (torch.equal), since PaDiM and SPADE moved onto this code with no number moving."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from padim_bench.errors import ConfigError
from padim_bench.methods.features import (combine_maps, finest_grid, layer_maps, select_channels, split_by_layer,
                                          upsample_concat)


def rand(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def pyramid(b: int = 2, seed: int = 0) -> list[torch.Tensor]:
    """Three layers as a ResNet gives them: 4 channels on 8x8, 6 on 4x4, 5 on 2x2."""
    return [rand(b, 4, 8, 8, seed=seed), rand(b, 6, 4, 4, seed=seed + 1), rand(b, 5, 2, 2, seed=seed + 2)]


def test_select_channels_is_seeded_sorted_and_checked():
    a, b, c = select_channels(20, 7, 0), select_channels(20, 7, 0), select_channels(20, 7, 1)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.tolist() == sorted(set(a.tolist())) and len(a) == 7 and 0 <= int(a.min()) and int(a.max()) < 20
    assert torch.equal(select_channels(20, None, 0), torch.arange(20))
    with pytest.raises(ConfigError, match="larger than the embedding"):
        select_channels(20, 21, 0)


def test_split_by_layer_gives_each_layers_own_indices():
    """Channels 4 + 6 + 5: global 0..3 are layer 1, 4..9 layer 2 (minus 4), 10..14 layer 3 (minus 10)."""
    idx = torch.tensor([1, 3, 4, 9, 12, 14])
    parts = split_by_layer(idx, [4, 6, 5])
    assert [p.tolist() for p in parts] == [[1, 3], [0, 5], [2, 4]]
    empty = split_by_layer(torch.tensor([5, 6]), [4, 6, 5])
    assert [p.tolist() for p in empty] == [[], [1, 2], []]


def test_layer_maps_select_channels_before_upsampling():
    maps = pyramid()
    feats = {"layer1": maps[0], "layer2": maps[1].double(), "layer3": maps[2]}
    local = [torch.tensor([0, 2]), torch.tensor([5]), torch.tensor([], dtype=torch.long)]
    got = layer_maps(feats, ["layer1", "layer2", "layer3"], local)
    assert torch.equal(got[0], maps[0][:, [0, 2]])
    assert got[1].dtype == torch.float32 and torch.equal(got[1], maps[1].double()[:, [5]].float())
    assert got[2].shape == (2, 0, 2, 2)
    every = layer_maps(feats, ["layer3", "layer1"])
    assert torch.equal(every[0], maps[2]) and torch.equal(every[1], maps[0])


def test_finest_grid_is_the_map_with_most_cells():
    assert finest_grid(pyramid()[::-1]) == (8, 8)
    assert finest_grid([torch.zeros(1, 1, 3, 5), torch.zeros(1, 1, 5, 3)]) == (3, 5)  # first on ties


def test_upsample_concat_equals_nearest_interpolate_and_cat():
    maps = pyramid()
    expected = torch.cat([maps[0], F.interpolate(maps[1], size=(8, 8), mode="nearest"),
                          F.interpolate(maps[2], size=(8, 8), mode="nearest")], 1)
    got = upsample_concat(maps, (8, 8))
    assert got.shape == (2, 15, 8, 8) and torch.equal(got, expected)
    # nearest upsampling by 2 repeats every cell over its 2x2 block (the reference embedding_concat)
    assert torch.equal(got[:, 4:10], maps[1].repeat_interleave(2, 2).repeat_interleave(2, 3))
    # a layer with no selected channel is left out
    no_mid = upsample_concat([maps[0], maps[1][:, :0], maps[2]], (8, 8))
    assert torch.equal(no_mid, torch.cat([expected[:, :4], expected[:, 10:]], 1))


def test_combine_maps_sum_and_mean_equal_bilinear_interpolate_then_add():
    maps = [rand(3, 8, 8, seed=5), rand(3, 4, 4, seed=6), rand(3, 2, 2, seed=7)]

    def up(m):
        return F.interpolate(m[:, None], size=(8, 8), mode="bilinear", align_corners=False)[:, 0]

    ups = [maps[0], up(maps[1]), up(maps[2])]
    assert torch.equal(combine_maps(maps, (8, 8), "sum"), (ups[0] + ups[1]) + ups[2])
    assert torch.equal(combine_maps(maps, (8, 8), "mean"), torch.stack(ups).mean(0))
    # bilinear by 2 with align_corners=False: an interior output cell is 3/4 of its own cell + 1/4 of the next
    x = maps[1][0].double()
    assert abs(float(up(maps[1])[0, 3, 3]) - float(0.5625 * x[1, 1] + 0.1875 * (x[1, 2] + x[2, 1]) + 0.0625 * x[2, 2])) < 1e-5
    with pytest.raises(ValueError, match="sum or mean"):
        combine_maps(maps, (8, 8), "max")
