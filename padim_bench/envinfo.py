"""What a result was measured on: hardware, library versions, code version and date.

Recorded with every result so numbers can be compared across machines honestly.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import psutil
import torch

_PACKAGES = ("padim-bench", "torch", "torchvision", "numpy", "scipy", "scikit-learn", "pillow")


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux, else ``platform.processor()``)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


PACKAGE_DIR = Path(__file__).resolve().parent
"""The folder of the ``padim_bench`` package this process imports (its sources are hashed)."""
SOURCE_SUFFIXES = (".py", ".yaml")
"""The package files that make up its code: modules and package data (``reference/paper.yaml``)."""


def source_hash(root: Path = PACKAGE_DIR) -> str:
    """SHA-256 (16 hex digits) of the package's sources: every ``*.py`` and ``*.yaml`` file under
    ``root`` (``__pycache__`` left out), each as its path relative to ``root`` and its bytes, in
    sorted order. Two copies with the same sources give the same hash, wherever they are
    installed; any edit to a module (committed or not) gives another.

    Raises:
        OSError: a source file cannot be read.
    """
    h = hashlib.sha256()
    files = sorted(p for p in root.rglob("*") if p.suffix in SOURCE_SUFFIXES and "__pycache__" not in p.parts
                   and p.is_file())
    for p in files:
        data = p.read_bytes()
        h.update(f"{p.relative_to(root).as_posix()}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()[:16]


def _git(root: Path, *args: str) -> str | None:
    """``git -C root ARGS``'s stdout, or None when git is missing, fails or takes over 5 s."""
    try:
        out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def git_state(root: Path = PACKAGE_DIR) -> tuple[str | None, bool | None]:
    """``(commit, dirty)`` of the git checkout the package runs from: the HEAD commit and whether
    the package's sources (``*.py`` / ``*.yaml`` under ``root``, untracked ones included) differ from
    it. ``(None, None)`` when ``root`` is not tracked by git (an installed copy, a tarball, no git
    binary, a repository git refuses to read): never raises."""
    if _git(root, "ls-files", "--error-unmatch", "__init__.py") is None:
        return None, None  # e.g. site-packages inside someone else's repository: not this package's commit
    rev = _git(root, "rev-parse", "HEAD")
    if rev is None:
        return None, None
    status = _git(root, "status", "--porcelain", "--", *(f"*{s}" for s in SOURCE_SUFFIXES))
    return rev.strip(), None if status is None else bool(status.strip())


def code_identity(root: Path = PACKAGE_DIR) -> dict[str, Any]:
    """The code that makes a result (``environment.code`` of every record).

    ``version`` (the installed distribution's, else None), ``source_sha256``
    (:func:`source_hash`), ``git_commit`` and ``dirty`` (:func:`git_state`; None outside a git
    checkout) and ``key``: ``<version>+<source hash>``. **Same code = same key**: the commit is
    provenance, not identity, so a commit that only touches docs, tests or results (or commits the
    results themselves) keeps the key, and two dirty trees with different edits get different
    keys. Library versions (torch, ...) are recorded in ``environment.versions``, not in the key.
    """
    try:
        version = importlib.metadata.version("padim-bench")
    except importlib.metadata.PackageNotFoundError:
        version = None
    src = source_hash(root)
    commit, dirty = git_state(root)
    return {"key": f"{version}+{src}", "version": version, "source_sha256": src, "git_commit": commit, "dirty": dirty}


def git_commit() -> str | None:
    """The git commit of the source tree this package runs from, with ``+dirty`` if its sources
    have uncommitted changes (:func:`git_state`); None outside a git checkout."""
    commit, dirty = git_state()
    return None if commit is None else commit + ("+dirty" if dirty else "")


def environment(device: torch.device) -> dict[str, Any]:
    """Hardware, versions, threads, device and UTC time as plain data."""
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    info: dict[str, Any] = {
        "date_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        # other processes compete for the CPU: timings taken under load are slower (1, 5, 15 min)
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "memory_total_bytes": psutil.virtual_memory().total,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "versions": versions,
    }
    code = code_identity()
    info["code"] = code
    info["git_commit"] = None if code["git_commit"] is None else code["git_commit"] + ("+dirty" if code["dirty"] else "")
    return info
