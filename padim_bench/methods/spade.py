"""SPADE: Semantic Pyramid Anomaly Detection (Cohen and Hoshen 2020), as the PaDiM paper uses it.

* Fit: a feature bank of every training image: the global-average-pooled ``pool_layer`` feature
  (WR50: 2048-d) and the ``layer1..layer3`` maps, float32 on the CPU (or memory-mapped to a file),
  allocated once at its predicted size.
* Image score: mean squared L2 distance of the test image's pooled feature to its ``k`` nearest
  training images (K = 50 on MVTec AD, 1 on STC).
* Pixel score: the gallery is the layer maps of those ``k`` images; each test pixel's score is its
  mean L2 distance to its ``kappa`` nearest gallery features (kappa = 1). ``combine: mean`` (the
  default, as the public SPADE reference code does) scores each layer at its own resolution,
  upsamples the per-layer maps (bilinear) to layer1's grid and averages them; ``combine: concat``
  (the SPADE paper's wording) upsamples the feature maps (nearest) to layer1's grid, concatenates
  them and scores once. The runner then upsamples to the crop and applies the Gaussian filter.

Distances are exact (see :mod:`padim_bench.methods.knn`): every gallery vector counts.
Memory (paper Table VIII convention): WR50 layer1..3 maps plus the pooled vector at 224 is
1,406,976 float32 = 5.63 MB per training image.
"""

from __future__ import annotations

import dataclasses
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Literal

import numpy as np
import torch

from ..backbones import full_param_count, layer_shapes
from ..errors import ConfigError, PadimBenchError
from .base import METHODS, Method, MethodMemory, MethodSpec
from .features import combine_maps, layer_maps, upsample_concat
from .knn import knn

#: gallery rows per distance block of the kNN searches (bounds the temporary memory of a search
#: to queries x 8192 floats; the result is exact whatever the block)
KNN_CHUNK_ROWS = 8192


@dataclass(frozen=True)
class SpadeParams:
    """SPADE's own parameters.

    Attributes:
        k: nearest training images for the image score and the pixel gallery (MVTec AD 50, STC 1).
        kappa: nearest gallery features averaged per test pixel (paper: 1).
        pool_layer: layer whose global average pool is the image-level feature (last stage).
        combine: ``mean`` (per-layer distances, averaged) or ``concat`` (one distance on the
            concatenated, layer1-grid features).
        bank: ``memory`` (CPU RAM) or ``mmap`` (a file in ``bank_dir`` or the temp folder).
        bank_dir: folder for the memory-mapped bank (``None`` = system temp folder).
    The kNN searches compare with at most :data:`KNN_CHUNK_ROWS` gallery rows at a time (an
    implementation bound on temporary memory, not a setting: the search is exact for any block).
    """

    k: int = 50
    kappa: int = 1
    pool_layer: str = "layer4"
    combine: Literal["mean", "concat"] = "mean"
    bank: Literal["memory", "mmap"] = "memory"
    bank_dir: str | None = None

    def check(self) -> None:
        """Raises ConfigError on out-of-range values."""
        for key in ("k", "kappa"):
            if getattr(self, key) < 1:
                raise ConfigError(f"method.{key}: must be >= 1, got {getattr(self, key)}")


class Spade(Method):
    """SPADE with a frozen :class:`~padim_bench.backbones.FeatureExtractor`.

    State: ``pool`` float32 ``(N, C_pool)`` and one bank per pixel layer, float32
    ``(N, h_l, w_l, C_l)``.
    """

    name = "spade"
    display_name = "SPADE"
    per_image_state = ("bank",)  # every training image's features

    def __init__(self, params: SpadeParams, extractor: Any, device: str | torch.device = "cpu", seed: int = 0):
        self.params = params
        self.extractor = extractor
        self.device = torch.device(device)
        self.layers = [name for name in extractor.layers if name != params.pool_layer]
        self.pool: torch.Tensor | None = None
        self.banks: dict[str, torch.Tensor] = {}
        self.n_train = 0
        self._tmpdir: tempfile.TemporaryDirectory | None = None

    @classmethod
    def extractor_layers(cls, params: SpadeParams, layers: list[str]) -> list[str]:
        """The pixel layers plus ``pool_layer`` (added last if not listed)."""
        return [x for x in layers if x != params.pool_layer] + [params.pool_layer]

    @classmethod
    def check_embedding(cls, params: SpadeParams, channels: dict[str, int]) -> None:
        """Raises ConfigError when no pixel layer is left besides ``pool_layer``."""
        if len(channels) < 2:
            raise ConfigError(f"method.layers: SPADE needs at least one pixel layer besides {params.pool_layer}")

    @classmethod
    def predict_state_nbytes(cls, params: SpadeParams, backbone: str, layers: list[str], size: int, n_train: int) -> dict[str, int]:
        """``bank`` = n_train x :meth:`bytes_per_image` and ``backbone`` parameters x 4 bytes."""
        shapes = layer_shapes(backbone, cls.extractor_layers(params, layers), size)
        per = cls.bytes_per_image({k: v[0] for k, v in shapes.items()}, {k: v[1:] for k, v in shapes.items()},
                                  params.pool_layer)
        return {"bank": per * n_train, "backbone": full_param_count(backbone) * 4}

    @classmethod
    def predict_memory(cls, params: SpadeParams, backbone: str, layers: list[str], size: int, n_train: int,
                       n_test: int, batch: int) -> MethodMemory:
        """SPADE's memory (bytes; see :meth:`Method.predict_memory`), all in host RAM (features go
        to the CPU): the state is the feature bank (``n_train x`` :meth:`bytes_per_image`; on disk
        under ``bank: mmap``); fit: a batch's features; scoring: a batch's features, the pixel
        maps of the K nearest images gathered for one test image (``concat``: upsampled and
        concatenated, twice) and one distance block pair (``KNN_CHUNK_ROWS`` x the finest grid)."""
        shapes = layer_shapes(backbone, cls.extractor_layers(params, layers), size)
        pixel = [v for k, v in shapes.items() if k != params.pool_layer]
        per_image = cls.bytes_per_image({k: v[0] for k, v in shapes.items()}, {k: v[1:] for k, v in shapes.items()},
                                        params.pool_layer)
        k = min(params.k, max(1, n_train))
        finest = max(h * w for _, h, w in pixel)
        if params.combine == "concat":
            gathered = k * finest * sum(c for c, _, _ in pixel) * 4 * 2
        else:
            gathered = k * max(c * h * w for c, h, w in pixel) * 4
        bank, features = "feature bank (float32)", "features of a batch"
        mem = MethodMemory(
            state={bank: n_train * per_image}, fit={features: min(batch, n_train) * per_image},
            score={features: min(batch, n_test) * per_image, "gathered nearest-image maps": gathered,
                   "distance blocks": 2 * finest * KNN_CHUNK_ROWS * 4},
            host=frozenset({bank, features, "gathered nearest-image maps", "distance blocks"}),
            advice=("method.bank: mmap (the bank on disk)",) if params.bank == "memory" else ())
        if params.bank == "mmap":
            return dataclasses.replace(mem, disk=frozenset({bank}), disk_folder=params.bank_dir)
        return mem

    @classmethod
    def predict_score_cost(cls, params: SpadeParams, backbone: str, layers: list[str], size: int,
                           n_train: int) -> dict[str, int]:
        """Work and temporary memory of scoring ONE test image, predicted from the architecture
        (``meta`` device) before fitting; the kNN search dominates both.

        Returns:
            ``macs``: multiply-adds of the distance products (image level ``n_train x C_pool``;
            pixel level, per layer, ``(h w) x (K h w) x C`` under ``combine: mean``, once on the
            concatenated layer1 grid under ``concat``), backbone excluded;
            ``temp_bytes``: the largest per-layer working set, float32: the gathered gallery of the
            K nearest images (``K h w C``), one distance block (``h w x KNN_CHUNK_ROWS``), its top-k, and
            the query map;
            ``gallery_rows``: the largest gallery (``K h w``) searched per query pixel.
        """
        shapes = layer_shapes(backbone, cls.extractor_layers(params, layers), size)
        k = min(params.k, n_train)
        pool_c = shapes[params.pool_layer][0]
        pix = {name: v for name, v in shapes.items() if name != params.pool_layer}
        if params.combine == "concat":
            h, w = max(((v[1], v[2]) for v in pix.values()), key=lambda hw: hw[0] * hw[1])
            pix = {"concat": (sum(v[0] for v in pix.values()), h, w)}
        macs = n_train * pool_c
        temp = 0
        for c, h, w in pix.values():
            q, g = h * w, k * h * w
            macs += q * g * c
            block = min(KNN_CHUNK_ROWS, g)
            temp = max(temp, 4 * (g * c + q * block + 2 * q * (block + 2 * params.kappa) + q * c + block * c))
        return {"macs": int(macs), "temp_bytes": int(temp),
                "gallery_rows": int(max(k * h * w for _, h, w in pix.values()))}

    @staticmethod
    def bytes_per_image(channels: dict[str, int], grids: dict[str, tuple[int, int]], pool_layer: str) -> int:
        """Bank bytes per training image: every pixel layer's map plus the pooled vector, float32.

        ``channels`` and ``grids`` (``(h, w)`` per layer) as the extractor gives them at the input
        size; WR50 at 224 gives (256*56*56 + 512*28*28 + 1024*14*14 + 2048) * 4 = 5,627,904 bytes.
        """
        maps = sum(channels[k] * grids[k][0] * grids[k][1] for k in channels if k != pool_layer)
        return 4 * (maps + channels[pool_layer])

    # ---------------------------------------------------------------------------------- features
    @torch.inference_mode()
    def features(self, images: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Pooled feature ``(B, C_pool)`` and pixel maps ``{layer: (B, h, w, C)}``, float32 CPU."""
        feats = self.extractor(images.to(self.device))
        pool = feats[self.params.pool_layer].mean((2, 3)).float().cpu()
        pixel = layer_maps(feats, self.layers)
        maps = {k: v.permute(0, 2, 3, 1).cpu().contiguous() for k, v in zip(self.layers, pixel)}
        return pool, maps

    def _allocate(self, n: int, pool: torch.Tensor, maps: dict[str, torch.Tensor]) -> None:
        shapes = {"pool": (n, pool.shape[1]), **{k: (n, *v.shape[1:]) for k, v in maps.items()}}
        if self.params.bank == "mmap":
            folder = self.params.bank_dir
            if folder is None:
                self._tmpdir = tempfile.TemporaryDirectory(prefix="padim_bench_spade_")
                folder = self._tmpdir.name
            Path(folder).mkdir(parents=True, exist_ok=True)
            arrays = {k: np.lib.format.open_memmap(Path(folder) / f"{k}.npy", mode="w+", dtype=np.float32, shape=s)
                      for k, s in shapes.items()}
            tensors = {k: torch.from_numpy(a) for k, a in arrays.items()}
        else:
            tensors = {k: torch.empty(s, dtype=torch.float32) for k, s in shapes.items()}
        self.pool = tensors.pop("pool")
        self.banks = tensors

    def fit(self, batches: Iterable[torch.Tensor]) -> None:
        """Store the features of every training image (the bank is allocated once, for the
        number of images announced with :meth:`set_train_size`).

        Raises:
            PadimBenchError: no training size announced, no training image, or more images than
                announced.
        """
        n = 0
        for images in batches:
            pool, maps = self.features(images)
            if self.pool is None:
                if not self.n_train_expected:
                    raise PadimBenchError("SPADE needs the number of training images (set_train_size) before fit")
                self._allocate(self.n_train_expected, pool, maps)
            b = len(images)
            if n + b > self.pool.shape[0]:
                raise PadimBenchError(f"SPADE got more training images than announced ({self.pool.shape[0]})")
            self.pool[n : n + b] = pool
            for k, v in maps.items():
                self.banks[k][n : n + b] = v
            n += b
        if n == 0:
            raise PadimBenchError("SPADE needs at least 1 training image, got 0")
        if n < self.pool.shape[0]:  # fewer than announced: keep the filled rows only
            self.pool = self.pool[:n]
            self.banks = {k: v[:n] for k, v in self.banks.items()}
        self.n_train = n
        if self.params.k > n:
            warnings.warn(f"SPADE: k = {self.params.k} is more than the {n} training images; using k = {n}")

    # -------------------------------------------------------------------------------------- score
    def _k(self) -> int:
        return min(self.params.k, self.n_train)

    @torch.inference_mode()
    def score_images(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pixel maps ``(B, h1, w1)`` on layer1's grid and image scores ``(B,)``, float32 CPU."""
        if self.pool is None:
            raise PadimBenchError("SPADE model is not fitted")
        pool, maps = self.features(images)
        dist, idx = knn(pool, self.pool, self._k(), KNN_CHUNK_ROWS)
        image_scores = dist.square().mean(1)
        h1, w1 = maps[self.layers[0]].shape[1:3]
        out = []
        for b in range(len(images)):
            nn_idx = idx[b].sort().values
            if self.params.combine == "concat":
                q = self._concat({k: v[b : b + 1] for k, v in maps.items()}, (h1, w1))
                g = self._concat({k: self.banks[k][nn_idx] for k in self.layers}, (h1, w1))
                d, _ = knn(q.reshape(-1, q.shape[-1]), g.reshape(-1, g.shape[-1]), self.params.kappa, KNN_CHUNK_ROWS)
                out.append(d.mean(1).reshape(h1, w1))
                continue
            per_layer = []
            for k in self.layers:
                q = maps[k][b]  # (h, w, C)
                g = self.banks[k][nn_idx]  # (K, h, w, C)
                d, _ = knn(q.reshape(-1, q.shape[-1]), g.reshape(-1, g.shape[-1]), self.params.kappa, KNN_CHUNK_ROWS)
                per_layer.append(d.mean(1).reshape(1, *q.shape[:2]))
            out.append(combine_maps(per_layer, (h1, w1), "mean")[0])
        return torch.stack(out), image_scores

    @staticmethod
    def _concat(maps: dict[str, torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        """Nearest-upsample ``{layer: (N, h, w, C)}`` to ``size`` and concatenate: ``(N, H, W, sum C)``."""
        return upsample_concat([v.permute(0, 3, 1, 2) for v in maps.values()], size).permute(0, 2, 3, 1)

    def score(self, images: torch.Tensor) -> torch.Tensor:
        return self.score_images(images)[0]

    # -------------------------------------------------------------------------------------- state
    def state_nbytes(self) -> dict[str, int]:
        """``bank`` (pooled vectors and pixel maps, float32) and ``backbone`` (all parameters)."""
        bank = 0 if self.pool is None else self.pool.numel() * 4 + sum(v.numel() * 4 for v in self.banks.values())
        return {"bank": bank, "backbone": int(self.extractor.full_param_count) * 4}

    def state_dict(self) -> dict[str, Any]:
        return {"method": self.name, "pool": self.pool.clone(), "banks": {k: v.clone() for k, v in self.banks.items()},
                "n_train": self.n_train, "layers": list(self.layers), "backbone": self.extractor.name}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Raises PadimBenchError when the state was made with another method, backbone or layers."""
        if state.get("method") != self.name or state["layers"] != self.layers or state["backbone"] != self.extractor.name:
            raise PadimBenchError(f"state is for {state.get('method')} {state.get('backbone')} {state.get('layers')}, "
                                  f"not {self.name} {self.extractor.name} {self.layers}")
        self.pool, self.banks, self.n_train = state["pool"], dict(state["banks"]), int(state["n_train"])

    def describe(self) -> dict[str, Any]:
        return {"k": self.params.k, "k_used": self._k() if self.n_train else None, "kappa": self.params.kappa,
                "combine": self.params.combine, "n_train": self.n_train, "bank": self.params.bank,
                "bank_bytes": self.state_nbytes()["bank"]}


METHODS.add("spade", MethodSpec(cls=Spade, params_class=SpadeParams))
