"""Frozen ImageNet CNN backbones with named-layer feature taps (PaDiM, Defard et al., Sec. III).

PaDiM embeds every patch with the activations of the first three stages of a pretrained CNN.
Each backbone exposes aliases ``layer1``..``layer3`` (``layer4`` too) for the stage outputs at
strides 4, 8, 16 (32); nothing deeper than the deepest requested layer is kept or run. Inputs are
RGB in [0, 1]; each extractor applies its own normalisation. Weights are ``"imagenet"``,
``"random"`` (seeded, for time/memory runs) or a local file; see :mod:`.loading`.

Modules: :mod:`.base` (the family contract and registry), :mod:`.loading` (building any family's
backbone), :mod:`.extractor` (:class:`FeatureExtractor`), :mod:`.weights` (checkpoint cache,
download, hash check, weights-only reading), :mod:`.hub` (the Hugging Face cache), and one module
per family: :mod:`.torchvision_family` (resnet18, wide_resnet50_2, efficientnet_b5, and any
``torchvision/<model>``), :mod:`.efficientnet_lite` (efficientnet_lite0/1/2) and
:mod:`.timm_family` (any ``timm/<model>[.tag]``, through timm's ``features_only`` API).
:mod:`.catalog` lists them (``padim-bench list backbones``).

Adding a backbone family
------------------------
1. Write ``padim_bench/backbones/<family>.py`` with a subclass of :class:`BackboneFamily`:

   - ``name``: the family's registry key;
   - ``specs``: ``{backbone name: BackboneSpec(...)}`` with the layer aliases (``layer1``.. ->
     whatever your ``trunk`` understands), the input mean/std and their description, and a handle
     on the ImageNet weights (``None`` if there are none); or override ``names()`` and
     ``spec(name)`` when the names are open-ended;
   - ``architecture(spec)``: the whole classifier without weights (it must build on the ``meta``
     device; the caller seeds the RNG);
   - ``trunk(spec, model, layers)``: a module returning ``{alias: map}`` and ``{alias: node}``;
     modules addressed by name can use torchvision's ``create_feature_extractor`` as
     :class:`~.torchvision_family.TorchvisionFamily` does;
   - ``weights_path(spec)``: the local checkpoint (a state dict for ``architecture``), e.g. via
     :func:`~.weights.cached_checkpoint`; raise :class:`~padim_bench.errors.WeightsError` saying
     which file to put where.

2. End the module with ``register_family(MyFamily())`` and import it below, next to the two
   families. Loading, weights checks, seeding, meta-device shapes and parameter counts are shared;
   tests/test_backbones.py registers a toy family from the test file alone.
"""

from .base import BackboneFamily, BackboneSpec, backbone_names, register_family, resolve
from .extractor import FeatureExtractor
from .loading import (check_layers, check_weights, full_param_count, is_weights_file, layer_names,
                      layer_shapes, load_backbone, load_classifier, meta_trunk)
from . import efficientnet_lite, timm_family, torchvision_family  # noqa: E402,F401  (registers the families)
from .efficientnet_lite import TF_LITE_MEAN, TF_LITE_STD
from .torchvision_family import IMAGENET_MEAN, IMAGENET_STD

__all__ = [
    "BackboneFamily", "BackboneSpec", "FeatureExtractor", "IMAGENET_MEAN", "IMAGENET_STD",
    "TF_LITE_MEAN", "TF_LITE_STD", "backbone_names", "check_layers", "check_weights",
    "full_param_count", "is_weights_file", "layer_names", "layer_shapes", "load_backbone", "load_classifier",
    "meta_trunk", "register_family", "resolve",
]
