"""Per-position multivariate Gaussians over a grid of patch embeddings: PaDiM's learning and
inference steps (Defard et al. 2020, Sec. III-B Eq. 1 and Sec. III-C Eq. 2).

:class:`GaussianGrid` accumulates the mean and co-moment of the training embeddings in one
streaming pass (Chan et al.'s pairwise update), factorises ``Sigma = cov + epsilon I`` by Cholesky
and keeps ``L^-T``; :func:`accumulator_dtype` is the co-moment's precision rule that the fit and
PaDiM's memory prediction share. The method itself (embedding, PCA, state) is in
:mod:`padim_bench.methods.padim`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from ..errors import PadimBenchError

if TYPE_CHECKING:
    from .padim import PadimParams

#: the co-moment is accumulated in float64 where one Gaussian grid's float64 co-moment fits in this
#: many bytes (2.0 GB), else in float32: the rule every committed run used (see accumulator_dtype)
FLOAT64_MAX_BYTES = 2_000_000_000
#: bytes (64 MB) of one position chunk of the co-moment (and a quarter of it per temporary buffer of
#: the factorisation): bounds the fit's temporary memory
CHUNK_BYTES = 64_000_000


def accumulator_dtype(positions: int, d: int, float64_max_bytes: int = FLOAT64_MAX_BYTES) -> torch.dtype:
    """Dtype of the running mean and co-moment of a grid of ``positions`` Gaussians of dimension
    ``d``: float64 where its co-moment (``positions x d x d x 8`` bytes) fits in
    ``float64_max_bytes``, else float32. The fit (:class:`GaussianGrid`) and the memory prediction
    (:meth:`~padim_bench.methods.padim.Padim.predict_memory`) both use this rule."""
    return torch.float64 if positions * d * d * 8 <= float64_max_bytes else torch.float32


class GaussianGrid:
    """Per-position multivariate Gaussians over a grid of patch embeddings (paper Eq. 1 and 2).

    Fitted state: ``mean`` float32 ``(P, d)`` and the transposed inverse Cholesky factor
    ``L^-T`` of ``Sigma = cov + epsilon I`` (``cov`` with N - 1), upper triangular, held as two
    float32 blocks: ``factor_top`` ``(P, k, d)`` (its first ``k = ceil(d / 2)`` rows) and
    ``factor_br`` ``(P, d - k, d - k)`` (the lower-right block); the lower-left block is zero and is
    neither stored nor read. Scoring multiplies row vectors from the left, ``(x - mu)^T L^-T``,
    which reads the factor at memory bandwidth (about 3.5x faster at batch 1 than ``L^-1 (x - mu)``
    with column vectors); skipping the zero block reads and multiplies 25 % less: the distance
    step for 3,136 positions is 1.03-1.6x faster on 2 cores for d = 100 and 550 at batch 1 and 8,
    same numbers to 2e-7 relative (scripts/bench_kernels.py, results/bench/kernels.md).
    ``cov_inv_factor_t`` assembles the full ``(P, d, d)`` matrix on demand.

    ``float64_max_bytes`` and ``chunk_bytes`` are the accumulator rule's budget
    (:func:`accumulator_dtype`) and the co-moment's chunk size; the tool uses
    :data:`FLOAT64_MAX_BYTES` and :data:`CHUNK_BYTES` (tests set others).
    """

    def __init__(self, d: int, params: "PadimParams", device: torch.device, *,
                 float64_max_bytes: int = FLOAT64_MAX_BYTES, chunk_bytes: int = CHUNK_BYTES):
        self.d, self.params, self.device = d, params, device
        self.float64_max_bytes, self.chunk_bytes = float64_max_bytes, chunk_bytes
        self.n = 0
        self.grid: tuple[int, int] | None = None
        self.mean: torch.Tensor | None = None
        self.factor_top: torch.Tensor | None = None  # (P, k, d): rows 0..k-1 of L^-T
        self.factor_br: torch.Tensor | None = None  # (P, d-k, d-k): rows and columns k.. of L^-T
        self._m2: list[torch.Tensor] | None = None  # co-moment, position chunks (P_k, d, d)

    @property
    def split(self) -> int:
        """``k``: rows of ``L^-T`` in ``factor_top``."""
        return (self.d + 1) // 2

    @property
    def cov_inv_factor_t(self) -> torch.Tensor | None:
        """``L^-T`` float32 ``(P, d, d)``, assembled from the two stored blocks (a new tensor)."""
        if self.factor_top is None:
            return None
        k = self.split
        out = torch.zeros(self.factor_top.shape[0], self.d, self.d, dtype=self.factor_top.dtype,
                          device=self.factor_top.device)
        out[:, :k] = self.factor_top
        out[:, k:, k:] = self.factor_br
        return out

    def _set_factor(self, full_t: torch.Tensor) -> None:
        """Keep the two blocks of a full ``L^-T`` ``(P, d, d)``."""
        k = self.split
        self.factor_top = full_t[:, :k].contiguous()
        self.factor_br = full_t[:, k:, k:].contiguous()

    def _chunk(self, itemsize: int) -> int:
        return max(1, self.chunk_bytes // (self.d * self.d * itemsize))

    def accumulate_dtype(self, positions: int) -> torch.dtype:
        """Dtype of the running second moment for ``positions`` patch positions."""
        return accumulator_dtype(positions, self.d, self.float64_max_bytes)

    @torch.inference_mode()
    def update(self, emb: torch.Tensor) -> None:
        """Add a batch ``(B, d, h, w)`` with Chan et al.'s pairwise mean / co-moment update.

        The co-moment is held as position chunks of about ``chunk_bytes`` each; batch values are
        cast to the accumulator dtype one chunk at a time (no float64 copy of the whole batch)."""
        b, d, h, w = emb.shape
        x = emb.reshape(b, d, h * w).permute(2, 0, 1)  # (P, B, d), a view
        if self._m2 is None:
            self.grid = (h, w)
            acc = self.accumulate_dtype(h * w)
            self.mean = torch.zeros(h * w, d, dtype=acc, device=self.device)
            step = self._chunk(torch.empty((), dtype=acc).element_size())
            # separate chunks: finalize frees each once its part of the factor is written
            self._m2 = [torch.zeros(min(step, h * w - s), d, d, dtype=acc, device=self.device)
                        for s in range(0, h * w, step)]
        mean, n = self.mean, self.n
        mb = x.mean(1, dtype=mean.dtype)  # (P, d)
        delta = mb - mean
        n_new = n + b
        # Chan et al.: m2 += Xc^T Xc + (n b / n_new) delta delta^T. Both terms in ONE batched
        # product: the scaled delta is an extra row of Xc, so the co-moment (3.8 GB for WR50-Rd550)
        # is read and written once per batch instead of twice.
        rows = b + 1 if n else b
        scale = (n * b / n_new) ** 0.5
        s = 0
        for m2 in self._m2:
            e = s + m2.shape[0]
            xc = torch.empty(e - s, rows, d, dtype=mean.dtype, device=mean.device)  # (p, rows, d); bmm is slow on views
            torch.sub(x[s:e], mb[s:e, None, :], out=xc[:, :b])
            if n:
                torch.mul(delta[s:e], scale, out=xc[:, b])
            m2.baddbmm_(xc.transpose(1, 2), xc)
            s = e
        mean += delta * (b / n_new)
        self.n = n_new

    @torch.inference_mode()
    def finalize(self) -> None:
        """``L^-T`` of ``Sigma = m2 / (n - 1) + epsilon I`` per position (float64 Cholesky and
        triangular inverse, stored float32 as its two non-zero blocks), in sub-chunks of about
        ``chunk_bytes / 4`` per temporary buffer. Each co-moment chunk is freed as soon as its
        part of the factor is written, so the fit's peak is the co-moment plus a few chunks, never
        co-moment plus factor.

        Raises:
            PadimBenchError: fewer than 2 images, or a covariance not positive definite.
        """
        n, chunks = self.n, self._m2
        if n < 2:
            raise PadimBenchError(f"PaDiM needs at least 2 training images to estimate a covariance, got {n}")
        p, d, k = sum(c.shape[0] for c in chunks), self.d, self.split
        dev = chunks[0].device
        # pages are touched (resident) only as the blocks are written
        top = torch.empty(p, k, d, dtype=torch.float32, device=dev)
        br = torch.empty(p, d - k, d - k, dtype=torch.float32, device=dev)
        eye = torch.eye(d, dtype=torch.float64, device=dev)
        sub = max(1, self._chunk(8) // 4)
        s = 0
        for i in range(len(chunks)):
            m2 = chunks[i]
            for a in range(0, m2.shape[0], sub):
                cov = m2[a : a + sub].to(torch.float64) / (n - 1) + self.params.epsilon * eye
                chol, info = torch.linalg.cholesky_ex(cov)
                if int(info.max()) > 0:
                    bad = s + a + int((info > 0).nonzero()[0])
                    raise PadimBenchError(
                        f"covariance at patch position {bad} is not positive definite "
                        f"(epsilon = {self.params.epsilon}, {n} training images); use epsilon > 0"
                    )
                inv_t = torch.linalg.solve_triangular(chol, eye.expand_as(chol), upper=False).transpose(1, 2)  # L^-T
                rows = slice(s + a, s + a + cov.shape[0])
                top[rows] = inv_t[:, :k]  # cast to float32 by the copy
                br[rows] = inv_t[:, k:, k:]
                del cov, chol, inv_t
            s += m2.shape[0]
            chunks[i] = None  # free this co-moment chunk now
            del m2
        self.mean, self.factor_top, self.factor_br, self._m2 = self.mean.float(), top, br, None

    @torch.inference_mode()
    def distance(self, emb: torch.Tensor) -> torch.Tensor:
        """Mahalanobis distance ``||(x - mu)^T L^-T||`` (paper Eq. 2) of ``(B, d, h, w)``:
        float32 ``(B, h, w)``, finite and >= 0."""
        b, d, h, w = emb.shape
        k = self.split
        x = emb.reshape(b, d, h * w).permute(2, 0, 1)  # (P, B, d)
        xc = (x - self.mean[:, None, :]).contiguous()
        y = torch.bmm(xc[:, :, :k], self.factor_top)  # (P, B, d): the first k rows of L^-T
        y[:, :, k:] += torch.bmm(xc[:, :, k:], self.factor_br)  # the rest: its lower-right block
        return y.square_().sum(2).sqrt_().T.reshape(b, h, w)

    def nbytes(self) -> dict[str, int]:
        p = self.grid[0] * self.grid[1] if self.grid else 0
        return {"mean": p * self.d * 4, "cov": p * self.d * self.d * 4}

    def state(self) -> dict[str, Any]:
        return {"mean": self.mean.cpu(), "factor_top": self.factor_top.cpu(), "factor_br": self.factor_br.cpu(),
                "grid": list(self.grid), "n": self.n}

    def load(self, state: dict[str, Any]) -> None:
        """Load :meth:`state`."""
        self.mean = state["mean"].to(self.device)
        self.factor_top = state["factor_top"].to(self.device)
        self.factor_br = state["factor_br"].to(self.device)
        self.grid, self.n = tuple(state["grid"]), int(state["n"])
