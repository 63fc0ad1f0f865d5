"""Check that every image and mask of a category can be decoded, before any model is loaded.

PNG files are checked with Pillow's ``verify()`` (chunk structure and CRCs: catches truncated and
corrupt files at a fraction of a decode's cost); other formats are fully decoded, since their
``verify()`` checks little. Nothing is ever zero-filled: an unreadable file is an error naming it,
or, where the config says ``dataset.on_unreadable: skip``, its sample is left out and counted in
the results.
"""

from __future__ import annotations

import dataclasses
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

from ..errors import DataError
from .mvtec import CategorySplit, Sample


def file_problem(path: Path) -> str | None:
    """``None`` when ``path`` decodes, else a one-line reason."""
    try:
        with Image.open(path) as img:
            if img.format == "PNG":
                img.verify()
            else:
                img.load()
    except FileNotFoundError:
        return "file not found"
    except Exception as e:  # Pillow raises many types for corrupt data; all mean "unreadable"
        return f"{type(e).__name__}: {e}"
    return None


def _sample_problem(s: Sample) -> str | None:
    for p in (s.path, s.mask_path):
        if p is not None and (why := file_problem(p)) is not None:
            return f"{p}: {why}"
    return None


def check_split(split: CategorySplit, on_unreadable: str = "error", threads: int = 2) -> tuple[CategorySplit, list[str]]:
    """Check every file of ``split``.

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
        problems = list(pool.map(_sample_problem, samples))
    bad = [p for p in problems if p is not None]
    if not bad:
        return split, []
    if on_unreadable != "skip":
        more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
        raise DataError(
            f"{split.name}: {len(bad)} unreadable file(s): " + "; ".join(bad[:5]) + more
            + ". Fix or remove them, or set dataset.on_unreadable: skip to leave them out (counted in the results)"
        )
    keep = [s for s, p in zip(samples, problems) if p is None]
    train = tuple(s for s in keep if s in split.train)
    test = tuple(s for s in keep if s in split.test)
    if not train:
        raise DataError(f"{split.name}: no readable training image left after skipping {len(bad)} file(s)")
    warnings.warn(f"{split.name}: skipped {len(bad)} unreadable file(s) (dataset.on_unreadable: skip): {bad[0]}")
    return dataclasses.replace(split, train=train, test=test), bad
