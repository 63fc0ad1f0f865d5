"""SPADE and its exact kNN against brute-force float64 references on random data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from padim_bench.methods.knn import knn
from padim_bench.methods.spade import Spade, SpadeParams


def brute(q: np.ndarray, g: np.ndarray, k: int):
    d = np.sqrt(((q[:, None, :].astype(np.float64) - g[None].astype(np.float64)) ** 2).sum(-1))
    idx = np.argsort(d, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(d, idx, 1), idx


@pytest.mark.parametrize("chunk", [1000, 64, 7])
def test_knn_matches_brute_force_whatever_the_chunk(chunk):
    rng = np.random.default_rng(0)
    g = rng.normal(size=(150, 12)).astype(np.float32) * 10 + 100  # offset makes the expansion cancel
    q = rng.normal(size=(9, 12)).astype(np.float32) * 10 + 100
    q[0] = g[-1]  # the last gallery row, beyond any whole number of chunks
    d, i = knn(torch.from_numpy(q), torch.from_numpy(g), k=5, chunk=chunk)
    rd, ri = brute(q, g, 5)
    assert i[0, 0] == 149 and d[0, 0] == 0.0
    np.testing.assert_array_equal(i.numpy(), ri)
    np.testing.assert_allclose(d.numpy(), rd, rtol=1e-5)


def test_knn_rejects_bad_k():
    with pytest.raises(ValueError, match="k must be"):
        knn(torch.zeros(2, 3), torch.zeros(4, 3), k=5)


class Fake(torch.nn.Module):
    """layer1 (6 ch, stride 4), layer2 (5 ch, stride 8), layer4 (7 ch, stride 16, pooled)."""

    name = "fake"
    full_param_count = 10

    def __init__(self, layers=("layer1", "layer2", "layer4")):
        super().__init__()
        self.layers = tuple(layers)
        g = torch.Generator().manual_seed(0)
        self.w = {"layer1": torch.randn(6, 3, generator=g), "layer2": torch.randn(5, 3, generator=g),
                  "layer4": torch.randn(7, 3, generator=g)}
        self.s = {"layer1": 4, "layer2": 8, "layer4": 16}
        self.channels = {k: self.w[k].shape[0] for k in self.layers}

    def forward(self, x):
        return {k: torch.einsum("oc,nchw->nohw", self.w[k], F.avg_pool2d(x, self.s[k])).tanh() for k in self.layers}


def imgs(n, seed):
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def fitted(k=3, **kw) -> tuple[Spade, torch.Tensor]:
    train = imgs(10, 1)
    m = Spade(SpadeParams(k=k, **kw), Fake())
    m.set_train_size(10)
    m.fit([train[:4], train[4:]])
    return m, train


def test_image_and_pixel_scores_match_a_brute_force_reference():
    m, train = fitted(k=3)
    test = imgs(2, 2)
    maps, scores = m.score_images(test)
    ex = Fake()
    ftr, fte = ex(train), ex(test)
    pool_tr = ftr["layer4"].mean((2, 3)).double().numpy()
    pool_te = fte["layer4"].mean((2, 3)).double().numpy()
    d, nn = brute(pool_te, pool_tr, 3)
    np.testing.assert_allclose(scores.numpy(), (d**2).mean(1), rtol=1e-5)
    for b in range(2):
        per_layer = []
        for layer in ("layer1", "layer2"):
            g = ftr[layer][nn[b]].permute(0, 2, 3, 1).reshape(-1, ftr[layer].shape[1]).double().numpy()
            q = fte[layer][b].permute(1, 2, 0).reshape(-1, ftr[layer].shape[1]).double().numpy()
            h = fte[layer].shape[-1]
            dm = torch.tensor(brute(q, g, 1)[0][:, 0].reshape(1, 1, h, h))
            per_layer.append(F.interpolate(dm, size=(8, 8), mode="bilinear", align_corners=False)[0, 0])
        np.testing.assert_allclose(maps[b].numpy(), torch.stack(per_layer).mean(0).numpy(), rtol=1e-4, atol=1e-6)


def test_scores_do_not_depend_on_the_test_batch_size():
    m, _ = fitted(k=4)
    test = imgs(4, 3)
    maps4, s4 = m.score_images(test)
    one = [m.score_images(test[i : i + 1]) for i in range(4)]
    torch.testing.assert_close(torch.cat([o[1] for o in one]), s4)
    torch.testing.assert_close(torch.cat([o[0] for o in one]), maps4)


def test_a_training_image_scores_zero():
    """Up to the backbone's batch-size-dependent float32 rounding (fit in batches of 4 and 6)."""
    m, train = fitted(k=1)
    maps, scores = m.score_images(train[:1])
    assert float(scores[0]) < 1e-10 and float(maps.max()) < 1e-6


def test_concat_mode_and_memory_mapped_bank(tmp_path):
    a, _ = fitted(k=2, combine="concat")
    b, _ = fitted(k=2, combine="concat", bank="mmap", bank_dir=str(tmp_path))
    test = imgs(2, 4)
    torch.testing.assert_close(a.score_images(test)[0], b.score_images(test)[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["layer1.npy", "layer2.npy", "pool.npy"]


def test_bank_size_follows_the_papers_table_viii_convention():
    """WR50 layer1..3 at 224 (56, 28, 14 grids) plus the 2048-d pooled vector: 5.63 MB per image;
    x 242 images (MVTec AD mean per category) = 1.4 GB (paper Table VIII)."""
    ch = {"layer1": 256, "layer2": 512, "layer3": 1024, "layer4": 2048}
    grids = {"layer1": (56, 56), "layer2": (28, 28), "layer3": (14, 14), "layer4": (7, 7)}
    per_image = Spade.bytes_per_image(ch, grids, "layer4")
    assert per_image == (256 * 3136 + 512 * 784 + 1024 * 196 + 2048) * 4
    assert round(per_image / 1e6, 2) == 5.63
    assert round(per_image * 242 / 1e9, 1) == 1.4
    m, _ = fitted()
    assert m.state_nbytes()["bank"] == 10 * (6 * 8 * 8 + 5 * 4 * 4 + 7) * 4


def test_predicted_bank_equals_the_fitted_bank_on_a_real_architecture():
    """EfficientNet-Lite0 (random weights, 64 px): the bank predicted on the meta device before
    fitting is exactly the one the fit allocates."""
    from padim_bench.backbones import load_backbone

    params = SpadeParams(k=2)
    layers = Spade.extractor_layers(params, ["layer1", "layer2"])
    m = Spade(params, load_backbone("efficientnet_lite0", layers, weights="random"))
    m.set_train_size(3)
    m.fit([torch.rand(3, 3, 64, 64)])
    predicted = Spade.predict_state_nbytes(params, "efficientnet_lite0", ["layer1", "layer2"], 64, 3)
    assert predicted == m.state_nbytes()


def test_predicted_scoring_work_counts_every_distance_product():
    """ResNet18 at 64 px: layer1 64 ch on 16x16, layer2 128 ch on 8x8, layer3 256 ch on 4x4, pooled
    layer4 512 ch; k = 50 capped at the 10 training images. Multiply-adds counted by hand: the
    pooled search (10 x 512) plus, per layer, (h w) queries x (k h w) gallery rows x C."""
    cost = Spade.predict_score_cost(SpadeParams(k=50), "resnet18", ["layer1", "layer2", "layer3"], 64, 10)
    expected = 10 * 512 + 256 * 2560 * 64 + 64 * 640 * 128 + 16 * 160 * 256
    assert cost["macs"] == expected
    assert cost["gallery_rows"] == 2560
    # layer1 dominates the working set: gallery 2560 x 64, one 256 x 2560 block (the whole gallery:
    # fewer rows than spade.KNN_CHUNK_ROWS), its top-k, the query
    assert cost["temp_bytes"] == 4 * (2560 * 64 + 256 * 2560 + 2 * 256 * (2560 + 2) + 256 * 64 + 2560 * 64)
