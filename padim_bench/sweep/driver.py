"""``padim-bench sweep``: plan, show (dry run) and run a sweep with one progress display.

Results: every job writes its category record into its run folder (atomically, by the runner);
the sweep keeps ``<sweep folder>/sweep.json`` (every job: status, predicted and measured memory,
time, host, error) and ``<sweep folder>/_errors/<job>.json`` for each failed job (error type,
message, traceback tail). A re-run skips finished jobs before scheduling anything.
"""

from __future__ import annotations

import os
import threading
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..console import make_console
from ..errors import PadimBenchError
from ..store import consolidate_run, run_folder_lock
from .execute import (MEMORY_FRACTION, LocalBackend, MemoryScheduler, RayBackend, cpu_cores, drive, import_ray,
                      ray_nodes)
from ..memory import available_ram_bytes
from .plan import INDEX_NAME, Job, SweepPlan
from .tracking import JobTracker, SweepIndex, SweepResult, refuse_job


def _gb(n: float) -> str:
    return f"{n / 1e9:.2f}"


def _values_text(job: Job) -> str:
    parts = [f"{k}={v}" for k, v in job.run.values.items()]
    return " ".join(parts)


def local_sizing(plan: SweepPlan, jobs: int | None, threads: int | None, memory_gb: float | None) -> dict[str, Any]:
    """The local executor's budget, concurrency and threads for the jobs left to run (module doc of
    :mod:`padim_bench.sweep.execute`)."""
    cores = cpu_cores()
    avail = available_ram_bytes()
    budget = int(memory_gb * 1e9) if memory_gb else int(avail * MEMORY_FRACTION)
    todo = [j for j in plan.todo if j.data_error is None]
    biggest = max((j.memory_bytes for j in todo), default=0)
    per_job = max([j.config.runtime.threads or 0 for j in todo] + [threads or 0]) or 1  # threads asked for
    if jobs:
        slots = jobs
    else:
        slots = max(1, min(cores // per_job, len(todo) or 1, budget // biggest if biggest else cores))
    return {"executor": "local", "cores": cores, "available_bytes": avail, "budget_bytes": budget,
            "budget_rule": f"--memory-gb {memory_gb}" if memory_gb else f"MemAvailable x {MEMORY_FRACTION}",
            "slots": int(slots), "threads": int(threads or max(1, cores // slots))}


def dry_run_table(plan: SweepPlan, sizing: dict[str, Any] | None, ray_threads: int = 1) -> tuple[Table, list[str]]:
    """The dry run: every job with its axis values, image counts, predicted memory and status; and
    the summary lines (totals, and the local executor's ``sizing`` on this machine, or, with
    ``sizing`` None, what the Ray executor will ask the cluster for: it is not contacted)."""
    t = Table(title=escape(f"sweep {plan.path}: {len(plan.jobs)} jobs -> {plan.out}"),
              caption="memory: predicted peak resident memory of the job's process, GB = 1e9 bytes "
                      "(padim_bench/memory/model.py); * image counts not scanned here (MVTec AD paper's, or assumed)",
              caption_justify="left")
    for col in ("job", "variant", "axes", "category", "train / test", "memory GB", "status"):
        t.add_column(col, justify="right" if col in ("train / test", "memory GB") else "left",
                     overflow="fold", no_wrap=col in ("train / test", "memory GB", "category"))
    def data_fails(j: Job) -> bool:  # the data root is here, so the category's error is real
        return j.data_error is not None and Path(j.config.dataset.root).is_dir()

    for j in plan.jobs:
        star = "" if j.counts == "scanned" else "*"
        status = "fails: data" if data_fails(j) else j.status
        style = {"finished": "dim", "conflict": "red", "fails: data": "red"}.get(status)
        t.add_row(escape(j.id), escape(j.run.variant), escape(_values_text(j)), escape(j.category),
                  f"{j.n_train} / {j.n_test}{star}", _gb(j.memory_bytes), escape(status), style=style)
    todo = plan.todo
    n_fin = sum(j.status == "finished" for j in plan.jobs)
    n_conf = sum(j.status == "conflict" for j in plan.jobs)
    lines = [f"{len(plan.jobs)} jobs: {n_fin} finished (skipped), {len(todo)} to run"
             + (f", {n_conf} in folders of another run (need --force or another --out)" if n_conf else "")]
    if plan.jobs:
        biggest = max(plan.jobs, key=lambda j: j.memory_bytes)
        lines.append(f"predicted memory per job: {_gb(min(j.memory_bytes for j in plan.jobs))} to "
                     f"{_gb(biggest.memory_bytes)} GB (largest: {biggest.id}: "
                     + ", ".join(f"{k} {_gb(v)}" for k, v in biggest.memory.parts.items()) + ")")
    if todo:
        lines.append(f"to run: {len(todo)} jobs, {_gb(sum(j.memory_bytes for j in todo))} GB if all ran at once")
    if sizing is None:
        lines.append(f"executor ray: not contacted in a dry run; each job asks Ray for num_cpus = its torch "
                     f"threads ({ray_threads} unless its config sets runtime.threads) and memory = its predicted "
                     "bytes; a job larger than every node's memory is refused when the sweep starts")
    else:
        big = [j for j in todo if j.memory_bytes > sizing["budget_bytes"]]
        lines.append(f"local executor here: {sizing['cores']} cores, budget {_gb(sizing['budget_bytes'])} GB "
                     f"({sizing['budget_rule']}; MemAvailable {_gb(sizing['available_bytes'])} GB), up to "
                     f"{sizing['slots']} job(s) at once x {sizing['threads']} torch thread(s)"
                     + (f"; {len(big)} job(s) larger than the budget would be refused" if big else ""))
    missing = sorted({j.category for j in plan.jobs if j.counts != "scanned" and not data_fails(j)})
    if missing:
        lines.append(f"not scanned here (counts from the MVTec AD paper or assumed): {', '.join(missing)}")
    for error in sorted({j.data_error for j in plan.jobs if data_fails(j)}):
        ids = [j.id for j in plan.jobs if data_fails(j) and j.data_error == error]
        lines.append(f"will fail before starting ({len(ids)} job(s): {', '.join(ids[:3])}"
                     f"{', ...' if len(ids) > 3 else ''}): {error}")
    lines += plan.notes
    return t, lines


def run_sweep(plan: SweepPlan, *, executor: str = "local", address: str | None = None, jobs: int | None = None,
              threads: int | None = None, memory_gb: float | None = None, allow_oversize: bool = False,
              force: bool = False, console: Console | None = None, show_progress: bool = True) -> SweepResult:
    """Run every ``todo`` job of ``plan`` with the local process pool or Ray (see
    :mod:`padim_bench.sweep.execute`); failures are recorded and do not stop the others.

    Raises:
        PadimBenchError: a job's folder holds another run (without ``force``) or is being
            written by another process (``store.FolderLocked``), an unknown executor, Ray missing
            or unreachable. Failed jobs do not raise: see
            :attr:`SweepResult.failed`.
    """
    console = console or make_console(stderr=True)
    _check_conflicts(plan, force)
    if executor not in ("local", "ray"):
        raise PadimBenchError(f"--executor {executor!r}: use local or ray")
    with ExitStack() as locks:  # every run folder of the sweep, from the first write to the last consolidation
        tokens = {Path(r.config.output.dir): locks.enter_context(run_folder_lock(r.config.output.dir, console=console))
                  for r in plan.runs}
        return _run_locked(plan, tokens, console, executor=executor, address=address, jobs=jobs, threads=threads,
                           memory_gb=memory_gb, allow_oversize=allow_oversize, force=force, show_progress=show_progress)


def _run_locked(plan: SweepPlan, tokens: dict[Path, str], console: Console, *, executor: str, address: str | None,
                jobs: int | None, threads: int | None, memory_gb: float | None, allow_oversize: bool, force: bool,
                show_progress: bool) -> SweepResult:
    """:func:`run_sweep` once it holds the lock of every run folder (``tokens``: the lock's token
    by folder, given to the jobs that write under it)."""
    result = SweepResult(skipped=[j.id for j in plan.jobs if j.status == "finished"])
    for j in plan.jobs:  # an earlier failure of a job finished since (e.g. by `padim-bench run`) is stale
        if j.status == "finished":
            plan.error_file(j).unlink(missing_ok=True)
    todo = plan.todo
    cwd = os.getcwd()
    if executor == "local":
        ex = _local_executor(plan, todo, jobs, threads, memory_gb)
    else:
        ex = _ray_executor(todo, address, threads)
    result.executor = ex.sizing

    def spec_of(job: Job) -> dict[str, Any]:
        return {"id": job.id, "config": job.config, "category": job.category, "threads": ex.job_threads(job),
                "force": force or job.reason == "--force", "reuse_results": plan.reuse_results, "cwd": cwd,
                "error_file": str(plan.error_file(job)), "lock_token": tokens[job.folder]}

    index = SweepIndex(plan, ex.sizing)
    runnable, alone_ok = _admit(plan, todo, ex, allow_oversize, executor == "local", result, index)
    tracker = JobTracker(plan, result, index, runnable, ex.job_threads, console, show_progress)
    plan.out.mkdir(parents=True, exist_ok=True)
    index.write()
    if executor == "local":
        backend: Any = LocalBackend(ex.job_threads, spec_of)
    else:
        backend = RayBackend(spec_of, ex.resources_of, ray=ex.ray)
    _drive(runnable, ex, backend, tracker, alone_ok)
    touched = {j.run.run_name for j in runnable}
    for r in plan.runs:  # untouched runs too: a results.json may lack categories written by jobs of a killed sweep
        consolidate_run(Path(r.config.output.dir), r.config, only_if_incomplete=r.run_name not in touched)
    index.write()
    return result


def _check_conflicts(plan: SweepPlan, force: bool) -> None:
    """Jobs whose folder holds another run: an error without ``force``, else to be run again.

    Raises:
        PadimBenchError: such jobs and no ``force``."""
    conflicts = [j for j in plan.jobs if j.status == "conflict"]
    if conflicts and not force:
        folders = sorted({str(j.folder) for j in conflicts})
        raise PadimBenchError(f"{len(folders)} run folder(s) hold a run of another configuration or runtime settings: "
                              f"{', '.join(folders)} ({conflicts[0].reason}); use --out for a new sweep folder, "
                              "or --force to overwrite")
    if force:
        for j in conflicts:
            j.status = "todo"


@dataclass
class _Executor:
    """Where the jobs run: the sizing recorded in ``sweep.json``, the scheduler, the memory one job
    may ask for (``limit`` bytes, described by ``limit_text``) and, for Ray, the module and whether
    this sweep started the Ray instance (it then stops it)."""

    sizing: dict[str, Any]
    scheduler: MemoryScheduler
    limit: int
    limit_text: str
    ray: Any = None
    started_ray: bool = False

    def job_threads(self, job: Job) -> int:
        return job.config.runtime.threads or self.sizing["threads"]

    def resources_of(self, job: Job) -> dict[str, Any]:
        """What a Ray task of ``job`` asks for: CPUs (its threads), a GPU, memory (bytes)."""
        return {"num_cpus": min(self.job_threads(job), self.sizing.get("largest_node_cpus", self.job_threads(job))),
                "num_gpus": 1 if job.needs_gpu else 0, "memory": int(min(job.memory_bytes, self.limit))}


def _local_executor(plan: SweepPlan, todo: list[Job], jobs: int | None, threads: int | None,
                    memory_gb: float | None) -> _Executor:
    """This machine's process pool (:func:`local_sizing`); marks the jobs that run on a GPU."""
    sizing = local_sizing(plan, jobs, threads, memory_gb)
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    for j in todo:
        j.needs_gpu = j.config.runtime.device == "cuda" or (j.config.runtime.device == "auto" and gpus > 0)
    scheduler = MemoryScheduler(sizing["budget_bytes"], sizing["slots"], gpus)
    limit, limit_text = sizing["budget_bytes"], f"the memory budget {_gb(sizing['budget_bytes'])} GB ({sizing['budget_rule']})"
    return _Executor(sizing, scheduler, limit, limit_text)


def _ray_executor(todo: list[Job], address: str | None, threads: int | None) -> _Executor:
    """A Ray cluster (``address``) or a local Ray instance started here; Ray schedules the jobs.

    Raises:
        PadimBenchError: Ray missing, unreachable, or a cluster without a live node."""
    ray = import_ray()
    started_ray = False
    if not ray.is_initialized():
        try:
            if address:  # an existing cluster: its own resources and settings
                ray.init(address=address, log_to_driver=False)
            else:  # a local instance on this machine, stopped at the end
                ray.init(log_to_driver=False, include_dashboard=False)
        except Exception as e:  # noqa: BLE001 - ConnectionError and Ray's own errors
            hint = ("; a cluster with token authentication (Ray's default where a token exists) needs "
                    "RAY_AUTH_MODE=token and its token in RAY_AUTH_TOKEN or a file named by RAY_AUTH_TOKEN_PATH "
                    "(`ray get-auth-token` on the head node prints it); a private cluster started with "
                    "RAY_AUTH_MODE=disabled needs that here too (docs/ci.md)") if address else ""
            raise PadimBenchError(f"ray: cannot connect to {address or 'a new local cluster'}: {e}{hint}") from None
        started_ray = True
    nodes = ray_nodes(ray)
    if not nodes:
        raise PadimBenchError("ray: the cluster has no live node")
    max_mem = int(max(n.get("memory", 0) for n in nodes))
    max_cpu = int(max(n.get("CPU", 1) for n in nodes))
    has_gpu = any(n.get("GPU", 0) > 0 for n in nodes)
    per_job_threads = max(1, min(threads or 1, max_cpu))
    sizing = {"executor": "ray", "address": address, "nodes": len(nodes), "largest_node_memory_bytes": max_mem,
              "largest_node_cpus": max_cpu, "gpus": has_gpu, "threads": per_job_threads}
    for j in todo:
        j.needs_gpu = j.config.runtime.device == "cuda" or (j.config.runtime.device == "auto" and has_gpu)
    scheduler = MemoryScheduler(budget_bytes=2**62, slots=len(todo) or 1, gpu_slots=len(todo) or 1)  # Ray schedules
    limit, limit_text = max_mem, f"the largest Ray node's memory resource {_gb(max_mem)} GB"
    return _Executor(sizing, scheduler, limit, limit_text, ray=ray, started_ray=started_ray)


def _admit(plan: SweepPlan, todo: list[Job], ex: _Executor, allow_oversize: bool, local: bool,
           result: SweepResult, index: SweepIndex) -> tuple[list[Job], set[str]]:
    """The jobs to run, and those of them over the memory limit that run alone
    (``allow_oversize``); a job whose data failed to scan, or over the limit without
    ``allow_oversize``, is refused (:func:`~padim_bench.sweep.tracking.refuse_job`)."""
    alone_ok: set[str] = set()
    runnable = []
    for j in todo:
        if j.data_error is not None:  # the runner would raise the same before loading anything
            refuse_job(plan, result, index, j, j.data_error_type or "DataError", j.data_error)
            continue
        if j.memory_bytes > ex.limit:
            if not allow_oversize:
                refuse_job(plan, result, index, j, "MemoryRefused",
                        f"predicted {_gb(j.memory_bytes)} GB is more than {ex.limit_text}; "
                        "--allow-oversize runs it anyway" + (" (alone)" if local else ""))
                continue
            alone_ok.add(j.id)
        runnable.append(j)
    return runnable, alone_ok


def _drive(runnable: list[Job], ex: _Executor, backend: Any, tracker: JobTracker, alone_ok: set[str]) -> None:
    """Run the jobs under the progress display; SIGTERM stops the sweep like Ctrl-C (running jobs
    included), and a Ray instance this sweep started is stopped at the end."""
    import signal

    def _terminate(signum, frame):  # SIGTERM (kill, a cluster scheduler): stop like Ctrl-C, jobs included
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _terminate) if threading.current_thread() is threading.main_thread() else None
    try:
        with tracker.progress:
            tracker.refresh()
            drive(runnable, ex.scheduler, backend.submit, backend.wait_any, tracker.on_start, tracker.on_done, alone_ok)
    except KeyboardInterrupt:
        backend.shutdown()
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if ex.started_ray:
            ex.ray.shutdown()


def summary_lines(plan: SweepPlan, result: SweepResult) -> list[str]:
    """One line per failure, then the totals and where the results are."""
    lines = []
    for job_id, err in result.failed.items():
        lines.append(f"FAILED {job_id}: {err.get('error_type')}: {err.get('message')}")
    lines.append(f"{len(result.done)} done, {len(result.failed)} failed, {len(result.skipped)} already finished; "
                 f"results in {plan.out} (index {plan.out / INDEX_NAME}"
                 + (f", errors in {plan.out / '_errors'}" if result.failed else "") + ")")
    return lines

