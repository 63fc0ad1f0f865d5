"""Building backbones of any registered family: weights, seeding, layer checks, meta-device shapes.

Weights: ``"imagenet"`` (the family's checkpoint, see its ``weights_path``), ``"random"`` (seeded
init, for time/memory runs) or the path of a local file (``.safetensors``, ``.pth``, ``.pt``,
``.bin``: a state dict of the whole classifier, recorded with its sha256). Checkpoints are read with
safetensors or ``torch.load(weights_only=True)`` only (:func:`~.weights.read_state_dict`), after
their sha256 is checked against their name (:func:`~.weights.check_hash`).
"""

from __future__ import annotations

import difflib
import functools
import os
from typing import Sequence

import torch
from torch import nn

from ..errors import ConfigError, WeightsError
from .base import BackboneFamily, BackboneSpec, resolve
from .extractor import FeatureExtractor, Normalize
from .weights import WEIGHT_FILE_SUFFIXES, check_hash, read_state_dict, sha256_file

_WEIGHTS = ("imagenet", "random")


def is_weights_file(weights: str) -> bool:
    """Whether a ``method.weights`` value names a local file (by its suffix)."""
    return str(weights).lower().endswith(WEIGHT_FILE_SUFFIXES)


def layer_names(name: str) -> list[str]:
    """Valid layer aliases of backbone ``name``. Raises ConfigError on an unknown backbone."""
    return list(resolve(name)[1].layers)


def check_layers(name: str, layers: Sequence[str]) -> tuple[str, ...]:
    """``layers`` as a tuple after checking them against backbone ``name``'s aliases.

    Raises:
        ConfigError: unknown backbone; empty, repeated or unknown layers (with a suggestion).
    """
    return _check_layers(resolve(name)[1], layers)


def meta_trunk(name: str, layers: Sequence[str]) -> nn.Module:
    """Backbone ``name``'s trunk cut after the deepest of ``layers`` on the ``meta`` device (no
    weights, no memory), mapping (N, 3, H, W) to ``{layer: (N, C, h, w)}``; input not normalised
    (there is nothing to normalise on ``meta``). Used by memory predictions.

    Raises:
        ConfigError: unknown backbone or layer.
    """
    family, spec = resolve(name)
    layers = _check_layers(spec, layers)
    with torch.device("meta"):
        return family.trunk(spec, family.architecture(spec), layers)[0]


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
    trunk = meta_trunk(name, layers)
    with torch.device("meta"):
        out = trunk(torch.empty(1, 3, size, size))
    return {k: tuple(int(x) for x in out[k].shape[1:]) for k in layers}


@functools.lru_cache(maxsize=64)
def full_param_count(name: str) -> int:
    """Parameters of the whole classification network (Table VIII convention), from the
    architecture on the ``meta`` device (cached).

    Raises:
        ConfigError: unknown backbone.
    """
    family, spec = resolve(name)
    with torch.device("meta"):
        return sum(p.numel() for p in family.architecture(spec).parameters())


def check_weights(name: str, weights: str) -> None:
    """Check that the weights a run asks for are available (cached or downloadable, or the file
    given exists), without building the model; ``random`` always is.

    Raises:
        ConfigError: unknown backbone or weights value.
        WeightsError: as :func:`load_backbone` would.
    """
    family, spec = resolve(name)
    _weights_path(family, spec, weights)


def load_backbone(name: str, layers: Sequence[str], weights: str = "imagenet", seed: int = 0,
                  device: str | torch.device = "cpu", channels_last: bool = True) -> FeatureExtractor:
    """Build a frozen feature extractor.

    Args:
        name: Registered backbone (see ``backbone_names()``).
        layers: Layer aliases, e.g. ``["layer1", "layer2", "layer3"]``; output order follows this.
        weights: ``"imagenet"`` (pretrained), ``"random"`` (init under ``seed``, leaving the
            global RNG state untouched) or a weights file's path (``.safetensors``/``.pth``/...).
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
    family, spec = resolve(name)
    layers = _check_layers(spec, layers)
    model, source, digest = _build(family, spec, weights, seed)
    full_params = sum(p.numel() for p in model.parameters())
    trunk, nodes = family.trunk(spec, model, layers)
    kind = "file" if is_weights_file(weights) else weights
    extractor = FeatureExtractor(spec, layers, trunk, nodes, full_params, kind, source, digest)
    return extractor.to(device).set_memory_format(channels_last)


def load_classifier(name: str, weights: str = "imagenet", seed: int = 0) -> nn.Module:
    """Whole ImageNet classifier of ``name`` with its own normalisation (for sanity checks).

    The returned module maps (N, 3, H, W) float32 RGB in [0, 1] to (N, 1000) float32 logits.
    Raises the same errors as :func:`load_backbone`.
    """
    family, spec = resolve(name)
    model = _build(family, spec, weights, seed)[0]
    return nn.Sequential(Normalize(spec.mean, spec.std), model).eval().requires_grad_(False)


def _build(family: BackboneFamily, spec: BackboneSpec, weights: str,
           seed: int) -> tuple[nn.Module, str, str | None]:
    """The whole classification network (eval, CPU), a description of its weights (file or seed)
    and the sha256 of the file loaded (``None`` for random weights)."""
    path = _weights_path(family, spec, weights)  # fail before building
    with torch.random.fork_rng(devices=[]):  # random init never touches the global RNG state
        torch.manual_seed(seed)
        model = family.architecture(spec)
    if path is None:
        return model.eval(), f"random init (seed {seed})", None
    try:
        model.load_state_dict(read_state_dict(path), strict=True)
    except RuntimeError as err:  # wrong architecture: missing / unexpected keys, shape mismatches
        raise WeightsError(f"{path}: not a state dict of backbone {spec.name!r} "
                           f"({str(err).splitlines()[0]} ...)") from None
    return model.eval(), path, sha256_file(path)


def _weights_path(family: BackboneFamily, spec: BackboneSpec, weights: str) -> str | None:
    """The weights file a run uses (the family's checkpoint for ``imagenet``, hash-checked; the
    given file), or ``None`` for ``random``.

    Raises:
        ConfigError: unknown weights value. WeightsError: the file is missing.
    """
    if weights == "random":
        return None
    if is_weights_file(weights):
        if not os.path.isfile(weights):
            raise WeightsError(f"method.weights: weights file {weights} for backbone {spec.name!r} "
                               "does not exist (or is not a file)")
        return str(weights)
    if weights not in _WEIGHTS:
        raise ConfigError(f"unknown weights {weights!r}; valid: {', '.join(_WEIGHTS)} or a weights file "
                          f"({', '.join(WEIGHT_FILE_SUFFIXES)})")
    if spec.imagenet_weights is None:
        raise WeightsError(f"no ImageNet weights for backbone {spec.name!r} are installed or "
                           "downloadable; use `weights: random` for time/memory runs")
    path = family.weights_path(spec)
    check_hash(path)
    return path


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
