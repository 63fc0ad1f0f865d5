"""What ``padim-bench list backbones [--search WORD]`` shows: every family, its backbones (the
listed short names; with a search, the matching models of the open-ended families too), the
channels of each ``layerK`` tap (from the architecture on the ``meta`` device: no weights) and
whether the ImageNet weights are on this machine (nothing is downloaded)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import PadimBenchError
from .base import BackboneFamily, BackboneSpec, families, resolve
from .loading import layer_shapes

DETAIL_LIMIT = 40  # matches beyond which only names are listed (each needs a meta-device build)


@dataclass(frozen=True)
class Entry:
    """One backbone: ``name``, ``family``, ``channels`` of its ``layer1..4`` taps (``None`` when
    not computed or the architecture is refused, then ``problem`` says why), ``taps`` (every
    valid tap name) and ``weights`` (where the local ImageNet file is, or why there is none)."""

    name: str
    family: str
    channels: dict[str, int] | None
    taps: list[str]
    weights: str
    problem: str | None = None


def family_lines() -> list[str]:
    """One line per family: its name and what it names."""
    out = []
    for f in families():
        listed = f.names()
        search = getattr(f, "search", None)
        text = ", ".join(listed) if listed else "no short names"
        if search is not None:
            text += f"; any of its {len(search())} models by name (--search WORD)"
        out.append(f"{f.name}: {text}")
    return out


def entries(search: str = "") -> tuple[list[Entry], int]:
    """The backbones matching ``search`` (all listed short names when empty) and how many matched
    in all; details for the first :data:`DETAIL_LIMIT`.

    Raises:
        PadimBenchError: nothing matches ``search``.
    """
    names: list[str] = []
    for f in families():
        names += [n for n in f.names() if search in n]
        if search and getattr(f, "search", None) is not None:
            names += [n for n in f.search(search) if n not in names]
    if not names:
        raise PadimBenchError(f"list backbones: nothing matches {search!r}")
    return [_entry(n, detail=i < DETAIL_LIMIT) for i, n in enumerate(names)], len(names)


def _entry(name: str, detail: bool) -> Entry:
    family_name = name.split("/")[0] if "/" in name else None
    if not detail:
        return Entry(name, family_name or "", None, [], "", "not computed (narrow the search)")
    try:
        family, spec = resolve(name)
        strided = [k for k in ("layer1", "layer2", "layer3", "layer4") if k in spec.layers]
        shapes = layer_shapes(name, strided, 224) if strided else {}
    except PadimBenchError as err:
        return Entry(name, family_name or "", None, [], "", str(err))
    return Entry(name, family.name, {k: v[0] for k, v in shapes.items()}, list(spec.layers),
                 local_weights(family, spec))


def local_weights(family: BackboneFamily, spec: BackboneSpec) -> str:
    """``yes: <path>`` when ``spec``'s ImageNet file is on this machine, ``missing: <where it
    goes>``, or ``none`` (no pretrained weights known); never downloads."""
    if spec.imagenet_weights is None:
        return "none"
    path = family.local_weights(spec)
    return f"yes: {path}" if path else f"missing: {family.weights_location(spec)}"
