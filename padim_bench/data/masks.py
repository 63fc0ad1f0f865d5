"""Ground-truth masks as folders hold them: pairing masks with images by file stem, and masks kept
as several files per image (MVTec LOCO AD) merged into one.

A defective image ``<stem>.<ext>`` is paired with, in its mask folder, exactly one of:

* ``<stem><suffix>.<ext>`` (MVTec AD: ``000_mask.png``; the suffix is configurable),
* ``<stem>.<ext>`` (a mask of the image's own name),
* a folder ``<stem>/`` of mask files (MVTec LOCO AD, Bergmann et al., IJCV 2022: one file per
  annotated defect, ``ground_truth/<defect>/<stem>/000.png``, ``001.png``...), merged by a
  logical OR into one mask.

Two candidates for one image (``001.png`` and ``001_mask.png``, or a file and a folder) are a
:class:`~padim_bench.errors.DataError` naming both: one of them would otherwise be ignored.
Each mask file is decoded by :func:`padim_bench.data.images.load_mask` (any non-zero pixel is
anomalous; an unusual maximum warns), so 0/1, 0/255, grey-level and class-id masks read as before.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from .images import IMAGE_EXTENSIONS, load_mask
from .mvtec import list_images, natural_key

#: the default suffix of a mask's file stem after its image's stem (MVTec AD: ``000_mask.png``)
MASK_SUFFIX = "_mask"


def mask_files(mask: Path) -> list[Path]:
    """The files of one image's mask: ``[mask]`` for a file, the image files of a LOCO-style mask
    folder in natural order.

    Raises:
        DataError: a mask folder that holds no image file.
    """
    if not mask.is_dir():
        return [mask]
    files = list_images(mask)
    if not files:
        exts = ", ".join(IMAGE_EXTENSIONS)
        raise DataError(f"{mask}: mask folder without any mask file (accepted extensions, any case: {exts})")
    return files


def mask_candidates(folder: Path, suffix: str = MASK_SUFFIX) -> dict[str, Path]:
    """The masks of ``folder`` by the stem of the image each belongs to: a file ``<stem><suffix>``
    or ``<stem>`` (any image extension), or a sub-folder ``<stem>/`` of mask files.

    Raises:
        DataError: two candidates for one stem (both named).
    """
    found: dict[str, Path] = {}
    if not folder.is_dir():
        return found
    for p in sorted(folder.iterdir(), key=natural_key):
        if p.name.startswith("."):
            continue
        if p.is_dir():
            stem = p.name
        elif p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS:
            stem = p.stem[: -len(suffix)] if suffix and p.stem.endswith(suffix) and p.stem != suffix else p.stem
        else:
            continue
        if stem in found:
            raise DataError(f"two masks for image {stem!r}: {found[stem]} and {p}; keep one (a folder of mask "
                            "files is merged into one mask)")
        found[stem] = p
    return found


def load_merged_mask(mask: str | Path) -> np.ndarray:
    """Decode one image's mask to bool ``(H, W)``: a mask file, or the logical OR of every file
    of a LOCO-style mask folder (all of one size).

    Raises:
        DataError: an undecodable file, an empty folder, or files of different sizes (named).
    """
    files = mask_files(Path(mask))
    merged = load_mask(files[0])
    for f in files[1:]:
        m = load_mask(f)
        if m.shape != merged.shape:
            raise DataError(f"{f}: mask is {m.shape[1]}x{m.shape[0]}, {files[0]} in the same mask folder is "
                            f"{merged.shape[1]}x{merged.shape[0]}")
        merged |= m
    return merged
