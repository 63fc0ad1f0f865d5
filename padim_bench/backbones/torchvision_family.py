"""Torchvision backbones: ResNet-18 and Wide ResNet-50-2 (the paper's, Sec. III and Table VIII) and
EfficientNet-B5.

Architectures come from ``torchvision.models.get_model``; a trunk is cut with
``create_feature_extractor`` at module names, so nothing deeper than the deepest tap is kept or run.
ImageNet weights: torchvision's ``IMAGENET1K_V1`` checkpoint in torch hub's cache
(:mod:`~padim_bench.backbones.weights`), downloaded if absent.
"""

from __future__ import annotations

from torch import nn

from .base import BackboneFamily, BackboneSpec, register_family
from .weights import cached_checkpoint

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

    def architecture(self, spec: BackboneSpec) -> nn.Module:
        import torchvision
        return torchvision.models.get_model(spec.arch, weights=None)

    def trunk(self, spec: BackboneSpec, model: nn.Module,
              layers: tuple[str, ...]) -> tuple[nn.Module, dict[str, str]]:
        from torchvision.models.feature_extraction import create_feature_extractor
        nodes = {k: spec.layers[k] for k in layers}
        return create_feature_extractor(model, return_nodes={v: k for k, v in nodes.items()}), nodes

    def weights_path(self, spec: BackboneSpec) -> str:
        from torchvision.models import get_model_weights
        return cached_checkpoint(spec.name, get_model_weights(spec.arch)[spec.imagenet_weights].url)


register_family(TorchvisionFamily())
