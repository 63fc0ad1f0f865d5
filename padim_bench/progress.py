"""The run's display on stderr (:class:`RunProgress`): one overall bar over the categories with an
ETA, a status line naming the phase the run is in, and a bar with its own ETA for the images of
each pass over a category.

The overall bar counts categories done of N and moves within a category as its images are fitted
and scored (each training and each test image is one equal share of the category); its ETA is rich's
(``TimeRemainingColumn``), from the mean speed over the last :data:`SPEED_WINDOW_S` seconds.
The phases without a bar of their own (scanning the data, loading the backbone, the batch-1
timing, the metrics, writing the report data and results) are shown in the overall bar's line as
they start (:func:`phase`).
"""

from __future__ import annotations

from typing import Any, Callable

from rich.console import Console
from rich.progress import (BarColumn, Progress, ProgressColumn, SpinnerColumn, Task, TaskID, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)
from rich.text import Text

SPEED_WINDOW_S = 600.0
"""Seconds of progress the ETA's speed is averaged over (rich's ``speed_estimate_period``)."""


class _Count(ProgressColumn):
    """``3/15 categories`` or ``83/209 images`` (whole units done of the total), nothing without a
    total."""

    def render(self, task: Task) -> Text:
        if task.total is None:
            return Text("")
        return Text(f"{int(task.completed)}/{int(task.total)} {task.fields.get('unit', '')}".rstrip(),
                    style="progress.download")


class _Eta(TimeRemainingColumn):
    def render(self, task: Task) -> Text:
        if task.total is None:
            return Text("")
        return Text("ETA ") + super().render(task)


class RunProgress(Progress):
    """A ``rich.progress.Progress`` with the overall task of a run over ``n_categories``
    categories (module doc; ``get_time``: rich's clock, seconds). Image tasks are those added with ``unit="images"`` (the steps'
    fit and score passes); their progress moves the overall bar within the current category."""

    def __init__(self, console: Console, n_categories: int | None = None, disable: bool = False,
                 get_time: Callable[[], float] | None = None):
        super().__init__(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(bar_width=24), _Count(),
                         TimeElapsedColumn(), _Eta(), console=console, disable=disable, transient=True,
                         speed_estimate_period=SPEED_WINDOW_S, get_time=get_time)
        self.n_categories = n_categories or 0
        self.overall = self.add_task("starting", total=n_categories, unit="categories")
        self._prefix = ""
        self._done = 0  # categories finished
        self._share = 0.0  # of the current category, in [0, 1]
        self._images = 1  # images of the current category's passes (training + test)
        self._image_tasks: set[TaskID] = set()

    def set_categories(self, n: int) -> None:
        """The run has ``n`` categories (known once the data is scanned)."""
        self.n_categories = n
        self.update(self.overall, total=n)

    def phase(self, text: str) -> None:
        """Show ``text`` as what the run does now (after the current category's name, if any)."""
        self.update(self.overall, description=f"{self._prefix}: {text}" if self._prefix else text)
        self.refresh()

    def start_category(self, index: int, name: str, n_images: int) -> None:
        """Category ``index`` (0-based) of the run, ``name``, with ``n_images`` training + test images."""
        self._prefix, self._share, self._images = f"category {index + 1} of {self.n_categories} ({name})", 0.0, max(1, n_images)
        for task in self._image_tasks:
            self.remove_task(task)
        self._image_tasks.clear()
        self.phase("starting")

    def end_category(self) -> None:
        """The current category is done (computed or found finished)."""
        self._done += 1
        self._share = 0.0
        self.update(self.overall, completed=self._done)
        self.refresh()

    def add_task(self, description: str, start: bool = True, total: float | None = 100.0, completed: int = 0,
                 visible: bool = True, **fields: Any) -> TaskID:
        task = super().add_task(description, start, total, completed, visible, **fields)
        if fields.get("unit") == "images" and hasattr(self, "overall"):
            self._image_tasks.add(task)
        return task

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        super().advance(task_id, advance)
        if task_id in self._image_tasks:  # a multi-pass fit counts once: the share stops at 1
            self._share = min(1.0, self._share + advance / self._images)
            self.update(self.overall, completed=min(self._done + self._share, self.n_categories))


def phase(progress: Progress | None, text: str) -> None:
    """Show ``text`` as the run's current phase where ``progress`` is a :class:`RunProgress`
    (nothing for another display or none: the steps are also called by the bench scripts)."""
    if isinstance(progress, RunProgress):
        progress.phase(text)
