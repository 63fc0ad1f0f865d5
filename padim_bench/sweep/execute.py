"""Running a sweep's jobs: a memory-aware local process pool, or Ray.

Local executor (default). Each job runs in a fresh process (``spawn``; one process per job, so its
memory is returned to the system when it ends). Scheduling rule (:class:`MemoryScheduler`):

* at most ``slots`` jobs at once (``--jobs``; default: the CPU cores this process may use divided
  by the threads per job asked for (``--threads`` or ``runtime.threads``; else 1), and no more than
  the number of jobs, nor than the budget divided by the largest job's prediction);
* a job starts only when the predicted memory of the running jobs plus its own fits in the memory
  budget (``--memory-gb``; default: ``MemAvailable`` at the start x ``MEMORY_FRACTION``);
* jobs are tried largest prediction first; a smaller job may start beside a larger one that waits;
* a job predicted larger than the whole budget is refused, with the figures (``--allow-oversize``
  runs it alone); CUDA jobs share the visible GPUs, at most one job per GPU.

Torch threads per job: the config's ``runtime.threads`` when set (it is part of the run hash),
else ``--threads``, else ``cores // slots`` (at least 1).

Ray executor (``--executor ray``): every job is a Ray task (``max_calls=1``: a fresh worker
process) declaring ``num_cpus`` = its threads, ``num_gpus`` = 1 for CUDA jobs and ``memory`` = its
predicted bytes, so Ray's scheduler packs the cluster; a job that no node can hold is refused
before submission (Ray would wait for it forever). Both call :func:`padim_bench.sweep.worker.run_job`.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from ..errors import PadimBenchError
from .plan import Job

#: share of MemAvailable the local executor plans with (the rest: the sweep's own process,
#: page cache the jobs read through, and the prediction's error)
MEMORY_FRACTION = 0.9


def cpu_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


@dataclass
class MemoryScheduler:
    """Which pending job may start now (see the module doc).

    Attributes:
        budget_bytes: memory the running jobs' predictions may add up to.
        slots: jobs at once.
        gpu_slots: CUDA jobs at once (the number of GPUs).
    """

    budget_bytes: int
    slots: int
    gpu_slots: int = 0

    def fits_alone(self, job: Job) -> bool:
        return job.memory_bytes <= self.budget_bytes

    def pick(self, pending: list[Job], running: Iterable[Job], alone_ok: set[str] = frozenset()) -> Job | None:
        """The first job of ``pending`` that may start beside ``running``, or None.

        ``alone_ok``: ids of oversized jobs allowed to run when nothing else runs."""
        running = list(running)
        if len(running) >= self.slots:
            return None
        used = sum(j.memory_bytes for j in running)
        gpus = sum(bool(getattr(j, "needs_gpu", False)) for j in running)
        for job in pending:
            if getattr(job, "needs_gpu", False) and gpus >= max(1, self.gpu_slots):
                continue
            if used + job.memory_bytes <= self.budget_bytes or (not running and job.id in alone_ok):
                return job
        return None


def drive(jobs: list[Job], scheduler: MemoryScheduler, submit: Callable[[Job], Any],
          wait_any: Callable[[list[Any]], list[tuple[Any, dict[str, Any]]]],
          on_start: Callable[[Job], None], on_done: Callable[[Job, dict[str, Any]], None],
          alone_ok: set[str] = frozenset()) -> None:
    """Start jobs as :class:`MemoryScheduler` allows (largest prediction first), collect results.

    ``submit(job) -> handle``; ``wait_any(handles) -> [(handle, result), ...]`` returns at least
    one finished handle, or none after a short timeout (so the progress display stays current).
    """
    pending = sorted(jobs, key=lambda j: -j.memory_bytes)  # stable: plan order among equals
    running: dict[Any, Job] = {}
    while pending or running:
        while (job := scheduler.pick(pending, running.values(), alone_ok)) is not None:
            pending.remove(job)
            running[submit(job)] = job
            on_start(job)
        if not running:  # nothing runs and nothing may start: cannot happen with refused oversize jobs
            raise PadimBenchError(f"{len(pending)} job(s) cannot be scheduled: {', '.join(j.id for j in pending)}")
        for handle, result in wait_any(list(running)):
            on_done(running.pop(handle), result)


# ------------------------------------------------------------------------------------- local
class LocalBackend:
    """One ``spawn``ed single-process pool per job (a fresh interpreter, freed at its end)."""

    def __init__(self, threads_of: Callable[[Job], int | None], spec_of: Callable[[Job], dict[str, Any]]):
        self.threads_of, self.spec_of = threads_of, spec_of
        self.pools: dict[cf.Future, cf.ProcessPoolExecutor] = {}
        self.ctx = multiprocessing.get_context("spawn")

    def submit(self, job: Job) -> cf.Future:
        from .worker import init_process, run_job

        pool = cf.ProcessPoolExecutor(max_workers=1, mp_context=self.ctx, initializer=init_process,
                                      initargs=(self.threads_of(job),))
        fut = pool.submit(run_job, self.spec_of(job))
        self.pools[fut] = pool
        return fut

    def wait_any(self, handles: list[cf.Future]) -> list[tuple[cf.Future, dict[str, Any]]]:
        done, _ = cf.wait(handles, timeout=0.5, return_when=cf.FIRST_COMPLETED)
        out = []
        for fut in done:
            try:
                result = fut.result()
            except Exception as e:  # noqa: BLE001 - e.g. BrokenProcessPool: the process died (OOM killer?)
                result = {"status": "failed", "error_type": type(e).__name__,
                          "message": f"the job's process ended abnormally ({e}); killed for memory?",
                          "traceback": ""}
            self.pools.pop(fut).shutdown(wait=False)
            out.append((fut, result))
        return out

    def shutdown(self) -> None:
        """Cancel pending jobs and stop running ones (their processes are terminated: a killed
        driver must not leave job processes behind; finished jobs' records are already on disk)."""
        for pool in self.pools.values():
            procs = list((getattr(pool, "_processes", None) or {}).values())  # no public API before Python 3.14
            pool.shutdown(wait=False, cancel_futures=True)
            for proc in procs:
                if proc.is_alive():
                    proc.terminate()
        self.pools.clear()


# --------------------------------------------------------------------------------------- ray
def import_ray() -> Any:
    """``import ray``, or PadimBenchError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise PadimBenchError("the ray executor needs Ray: pip install 'padim-bench[ray]' (from a clone: pip install -e '.[ray]'), "
                              "the same version on every node") from None
    return ray


@dataclass
class RayBackend:
    """Jobs as Ray tasks with declared CPU, GPU and memory resources."""

    spec_of: Callable[[Job], dict[str, Any]]
    resources_of: Callable[[Job], dict[str, Any]]
    ray: Any = None
    remote: Any = None
    refs: dict[Any, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from .worker import run_job

        # max_calls=1: a fresh worker process per job (torch keeps freed memory otherwise);
        # max_retries=1: a job whose worker died (node lost, OOM) is tried once more
        self.remote = self.ray.remote(max_calls=1, max_retries=1)(run_job)

    def submit(self, job: Job) -> Any:
        ref = self.remote.options(name=f"padim-bench {job.id}", **self.resources_of(job)).remote(self.spec_of(job))
        self.refs[ref] = job
        return ref

    def wait_any(self, handles: list[Any]) -> list[tuple[Any, dict[str, Any]]]:
        ready, _ = self.ray.wait(handles, num_returns=1, timeout=0.5)
        out = []
        for ref in ready:
            try:
                result = self.ray.get(ref)
            except Exception as e:  # noqa: BLE001 - worker crash, OOM kill, lost node
                result = {"status": "failed", "error_type": type(e).__name__, "message": str(e).strip()[-2000:],
                          "traceback": ""}
            self.refs.pop(ref, None)
            out.append((ref, result))
        return out

    def shutdown(self) -> None:
        for ref in list(self.refs):
            try:
                self.ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - already finished or the cluster is gone
                pass
        self.refs.clear()


def ray_nodes(ray: Any) -> list[dict[str, float]]:
    """Resources (``CPU``, ``GPU``, ``memory`` bytes) of every live node of the connected cluster."""
    return [dict(n.get("Resources", {})) for n in ray.nodes() if n.get("Alive", True)]
