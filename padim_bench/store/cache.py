"""Data fingerprints and saved models.

* :func:`train_fingerprint` keys the model cache and every saved model: the training files'
  names, sizes and modification times, so any touched file refits.
* :func:`data_fingerprint` keys a finished category record: the names and sizes of every file
  the category's results depend on (modification times left out, so a copy of the same dataset on
  another machine matches).

Both hash what the split declares: ``split.data_files(train_only)`` and ``split.fingerprint_salt``
(:class:`padim_bench.data.mvtec.CategorySplit`, :class:`padim_bench.data.stc.StcSplit`).
A model file holds ``{"state": method.state_dict(), "fingerprint": ..., "fit": ...}``: tensors and
plain data only, read back with ``torch.load(weights_only=True)`` (torch is imported only when a
model is saved or loaded).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from .files import WriteError


def _fingerprint(paths: list[Path], mtime: bool, salt: str) -> str:
    h = hashlib.sha256(salt.encode())
    for p in paths:
        st = p.stat()
        h.update(f"{p.parent.name}/{p.name}\0{st.st_size}\0{st.st_mtime_ns if mtime else ''}\n".encode())
    return h.hexdigest()[:16]


def train_fingerprint(split: Any) -> str:
    """SHA-256 (16 hex digits) of the training files' names (parent folder and file), sizes and
    modification times, after the split's ``fingerprint_salt`` (STC: the stride that selects the
    frames of the scene's videos).

    Raises:
        OSError: a file of the split is gone.
    """
    return _fingerprint(split.data_files(train_only=True), mtime=True, salt=split.fingerprint_salt)


def data_fingerprint(split: Any) -> str:
    """SHA-256 (16 hex digits) of the names and sizes of every file of the category
    (``split.data_files()``: training and test images and masks; STC: the scene's videos, selected
    test frames, mask files), after ``fingerprint_salt``: a finished category is reused only over
    the same files.

    Raises:
        OSError: a file of the split is gone.
    """
    return _fingerprint(split.data_files(), mtime=False, salt=split.fingerprint_salt)


def model_cache_path(cache_dir: str | Path | None, config_hash: str, category: str) -> Path | None:
    """``<cache_dir>/<config hash>/<category>.pt`` (``output.model_cache``), or None without a cache."""
    return Path(cache_dir) / config_hash / f"{category}.pt" if cache_dir else None


def save_model(method: Any, path: Path, extra: dict[str, Any]) -> None:
    """Save ``method.state_dict()`` plus ``extra`` (plain data) atomically at ``path``.

    Raises:
        WriteError: (an OSError) the folder is not writable or the disk is full; no partial file is left.
    """
    import torch  # here, so that reading results never imports torch

    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"state": method.state_dict(), **extra}, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:  # torch's writer reports a full disk as a RuntimeError
        tmp.unlink(missing_ok=True)
        raise WriteError(path, e) from e


def load_cached(method: Any, path: Path, fingerprint: str) -> dict[str, Any] | None:
    """Load a saved fit into ``method`` when ``path`` exists and holds ``fingerprint``; returns
    the saved blob (its ``fit`` figures), or None when there is no such model."""
    if not path.is_file():
        return None
    blob = load_model_state(path)
    if blob.get("fingerprint") != fingerprint:
        return None
    method.load_state_dict(blob["state"])
    return blob


def load_model_state(path: str | Path) -> dict[str, Any]:
    """Read a saved model with ``torch.load(weights_only=True)`` (tensors and plain data only, no
    code runs).

    Raises:
        OSError: unreadable. RuntimeError / pickle.UnpicklingError: not such a file.
    """
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)
