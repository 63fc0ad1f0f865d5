"""What a sweep records as its jobs end: ``<sweep folder>/sweep.json`` (:class:`SweepIndex`), the
:class:`SweepResult`, each failed job's error record, the progress display, and the consolidation
of a run folder once its last job has ended (:class:`JobTracker`; used by
:func:`padim_bench.sweep.driver.run_sweep`).
"""

from __future__ import annotations

import datetime as _dt
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn
from rich.text import Text

from ..store import atomic_write_json, consolidate_run
from .plan import INDEX_NAME, Job, SweepPlan, job_row


@dataclass
class SweepResult:
    """What a sweep did: job ids done, failed (with their error records), refused, skipped."""

    done: list[str] = field(default_factory=list)
    failed: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    executor: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed


class SweepIndex:
    """``sweep.json``: the plan plus each job's outcome, rewritten atomically as jobs end."""

    def __init__(self, plan: SweepPlan, executor: dict[str, Any]):
        self.plan = plan
        self.rows = {j.id: job_row(j) for j in plan.jobs}
        self.executor = executor

    def update(self, job_id: str, **fields: Any) -> None:
        self.rows[job_id].update(fields)

    def write(self) -> None:
        atomic_write_json(self.plan.out / INDEX_NAME, {
            "sweep_file": str(self.plan.path),
            "updated_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "executor": self.executor,
            "jobs": list(self.rows.values()),
        })


def refuse_job(plan: SweepPlan, result: SweepResult, index: SweepIndex, job: Job, error_type: str,
               message: str) -> None:
    """A job that fails before it starts (its data, its memory): recorded like any failure."""
    from .worker import write_error

    err = {"id": job.id, "category": job.category, "status": "failed", "error_type": error_type,
           "message": message, "traceback": "",
           "time_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    write_error(plan.error_file(job), err)
    result.failed[job.id] = err
    index.update(job.id, status="failed", error_type=error_type, message=message,
                 error_file=str(plan.error_file(job)))


class _SweepEta(ProgressColumn):
    """``ETA m:ss`` from :meth:`JobTracker.eta_s`, computed at every refresh (it moves with the
    clock between job completions)."""

    def __init__(self, tracker: "JobTracker"):
        super().__init__()
        self.tracker = tracker

    def render(self, task: Task) -> Text:
        eta = self.tracker.eta_s()
        return Text("ETA --" if eta is None else f"ETA {int(eta) // 60}:{int(eta) % 60:02d}", style="progress.remaining")


class JobTracker:
    """The sweep's progress display and what happens as a job starts and ends: its ``sweep.json``
    row, the :class:`SweepResult`, its error record, and the consolidation of its run folder
    once the run's last job has ended. ``clock``: seconds, monotonic (``time.monotonic``)."""

    def __init__(self, plan: SweepPlan, result: SweepResult, index: SweepIndex, runnable: list[Job],
                 job_threads: Callable[[Job], int], console: Console, show_progress: bool,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.plan, self.result, self.index, self.job_threads = plan, result, index, job_threads
        self.total = len(runnable)
        self.remaining_in_run: dict[str, int] = {}
        for j in runnable:
            self.remaining_in_run[j.run.run_name] = self.remaining_in_run.get(j.run.run_name, 0) + 1
        self.durations: list[float] = []
        self.clock, self.started = clock, {}  # job id -> clock() at its start, while it runs
        self.state = {"running": 0, "done": 0, "failed": len(result.failed), "failed_run": 0}
        self.progress = Progress(TextColumn("[bold]sweep[/]"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("running {task.fields[running]}, failed {task.fields[failed]}"),
                                 TimeElapsedColumn(), _SweepEta(self),
                                 console=console, disable=not show_progress, transient=False)
        self.task = self.progress.add_task("sweep", total=len(runnable), running=0, failed=0)

    def eta_s(self) -> float | None:
        """Seconds until the last job ends, from the mean duration of the jobs done so far (None
        before the first): each running job's mean time left (its time so far counted), then the
        jobs not started, spread over as many slots as jobs run now."""
        if not self.durations:
            return None
        mean, now = statistics.fmean(self.durations), self.clock()
        running = [max(0.0, mean - (now - t)) for t in self.started.values()]
        queued = self.total - self.state["done"] - self.state["failed_run"] - len(running)
        return (sum(running) + max(0, queued) * mean) / max(1, len(running))

    def refresh(self) -> None:
        state = self.state
        self.progress.update(self.task, completed=state["done"] + state["failed_run"], running=state["running"],
                             failed=state["failed"])

    def on_start(self, job: Job) -> None:
        self.state["running"] += 1
        self.started[job.id] = self.clock()
        self.index.update(job.id, status="running", threads=self.job_threads(job))
        self.refresh()

    def on_done(self, job: Job, res: dict[str, Any]) -> None:
        self.state["running"] -= 1
        self.started.pop(job.id, None)
        self.result.results[job.id] = res
        fields = {k: res.get(k) for k in ("seconds", "peak_rss_bytes", "host", "torch_threads")}
        if res.get("status") == "done":
            self._done(job, res, fields)
        else:
            self._failed(job, res, fields)
        for w in res.get("warnings") or []:
            self.progress.console.print(f"[yellow]warning:[/] {escape(job.id)}: {escape(w)}", highlight=False)
        self.remaining_in_run[job.run.run_name] -= 1
        if self.remaining_in_run[job.run.run_name] == 0:
            consolidate_run(job.folder, job.run.config)
        self.index.write()
        self.refresh()

    def _done(self, job: Job, res: dict[str, Any], fields: dict[str, Any]) -> None:
        self.state["done"] += 1
        self.result.done.append(job.id)
        self.durations.append(float(res.get("seconds") or 0.0))
        self.plan.error_file(job).unlink(missing_ok=True)
        m = res.get("metrics") or {}
        shown = ", ".join(f"{k} {'undefined' if v is None else f'{100 * v:.1f}'}" for k, v in m.items())
        self.progress.console.print(f"[green]done[/] {escape(job.id)}: {escape(shown)} ({res.get('seconds', 0):.0f} s)",
                                    highlight=False)
        self.index.update(job.id, status="done", metrics=m, **fields)

    def _failed(self, job: Job, res: dict[str, Any], fields: dict[str, Any]) -> None:
        self.state["failed"] += 1
        self.state["failed_run"] += 1
        res.setdefault("id", job.id)
        if not self.plan.error_file(job).exists():  # the worker could not write it (its process died)
            from .worker import write_error

            write_error(self.plan.error_file(job), res)
        self.result.failed[job.id] = res
        self.progress.console.print(f"[bold red]FAILED[/] {escape(job.id)}: {escape(str(res.get('error_type')))}: "
                                    f"{escape(str(res.get('message')))}", highlight=False)
        self.index.update(job.id, status="failed", error_type=res.get("error_type"), message=res.get("message"),
                          error_file=str(self.plan.error_file(job)), **fields)
