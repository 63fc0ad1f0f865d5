"""The one reader of run folders and results files, used by ``table``, ``check``, ``report`` and
the scripts.

A path is a results file (``results.json``), a run folder (holding one), or a folder searched
below for run folders (an experiment's or a sweep's output). Each record comes back as the parsed
``results.json`` plus ``_path``, the file it was read from (as found, not resolved).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from ..errors import PadimBenchError
from .folder import RESULTS


def results_files(paths: Sequence[str | Path]) -> list[Path]:
    """The results files under ``paths`` (module doc), each once even when reached twice (a run
    folder given beside the sweep folder that holds it).

    Raises:
        PadimBenchError: a path that does not exist, or a folder with no results file in it or
            below it.
    """
    files: list[Path] = []
    seen: set[Path] = set()
    for p in map(Path, paths):
        if p.is_file():
            found = [p]
        elif p.is_dir():
            found = [p / RESULTS] if (p / RESULTS).is_file() else sorted(p.rglob(RESULTS))
            if not found:
                raise PadimBenchError(f"{p}: not a padim-bench run folder (no {RESULTS} in it or below it; "
                                      "a run writes it when it finishes)")
        else:
            raise PadimBenchError(f"{p}: no such run folder or results file")
        for f in found:
            if f.resolve() not in seen:
                seen.add(f.resolve())
                files.append(f)
    return files


def read_results_file(path: Path) -> dict[str, Any]:
    """One run record from ``path`` (a ``results.json``), with ``_path``.

    Raises:
        PadimBenchError: unreadable, not JSON, or not a run record (no ``config`` / ``categories``).
    """
    try:
        rec = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise PadimBenchError(f"{path}: not a readable results file ({e})") from None
    if not isinstance(rec, dict) or "categories" not in rec or "config" not in rec:
        raise PadimBenchError(f"{path}: not a padim-bench {RESULTS} (no 'config' / 'categories')")
    rec["_path"] = str(path)
    return rec


def read_results(paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Every run record under ``paths`` (:func:`results_files`, :func:`read_results_file`), in
    the order found.

    Raises:
        PadimBenchError: see :func:`results_files` and :func:`read_results_file`.
    """
    return [read_results_file(f) for f in results_files(paths)]


def read_run(path: str | Path) -> dict[str, Any]:
    """The one run record of ``path`` (a run folder or its ``results.json``).

    Raises:
        PadimBenchError: as :func:`read_results`, or ``path`` holds more than one run.
    """
    records = read_results([path])
    if len(records) != 1:
        raise PadimBenchError(f"{path}: expected one {RESULTS}, found {len(records)}")
    return records[0]
