"""Any timm CNN by name: ``timm/<model>[.<pretrained tag>]`` (e.g. ``timm/convnext_tiny.fb_in1k``).

Taps come from timm's ``features_only`` API (``timm.create_model(..., features_only=True,
out_indices=...)``) and its ``feature_info``. Each feature index ``i`` of the model can be named

* ``layer1``..``layer4``: the last feature map at stride 4, 8, 16, 32 (what every family calls
  ``layerK``, so PaDiM's default ``layer1..layer3`` works for any CNN; for timm's ResNets these are
  timm's own ``layer1``..``layer4``);
* ``stage<i>``: the feature index (timm's ``out_indices``), e.g. ``stage0`` = stride 2 on a ResNet;
* the library's own feature name, ``feature_info.module_name(i)`` (``stages.1``, ``blocks.2``, ...).

The whole classifier is built by ``timm.create_model(<model>[.tag], pretrained=False)``; the trunk
is timm's feature wrapper built on the ``meta`` device and given the classifier's own tensors
(``load_state_dict(assign=True)``), so weights are loaded once, into the classifier, and shared.
Input normalisation is the model's ``pretrained_cfg`` mean/std. ImageNet weights: the pretrained
tag's file in the Hugging Face cache (``HF_HOME``; timm's own hub files, ``model.safetensors`` or
``pytorch_model.bin``), or torch hub's cache for tags that only have a URL; see :func:`hub_file`.
"""

from __future__ import annotations

import difflib
import functools
import os
import re

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from .base import BackboneFamily, BackboneSpec, register_family
from .hub import cache_folder, cached_file, hub_file
from .weights import cached_checkpoint, checkpoint_path

PREFIX = "timm/"
_DUMMY = 224  # side of the meta-device input that measures the feature maps


class TimmFamily(BackboneFamily):
    """timm models (open-ended names ``timm/<model>[.tag]``); a spec's layer values are feature
    indices (``"0"``, ``"1"``, ...) and ``imagenet_weights`` the Hugging Face hub id or URL."""

    name = "timm"

    def names(self) -> list[str]:
        """None listed: the names are open-ended (see :meth:`search`)."""
        return []

    def search(self, pattern: str = "") -> list[str]:
        """``timm/<model>`` for every timm architecture whose name contains ``pattern``."""
        import timm
        return [PREFIX + n for n in timm.list_models(f"*{pattern}*" if pattern else "")]

    def spec(self, name: str) -> BackboneSpec | None:
        if not name.startswith(PREFIX):
            return None
        return _spec(name)

    def architecture(self, spec: BackboneSpec) -> nn.Module:
        import timm
        return timm.create_model(spec.arch, pretrained=False)

    def trunk(self, spec: BackboneSpec, model: nn.Module,
              layers: tuple[str, ...]) -> tuple[nn.Module, dict[str, str]]:
        import timm
        indices = sorted({int(spec.layers[k]) for k in layers})
        with torch.device("meta"):
            features = timm.create_model(spec.arch, pretrained=False, features_only=True, out_indices=indices)
        source = model.state_dict()
        features.load_state_dict({k: source[_source_key(spec, k, source)] for k in features.state_dict()},
                                 strict=True, assign=True)
        left = [n for n, t in [*features.named_parameters(), *features.named_buffers()] if t.is_meta]
        if left and not all(t.is_meta for t in source.values()):
            raise ConfigError(f"backbone {spec.name!r}: timm's feature wrapper keeps tensors that the "
                              f"classifier's state dict lacks ({', '.join(left[:3])}); not supported")
        names = features.feature_info.module_name()
        position = {k: indices.index(int(spec.layers[k])) for k in layers}
        nodes = {k: names[position[k]] for k in layers}
        return _TimmTrunk(features, position), nodes

    def weights_path(self, spec: BackboneSpec) -> str:
        handle = spec.imagenet_weights or ""
        if handle.startswith(("http://", "https://")):
            return cached_checkpoint(spec.name, handle)
        return hub_file(spec.name, handle)


    def local_weights(self, spec: BackboneSpec) -> str | None:
        handle = spec.imagenet_weights or ""
        if handle.startswith(("http://", "https://")):
            path = checkpoint_path(handle)
            return path if os.path.isfile(path) else None
        return cached_file(handle) if handle else None

    def weights_location(self, spec: BackboneSpec) -> str:
        handle = spec.imagenet_weights or ""
        return checkpoint_path(handle) if handle.startswith(("http://", "https://")) else cache_folder(handle)


class _TimmTrunk(nn.Module):
    """timm's feature wrapper returning ``{alias: map}`` instead of a list."""

    def __init__(self, features: nn.Module, position: dict[str, int]) -> None:
        super().__init__()
        self.features, self.position = features, position

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        out = self.features(x)
        return {k: out[i] for k, i in self.position.items()}


def _source_key(spec: BackboneSpec, key: str, source: dict[str, Tensor]) -> str:
    """The classifier's state-dict key of the feature wrapper's ``key``: the same, or with timm's
    renaming undone (``FeatureListNet`` flattens ``stem.0`` to ``stem_0``; ``FeatureGetterNet``
    prefixes ``model.``).

    Raises:
        ConfigError: no classifier key matches (a timm wrapper this family does not know).
    """
    key = key[len("model."):] if key not in source and key.startswith("model.") else key
    if key in source:
        return key
    head, _, rest = key.partition(".")
    for m in re.finditer("_", head):
        candidate = f"{head[:m.start()]}.{head[m.end():]}.{rest}" if rest else f"{head[:m.start()]}.{head[m.end():]}"
        if candidate in source:
            return candidate
    raise ConfigError(f"backbone {spec.name!r}: cannot match timm feature tensor {key!r} to the classifier")


@functools.lru_cache(maxsize=128)
def _spec(name: str) -> BackboneSpec:
    """The spec of ``timm/<model>[.tag]``, from its pretrained config and a meta-device build.

    Raises:
        ConfigError: unknown model (with the closest names), or no spatial feature maps.
    """
    import timm
    from timm.models import get_pretrained_cfg, split_model_name_tag

    arch = name[len(PREFIX):]
    model_name, _ = split_model_name_tag(arch)
    if not timm.is_model(model_name):
        close = difflib.get_close_matches(model_name, timm.list_models(), n=3)
        raise ConfigError(f"unknown timm model {model_name!r} in backbone {name!r}"
                          + (f". Did you mean {', '.join(PREFIX + c for c in close)}?" if close else
                             "; `padim-bench list backbones --search WORD` lists timm's models"))
    try:
        cfg = get_pretrained_cfg(arch)
    except RuntimeError:  # "Invalid pretrained tag"
        cfg = None
    if cfg is None:
        tags = timm.list_pretrained(f"{model_name}.*")
        raise ConfigError(f"backbone {name!r}: timm has no pretrained tag {arch!r}; its tags: "
                          f"{', '.join(tags) or 'none'}")
    info = _feature_info(name, arch)
    layers = _aliases(info)
    mean, std = tuple(float(v) for v in cfg.mean), tuple(float(v) for v in cfg.std)
    tag = cfg.tag or "default"
    return BackboneSpec(name, arch, layers, mean, std,
                        f"timm pretrained_cfg of {model_name}.{tag}: mean {_round(mean)}, std {_round(std)}",
                        cfg.hf_hub_id or cfg.url or None)


def _feature_info(name: str, arch: str) -> list[tuple[str, int, int]]:
    """``(module name, channels, stride)`` of every feature index, measured on the meta device.

    Raises:
        ConfigError: timm's ``features_only`` fails or gives no (N, C, h, w) maps.
    """
    import timm
    try:
        with torch.device("meta"):
            features = timm.create_model(arch, pretrained=False, features_only=True)
            out = features(torch.empty(1, 3, _DUMMY, _DUMMY))
    except Exception as err:  # timm raises RuntimeError / AssertionError / TypeError for these
        raise ConfigError(f"backbone {name!r} has no spatial feature maps: timm's features_only API "
                          f"refused it ({type(err).__name__}: {err}); valid taps: none") from None
    spatial = [t.ndim == 4 and t.shape[-1] > 0 for t in out]
    if not out or not all(spatial):
        raise ConfigError(f"backbone {name!r} has no spatial feature maps (features_only gave "
                          f"shapes {[tuple(t.shape) for t in out]}); valid taps: none")
    modules = features.feature_info.module_name()
    return [(modules[i], int(t.shape[1]), _DUMMY // int(t.shape[-1])) for i, t in enumerate(out)]


def _aliases(info: list[tuple[str, int, int]]) -> dict[str, str]:
    """``layerK`` (last map at stride 2^(K+1)), then ``stage<i>``, then timm's module names."""
    layers: dict[str, str] = {}
    for k in range(1, 5):
        at = [i for i, (_, _, s) in enumerate(info) if s == 2 ** (k + 1)]
        if at:
            layers[f"layer{k}"] = str(at[-1])
    for i, (module, _, _) in enumerate(info):
        layers[f"stage{i}"] = str(i)
    for i, (module, _, _) in enumerate(info):
        layers.setdefault(module, str(i))
    return layers


def _round(v: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{x:.4g}" for x in v) + ")"


register_family(TimmFamily())
