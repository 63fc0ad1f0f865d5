"""Check that every image and mask of a category decodes, before any model is loaded, and say in
advance what the run will report as undefined.

Every file is decoded fully (:func:`file_problem`): a PNG whose chunk checksums are valid but
whose compressed data is corrupt passes Pillow's ``verify()`` and fails only when its pixels are
read, so nothing short of a full decode catches it before the fit. Masks are decoded as the run
decodes them (:func:`padim_bench.data.masks.load_merged_mask`: their encoding warnings appear here
too), and all-black ones are counted. Nothing is ever zero-filled: an unreadable file is an error
naming it, or, where the config says ``dataset.on_unreadable: skip``, its sample is left out and
counted in the results.
"""

from __future__ import annotations

import dataclasses
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

from PIL import Image

from ..errors import DataError
from .images import image_size
from .masks import load_merged_mask
from .mvtec import CategorySplit, Sample
from .shapes import aspect_note


def file_problem(path: Path) -> str | None:
    """``None`` when every pixel of ``path`` decodes, else a one-line reason. Decodes the whole
    file (Pillow ``load()``), whatever its format."""
    try:
        with Image.open(path) as img:
            img.load()
    except FileNotFoundError:
        return "file not found"
    except Exception as e:  # Pillow raises many types for corrupt data; all mean "unreadable"
        return f"{type(e).__name__}: {e}"
    return None


def _sample_problem(s: Sample) -> tuple[str | None, bool]:
    """``(problem, blank)``: the first unreadable file of the sample, and whether its mask is all
    black (no anomalous pixel)."""
    if (why := file_problem(s.path)) is not None:
        return f"{s.path}: {why}", False
    if s.mask_path is None:
        return None, False
    try:
        return None, not load_merged_mask(s.mask_path).any()
    except DataError as e:
        return str(e), False


def check_split(split: CategorySplit, on_unreadable: str = "error", threads: int = 2) -> tuple[CategorySplit, list[str]]:
    """Decode every file of ``split``, and warn (:func:`undefined_notes`) about what its run will
    report as undefined.

    Args:
        split: the scanned category.
        on_unreadable: ``error`` (raise) or ``skip`` (drop the sample, report it).
        threads: decoding threads (Pillow releases the GIL while decoding).

    Returns:
        ``(split, skipped)``: the split without unreadable samples and one line per skipped file.

    Raises:
        DataError: an unreadable file under ``error`` (all of them are listed), or no training
            image left after skipping.
    """
    samples = list(split.train) + list(split.test)
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        checked = list(pool.map(_sample_problem, samples))
    bad = [p for p, _ in checked if p is not None]
    blank = sum(b for _, b in checked)
    if bad and on_unreadable != "skip":
        more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
        raise DataError(
            f"{split.name}: {len(bad)} unreadable file(s): " + "; ".join(bad[:5]) + more
            + ". Fix or remove them, or set dataset.on_unreadable: skip to leave them out (counted in the results)"
        )
    if bad:
        keep = [s for s, (p, _) in zip(samples, checked) if p is None]
        train = tuple(s for s in keep if s in split.train)
        test = tuple(s for s in keep if s in split.test)
        if not train:
            raise DataError(f"{split.name}: no readable training image left after skipping {len(bad)} file(s)")
        warnings.warn(f"{split.name}: skipped {len(bad)} unreadable file(s) (dataset.on_unreadable: skip): {bad[0]}")
        split = dataclasses.replace(split, train=train, test=test)
    for note in undefined_notes(split, blank):
        warnings.warn(note, UserWarning, stacklevel=2)
    return split, bad


def undefined_notes(split: Any, blank_masks: int = 0) -> list[str]:
    """What a run of ``split`` will report as undefined, said before it starts: image ROC-AUC
    without good or without defective test images; pixel ROC-AUC and PRO without a mask, or
    where every mask is all black (``blank_masks``: the defective samples whose mask has no
    anomalous pixel); and a note where some masks are all black.

    Args:
        split: a split whose ``test`` samples have ``label`` and ``mask_path``.
        blank_masks: how many of the defective samples' masks are all black.
    """
    test = list(split.test)
    bad = [s for s in test if s.label]
    n_good, notes = len(test) - len(bad), []
    if not n_good or not bad:
        notes.append(f"{split.name}: image ROC-AUC will be undefined: the test set has {len(bad)} defective and "
                     f"{n_good} good images (it needs both)")
    with_mask = [s for s in bad if s.mask_path is not None]
    if bad and not with_mask:
        notes.append(f"{split.name}: pixel ROC-AUC and PRO will be undefined: no defective test image has a mask "
                     "(classification-only data: the image metrics only)")
    elif with_mask and blank_masks >= len(with_mask):
        notes.append(f"{split.name}: pixel ROC-AUC and PRO will be undefined: every one of the {len(with_mask)} "
                     "masks is all black (no anomalous pixel)")
    elif blank_masks:
        notes.append(f"{split.name}: {blank_masks} of {len(with_mask)} masks are all black: those images count as "
                     "defective for the image metrics, all their pixels as normal for the pixel metrics")
    return notes


def warn_aspect(splits: Sequence[Any], resize: Any) -> None:
    """Warn once over a run's ``splits`` where ``dataset.resize`` changes the aspect ratio of
    their images (:func:`padim_bench.data.shapes.aspect_note`; sizes from the file headers)."""
    sizes = set()
    for split in splits:
        for s in (*split.train, *split.test):
            try:
                sizes.add(image_size(s.path))
            except DataError:  # unreadable: check_split has reported or skipped it
                continue
    note = aspect_note(sizes, resize)
    if note is not None:
        warnings.warn(note, UserWarning, stacklevel=2)
