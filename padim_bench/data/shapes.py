"""Image shapes of the pre-processing: ``dataset.resize`` and ``dataset.crop`` as one side (the
paper's square protocol, Sec. IV-A: 256, then 224) or ``[H, W]`` (non-square images), their
checks, and the note where a resize changes the images' aspect ratio.

An int stays an int in the recorded config, so the config hash of every square run is what it was.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any, Iterable

from ..errors import ConfigError

#: the smallest side accepted after resizing or cropping (pixels)
MIN_SIDE = 8


def hw(value: int | list[int] | tuple[int, int]) -> tuple[int, int]:
    """``(height, width)`` in pixels of a side (``256`` -> ``(256, 256)``) or an ``[H, W]`` pair."""
    if isinstance(value, int):
        return value, value
    h, w = value
    return int(h), int(w)


def check_sizes(resize: Any, crop: Any) -> None:
    """Check ``dataset.resize`` and ``dataset.crop`` (None: no crop): each a side or ``[H, W]``,
    every side at least :data:`MIN_SIDE`, the crop inside the resize.

    Raises:
        ConfigError: naming the key.
    """
    for key, value in (("resize", resize), ("crop", crop)):
        if value is None and key == "crop":
            continue
        if not isinstance(value, int) and len(value) != 2:
            raise ConfigError(f"dataset.{key}: one side, or [height, width] (two numbers), got {value}")
        if min(hw(value)) < MIN_SIDE:
            raise ConfigError(f"dataset.{key}: every side must be >= {MIN_SIDE} pixels, got {value}")
    if crop is not None:
        (rh, rw), (ch, cw) = hw(resize), hw(crop)
        if ch > rh or cw > rw:
            raise ConfigError(f"dataset.crop: must fit inside dataset.resize ({resize}), got {crop}")


def output_shape(resize: Any, crop: Any) -> tuple[int, int]:
    """``(H, W)`` of the pre-processed images, masks and anomaly maps: the crop, else the resize."""
    return hw(crop if crop is not None else resize)


def aspect_note(sizes: Iterable[tuple[int, int]], resize: Any) -> str | None:
    """One line where resizing to ``resize`` changes the aspect ratio of images of the given
    ``(width, height)`` sizes (e.g. 640x480 images to a square 256), else None."""
    rh, rw = hw(resize)
    target = Fraction(rw, rh)
    changed = sorted({s for s in sizes if s[1] and Fraction(s[0], s[1]) != target})
    if not changed:
        return None
    shown = ", ".join(f"{w}x{h}" for w, h in changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
    return (f"dataset.resize {resize}: images of {shown} pixels (width x height) are resized to {rw}x{rh}, which "
            f"changes their aspect ratio (set dataset.resize: [height, width] to keep it)")
