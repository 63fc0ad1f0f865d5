"""What runs in a sweep's worker process (a local process or a Ray task): one job, never raising.

This module imports only the standard library at the top, so that a fresh worker process can set
its thread environment variables before numpy and torch are loaded (:func:`init_process`).
"""

from __future__ import annotations

import datetime as _dt
import io
import os
import resource
import socket
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

#: characters of the traceback kept in an error record (its tail: where it failed)
TRACEBACK_TAIL_CHARS = 4000
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def init_process(threads: int | None) -> None:
    """Initializer of a local worker process: BLAS / OpenMP threads before numpy and torch load."""
    if threads:
        for var in _THREAD_VARS:
            os.environ[var] = str(threads)


def _peak_rss_bytes(spans: dict[str, Any] | None = None) -> int:
    """Peak resident memory of this process (``ru_maxrss``; KiB on Linux, bytes on macOS), and at
    least the peaks of the run's measured ``spans`` (``*_peak_rss_bytes`` of a category record's
    ``memory``): :func:`padim_bench.profiling.measure` resets the kernel's high-water mark at each
    span's start, which resets ``ru_maxrss`` too, so alone it would miss an earlier, larger peak."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak = int(peak if sys.platform == "darwin" else peak * 1024)
    recorded = [v for k, v in (spans or {}).items() if k.endswith("_peak_rss_bytes") and isinstance(v, int)]
    return max([peak, *recorded])


def run_job(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one sweep job: ``runner.run`` on one category of one run, in this process.

    Args:
        spec: ``id``, ``config`` (a :class:`~padim_bench.config.RunConfig` whose categories are
            this job's one category), ``category``, ``threads`` (torch threads, or None to keep
            the config's / torch's), ``force``, ``reuse_results`` (keep categories made by other
            code), ``cwd`` (folder relative paths are resolved from;
            the sweep's own), ``error_file`` (where a failure is recorded), ``lock_token`` (the
            token of the sweep's lock on the run folder, or None: the job locks it itself).

    Returns:
        ``status`` ``done`` with the category's ``metrics``, or ``failed`` with ``error_type``,
        ``message`` and ``traceback`` (also written atomically to ``error_file``); always
        ``seconds``, ``peak_rss_bytes`` (this process's peak: ``ru_maxrss`` and the run's measured
        span peaks), ``host``, ``pid``
        and the ``warnings`` raised. Never raises (except KeyboardInterrupt / SystemExit).
    """
    t0 = time.perf_counter()
    base = {"id": spec["id"], "category": spec["category"], "host": socket.gethostname(), "pid": os.getpid()}
    seen: list[Any] = []
    try:
        if spec.get("cwd"):
            os.chdir(spec["cwd"])
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("default")
            import torch
            from rich.console import Console

            from ..runner import run

            cfg = spec["config"]
            if spec.get("threads") and not cfg.runtime.threads:
                torch.set_num_threads(int(spec["threads"]))
            record = run(cfg, force=bool(spec.get("force")), console=Console(file=io.StringIO()), show_progress=False,
                         reuse_results=bool(spec.get("reuse_results")), lock_token=spec.get("lock_token"))
        cat = next(c for c in record["categories"] if c["category"] == spec["category"])
        return {**base, "status": "done", "metrics": cat["metrics"], "seconds": time.perf_counter() - t0,
                "peak_rss_bytes": _peak_rss_bytes(cat.get("memory")), "torch_threads": torch.get_num_threads(),
                "warnings": [str(w.message) for w in seen]}
    except Exception as e:  # noqa: BLE001 - every failure of a job is recorded, the sweep goes on
        tb = traceback.format_exc()
        err = {**base, "status": "failed", "error_type": type(e).__name__, "message": str(e),
               "traceback": tb[-TRACEBACK_TAIL_CHARS:], "seconds": time.perf_counter() - t0,
               "peak_rss_bytes": _peak_rss_bytes(), "warnings": [str(w.message) for w in seen],
               "time_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
        write_error(spec.get("error_file"), err)
        return err


def write_error(path: str | Path | None, err: dict[str, Any]) -> None:
    """Write the error record atomically (best effort: a full disk must not hide the error)."""
    if not path:
        return
    try:
        from ..store import atomic_write_json

        atomic_write_json(Path(path), err)
    except (OSError, ValueError, TypeError):
        pass
