"""Atomic file writes: a crash never leaves a partial results file, record or model."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from ..errors import PadimBenchError


class WriteError(PadimBenchError, OSError):
    """A file could not be written (full disk, read-only folder, ...): a one-line message naming
    the file; ``errno``, ``strerror`` and ``filename`` (the target, not the temporary file) as
    the OSError it stands for. The previous file at that path, if any, is unchanged."""

    def __init__(self, path: Path, cause: Exception) -> None:
        reason = getattr(cause, "strerror", None) or cause
        super().__init__(f"{path}: cannot write it ({reason}); the previous file, if any, is unchanged")
        self.errno, self.strerror, self.filename = getattr(cause, "errno", None), str(reason), str(path)

    def __str__(self) -> str:
        return str(self.args[0])


def atomic_write_bytes(path: str | Path, blob: bytes) -> None:
    """Write ``blob`` to ``path`` via a temporary file in the same folder and ``os.replace``, so
    a crash never leaves a partial file; permissions follow the umask, as a plain open would.

    Raises:
        WriteError: (an OSError and a PadimBenchError) the folder cannot be created or written,
            e.g. a full disk (ENOSPC) or a read-only folder; no temporary file is left behind.
    """
    path = Path(path)
    try:
        _write_via_temporary(path, blob)
    except OSError as e:
        raise WriteError(path, e) from e


def _write_via_temporary(path: Path, blob: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; results are meant to be shared
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """:func:`atomic_write_bytes` of ``text`` in UTF-8 (newlines written as given)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """:func:`atomic_write_text` of ``obj`` as indented JSON (NaN is not allowed: use null).

    Raises:
        WriteError: not writable. ValueError: NaN or infinity in ``obj``. TypeError: not plain data.
    """
    atomic_write_text(path, json.dumps(obj, indent=2, allow_nan=False) + "\n")


def write_json_and_markdown(stem: str | Path, record: Any, markdown: str) -> None:
    """A benchmark's result pair: ``<stem>.json`` (``record``) and ``<stem>.md`` (``markdown``),
    each written atomically."""
    stem = Path(stem)
    atomic_write_json(stem.with_suffix(".json"), record)
    atomic_write_text(stem.with_suffix(".md"), markdown)


def read_json_or_none(path: Path) -> Any:
    """Parsed JSON of ``path``, or None when it is missing, unreadable or not JSON (a file of a
    run folder that is simply not trusted then)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
