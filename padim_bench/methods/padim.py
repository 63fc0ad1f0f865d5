"""PaDiM: a multivariate Gaussian per patch position (Defard et al. 2020, Sec. III).

1. Embedding (Sec. III-A): the backbone's layer1..layer3 maps, deeper maps upsampled (nearest, as
   the reference implementation's ``embedding_concat``) to layer1's grid and concatenated; ``d``
   channels kept, drawn at random once from a seeded generator (Sec. III-B, "Rd100").
2. Learning (Sec. III-B, Eq. 1): for every patch position (i, j) the mean ``mu_ij`` and covariance
   ``Sigma_ij = cov_ij + epsilon * I`` of the N training embeddings (``cov`` with N - 1).
   Accumulated in one streaming pass with Chan et al.'s pairwise update, so fit memory does not
   grow with N; the running second moment is float64 where it fits in ``accumulate_max_gb``,
   otherwise float32 (WR50-Rd550 float64 sums alone would be 7.6 GB).
3. Inference (Sec. III-C, Eq. 2): Mahalanobis distance ``M(x) = ||L^-1 (x - mu)||`` with
   ``Sigma = L L^T`` (Cholesky). ``L^-1`` is stored instead of ``Sigma``, so scoring is one batched
   matrix product and the distance is a norm: finite and >= 0 by construction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Literal

import torch
import torch.nn.functional as F

from ..backbones import full_param_count, layer_shapes
from ..errors import ConfigError, PadimBenchError
from .base import METHODS, Method, MethodSpec

# Paper's d per backbone (Sec. IV-B: R18-Rd100, WR50-Rd550); used by configs, never silently.
PAPER_D = {"resnet18": 100, "wide_resnet50_2": 550}


@dataclass(frozen=True)
class PadimParams:
    """PaDiM's own parameters.

    Attributes:
        d: number of embedding channels kept (random selection); ``None`` keeps all.
        epsilon: regularisation added to the covariance diagonal (paper: 0.01).
        accumulate_dtype: dtype of the running second moment; ``auto`` = float64 where the
            buffer fits in ``accumulate_max_gb``, else float32.
        accumulate_max_gb: budget in GB (1e9 bytes) for a float64 accumulator under ``auto``.
        chunk_mb: size in MB (1e6 bytes) of the per-position chunks used for the covariance
            update and factorisation (bounds temporary memory).
    """

    d: int | None = 100
    epsilon: float = 0.01
    accumulate_dtype: Literal["auto", "float32", "float64"] = "auto"
    accumulate_max_gb: float = 2.0
    chunk_mb: int = 64

    def check(self) -> None:
        """Raises ConfigError on out-of-range values."""
        if self.d is not None and self.d < 1:
            raise ConfigError(f"method.d: must be >= 1 or null (all channels), got {self.d}")
        if self.epsilon < 0:
            raise ConfigError(f"method.epsilon: must be >= 0, got {self.epsilon}")
        if self.chunk_mb < 1:
            raise ConfigError(f"method.chunk_mb: must be >= 1, got {self.chunk_mb}")


def select_channels(total: int, d: int | None, seed: int) -> torch.Tensor:
    """The ``d`` embedding channels PaDiM keeps, drawn once from ``torch.Generator(seed)``.

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


class Padim(Method):
    """PaDiM with a frozen :class:`~padim_bench.backbones.FeatureExtractor`.

    Fitted state: ``mean`` float32 ``(P, d)`` and ``cov_inv_factor`` float32 ``(P, d, d)``, the
    inverse Cholesky factor ``L^-1`` of ``Sigma`` per patch position (P = h * w of layer1's grid).
    """

    name = "padim"

    def __init__(self, params: PadimParams, extractor: Any, device: str | torch.device = "cpu", seed: int = 0):
        self.params = params
        self.extractor = extractor
        self.device = torch.device(device)
        self.layers = list(extractor.layers)
        self.channels = [extractor.channels[name] for name in self.layers]
        self.idx = select_channels(sum(self.channels), params.d, seed)
        # split the global channel indices into per-layer local indices (select before upsampling)
        bounds = torch.tensor([0] + self.channels).cumsum(0)
        self._local_idx = [
            (self.idx[(self.idx >= lo) & (self.idx < hi)] - lo).to(self.device)
            for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist())
        ]
        self.mean: torch.Tensor | None = None
        self.cov_inv_factor: torch.Tensor | None = None
        self.grid: tuple[int, int] | None = None
        self.n_train = 0

    @classmethod
    def check_embedding(cls, params: PadimParams, channels: dict[str, int]) -> None:
        """Raises ConfigError when ``d`` exceeds the embedding's channels."""
        total = sum(channels.values())
        if params.d is not None and params.d > total:
            raise ConfigError(
                f"method.d = {params.d} is larger than the embedding ({total} channels: "
                + ", ".join(f"{k} {v}" for k, v in channels.items()) + ")"
            )

    @classmethod
    def predict_state_nbytes(cls, params: PadimParams, backbone: str, layers: list[str], size: int, n_train: int) -> dict[str, int]:
        """``mean`` P*d*4, ``cov`` P*d*d*4 (P = layer1 grid cells) and ``backbone`` parameters*4 bytes;
        independent of ``n_train`` (paper Sec. IV-F)."""
        shapes = layer_shapes(backbone, layers, size)
        _, h, w = shapes[layers[0]]
        d = params.d if params.d is not None else sum(c for c, _, _ in shapes.values())
        return {"mean": h * w * d * 4, "cov": h * w * d * d * 4, "backbone": full_param_count(backbone) * 4}

    @property
    def d(self) -> int:
        """Embedding size after channel selection."""
        return int(self.idx.numel())

    # ---------------------------------------------------------------------------------- embedding
    @torch.inference_mode()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Random-channel embedding of a batch (paper Sec. III-A).

        Args:
            images: float32 ``(B, 3, H, W)`` in [0, 1].

        Returns:
            float32 ``(B, d, h, w)`` on ``self.device``, (h, w) the first layer's grid.
        """
        feats = self.extractor(images.to(self.device, non_blocking=True))
        size = feats[self.layers[0]].shape[-2:]
        parts = []
        for name, local in zip(self.layers, self._local_idx):
            if local.numel() == 0:
                continue
            f = feats[name].index_select(1, local)
            if f.shape[-2:] != size:
                f = F.interpolate(f, size=size, mode="nearest")
            parts.append(f)
        return torch.cat(parts, 1).float()

    # ---------------------------------------------------------------------------------------- fit
    def _chunk(self, itemsize: int) -> int:
        return max(1, int(self.params.chunk_mb * 1e6 // (self.d * self.d * itemsize)))

    def accumulate_dtype(self, positions: int) -> torch.dtype:
        """Dtype of the running second moment for ``positions`` patch positions."""
        choice = self.params.accumulate_dtype
        if choice == "auto":
            fits = positions * self.d * self.d * 8 <= self.params.accumulate_max_gb * 1e9
            return torch.float64 if fits else torch.float32
        return torch.float64 if choice == "float64" else torch.float32

    @torch.inference_mode()
    def fit(self, batches: Iterable[torch.Tensor]) -> None:
        """Streaming mean / covariance per patch position (Chan et al.'s pairwise update).

        Args:
            batches: float32 ``(B, 3, H, W)`` in [0, 1], normal images only.

        Raises:
            PadimBenchError: fewer than 2 training images, or a covariance that is not positive
                definite even in float64 (e.g. ``epsilon`` 0 with too few images).
        """
        n = 0
        mean = m2 = None
        for images in batches:
            emb = self.embed(images)  # (B, d, h, w)
            b, d, h, w = emb.shape
            x = emb.reshape(b, d, h * w).permute(2, 0, 1)  # (P, B, d)
            if mean is None:
                self.grid = (h, w)
                acc = self.accumulate_dtype(h * w)
                mean = torch.zeros(h * w, d, dtype=acc, device=self.device)
                m2 = torch.zeros(h * w, d, d, dtype=acc, device=self.device)
            xb = x.to(mean.dtype)
            mb = xb.mean(1)  # (P, d)
            delta = mb - mean
            n_new = n + b
            step = self._chunk(m2.element_size())
            for s in range(0, m2.shape[0], step):
                xc = xb[s : s + step] - mb[s : s + step, None, :]  # (p, B, d)
                m2[s : s + step].baddbmm_(xc.transpose(1, 2), xc)
                dc = delta[s : s + step, :, None]
                m2[s : s + step].baddbmm_(dc, dc.transpose(1, 2), alpha=n * b / n_new)
            mean += delta * (b / n_new)
            n = n_new
        if n < 2:
            raise PadimBenchError(
                f"PaDiM needs at least 2 training images to estimate a covariance, got {n}"
            )
        self.n_train = n
        self.mean = mean.float()
        self.cov_inv_factor = self._inverse_factor(m2, n)

    def _inverse_factor(self, m2: torch.Tensor, n: int) -> torch.Tensor:
        """``L^-1`` of ``Sigma = m2 / (n - 1) + epsilon I`` per position, in position chunks.

        Writes into ``m2``'s storage when it is float32 (no second (P, d, d) buffer).
        """
        out = m2 if m2.dtype == torch.float32 else torch.empty(m2.shape, dtype=torch.float32, device=m2.device)
        eye = torch.eye(self.d, dtype=torch.float64, device=m2.device)
        step = self._chunk(8)
        for s in range(0, m2.shape[0], step):
            cov = m2[s : s + step].to(torch.float64) / (n - 1) + self.params.epsilon * eye
            chol, info = torch.linalg.cholesky_ex(cov)
            if int(info.max()) > 0:
                bad = s + int((info > 0).nonzero()[0])
                raise PadimBenchError(
                    f"covariance at patch position {bad} is not positive definite "
                    f"(epsilon = {self.params.epsilon}, {n} training images); use epsilon > 0"
                )
            out[s : s + step] = torch.linalg.solve_triangular(chol, eye.expand_as(chol), upper=False).float()
        return out

    # ------------------------------------------------------------------------------------ scoring
    @torch.inference_mode()
    def score(self, images: torch.Tensor) -> torch.Tensor:
        """Mahalanobis distance per patch (paper Eq. 2).

        Args:
            images: float32 ``(B, 3, H, W)`` in [0, 1].

        Returns:
            float32 ``(B, h, w)`` on the CPU; finite and >= 0.
        """
        if self.mean is None:
            raise PadimBenchError("PaDiM model is not fitted")
        emb = self.embed(images)
        b, d, h, w = emb.shape
        x = emb.reshape(b, d, h * w).permute(2, 1, 0)  # (P, d, B)
        y = torch.bmm(self.cov_inv_factor, x - self.mean[:, :, None])  # (P, d, B)
        dist = y.square_().sum(1).sqrt_()  # (P, B)
        return dist.T.reshape(b, h, w).cpu()

    # -------------------------------------------------------------------------------------- state
    def state_nbytes(self) -> dict[str, int]:
        """Bytes of the fitted state: ``mean``, ``cov`` (the ``L^-1`` factor, same size as
        ``Sigma``) and ``backbone`` (all parameters of the full network, as the paper counts)."""
        p = self.grid[0] * self.grid[1] if self.grid else 0
        return {
            "mean": p * self.d * 4,
            "cov": p * self.d * self.d * 4,
            "backbone": int(self.extractor.full_param_count) * 4,
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "method": self.name,
            "mean": self.mean.cpu(),
            "cov_inv_factor": self.cov_inv_factor.cpu(),
            "idx": self.idx.clone(),
            "grid": list(self.grid),
            "n_train": self.n_train,
            "layers": list(self.layers),
            "backbone": self.extractor.name,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Raises PadimBenchError when the state was made with other layers, backbone or channels."""
        if state.get("method") != self.name:
            raise PadimBenchError(f"state is for method {state.get('method')!r}, not {self.name!r}")
        if state["layers"] != self.layers or state["backbone"] != self.extractor.name:
            raise PadimBenchError(
                f"state was fitted with {state['backbone']} {state['layers']}, "
                f"not {self.extractor.name} {self.layers}"
            )
        if not torch.equal(state["idx"], self.idx):
            raise PadimBenchError("state was fitted with other random channels (seed or d differ)")
        self.mean = state["mean"].to(self.device)
        self.cov_inv_factor = state["cov_inv_factor"].to(self.device)
        self.grid = tuple(state["grid"])
        self.n_train = int(state["n_train"])

    def describe(self) -> dict[str, Any]:
        return {
            "d": self.d,
            "embedding_channels": sum(self.channels),
            "channel_indices": self.idx.tolist(),
            "grid": list(self.grid) if self.grid else None,
            "n_train": self.n_train,
        }


METHODS.add("padim", MethodSpec(cls=Padim, params_class=PadimParams))
