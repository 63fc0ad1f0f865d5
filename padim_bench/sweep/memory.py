"""Predicted host memory of one sweep job (one category of one run), before anything is loaded.

All figures are bytes; tables print GB = 1e9 bytes. A job runs in a fresh process, so its peak
resident memory is::

    PROCESS_BYTES                       interpreter + torch + padim-bench + scikit-learn/scipy
  + backbone parameters x 4             the network's float32 weights (all of them, as loaded)
  + fitted state (without backbone)     ``Method.predict_state_nbytes``: PaDiM mean + covariance
                                        factor, SPADE feature bank, VAE encoder + decoder
  + max(fit working, scoring working)   the larger of the two phases (see below)
  + runtime.workers x WORKER_BYTES      DataLoader decoding processes

Working memory, from the architecture (PyTorch's ``meta`` device, no weights, no pixels):

* batch activations: ``batch x ACTIVATION_FRACTION x`` the bytes of every layer output of one
  forward pass (an upper bound if all stayed alive; under ``inference_mode`` most are freed); the
  batch is ``runtime.batch_size``, or the number of images when there are fewer.
* PaDiM fit: the running co-moment when it is float64 (``accumulate_max_gb``; a float32 one is
  freed chunk by chunk as the smaller factor is written, so the state's bytes cover it), the factorisation's chunks (3 x ``chunk_mb``), the batch's
  embedding and its accumulator-precision copy, and PCA's patch sample (3 float64 copies).
* SPADE scoring: the K nearest images' feature maps gathered for one test image, and one distance
  block (``chunk`` x layer1 positions).
* VAE fit: gradients and Adam's two moments (3 x the parameters), the training images (uint8) and
  2 x the activations of a training batch (kept for the backward pass, then their gradients).
* scoring: the test set's maps and masks (``MAP_BYTES_PER_PIXEL`` per test pixel) beside the
  scoring batches, then the metrics' sorted copies (``METRIC_BYTES_PER_PIXEL`` more).

Calibration (CPU, torch 2.14.1, one category per fresh process; peaks are ``ru_maxrss`` /
``VmHWM`` of the job's process): above every measured peak so far. PaDiM-EfficientNet-Lite0-Rd100
on bottle: 2.31 GB predicted, 2.06-2.23 GB measured with 2 torch threads (committed runs), 1.65-1.78
GB with 1 thread (sweep jobs); Table I's variants: 1.2-2.0 x the 1-thread peaks (the largest slack
for ``d = all``, whose float64 co-moment and batch terms do not peak together); PaDiM-WR50-Rd550,
batch 16, no loader workers: 6.2 GB predicted, 5.50-5.61 GB measured (``results/bench/
padim_cpu.md``). More threads need more memory (per-thread buffers), hence the slack; the tests
check the bounds. GPU memory is not modelled: on CUDA the same host figure is requested (the
state then lives on the GPU, so it over-estimates host memory).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

from ..config import RunConfig

#: interpreter + torch + torchvision + padim-bench's runner, methods, scikit-learn and scipy
#: imported: 0.83 GB resident measured on this project's CPU machine (torch 2.14.1 CPU build; a
#: CUDA build adds about 0.2 GB), plus 0.17 GB for the allocator's arenas, the file lists and the
#: first decoded batch ("RSS before fit" is 1.02-1.11 GB in results/bench/padim_cpu.md, backbone
#: included). ``plan_sweep(process_bytes=...)`` takes another figure.
PROCESS_BYTES = 1_000_000_000
#: one DataLoader worker process (forked, so it shares the parent's pages): decoding buffers and
#: two prefetched batches. An estimate, not a measurement.
WORKER_BYTES = 250_000_000
#: share of the summed layer outputs of one forward pass resident at the peak (calibrated on R18,
#: WR50 and EfficientNet-Lite0 fits: 0.15-0.35 of the sum; 0.25 with the other terms' slack keeps
#: every prediction above the measured peak).
ACTIVATION_FRACTION = 0.25
#: per test pixel: float32 maps and uint8 masks, each as the per-batch list and its concatenation
MAP_BYTES_PER_PIXEL = 10
#: per test pixel, on top of the maps: the float64 / int64 sorted copies of scikit-learn's ROC
#: (measured: 75 bytes per pixel for 83 x 224 x 224 pixels) and of the PRO curve (64)
METRIC_BYTES_PER_PIXEL = 80

#: MVTec AD images per category (Bergmann et al., "MVTec AD -- A Comprehensive Real-World Dataset
#: for Unsupervised Anomaly Detection", CVPR 2019, Table 1): (train, test good + defective).
#: Totals 3,629 train and 1,725 test. Used when a category's folder is not on this machine (a dry
#: run of the full dataset), so memory can still be predicted.
MVTEC_COUNTS: dict[str, tuple[int, int]] = {
    "bottle": (209, 83), "cable": (224, 150), "capsule": (219, 132), "carpet": (280, 117),
    "grid": (264, 78), "hazelnut": (391, 110), "leather": (245, 124), "metal_nut": (220, 115),
    "pill": (267, 167), "screw": (320, 160), "tile": (230, 117), "toothbrush": (60, 42),
    "transistor": (213, 100), "wood": (247, 79), "zipper": (240, 151),
}  # fmt: skip
#: counts assumed for a category neither on disk nor in MVTEC_COUNTS (the largest MVTec AD ones)
FALLBACK_COUNTS = (391, 167)


@dataclass(frozen=True)
class MemoryEstimate:
    """Predicted peak resident bytes of a job and its parts (see the module doc)."""

    total: int
    parts: dict[str, int] = field(default_factory=dict)
    note: str = ""

    @property
    def gb(self) -> float:
        """``total`` in GB (1e9 bytes)."""
        return self.total / 1e9


@functools.lru_cache(maxsize=64)
def forward_output_bytes(backbone: str, layers: tuple[str, ...], size: int) -> int:
    """Bytes (float32) of every leaf module's output in one forward pass of the backbone trunk
    cut after the deepest of ``layers``, for one ``size`` x ``size`` image (``meta`` device).

    Raises:
        ConfigError: unknown backbone or layer.
    """
    from ..backbones import meta_trunk

    return _leaf_output_bytes(meta_trunk(backbone, layers), (1, 3, size, size))


def _leaf_output_bytes(module: Any, shape: tuple[int, ...], call: Any = None) -> int:
    import torch

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


@functools.lru_cache(maxsize=16)
def _vae_forward_bytes(backbone: str, layer: str, size: int, latent: int) -> int:
    import torch
    from torch import nn

    from ..backbones import layer_shapes, meta_trunk
    from ..methods.vae import VaeNet

    ((channels, h, _),) = layer_shapes(backbone, [layer], size).values()
    trunk = meta_trunk(backbone, [layer])
    with torch.device("meta"):
        net = VaeNet(nn.Identity(), trunk, layer, channels, size // h, latent)
    return _leaf_output_bytes(net, (1, 3, size, size))


def _padim_grids(params: Any, backbone: str, layers: list[str], size: int) -> tuple[list[tuple[int, int]], int]:
    """``[(positions, d)]`` of PaDiM's Gaussian grids and the embedding's channels before reduction."""
    from ..backbones import layer_shapes
    from ..methods.padim import select_channels

    shapes = layer_shapes(backbone, layers, size)
    total = sum(c for c, _, _ in shapes.values())
    if params.combine == "sum":
        idx = select_channels(total, params.d, 0)  # the per-layer split's size does not depend on the seed
        grids, lo = [], 0
        for c, h, w in shapes.values():
            grids.append((h * w, int(((idx >= lo) & (idx < lo + c)).sum())))
            lo += c
        return [g for g in grids if g[1]], total
    finest = max(h * w for _, h, w in shapes.values())
    return [(finest, params.d if params.d is not None else total)], total


def _padim_working(cfg: RunConfig, size: int, n_train: int, n_test: int, act: int) -> tuple[int, int]:
    p, b, bs = cfg.method.params, min(cfg.runtime.batch_size, n_train), min(cfg.runtime.batch_size, n_test)
    grids, total = _padim_grids(p, cfg.method.backbone, list(cfg.method.layers), size)
    acc64 = []
    for positions, d in grids:
        if p.accumulate_dtype == "auto":
            acc64.append(positions * d * d * 8 <= p.accumulate_max_gb * 1e9)
        else:
            acc64.append(p.accumulate_dtype == "float64")
    accumulator = sum(P * d * (d + 1) * 8 for (P, d), f64 in zip(grids, acc64) if f64)
    chunks = 3 * p.chunk_mb * 1_000_000
    embed = sum(P * d * (8 + (8 if f64 else 4)) for (P, d), f64 in zip(grids, acc64))
    pca = 0
    if p.reduction == "pca":
        finest = grids[0][0]
        per_image = min(finest, math.ceil(p.pca_samples / max(1, n_train)))
        pca = 3 * per_image * n_train * total * 8
        embed += finest * total * 8  # every channel is embedded before the projection
    fit = accumulator + chunks + pca + b * (act + embed)
    score = bs * (act + sum(P * d * 12 for P, d in grids))
    return fit, score


def _spade_working(cfg: RunConfig, size: int, n_train: int, n_test: int, act: int) -> tuple[int, int]:
    from ..backbones import layer_shapes
    from ..methods import METHODS

    p, b, bs = cfg.method.params, min(cfg.runtime.batch_size, n_train), min(cfg.runtime.batch_size, n_test)
    layers = METHODS.get("spade").cls.extractor_layers(p, list(cfg.method.layers))
    shapes = layer_shapes(cfg.method.backbone, layers, size)
    pixel = {k: v for k, v in shapes.items() if k != p.pool_layer}
    per_image = 4 * (sum(c * h * w for c, h, w in pixel.values()) + shapes[p.pool_layer][0])
    k = min(p.k, max(1, n_train))
    finest = max(h * w for _, h, w in pixel.values())
    if p.combine == "concat":
        gathered = k * finest * sum(c for c, _, _ in pixel.values()) * 4 * 2
    else:
        gathered = k * max(c * h * w for c, h, w in pixel.values()) * 4
    fit = b * (act + per_image)
    score = bs * (act + per_image) + gathered + 2 * finest * p.chunk * 4
    return fit, score


def _vae_working(cfg: RunConfig, size: int, n_train: int, n_test: int, params_bytes: int) -> tuple[int, int]:
    p, bs = cfg.method.params, min(cfg.runtime.batch_size, n_test)
    per_image = _vae_forward_bytes(cfg.method.backbone, cfg.method.layers[0], size, p.latent_channels)
    fit = 3 * params_bytes + n_train * 3 * size * size + 2 * p.batch_size * per_image
    score = bs * ACTIVATION_FRACTION * per_image
    return fit, score


def predict_job_memory(cfg: RunConfig, n_train: int, n_test: int, process_bytes: int = PROCESS_BYTES) -> MemoryEstimate:
    """Predicted peak resident bytes of one category of ``cfg`` with ``n_train`` training and
    ``n_test`` test images (see the module doc for the model and its calibration).

    Raises:
        ConfigError: unknown method, backbone or layer.
    """
    from ..backbones import full_param_count
    from ..methods import METHODS

    m, ds = cfg.method, cfg.dataset
    spec = METHODS.get(m.name)
    size = ds.crop or ds.resize
    layers = spec.cls.extractor_layers(m.params, list(m.layers))
    backbone = full_param_count(m.backbone) * 4
    note = ""
    try:
        state = spec.cls.predict_state_nbytes(m.params, m.backbone, list(m.layers), size, n_train)
    except NotImplementedError:
        state, note = {}, f"{m.name} does not predict its state: working memory only"
    state_bytes = sum(v for k, v in state.items() if k != "backbone")
    act = int(ACTIVATION_FRACTION * forward_output_bytes(m.backbone, tuple(layers), size))
    if m.name == "padim":
        fit, score = _padim_working(cfg, size, n_train, n_test, act)
    elif m.name == "spade":
        fit, score = _spade_working(cfg, size, n_train, n_test, act)
    elif m.name == "vae":
        fit, score = _vae_working(cfg, size, n_train, n_test, state_bytes)  # its encoder is a copy of the trunk
    else:
        fit = score = min(cfg.runtime.batch_size, max(n_train, n_test)) * act
    pixels = n_test * size * size
    score = max(score + pixels * MAP_BYTES_PER_PIXEL, pixels * (MAP_BYTES_PER_PIXEL + METRIC_BYTES_PER_PIXEL))
    parts = {
        "process": int(process_bytes),
        "backbone": int(backbone),
        "state": int(state_bytes),
        "working": int(max(fit, score)),
        "loader_workers": int(cfg.runtime.workers * WORKER_BYTES),
    }
    return MemoryEstimate(sum(parts.values()), parts, note)
