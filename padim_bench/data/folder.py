"""``dataset.name: image_folder``: images kept in plain folders, one category per dataset, after the
design of anomalib's ``Folder`` datamodule (its keys ``normal_dir``, ``abnormal_dir``,
``mask_dir``, ``normal_test_dir``, ``normal_split_ratio``; no code of it is used)::

    ROOT/<normal_dir>/*.png            normal images (training; and test, without normal_test_dir)
    ROOT/<normal_test_dir>/*.png       optional: normal test images
    ROOT/<abnormal_dir>/*.png          defective test images: one folder or a list of folders, each
                                       folder's name is its defect type
    ROOT/<mask_dir>/...                optional: masks paired by file stem (<stem>_mask.png or
                                       <stem>.png, or a LOCO-style folder <stem>/ of mask files)

Without ``normal_test_dir`` the normal folder is split by a seeded permutation
(``normal_split_ratio`` of its images, rounded, held out for the test; ``split_seed``); the split
is recorded in ``results.json`` (``image_folder``) and printed before the run. Without ``mask_dir`` the
data is classification-only: the run reports the image metrics, and pixel ROC-AUC and PRO as
undefined, saying so before it starts. Folder paths are relative to ``dataset.root`` unless
absolute. The category's name is ``dataset.category`` (default: the root folder's name); its runs
are rows of their own in the MVTec AD tables, never counted into MVTec AD's means.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence, Union

import numpy as np

from ..errors import ConfigError, DataError, PadimBenchError
from .base import Dataset, Prepared, register
from .masks import MASK_SUFFIX
from .mvtec import CategorySplit, Sample, list_images, pair_masks


@dataclass(frozen=True)
class FolderParams:
    """The folder dataset's keys of the ``dataset:`` section (see the module doc).

    Attributes:
        normal_dir: folder of normal images (required).
        abnormal_dir: folder, or list of folders, of defective test images; None: none.
        mask_dir: folder of masks for every abnormal folder, or a list with one folder per
            abnormal folder (same order); a single folder for several abnormal folders may hold
            one sub-folder per defect (named like the abnormal folder). None: no masks.
        normal_test_dir: folder of normal test images; None: split ``normal_dir``.
        normal_split_ratio: fraction of ``normal_dir`` held out as normal test images when there
            is no ``normal_test_dir`` (anomalib's default, 0.2), in [0, 1).
        split_seed: seed of that split's permutation.
        mask_suffix: a mask's file stem after its image's (``000_mask.png``); a mask of the
            image's own stem is accepted too, both at once is an error.
        category: the category's name in results and tables; None: the root folder's name.
    """

    normal_dir: Union[str, None] = None
    abnormal_dir: Union[str, list[str], None] = None
    mask_dir: Union[str, list[str], None] = None
    normal_test_dir: Union[str, None] = None
    normal_split_ratio: float = 0.2
    split_seed: int = 0
    mask_suffix: str = MASK_SUFFIX
    category: Union[str, None] = None

    def check(self) -> None:
        """Raises: ConfigError naming the key: no ``normal_dir``, a ratio outside [0, 1), or a
        ``mask_dir`` list whose length is not ``abnormal_dir``'s."""
        if not self.normal_dir:
            raise ConfigError("dataset.normal_dir: required for dataset.name: image_folder (the folder of normal images)")
        if not 0 <= self.normal_split_ratio < 1:
            raise ConfigError(f"dataset.normal_split_ratio: must be in [0, 1), got {self.normal_split_ratio}")
        if isinstance(self.mask_dir, list) and len(self.mask_dir) != len(self.abnormal_dirs()):
            raise ConfigError(f"dataset.mask_dir: a list of {len(self.mask_dir)} folder(s) for "
                              f"{len(self.abnormal_dirs())} abnormal folder(s); give one per abnormal_dir, or one folder")
        if self.mask_dir is not None and not self.abnormal_dirs():
            raise ConfigError("dataset.mask_dir: given without dataset.abnormal_dir")
        if self.category is not None and not self.category.strip():
            raise ConfigError("dataset.category: empty; give a name or null")

    def abnormal_dirs(self) -> list[str]:
        """``abnormal_dir`` as a list."""
        if self.abnormal_dir is None:
            return []
        return [self.abnormal_dir] if isinstance(self.abnormal_dir, str) else list(self.abnormal_dir)


def _folder(root: Path, rel: str, key: str) -> Path:
    path = Path(rel) if Path(rel).is_absolute() else root / rel
    if not path.is_dir():
        raise DataError(f"{path}: folder not found (dataset.{key})")
    return path


def _images(folder: Path, key: str) -> list[Path]:
    images = list_images(folder)
    if not images:
        raise DataError(f"{folder}: no images (dataset.{key})")
    return images


def split_normals(images: list[Path], ratio: float, seed: int) -> tuple[list[Path], list[Path]]:
    """``(train, test)``: ``round(ratio * n)`` of the ``n`` images, chosen by a permutation seeded
    with ``seed`` (``numpy.random.default_rng``), held out for the test; both in the input order.

    Raises:
        DataError: no training image would be left.
    """
    n_test = int(round(ratio * len(images)))
    if n_test >= len(images):
        raise DataError(f"{images[0].parent}: {len(images)} normal image(s), normal_split_ratio {ratio} would leave "
                        "none for training")
    held = set(np.random.default_rng(seed).permutation(len(images))[:n_test].tolist())
    return ([p for i, p in enumerate(images) if i not in held], [p for i, p in enumerate(images) if i in held])


@register
class Folder(Dataset):
    """Plain folders of normal, defective and (optionally) mask images: one category."""

    name = "image_folder"
    display_name = "folder dataset"
    params_class = FolderParams
    paper_tables = "mvtec_ad"  # its runs are rows of their own there
    record_key = "image_folder"

    @classmethod
    def check_config(cls, ds: Any) -> None:
        super().check_config(ds)
        name = cls._name(ds)
        if ds.categories != "all" and list(ds.categories) != [name]:
            raise ConfigError(f"dataset.categories: a folder dataset has one category, {name!r} (dataset.category, "
                              f"default the root folder's name); use all or [{name}], got {ds.categories}")

    @staticmethod
    def _name(ds: Any) -> str:
        params = ds.params or FolderParams()
        return params.category or Path(ds.root).resolve().name

    def categories(self) -> list[str]:
        return [self._name(self.config)]

    def scan(self) -> tuple[CategorySplit, dict[str, Any]]:
        """The category's split (layout only, nothing decoded) and its protocol facts.

        Raises:
            DataError: a missing or empty folder, an unpaired image or mask, two masks for one
                image, a mask of another size than its image, or no training image left.
        """
        p, root = self.params, Path(self.config.root)
        normals = _images(_folder(root, p.normal_dir, "normal_dir"), "normal_dir")
        if p.normal_test_dir is not None:
            train, good = normals, _images(_folder(root, p.normal_test_dir, "normal_test_dir"), "normal_test_dir")
            how = {"normal_test": p.normal_test_dir}
        else:
            train, good = split_normals(normals, p.normal_split_ratio, p.split_seed)
            how = {"normal_split_ratio": p.normal_split_ratio, "split_seed": p.split_seed,
                   "held_out": [x.name for x in good]}
        test = [Sample(x, 0, "good") for x in good] + self._defects(root)
        name = self.categories()[0]
        info = {"category": name, "n_normal": len(normals), "n_train": len(train), "n_test_good": len(good),
                "masks": p.mask_dir is not None, **how}
        return CategorySplit(name, root, tuple(Sample(x, 0, "good") for x in train), tuple(test)), info

    def _defects(self, root: Path) -> list[Sample]:
        p = self.params
        dirs = [_folder(root, d, "abnormal_dir") for d in p.abnormal_dirs()]
        names = [d.name if [e.name for e in dirs].count(d.name) == 1 else str(d) for d in dirs]
        images = [_images(d, "abnormal_dir") for d in dirs]
        if p.mask_dir is None:
            return [Sample(x, 1, n, None) for n, imgs in zip(names, images) for x in imgs]
        masks = p.mask_dir if isinstance(p.mask_dir, list) else [p.mask_dir] * len(dirs)
        mask_dirs = [_folder(root, m, "mask_dir") for m in masks]
        if isinstance(p.mask_dir, list) or len(dirs) == 1:
            return [s for n, d, imgs, m in zip(names, dirs, images, mask_dirs)
                    for s in pair_masks(imgs, m, n, d, p.mask_suffix)]
        if all((mask_dirs[0] / d.name).is_dir() for d in dirs):  # one sub-folder per defect
            return [s for n, d, imgs in zip(names, dirs, images)
                    for s in pair_masks(imgs, mask_dirs[0] / d.name, n, d, p.mask_suffix)]
        # one flat folder for every defect: stems must be unique over all of them
        every = [x for imgs in images for x in imgs]
        defect_of = {x: n for n, imgs in zip(names, images) for x in imgs}
        paired = pair_masks(every, mask_dirs[0], "", root, p.mask_suffix)
        return [Sample(s.path, 1, defect_of[s.path], s.mask_path) for s in paired]

    def plan_splits(self, categories: Sequence[str]) -> dict[str, Any]:
        """The category scanned for the sweep planner (layout only; the decoding check is the run's)."""
        try:
            split = self.scan()[0]
        except (PadimBenchError, OSError) as e:
            return {c: e for c in categories}
        return {c: split if c == split.name else KeyError(c) for c in categories}

    def prepare(self, threads: int = 2) -> Prepared:
        from .verify import check_split, warn_aspect

        split, info = self.scan()
        split, skipped = check_split(split, self.config.on_unreadable, threads)
        warn_aspect([split], self.config.resize)
        return Prepared((split,), {split.name: skipped}, info)

    def loader(self, samples: Sequence[Any], prep: Any, augment: Any, batch_size: int, workers: int, which: str):
        from .transforms import make_loader

        return make_loader(samples, prep, batch_size, workers, augment, which, self.config.bit_depth)

    def protocol_lines(self, info: dict[str, Any] | None) -> list[str]:
        if not info:
            return []
        if "normal_test" in info:
            split = f"normal test images from {info['normal_test']}"
        else:
            split = (f"{info['n_test_good']} of {info['n_normal']} normal images held out for the test "
                     f"(normal_split_ratio {info['normal_split_ratio']}, split_seed {info['split_seed']})")
        masks = "masks paired by file stem" if info["masks"] else "no masks: image metrics only"
        return [f"folder dataset {info['category']}: {info['n_train']} training images; {split}; {masks}"]

    def run_summary(self, info: dict[str, Any] | None, records: list[dict[str, Any]],
                    histograms: list[Any] | None) -> dict[str, Any] | None:
        """The split as :meth:`scan` made it (``results.json: folder``)."""
        return dict(info) if info else None

    @classmethod
    def captions(cls, record: dict[str, Any]) -> list[str]:
        info = record.get(cls.record_key) or {}
        if "normal_split_ratio" in info:
            return [f"normal test images: {info['n_test_good']} of {info['n_normal']} held out of the normal folder "
                    f"(normal_split_ratio {info['normal_split_ratio']}, split_seed {info['split_seed']})"]
        return []
