"""PaDiM against a plain float64 reference (numpy mean / covariance / inverse), on small tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from padim_bench.errors import ConfigError, PadimBenchError
from padim_bench.methods.padim import Padim, PadimParams, select_channels


class FakeExtractor(torch.nn.Module):
    """Two fixed random 'layers' at strides 4 and 8: (N, 6, H/4, W/4) and (N, 10, H/8, W/8)."""

    name = "fake"
    layers = ("layer1", "layer2")
    channels = {"layer1": 6, "layer2": 10}
    full_param_count = 1000
    weights = "random"

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(123)
        self.w1 = torch.randn(6, 3, generator=g)
        self.w2 = torch.randn(10, 3, generator=g)

    def forward(self, x):
        a = F.avg_pool2d(x, 4)
        b = F.avg_pool2d(x, 8)
        return {
            "layer1": torch.einsum("oc,nchw->nohw", self.w1, a),
            "layer2": torch.einsum("oc,nchw->nohw", self.w2, b) ** 2,
        }


def reference_embedding(ex: FakeExtractor, images: torch.Tensor, idx: np.ndarray) -> np.ndarray:
    """Embedding as the reference implementation builds it: each layer2 cell repeated over the
    2x2 block of layer1 cells it covers (its unfold-based embedding_concat), then channels idx."""
    f = ex(images)
    l1 = f["layer1"].double().numpy()
    l2 = f["layer2"].double().numpy().repeat(2, axis=2).repeat(2, axis=3)
    return np.concatenate([l1, l2], axis=1)[:, idx]  # (N, d, h, w)


def reference_distances(train: np.ndarray, test: np.ndarray, eps: float) -> np.ndarray:
    """float64 Mahalanobis distance per position: train (N, d, h, w), test (M, d, h, w)."""
    n, d, h, w = train.shape
    tr = train.reshape(n, d, h * w)
    te = test.reshape(len(test), d, h * w)
    out = np.empty((len(test), h * w))
    for p in range(h * w):
        mu = tr[:, :, p].mean(0)
        cov = np.cov(tr[:, :, p], rowvar=False, ddof=1) + eps * np.eye(d)
        inv = np.linalg.inv(cov)
        diff = te[:, :, p] - mu
        out[:, p] = np.sqrt(np.einsum("md,de,me->m", diff, inv, diff))
    return out.reshape(len(test), h, w)


#: float64-accumulator budgets (bytes) that force each accumulator dtype
FLOAT64_BUDGET = {"float64": 10**18, "float32": 0}


def images(n: int, seed: int, size: int = 32) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("acc", ["float64", "float32"])
@pytest.mark.parametrize("d", [5, None])
def test_distances_match_float64_reference(acc, d):
    ex = FakeExtractor()
    m = Padim(PadimParams(d=d), ex, seed=3, float64_max_bytes=FLOAT64_BUDGET[acc], chunk_bytes=1_000_000)
    train, test = images(23, 0), images(4, 1)
    m.fit([train[:10], train[10:17], train[17:]])  # uneven batches exercise the pairwise update
    idx = m.idx.numpy()
    ref = reference_distances(reference_embedding(ex, train, idx), reference_embedding(ex, test, idx), 0.01)
    got = m.score(test).double().numpy()
    assert got.shape == (4, 8, 8)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)


def test_fewer_images_than_dimensions_and_degenerate_channels():
    """60 images, d = 100, with a constant and a duplicated channel: epsilon I keeps Sigma
    invertible and the distances match the float64 reference within 1e-4."""

    class Wide(FakeExtractor):
        channels = {"layer1": 100}
        layers = ("layer1",)

        def forward(self, x):
            g = torch.Generator().manual_seed(7)
            w = torch.randn(100, 3, generator=g)
            f = torch.einsum("oc,nchw->nohw", w, F.avg_pool2d(x, 4))
            f = torch.tanh(f + 0.3 * torch.sin(7 * f))
            f[:, 0] = 0.5  # constant channel
            f[:, 1] = f[:, 2]  # duplicated channel
            return {"layer1": f}

    ex = Wide()
    m = Padim(PadimParams(d=None), ex)
    train, test = images(60, 2, size=16), images(3, 3, size=16)
    m.fit([train[:32], train[32:]])
    tr = ex(train)["layer1"].double().numpy()
    te = ex(test)["layer1"].double().numpy()
    ref = reference_distances(tr, te, 0.01)
    got = m.score(test).double().numpy()
    assert np.isfinite(got).all() and (got >= 0).all()
    np.testing.assert_allclose(got, ref, rtol=1e-4)


def test_large_distances_stay_finite():
    """Every component 30 standard deviations away, d = 100: distance = 30 * sqrt(100 / (1 + eps))."""

    rng = np.random.default_rng(0)
    z = rng.standard_normal((400, 100))
    z = (z - z.mean(0)) / z.std(0, ddof=1)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T  # sample cov exactly I
    feats = torch.tensor(z, dtype=torch.float32)[:, :, None, None].expand(400, 100, 2, 2).contiguous()

    class Direct(FakeExtractor):
        channels = {"layer1": 100}
        layers = ("layer1",)

        def forward(self, x):
            return {"layer1": x}

    m = Padim(PadimParams(d=None, epsilon=0.01), Direct())
    m.fit([feats[:200], feats[200:]])
    far = torch.tensor(z.mean(0), dtype=torch.float32)[None, :, None, None].expand(1, 100, 2, 2) + 30.0
    got = m.score(far.contiguous())
    expected = 30 * np.sqrt(100 / (1 + 0.01))  # Sigma = I + 0.01 I
    assert torch.isfinite(got).all()
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-4)


def test_batch_split_does_not_change_the_model():
    ex = FakeExtractor()
    train = images(20, 5)
    a = Padim(PadimParams(d=8), ex, seed=1)
    a.fit([train])
    b = Padim(PadimParams(d=8), ex, seed=1)
    b.fit([train[i : i + 3] for i in range(0, 20, 3)])
    ga, gb = a.gaussians[0], b.gaussians[0]
    torch.testing.assert_close(ga.mean, gb.mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ga.cov_inv_factor_t, gb.cov_inv_factor_t, rtol=1e-4, atol=1e-5)


def test_training_images_score_lower_than_shifted_ones():
    ex = FakeExtractor()
    train = images(30, 6)
    m = Padim(PadimParams(d=10), ex)
    m.fit([train])
    normal = m.score(images(5, 7)).mean()
    shifted = m.score((images(5, 7) * 0.3 + 0.7)).mean()
    assert shifted > 2 * normal


def test_channel_selection_is_seeded_and_saved():
    a, b, c = select_channels(448, 100, 0), select_channels(448, 100, 0), select_channels(448, 100, 1)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert len(set(a.tolist())) == 100 and int(a.min()) >= 0 and int(a.max()) < 448
    assert torch.equal(select_channels(448, None, 0), torch.arange(448))
    with pytest.raises(ConfigError, match="larger than the embedding"):
        select_channels(448, 500, 0)


def test_one_training_image_is_a_clear_error():
    m = Padim(PadimParams(d=4), FakeExtractor())
    with pytest.raises(PadimBenchError, match="at least 2 training images"):
        m.fit([images(1, 0)])


def test_save_and_load_give_the_same_maps(tmp_path):
    ex = FakeExtractor()
    m = Padim(PadimParams(d=7), ex, seed=4)
    m.fit([images(12, 0)])
    path = tmp_path / "model.pt"
    torch.save(m.state_dict(), path)
    m2 = Padim(PadimParams(d=7), ex, seed=4)
    m2.load_state_dict(torch.load(path, weights_only=True))
    test = images(3, 9)
    assert torch.equal(m.score(test), m2.score(test))
    other = Padim(PadimParams(d=7), ex, seed=5)
    with pytest.raises(PadimBenchError, match="other random channels"):
        other.load_state_dict(torch.load(path, weights_only=True))


@pytest.mark.parametrize("d", [1, 2, 7])
def test_factor_blocks_assemble_the_upper_triangular_inverse_factor(d):
    """The two stored blocks are L^-T (L the Cholesky factor of the float64 covariance + eps I):
    assembled, upper triangular and equal to a float64 reference, for odd, even and d = 1."""
    ex = FakeExtractor()
    train = images(12, 4)
    m = Padim(PadimParams(d=d), ex, seed=3)
    m.fit([train[:5], train[5:]])
    g = m.gaussians[0]
    assert g.factor_top.shape[1:] == (g.split, d) and g.factor_br.shape[1:] == (d - g.split,) * 2
    emb = m.embed(train).double()  # (N, d, h, w)
    x = emb.permute(2, 3, 0, 1).reshape(-1, len(train), d)  # (P, N, d)
    xc = x - x.mean(1, keepdim=True)
    cov = xc.transpose(1, 2) @ xc / (len(train) - 1) + 0.01 * torch.eye(d, dtype=torch.float64)
    ref = torch.linalg.inv(torch.linalg.cholesky(cov)).transpose(1, 2)
    full = g.cov_inv_factor_t.double()
    assert torch.equal(full, full.triu())
    torch.testing.assert_close(full, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("acc", ["float64", "float32"])
def test_fit_memory_chunks_give_the_same_model(acc):
    """Chunk size of the co-moment (and of the factorisation) does not change the model: its
    chunks are freed one by one, in float64 and in float32."""
    ex = FakeExtractor()
    budget = FLOAT64_BUDGET[acc]  # 16 channels: 488 positions per 1 MB float64 chunk
    a = Padim(PadimParams(d=None), ex, seed=2, float64_max_bytes=budget, chunk_bytes=1_000_000)
    b = Padim(PadimParams(d=None), ex, seed=2, float64_max_bytes=budget, chunk_bytes=64_000_000)
    for m in (a, b):
        m.fit([images(9, 0, 128), images(5, 1, 128)])
    assert len(a.gaussians[0].mean) == 32 * 32 > 2 * (1e6 // (16 * 16 * 8))  # three chunks were used
    torch.testing.assert_close(a.gaussians[0].cov_inv_factor_t, b.gaussians[0].cov_inv_factor_t, rtol=1e-6, atol=1e-7)


def test_state_size_follows_the_papers_table_viii_arithmetic():
    """P x (d + d^2) x 4 bytes for mean and covariance (paper's Table VIII convention)."""
    ex = FakeExtractor()
    m = Padim(PadimParams(d=9), ex)
    m.fit([images(4, 0)])
    sizes = m.state_nbytes()
    assert sizes["mean"] == 8 * 8 * 9 * 4
    assert sizes["cov"] == 8 * 8 * 9 * 9 * 4
    assert sizes["backbone"] == 1000 * 4


def test_sum_of_single_layer_gaussians_matches_the_reference():
    """Table I's "sum": one Gaussian grid per layer at its own resolution, maps added after
    bilinear upsampling of layer2's map to layer1's grid."""
    ex = FakeExtractor()
    m = Padim(PadimParams(d=None, combine="sum"), ex)
    train, test = images(25, 0), images(3, 1)
    m.fit([train[:9], train[9:]])
    ftr, fte = ex(train), ex(test)
    total = 0
    for layer in ("layer1", "layer2"):
        ref = reference_distances(ftr[layer].double().numpy(), fte[layer].double().numpy(), 0.01)
        ref = torch.tensor(ref)[:, None]
        if ref.shape[-1] != 8:
            ref = F.interpolate(ref, size=(8, 8), mode="bilinear", align_corners=False)
        total = total + ref[:, 0]
    np.testing.assert_allclose(m.score(test).double().numpy(), total.numpy(), rtol=1e-4, atol=1e-5)
    assert [g.grid for g in m.gaussians] == [(8, 8), (4, 4)]
    assert m.state_nbytes()["cov"] == (64 * 6 * 6 + 16 * 10 * 10) * 4


def test_pca_reduction_matches_a_sklearn_float64_reference():
    from sklearn.decomposition import PCA

    ex = FakeExtractor()
    m = Padim(PadimParams(d=4, reduction="pca"), ex)
    train, test = images(12, 0), images(2, 1)
    m.fit([train[:5], train[5:]])  # a list is re-iterable: pass 1 fits the PCA, pass 2 the Gaussians
    all_idx = np.arange(16)
    tr, te = reference_embedding(ex, train, all_idx), reference_embedding(ex, test, all_idx)
    pca = PCA(n_components=4).fit(tr.transpose(0, 2, 3, 1).reshape(-1, 16))
    proj = lambda e: np.einsum("dc,nchw->ndhw", pca.components_, e - pca.mean_[None, :, None, None])  # noqa: E731
    ref = reference_distances(proj(tr), proj(te), 0.01)
    # PCA's component signs are arbitrary but Mahalanobis distances do not depend on them
    np.testing.assert_allclose(m.score(test).double().numpy(), ref, rtol=1e-3, atol=1e-4)
    with pytest.raises(PadimBenchError, match="two passes"):
        Padim(PadimParams(d=4, reduction="pca"), ex).fit(iter([train]))
