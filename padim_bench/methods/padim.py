"""PaDiM: a multivariate Gaussian per patch position (Defard et al. 2020, Sec. III).

1. Embedding (Sec. III-A): the backbone's layer1..layer3 maps, deeper maps upsampled (nearest, as
   the reference implementation's ``embedding_concat``) to layer1's grid and concatenated; ``d``
   channels kept, drawn at random once from a seeded generator (Sec. III-B, "Rd100").
2. Learning (Sec. III-B, Eq. 1): for every patch position (i, j) the mean ``mu_ij`` and covariance
   ``Sigma_ij = cov_ij + epsilon * I`` of the N training embeddings (``cov`` with N - 1).
   Accumulated in one streaming pass with Chan et al.'s pairwise update, so fit memory does not
   grow with N; the running second moment is float64 where it fits in ``FLOAT64_MAX_BYTES``
   (2.0 GB), otherwise float32 (WR50-Rd550 float64 sums alone would be 7.6 GB):
   :func:`~padim_bench.methods.gaussian.accumulator_dtype`, the one rule the fit and the memory
   prediction share (:class:`~padim_bench.methods.gaussian.GaussianGrid` holds steps 2 and 3).
3. Inference (Sec. III-C, Eq. 2): Mahalanobis distance ``M(x) = ||L^-1 (x - mu)||`` with
   ``Sigma = L L^T`` (Cholesky). ``L^-1`` is stored (transposed, as its two non-zero blocks)
   instead of ``Sigma``, so scoring is two batched matrix products and the distance is a norm:
   finite and >= 0 by construction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Literal, Mapping

import torch

from ..backbones import full_param_count, layer_shapes
from ..errors import ConfigError, PadimBenchError
from .base import METHODS, Method, MethodMemory, MethodSpec
from .features import combine_maps, finest_grid, layer_maps, select_channels, split_by_layer, upsample_concat
from .gaussian import CHUNK_BYTES, FLOAT64_MAX_BYTES, GaussianGrid, accumulator_dtype


@dataclass(frozen=True)
class PadimParams:
    """PaDiM's own parameters.

    Attributes:
        d: number of embedding channels kept (random selection); ``None`` keeps all.
        epsilon: regularisation added to the covariance diagonal (paper: 0.01).
        reduction: ``random`` (the paper's PaDiM) or ``pca`` (Table II's comparison: the first
            ``d`` principal components of the training patch embeddings, scikit-learn PCA).
        combine: ``joint`` (one Gaussian over all layers, the paper's PaDiM) or ``sum`` (Table I:
            one Gaussian grid per layer at its own resolution, distance maps added).
        pca_samples: patch embeddings used to fit the PCA: the same number of random positions
            (drawn with the seed) from every training image; all of them when fewer.
    """

    d: int | None = 100
    epsilon: float = 0.01
    reduction: Literal["random", "pca"] = "random"
    combine: Literal["joint", "sum"] = "joint"
    pca_samples: int = 200_000

    def check(self) -> None:
        """Raises ConfigError on out-of-range values."""
        if self.d is not None and self.d < 1:
            raise ConfigError(f"method.d: must be >= 1 or null (all channels), got {self.d}")
        if self.epsilon < 0:
            raise ConfigError(f"method.epsilon: must be >= 0, got {self.epsilon}")
        if self.reduction == "pca" and (self.d is None or self.combine != "joint"):
            raise ConfigError("method.reduction: pca needs an explicit method.d and combine: joint")
        if self.pca_samples < 1:
            raise ConfigError(f"method.pca_samples: must be >= 1, got {self.pca_samples}")


def grid_sizes(params: "PadimParams", shapes: dict[str, tuple[int, int, int]]) -> list[tuple[int, int]]:
    """``[(positions, d)]`` of the Gaussian grids PaDiM fits on layers of ``shapes`` (``{layer:
    (C, h, w)}``): one on the finest grid over the whole embedding (``combine: joint``), or one per
    layer at its own grid over its share of the ``d`` channels (``combine: sum``; layers with no
    channel left out). The split is drawn with seed 0: exact for ``d: null`` (every channel, as
    Table I's sum) and for ``joint``; with an explicit ``d`` under ``sum`` another seed's per-layer
    shares can differ by a few channels (the sizes, not the totals, are then approximate).

    Raises:
        ConfigError: ``d`` larger than the embedding (``combine: sum``).
    """
    channels = [c for c, _, _ in shapes.values()]
    if params.combine == "sum":
        local = split_by_layer(select_channels(sum(channels), params.d, 0), channels)
        return [(h * w, len(k)) for k, (_, h, w) in zip(local, shapes.values()) if len(k)]
    finest = max(h * w for _, h, w in shapes.values())
    return [(finest, params.d if params.d is not None else sum(channels))]


class Padim(Method):
    """PaDiM with a frozen :class:`~padim_bench.backbones.FeatureExtractor`.

    ``combine: joint`` (the paper's PaDiM): one Gaussian per position of layer1's grid over the
    concatenated embedding. ``combine: sum`` (Table I's "sum of the single-layer maps"): one
    Gaussian grid per layer at its own resolution; the distance maps are upsampled (bilinear) to
    layer1's grid and added. ``reduction: pca`` (Table II) replaces the random channels by the
    first ``d`` principal components of the training embeddings (scikit-learn PCA).

    ``float64_max_bytes`` and ``chunk_bytes`` go to every :class:`GaussianGrid` (defaults: the
    tool's fixed :data:`FLOAT64_MAX_BYTES` and :data:`CHUNK_BYTES`; tests set others).
    """

    name = "padim"
    display_name = "PaDiM"

    def __init__(self, params: PadimParams, extractor: Any, device: str | torch.device = "cpu", seed: int = 0, *,
                 float64_max_bytes: int = FLOAT64_MAX_BYTES, chunk_bytes: int = CHUNK_BYTES):
        self.params = params
        self._grid_knobs = {"float64_max_bytes": float64_max_bytes, "chunk_bytes": chunk_bytes}
        self.extractor = extractor
        self.device = torch.device(device)
        self.seed = seed
        self.layers = list(extractor.layers)
        self.channels = [extractor.channels[name] for name in self.layers]
        total = sum(self.channels)
        self.idx = torch.arange(total) if params.reduction == "pca" else select_channels(total, params.d, seed)
        # the global channel indices as per-layer local ones (channels are selected before upsampling)
        self._local_idx = [i.to(self.device) for i in split_by_layer(self.idx, self.channels)]
        self.pca_mean: torch.Tensor | None = None  # (C,)
        self.pca_components: torch.Tensor | None = None  # (d, C)
        self.gaussians: list[GaussianGrid] = []
        self.n_train = 0

    @classmethod
    def label_parts(cls, settings: Mapping[str, Any]) -> list[str]:
        """``Rd<d>`` when ``d`` is set (the paper's ``PaDiM-R18-Rd100``)."""
        return [f"Rd{settings['d']}"] if settings.get("d") else []

    @classmethod
    def variant_parts(cls, settings: Mapping[str, Any]) -> list[str]:
        """``reduction`` and ``combine`` where they are not the paper's PaDiM (``pca``, ``sum``)."""
        defaults = (("reduction", "random"), ("combine", "joint"))
        return [str(settings[key]) for key, default in defaults if settings.get(key, default) != default]

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
        """``mean`` P*d*4, ``cov`` P*d*d*4 (P = layer1 grid cells; per layer for ``combine: sum``),
        ``pca`` (d+1)*C*4 under PCA and ``backbone`` parameters*4 bytes; independent of
        ``n_train`` (paper Sec. IV-F)."""
        return {**cls._state_bytes(params, layer_shapes(backbone, layers, size)),
                "backbone": full_param_count(backbone) * 4}

    @classmethod
    def _state_bytes(cls, params: PadimParams, shapes: dict[str, tuple[int, int, int]]) -> dict[str, int]:
        grids = grid_sizes(params, shapes)
        out = {"mean": sum(p * d * 4 for p, d in grids), "cov": sum(p * d * d * 4 for p, d in grids)}
        if params.reduction == "pca":
            out["pca"] = (params.d + 1) * sum(c for c, _, _ in shapes.values()) * 4
        return out

    @classmethod
    def predict_memory(cls, params: PadimParams, backbone: str, layers: list[str], size: int, n_train: int,
                       n_test: int, batch: int) -> MethodMemory:
        """PaDiM's memory (bytes; see :meth:`Method.predict_memory`). State: mean and factor
        (:meth:`predict_state_nbytes`). Fit: the float64 co-moment and mean where
        :func:`accumulator_dtype` chooses float64 (a float32 one is freed chunk by chunk as the
        smaller factor is written, so the state covers it), 3 chunks of :data:`CHUNK_BYTES`, the
        batch's embedding with its accumulator-precision copy (and, under PCA, every channel
        before the projection), and PCA's patch sample (3 float64 copies, host RAM). Scoring: the
        batch's embedding, centred and projected (12 bytes per value)."""
        shapes = layer_shapes(backbone, layers, size)
        grids = grid_sizes(params, shapes)
        wide = [accumulator_dtype(p, d) == torch.float64 for p, d in grids]
        embed = sum(p * d * (8 + (8 if w else 4)) for (p, d), w in zip(grids, wide))
        pca = 0
        if params.reduction == "pca":
            finest, total = grids[0][0], sum(c for c, _, _ in shapes.values())
            pca = 3 * min(finest, math.ceil(params.pca_samples / max(1, n_train))) * n_train * total * 8
            embed += finest * total * 8  # every channel is embedded before the projection
        names = {"mean": "Gaussian means (float32)", "cov": "covariance factors (float32)",
                 "pca": "PCA projection (float32)"}
        return MethodMemory(
            state={names[k]: v for k, v in cls._state_bytes(params, shapes).items()},
            fit={"co-moment and mean (float64)": sum(p * d * (d + 1) * 8 for (p, d), w in zip(grids, wide) if w),
                 "factorisation chunks": 3 * CHUNK_BYTES, "PCA samples (float64)": pca,
                 "embeddings of a batch": min(batch, n_train) * embed},
            score={"embeddings of a batch": min(batch, n_test) * sum(p * d * 12 for p, d in grids)},
            host=frozenset({"PCA samples (float64)"}), grows_with_train=False,
            advice=("a smaller method.d (the co-moment and factor grow with d squared)",))

    @property
    def d(self) -> int:
        """Embedding size after reduction."""
        return int(self.params.d if self.params.reduction == "pca" else self.idx.numel())

    # ---------------------------------------------------------------------------------- embedding
    @torch.inference_mode()
    def layer_features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The selected channels of each layer at the layer's own resolution: ``[(B, d_l, h_l, w_l)]``."""
        feats = self.extractor(images.to(self.device, non_blocking=True))
        return layer_maps(feats, self.layers, self._local_idx)

    @torch.inference_mode()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Embedding of a batch (paper Sec. III-A): selected channels of every layer, deeper maps
        nearest-upsampled to layer1's grid, concatenated; projected on the principal components
        under ``reduction: pca``.

        Args:
            images: float32 ``(B, 3, H, W)`` in [0, 1].

        Returns:
            float32 ``(B, d, h, w)`` on ``self.device``, (h, w) the first layer's grid.
        """
        parts = self.layer_features(images)
        emb = upsample_concat(parts, finest_grid(parts))
        if self.pca_components is not None:
            emb = torch.einsum("dc,bchw->bdhw", self.pca_components, emb - self.pca_mean[None, :, None, None])
        return emb

    # ---------------------------------------------------------------------------------------- fit
    @torch.inference_mode()
    def fit(self, batches: Iterable[torch.Tensor]) -> None:
        """Streaming mean / covariance per patch position (one pass; two under PCA).

        Args:
            batches: float32 ``(B, 3, H, W)`` in [0, 1], normal images only; re-iterable under
                ``reduction: pca`` (the first pass fits the PCA).

        Raises:
            PadimBenchError: fewer than 2 training images, or a covariance that is not positive
                definite even in float64 (e.g. ``epsilon`` 0 with too few images).
        """
        if self.params.reduction == "pca":
            self._fit_pca(batches)
        self.gaussians = []
        n = 0
        for images in batches:
            parts = self.layer_features(images) if self.params.combine == "sum" else [self.embed(images)]
            if not self.gaussians:
                self.gaussians = [GaussianGrid(int(p.shape[1]), self.params, self.device, **self._grid_knobs)
                                  for p in parts]
            for g, x in zip(self.gaussians, parts):
                if x.shape[1]:
                    g.update(x)
            n += len(images)
        if n < 2:
            raise PadimBenchError(f"PaDiM needs at least 2 training images to estimate a covariance, got {n}")
        self.gaussians = [g for g in self.gaussians if g.d]
        for g in self.gaussians:
            g.finalize()
        self.n_train = n

    def _fit_pca(self, batches: Iterable[torch.Tensor]) -> None:
        """Fit scikit-learn's PCA on up to ``pca_samples`` patch embeddings drawn with the seed."""
        from sklearn.decomposition import PCA

        if iter(batches) is batches:
            raise PadimBenchError("reduction: pca needs two passes over the training images (a re-iterable loader)")
        import numpy as np

        g = torch.Generator().manual_seed(self.seed)
        chunks = []
        for images in batches:
            emb = self.embed(images)  # all channels (idx = all under PCA)
            b, c, h, w = emb.shape
            per_image = -(-self.params.pca_samples // self.n_train_expected) if self.n_train_expected else h * w
            x = emb.permute(0, 2, 3, 1).reshape(b, h * w, c)
            if per_image < h * w:  # the same number of random positions from every image
                keep = torch.stack([torch.randperm(h * w, generator=g)[:per_image] for _ in range(b)]).to(x.device)
                x = x.gather(1, keep[:, :, None].expand(-1, -1, c))
            chunks.append(x.reshape(-1, c).cpu().double().numpy())

        data = np.concatenate(chunks)
        if self.params.d > min(data.shape):
            raise PadimBenchError(f"reduction: pca with d = {self.params.d} needs at least {self.params.d} patch samples")
        pca = PCA(n_components=self.params.d, random_state=self.seed).fit(data)
        self.pca_mean = torch.tensor(pca.mean_, dtype=torch.float32, device=self.device)
        self.pca_components = torch.tensor(pca.components_, dtype=torch.float32, device=self.device)

    # ------------------------------------------------------------------------------------ scoring
    @torch.inference_mode()
    def score(self, images: torch.Tensor) -> torch.Tensor:
        """Mahalanobis distance per patch (paper Eq. 2); summed over layers under ``combine: sum``.

        Args:
            images: float32 ``(B, 3, H, W)`` in [0, 1].

        Returns:
            float32 ``(B, h, w)`` on the CPU (layer1's grid); finite and >= 0.
        """
        if not self.gaussians:
            raise PadimBenchError("PaDiM model is not fitted")
        if self.params.combine != "sum":
            return self.gaussians[0].distance(self.embed(images)).cpu()
        parts = [p for p in self.layer_features(images) if p.shape[1]]
        maps = [g.distance(x) for g, x in zip(self.gaussians, parts)]
        return combine_maps(maps, finest_grid(parts), "sum").cpu()

    # -------------------------------------------------------------------------------------- state
    def state_nbytes(self) -> dict[str, int]:
        """Bytes of the fitted state: ``mean``, ``cov`` (the ``L^-1`` factor counted as a full
        ``d x d`` float32 matrix per position, the size of ``Sigma``, as the paper's Table VIII
        counts it; the two blocks held in memory are about 3/4 of that), ``pca`` (components and mean, under PCA) and ``backbone`` (all parameters
        of the full network, as the paper counts)."""
        out = {"mean": sum(g.nbytes()["mean"] for g in self.gaussians),
               "cov": sum(g.nbytes()["cov"] for g in self.gaussians)}
        if self.pca_components is not None:
            out["pca"] = (self.pca_components.numel() + self.pca_mean.numel()) * 4
        return {**out, "backbone": int(self.extractor.full_param_count) * 4}

    def state_dict(self) -> dict[str, Any]:
        return {
            "method": self.name,
            "gaussians": [g.state() for g in self.gaussians],
            "pca_mean": None if self.pca_mean is None else self.pca_mean.cpu(),
            "pca_components": None if self.pca_components is None else self.pca_components.cpu(),
            "idx": self.idx.clone(),
            "n_train": self.n_train,
            "layers": list(self.layers),
            "combine": self.params.combine,
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
        if not torch.equal(state["idx"], self.idx) or state["combine"] != self.params.combine:
            raise PadimBenchError("state was fitted with other random channels or another combine (seed, d differ)")
        self.gaussians = []
        for gs in state["gaussians"]:
            g = GaussianGrid(int(gs["mean"].shape[1]), self.params, self.device, **self._grid_knobs)
            g.load(gs)
            self.gaussians.append(g)
        to = (lambda t: None if t is None else t.to(self.device))  # noqa: E731
        self.pca_mean, self.pca_components = to(state["pca_mean"]), to(state["pca_components"])
        self.n_train = int(state["n_train"])

    def describe(self) -> dict[str, Any]:
        return {
            "d": self.d,
            "reduction": self.params.reduction,
            "combine": self.params.combine,
            "embedding_channels": sum(self.channels),
            "channel_indices": None if self.params.reduction == "pca" else self.idx.tolist(),
            "grids": [list(g.grid) for g in self.gaussians],
            "accumulator_dtypes": [str(g.accumulate_dtype(g.grid[0] * g.grid[1])).removeprefix("torch.")
                                   for g in self.gaussians],
            "n_train": self.n_train,
        }


METHODS.add("padim", MethodSpec(cls=Padim, params_class=PadimParams))
