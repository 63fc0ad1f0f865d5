"""One writer per run folder: a lock file ``<folder>/.padim-bench.lock`` held with ``flock``.

``run`` and a sweep hold the lock of every run folder they write, for as long as they write it;
a second process that would write the same folder (a second ``run``, a ``run`` beside a sweep,
``--force`` while another process writes) is refused with the holder's pid, host and command,
read from the lock file. Taking the lock removes the temporary files a killed writer left. The kernel releases an ``flock`` when its process dies, also by
``kill -9``: a lock file left behind by a dead process is taken over, with a message naming it.
A sweep's jobs (other processes, possibly Ray tasks) write under their sweep's lock: they are
given its ``token`` and check that the lock file still holds it instead of locking again.

Why ``fcntl.flock`` and not the ``filelock`` package: ``filelock`` locks the same way but records
no holder (pid, command) to name in the refusal; an ``O_EXCL`` file alone cannot tell a live
holder from a dead one without trusting pids (reused, and meaningless on another host). On network
filesystems without lock support the lock may not exclude; POSIX systems only (``fcntl``).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import socket
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from rich.console import Console

from ..errors import PadimBenchError

LOCK_NAME = ".padim-bench.lock"


class FolderLocked(PadimBenchError):
    """Another live process holds the lock of a run folder."""


def lock_path(folder: str | Path) -> Path:
    """The lock file of run folder ``folder``."""
    return Path(folder) / LOCK_NAME


def read_holder(folder: str | Path) -> dict[str, Any] | None:
    """What the lock file of ``folder`` says about its holder (``pid``, ``host``, ``command``,
    ``since_utc``, ``token``), or None when there is none or it cannot be read."""
    try:
        holder = json.loads(lock_path(folder).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def describe_holder(holder: dict[str, Any] | None) -> str:
    """``pid 123 on host, `padim-bench run x.yaml`, since ...`` (or that it is unknown)."""
    if not holder:
        return "an unknown process (no details in the lock file)"
    return (f"pid {holder.get('pid')} on {holder.get('host')}, `{holder.get('command')}`, "
            f"since {holder.get('since_utc')}")


@contextmanager
def run_folder_lock(folder: str | Path, token: str | None = None,
                    console: Console | None = None) -> Iterator[str]:
    """Hold the lock of run folder ``folder`` (created if missing) while the block runs; yields
    the lock's token, which the holder gives to the jobs writing under it.

    Args:
        folder: the run folder (``output.dir``).
        token: a token of a lock already held (by this process's sweep): checked, not locked again.
        console: where taking over a dead process's lock file is reported.

    Raises:
        FolderLocked: another live process holds the lock (naming its pid, host and command), or
            ``token`` is not the token the lock file holds.
        PadimBenchError: ``folder`` is a file, or the lock file cannot be created.
    """
    folder = Path(folder)
    if token is not None:
        holder = read_holder(folder)
        if holder is None or holder.get("token") != token:
            raise FolderLocked(f"{folder}: this job's sweep no longer holds the folder's lock "
                               f"({lock_path(folder)}: {describe_holder(holder)})")
        yield token
        return
    if folder.exists() and not folder.is_dir():
        raise PadimBenchError(f"output.dir {folder} exists and is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, stale = _acquire(folder)
    except OSError as e:
        raise PadimBenchError(f"output.dir {folder}: cannot write there ({lock_path(folder).name}: "
                              f"{e.strerror or e})") from None
    if stale is not None and console is not None:
        console.print(f"[yellow]note:[/] {lock_path(folder)} was left by {describe_holder(stale)}, which no longer "
                      "runs (killed?); taking it over", highlight=False)
    token = uuid.uuid4().hex
    try:
        _write_holder(fd, token)
        remove_temporaries(folder)
    except OSError as e:  # e.g. a full disk
        _release(folder, fd)
        raise PadimBenchError(f"{lock_path(folder)}: cannot write the lock file ({e.strerror or e})") from None
    try:
        yield token
    finally:
        _release(folder, fd)


#: the temporary files of the atomic writers (store.files, histograms, saved models), by folder
TEMPORARY_PATTERNS = (".*.tmp", ".*.tmp.npz")
_TEMPORARY_FOLDERS = (".", "categories", "report_data", "models")


def remove_temporaries(folder: Path) -> list[Path]:
    """Remove what a process killed in the middle of an atomic write left in a run folder (its
    temporary files; the file it was replacing is intact). Called only under the folder's own
    lock, when no other process can be writing one. Returns the files removed."""
    removed = []
    for sub in _TEMPORARY_FOLDERS:
        for pattern in TEMPORARY_PATTERNS:
            for p in (folder / sub).glob(pattern):
                if p.is_file():
                    p.unlink(missing_ok=True)
                    removed.append(p)
    return removed


def _acquire(folder: Path) -> tuple[int, dict[str, Any] | None]:
    """Open and ``flock`` the lock file (non-blocking); returns the descriptor and the details of
    a dead previous holder whose file was left behind (None for a fresh file).

    Raises:
        FolderLocked: held by a live process. OSError: the file cannot be created."""
    import fcntl

    path = lock_path(folder)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise FolderLocked(f"{folder} is being written by another process: {describe_holder(read_holder(folder))}; "
                               f"wait for it to end or stop it (lock file {path})") from None
        except BaseException:
            os.close(fd)
            raise
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:  # not a file its holder unlinked on release while we opened it
            break
        os.close(fd)
    return fd, (read_holder(folder) or {}) if os.fstat(fd).st_size else None


def _write_holder(fd: int, token: str) -> None:
    """Write this process's details into the held lock file (one write of a small JSON)."""
    command = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
              "since_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "token": token}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(holder) + "\n").encode("utf-8"), 0)
    os.fsync(fd)


def _release(folder: Path, fd: int) -> None:
    """Unlink the lock file (while still holding it, so no one locks the unlinked file) and unlock."""
    import fcntl

    try:
        os.unlink(lock_path(folder))
    except OSError:
        pass  # a read-only or vanished folder: the kernel still releases the flock below
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
