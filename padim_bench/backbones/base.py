"""The backbone family contract and the registry of families.

A *family* is one source of CNN backbones (torchvision, EfficientNet-Lite, ...): it names its
backbones, builds their architectures, cuts them at named feature taps and knows where their
ImageNet weights come from. Everything else (weights loading, seeding, layer checks, shapes on the
``meta`` device, the :class:`~padim_bench.backbones.extractor.FeatureExtractor`) is shared.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Mapping

from torch import nn

from ..errors import ConfigError
from ..registry import Registry


@dataclass(frozen=True)
class BackboneSpec:
    """One backbone of a family.

    Attributes:
        name: Name a config uses (``method.backbone``), e.g. ``"resnet18"``; recorded as
            ``backbone.name`` in results.json.
        arch: The family's own model name (torchvision builder, ``efficientnet_lite_pytorch`` name).
        layers: Layer alias (``"layer1"``..) -> the family's description of the tap (a module name,
            ``"stride:8"``, ...); only the family reads the values.
        mean: Per-channel RGB mean applied to [0, 1] input.
        std: Per-channel RGB std applied to [0, 1] input.
        normalization: Human-readable description of ``mean``/``std`` (recorded in results.json).
        imagenet_weights: The family's handle on the ImageNet checkpoint (torchvision weights tag,
            checkpoint file name), or ``None`` when none is installed or downloadable.
    """

    name: str
    arch: str
    layers: Mapping[str, str]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    normalization: str
    imagenet_weights: str | None


class BackboneFamily(ABC):
    """What a backbone family implements (see "Adding a backbone family" in the package docstring).

    The default :meth:`names` and :meth:`spec` read the ``specs`` table; a family whose names are
    open-ended (any model of a library) overrides them instead.
    """

    name: ClassVar[str]  # registry key of the family, e.g. "torchvision"
    specs: ClassVar[Mapping[str, BackboneSpec]] = {}

    def names(self) -> list[str]:
        """The backbone names this family lists (``padim-bench list backbones``)."""
        return list(self.specs)

    def spec(self, name: str) -> BackboneSpec | None:
        """The spec of backbone ``name``, or ``None`` if this family does not know it."""
        return self.specs.get(name)

    @abstractmethod
    def architecture(self, spec: BackboneSpec) -> nn.Module:
        """The whole classification network, randomly initialised (from the global RNG, which the
        caller seeds) on the current default device (``meta`` included), without weights."""

    @abstractmethod
    def trunk(self, spec: BackboneSpec, model: nn.Module,
              layers: tuple[str, ...]) -> tuple[nn.Module, dict[str, str]]:
        """``model`` cut after the deepest of ``layers`` (valid aliases of ``spec``).

        Returns:
            A module mapping (N, 3, H, W) normalised float input to ``{alias: (N, C, h, w)}`` for
            every alias in ``layers`` (sharing ``model``'s parameters), and ``{alias: node}``, the
            name of the module in ``model`` whose output each alias is.
        """

    @abstractmethod
    def weights_path(self, spec: BackboneSpec) -> str:
        """Local path of ``spec``'s ImageNet checkpoint (a state dict of :meth:`architecture`),
        fetching it if the family can; called only when ``spec.imagenet_weights`` is set.

        Raises:
            WeightsError: the file is missing and cannot be fetched (say which file goes where).
        """


    def local_weights(self, spec: BackboneSpec) -> str | None:
        """Path of ``spec``'s ImageNet file if it is on this machine (never downloads), else
        ``None``. The default knows nothing (``None``); families override it."""
        return None

    def weights_location(self, spec: BackboneSpec) -> str:
        """Where ``spec``'s ImageNet file would go (for ``missing: ...`` in listings)."""
        return str(spec.imagenet_weights)


FAMILIES: Registry[BackboneFamily] = Registry("backbone family")


def register_family(family: BackboneFamily) -> BackboneFamily:
    """Register ``family`` under ``family.name``; returns it.

    Raises:
        ValueError: the family name is taken, or one of its backbone names is another family's.
    """
    taken = set(family.names()) & set(backbone_names())
    if taken:
        raise ValueError(f"backbone family {family.name!r}: backbone names already registered: "
                         f"{', '.join(sorted(taken))}")
    FAMILIES.add(family.name, family)
    return family


def families() -> list[BackboneFamily]:
    """The registered families, by family name."""
    return [FAMILIES.get(n) for n in FAMILIES.names()]


def backbone_names() -> list[str]:
    """Listed backbone names of every family, sorted."""
    return sorted(n for family in families() for n in family.names())


def resolve(name: str) -> tuple[BackboneFamily, BackboneSpec]:
    """The family that knows backbone ``name`` and the backbone's spec.

    Raises:
        ConfigError: no family knows ``name``; the message lists the valid names and the closest.
    """
    for family in families():
        spec = family.spec(name)
        if spec is not None:
            return family, spec
    listing: Registry[str] = Registry("backbone")  # for its "did you mean" message
    for n in backbone_names():
        listing.add(n, n)
    raise ConfigError(listing.unknown_message(name))
