"""ShanghaiTech Campus's keys of the dataset section: the one dataset-specific part of the config
package, kept in this module alone so that it can move into the STC dataset plug-in (issue 14).

STC reads three keys that no other dataset reads (:data:`STC_KEYS`). Other datasets must leave them
at their defaults, and they are left out of those datasets' recorded config and config hash (they
change nothing there).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:
    from .schema import DatasetConfig

#: dataset keys that only STC reads (left out of MVTec AD runs' config hash)
STC_KEYS = ("train_stride", "train_frames_total", "test_stride")


def keys_left_out(ds: DatasetConfig) -> tuple[str, ...]:
    """Dataset keys left out of ``ds``'s recorded config (:meth:`RunConfig.to_dict`) and so of its
    hashes: the STC-only keys on every dataset but STC (where they are at their defaults)."""
    return () if ds.name == "stc" else STC_KEYS


def validate_stc(ds: DatasetConfig) -> None:
    """The STC keys: ranges on STC, defaults elsewhere; STC frames are never cropped (paper
    Sec. IV-A: 256 x 256, no crop) nor augmented.

    Raises:
        ConfigError: naming the key.
    """
    defaults = type(ds)()
    if ds.name != "stc":
        for key in STC_KEYS:
            if getattr(ds, key) != getattr(defaults, key):
                raise ConfigError(f"dataset.{key}: applies to STC only (dataset.name: stc), this is {ds.name}")
        return
    if ds.crop is not None:
        raise ConfigError(f"dataset.crop: STC frames are resized to dataset.resize without a crop (paper Sec. IV-A: "
                          f"256x256, a 64x64 grid); set dataset.crop: null (got {ds.crop})")
    if ds.augment != "none":
        raise ConfigError("dataset.augment: nonaligned is MVTec AD's Table VI protocol; STC takes none")
    if ds.train_stride is not None and ds.train_stride < 1:
        raise ConfigError(f"dataset.train_stride: must be >= 1, or null to derive it from train_frames_total, "
                          f"got {ds.train_stride}")
    if ds.train_frames_total < 1:
        raise ConfigError(f"dataset.train_frames_total: must be >= 1, got {ds.train_frames_total}")
    if ds.test_stride < 1:
        raise ConfigError(f"dataset.test_stride: must be >= 1, got {ds.test_stride}")

