"""Torchvision backbones: ResNet-18 and Wide ResNet-50-2 (the paper's, Sec. III and Table VIII) and
EfficientNet-B5 under their short names, and any torchvision classification model as
``torchvision/<model>[.<WEIGHTS TAG>]`` (e.g. ``torchvision/resnet50``; tag default ``DEFAULT``,
torchvision's recommended ImageNet weights; ``torchvision/resnet18`` is the paper's R18 file).

Taps of a ``torchvision/`` model (:func:`_generic_spec`): the module names of its top-level children
and of the children of a top-level ``features`` or ``trunk_output`` container (torchvision's feature
stacks), kept where the module gives an (N, C, h, w) map on a meta-device forward; plus
``layer1``..``layer4``, the last of them at stride 4, 8, 16, 32 (ResNets: their own layer1..4).
Normalisation: the weights' own ``transforms()`` mean/std.

Architectures come from ``torchvision.models.get_model``; a trunk is cut with
``create_feature_extractor`` at module names, so nothing deeper than the deepest tap is kept or run.
ImageNet weights: torchvision's ``IMAGENET1K_V1`` checkpoint in torch hub's cache
(:mod:`~padim_bench.backbones.weights`), downloaded if absent.
"""

from __future__ import annotations

import difflib
import functools
import os

import torch
from torch import nn

from ..errors import ConfigError
from .base import BackboneFamily, BackboneSpec, register_family
from .weights import cached_checkpoint, checkpoint_path

PREFIX = "torchvision/"
_CONTAINERS = ("features", "trunk_output")
_DUMMY = 224

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_NORM = "ImageNet mean/std (torchvision)"
_RESNET_LAYERS = {f"layer{i}": f"layer{i}" for i in range(1, 5)}
# EfficientNet-B5: the paper's text names blocks 7, 20, 26 (confirmed by one source only). We use
# the stage outputs at strides 4/8/16 instead: features.2 (stride 4), features.3 (stride 8) and
# features.5 (last stride-16 stage); features.7 is the last stride-32 stage. In torchvision's
# 0-based count of the 39 MBConv blocks, 7 is the last block of features.2, but 20 and 26 are the
# first and last blocks of features.5 (both stride 16), so the paper's taps are not 4/8/16.
_B5_LAYERS = {f"layer{k}": f"features.{i}" for k, i in ((1, 2), (2, 3), (3, 5), (4, 7))}


def _spec(name: str, layers: dict[str, str]) -> BackboneSpec:
    return BackboneSpec(name, name, layers, IMAGENET_MEAN, IMAGENET_STD, _NORM, "IMAGENET1K_V1")


class TorchvisionFamily(BackboneFamily):
    """Torchvision classification models; a spec's layer values are module names of the model and
    ``imagenet_weights`` is a torchvision weights tag."""

    name = "torchvision"
    specs = {"resnet18": _spec("resnet18", _RESNET_LAYERS),
             "wide_resnet50_2": _spec("wide_resnet50_2", _RESNET_LAYERS),
             "efficientnet_b5": _spec("efficientnet_b5", _B5_LAYERS)}

    def spec(self, name: str) -> BackboneSpec | None:
        """A short name's spec, or a ``torchvision/<model>[.TAG]`` one (see the module doc)."""
        return _generic_spec(name) if name.startswith(PREFIX) else self.specs.get(name)

    def search(self, pattern: str = "") -> list[str]:
        """The short names and ``torchvision/<model>`` of every classification model matching."""
        import torchvision
        models = torchvision.models.list_models(module=torchvision.models)
        return [n for n in [*self.specs, *(PREFIX + m for m in models)] if pattern in n]

    def architecture(self, spec: BackboneSpec) -> nn.Module:
        import torchvision
        return torchvision.models.get_model(spec.arch, weights=None)

    def trunk(self, spec: BackboneSpec, model: nn.Module,
              layers: tuple[str, ...]) -> tuple[nn.Module, dict[str, str]]:
        from torchvision.models.feature_extraction import create_feature_extractor
        nodes = {k: spec.layers[k] for k in layers}
        return create_feature_extractor(model, return_nodes={v: k for k, v in nodes.items()}), nodes

    def weights_path(self, spec: BackboneSpec) -> str:
        return cached_checkpoint(spec.name, self._url(spec))

    def local_weights(self, spec: BackboneSpec) -> str | None:
        path = self.weights_location(spec)
        return path if os.path.isfile(path) else None

    def weights_location(self, spec: BackboneSpec) -> str:
        return checkpoint_path(self._url(spec))

    @staticmethod
    def _url(spec: BackboneSpec) -> str:
        from torchvision.models import get_model_weights
        return get_model_weights(spec.arch)[spec.imagenet_weights].url


@functools.lru_cache(maxsize=64)
def _generic_spec(name: str) -> BackboneSpec:
    """The spec of ``torchvision/<model>[.TAG]``.

    Raises:
        ConfigError: unknown model or weights tag (listing the valid ones), or no spatial maps.
    """
    import torchvision
    from torchvision.models import get_model_weights

    arch, _, tag = name[len(PREFIX):].partition(".")
    models = torchvision.models.list_models(module=torchvision.models)
    if arch not in models:
        close = difflib.get_close_matches(arch, models, n=3)
        raise ConfigError(f"unknown torchvision classification model {arch!r} in backbone {name!r}"
                          + (f". Did you mean {', '.join(PREFIX + c for c in close)}?" if close else ""))
    enum = get_model_weights(arch)
    tag = tag or "DEFAULT"
    if tag not in enum.__members__:
        raise ConfigError(f"backbone {name!r}: torchvision has no weights {tag!r} for {arch}; valid: "
                          f"{', '.join(enum.__members__)}")
    weights = enum[tag]
    transform = weights.transforms()
    mean, std = tuple(float(v) for v in transform.mean), tuple(float(v) for v in transform.std)
    layers = _generic_taps(name, arch)
    return BackboneSpec(name, arch, layers, mean, std,
                        f"torchvision {weights}: mean {mean}, std {std}", weights.name)


def _generic_taps(name: str, arch: str) -> dict[str, str]:
    """``layerK`` and module-name taps of a torchvision model, from a meta-device forward."""
    import torchvision
    try:
        with torch.device("meta"):
            model = torchvision.models.get_model(arch, weights=None).eval()
    except (NotImplementedError, RuntimeError) as err:  # builders that compute with tensors
        raise ConfigError(f"backbone {name!r}: torchvision's builder cannot run on the meta device "
                          f"({type(err).__name__}: {err}), which shapes and memory are computed on "
                          "without weights; not supported (try its timm counterpart)") from None
    candidates = []
    for child_name, child in model.named_children():
        if child_name in _CONTAINERS and isinstance(child, nn.Sequential):
            candidates += [(f"{child_name}.{n}", m) for n, m in child.named_children()]
        else:
            candidates.append((child_name, child))
    seen: dict[str, int] = {}

    def hook(module_name):
        def record(_module, _inputs, out):
            if isinstance(out, torch.Tensor) and out.ndim == 4 and out.shape[-1] > 1:  # not pooled
                seen[module_name] = _DUMMY // int(out.shape[-1])
        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in candidates]
    with torch.device("meta"):
        model(torch.empty(1, 3, _DUMMY, _DUMMY))
    for h in handles:
        h.remove()
    taps = [n for n, _ in candidates if n in seen]
    if not taps:
        raise ConfigError(f"backbone {name!r} has no spatial feature maps among its modules "
                          f"({', '.join(n for n, _ in candidates)}); valid taps: none")
    layers = {f"layer{k}": [n for n in taps if seen[n] == 2 ** (k + 1)] for k in range(1, 5)}
    out = {k: v[-1] for k, v in layers.items() if v}
    for n in taps:
        out.setdefault(n, n)
    return out


register_family(TorchvisionFamily())
