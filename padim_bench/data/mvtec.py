"""The MVTec AD folder layout (Bergmann et al., CVPR 2019), also used for user folders.

Layout of one category::

    CATEGORY/train/good/*.png
    CATEGORY/test/<defect or good>/*.png
    CATEGORY/ground_truth/<defect>/<stem>_mask.png   (or <stem>.png, or a folder <stem>/ of mask
                                                     files merged into one: MVTec LOCO AD)

Scanning checks the layout before any pixel is decoded: an empty ``train/good``, a defective test
image without its mask or with two (``001.png`` and ``001_mask.png``), a mask without its image,
or a mask whose size differs from its image is
a :class:`~padim_bench.errors.DataError` naming the files. Images and masks are paired by file stem,
never by list position; lists are in natural order (1, 2, 10), independent of creation order.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, DataError
from .images import IMAGE_EXTENSIONS, image_size

MVTEC_CATEGORIES = (
    "bottle", "cable", "capsule", "carpet", "grid", "hazelnut", "leather", "metal_nut",
    "pill", "screw", "tile", "toothbrush", "transistor", "wood", "zipper",
)  # fmt: skip
MVTEC_TEXTURES = ("carpet", "grid", "leather", "tile", "wood")


@dataclass(frozen=True)
class Sample:
    """One image: its path, label (0 normal, 1 anomalous), defect type and mask path (or None)."""

    path: Path
    label: int
    defect: str
    mask_path: Path | None = None


@dataclass(frozen=True)
class CategorySplit:
    """The training (normal only) and test samples of one category."""

    name: str
    root: Path
    train: tuple[Sample, ...]
    test: tuple[Sample, ...]

    #: mixed into the data fingerprints before the files (:mod:`padim_bench.store.cache`): nothing here,
    #: the files alone select the samples
    fingerprint_salt = ""

    def data_files(self, train_only: bool = False) -> list[Path]:
        """Files the category's results depend on, in order: the training images, and (unless
        ``train_only``) then every test image followed by its mask when it has one (every file
        of a LOCO-style mask folder, in natural order)."""
        from .masks import mask_files

        samples = self.train if train_only else self.train + self.test
        return [p for s in samples for p in [s.path, *(mask_files(s.mask_path) if s.mask_path else [])]]


def natural_key(path: Path) -> list:
    """Sort key ordering ``2.png`` before ``10.png``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def list_images(folder: Path) -> list[Path]:
    """Image files in ``folder`` (extensions matched case-insensitively), in natural order."""
    return sorted(
        (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS),
        key=natural_key,
    )


def list_categories(root: str | Path) -> list[str]:
    """Category folders under ``root`` (those with a ``train`` sub-folder), sorted.

    Raises:
        DataError: ``root`` does not exist or holds no category.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"dataset root not found: {root} (set dataset.root or --data-root)")
    cats = sorted(p.name for p in root.iterdir() if (p / "train").is_dir())
    others = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name not in cats)
    if others and cats:
        warnings.warn(f"{root}: folder(s) without train/ are not categories and are left out: {', '.join(others)}")
    if not cats:
        raise DataError(f"{root}: no category folders (expected CATEGORY/train/good, MVTec AD layout)")
    return cats


def resolve_categories(root: str | Path, wanted: str | list[str]) -> list[str]:
    """The categories a run covers: all found under ``root``, or the listed ones.

    Raises:
        DataError: ``root`` is missing or empty.
        ConfigError: a listed category is not under ``root`` (the message lists those that are).
    """
    found = list_categories(root)
    if wanted == "all":
        return found
    if isinstance(wanted, str):  # one name; iterating the string would test single letters
        wanted = [wanted]
    missing = [c for c in wanted if c not in found]
    if missing:
        raise ConfigError(
            f"dataset.categories: {', '.join(missing)} not found under {root}. Available: {', '.join(found)}"
        )
    return list(dict.fromkeys(wanted))


def scan_category(root: str | Path, category: str) -> CategorySplit:
    """Scan one category folder and pair every defective test image with its mask.

    Raises:
        DataError: missing or empty ``train/good`` or ``test``, an unpaired image or mask, or a
            mask whose size differs from its image (all named in the message).
    """
    from .masks import mask_candidates

    base = Path(root) / category
    exts = ", ".join(IMAGE_EXTENSIONS)
    good = base / "train" / "good"
    if not good.is_dir():
        raise DataError(f"{good}: folder not found (MVTec AD layout: CATEGORY/train/good)")
    train = tuple(Sample(p, 0, "good") for p in list_images(good))
    if not train:
        raise DataError(f"{good}: no training images (accepted extensions, any case: {exts})")
    test_dir = base / "test"
    if not test_dir.is_dir():
        raise DataError(f"{test_dir}: folder not found (MVTec AD layout: CATEGORY/test/<defect>)")
    gt_dir = base / "ground_truth"
    test: list[Sample] = []
    for defect_dir in sorted((p for p in test_dir.iterdir() if p.is_dir()), key=natural_key):
        defect = defect_dir.name
        images = list_images(defect_dir)
        if defect == "good":
            test += [Sample(p, 0, "good") for p in images]
            continue
        test += pair_masks(images, gt_dir / defect, defect, defect_dir)
    if gt_dir.is_dir():  # masks of a defect type that has no test folder at all
        tested = {p.name for p in test_dir.iterdir() if p.is_dir()}
        for mask_dir in sorted((p for p in gt_dir.iterdir() if p.is_dir()), key=natural_key):
            masks = [] if mask_dir.name in tested else list(mask_candidates(mask_dir).values())
            if masks:
                names = ", ".join(m.name for m in masks[:5])
                raise DataError(
                    f"{mask_dir}: {len(masks)} mask(s) without an image ({test_dir / mask_dir.name} "
                    f"does not exist): {names}"
                )
    if not test:
        raise DataError(f"{test_dir}: no test images (accepted extensions, any case: {exts})")
    return CategorySplit(category, base, train, tuple(test))


def pair_masks(images: list[Path], mask_dir: Path, defect: str, image_dir: Path,
               suffix: str = "_mask") -> list[Sample]:
    """Defective samples of ``images`` (one defect type, all from ``image_dir``), each paired by file
    stem with its mask in ``mask_dir`` (:func:`padim_bench.data.masks.mask_candidates`: a file with or
    without ``suffix``, or a LOCO-style folder of mask files).

    Raises:
        DataError: two images sharing a stem, two masks for one image, an image without a mask, a
            mask without an image, or a mask whose size differs from its image (files named).
    """
    from .masks import mask_candidates, mask_files

    masks = mask_candidates(mask_dir, suffix)
    stems = {p.stem for p in images}
    if len(stems) != len(images):
        dup = sorted(p.name for p in images if sum(q.stem == p.stem for q in images) > 1)
        raise DataError(f"{image_dir}: several images share a file stem, so masks cannot be paired: {', '.join(dup[:6])}")
    out = []
    for p in images:
        if p.stem not in masks:
            raise DataError(f"{p}: defective test image without a mask (expected {mask_dir / (p.stem + suffix + '.png')})")
        for mask in mask_files(masks[p.stem]):
            try:
                isz, msz = image_size(p), image_size(mask)
            except DataError:  # an unreadable file: the decoding check (data.verify) reports or skips it
                isz = msz = None
            if isz != msz:
                raise DataError(f"mask size differs from its image: {mask} is {msz[0]}x{msz[1]}, {p} is {isz[0]}x{isz[1]}")
        out.append(Sample(p, 1, defect, masks[p.stem]))
    orphans = sorted(set(masks) - stems)
    if orphans:
        names = ", ".join(masks[o].name for o in orphans[:5])
        raise DataError(f"{mask_dir}: {len(orphans)} mask(s) without an image in {image_dir}: {names}")
    return out


def category_kind(category: str, textures: list[str] | None = None) -> str:
    """``texture`` or ``object`` (MVTec AD's grouping, or the given texture list)."""
    return "texture" if category in (textures if textures is not None else MVTEC_TEXTURES) else "object"
