"""A sweep file expanded into jobs: one job = one category of one run folder.

A sweep file is an experiment file (:func:`padim_bench.config.load_experiments`): a base config
(``extends``), ``variants`` (each may ``extends`` its own base: PaDiM-R18, SPADE, ...), ``axes``
(any dotted key over a list of values, cartesian product) and ``seeds``. Every run keeps its own
folder ``<sweep folder>/<variant>[_<axis value>...]`` and every category of a run is a separate
job writing ``categories/<category>.json`` into that folder, so a run folder reads exactly like
one made by ``padim-bench run`` (the tables average its categories) and is resumed the same way.

Before anything is scheduled every job's status is known: ``finished`` (its category record has
the same run hash and data files: skipped), ``todo``, or ``conflict`` (its folder holds a run of
another configuration: never overwritten without ``--force``).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import ExperimentRun, RunConfig, expand_experiments
from ..errors import ConfigError, PadimBenchError
from ..memory import PROCESS_BYTES, MemoryPrediction, predict_memory

INDEX_NAME = "sweep.json"  # never results.json: the tables read only run folders
ERRORS_DIR = "_errors"

@dataclass
class Job:
    """One category of one run.

    Attributes:
        id: ``<run>/<category>`` (unique in the sweep).
        run: the run (variant, axis values and its full config over all its categories).
        category: the category this job fits and evaluates.
        config: the run's config restricted to ``category`` (same config and run hash).
        n_train, n_test: image counts used for the memory prediction; ``counts`` says where
            they come from: ``scanned``, or the dataset's assumption for data not on this machine
            (:meth:`padim_bench.data.Dataset.assumed_counts`: ``MVTec AD paper``, ``assumed``).
        memory: predicted memory; ``memory.total`` is the peak resident bytes of the job's process
            (see :mod:`padim_bench.memory.model`).
        status: ``finished``, ``todo`` or ``conflict``; ``reason`` explains it.
        data_error: why the category folder could not be scanned (the job then fails with the
            runner's own error when it runs).
    """

    id: str
    run: ExperimentRun
    category: str
    config: RunConfig
    n_train: int
    n_test: int
    counts: str
    memory: MemoryPrediction
    status: str = "todo"
    reason: str = ""
    data_error: str | None = None
    data_error_type: str | None = None
    needs_gpu: bool = False

    @property
    def folder(self) -> Path:
        """The run folder this job writes into."""
        return Path(self.config.output.dir)

    @property
    def memory_bytes(self) -> int:
        return self.memory.total


@dataclass
class SweepPlan:
    """Every job of a sweep file, with the sweep's folder (where ``sweep.json`` and ``_errors/``
    live) and the runs' full configs."""

    path: Path
    out: Path
    runs: list[ExperimentRun]
    jobs: list[Job] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    reuse_results: bool = False

    @property
    def todo(self) -> list[Job]:
        return [j for j in self.jobs if j.status == "todo"]

    def error_file(self, job: Job) -> Path:
        """Where a failure of ``job`` is recorded: ``<sweep>/_errors/<run>__<category>.json``."""
        return self.out / ERRORS_DIR / (re.sub(r"[^A-Za-z0-9_.+\-]+", "__", job.id) + ".json")


def _sweep_folder(runs: list[ExperimentRun]) -> Path:
    if len(runs) == 1 and runs[0].variant == "":
        return Path(runs[0].config.output.dir)  # a plain config: its own folder
    return Path(runs[0].config.output.dir).parent


def _run_categories(cfg: RunConfig, dry_run: bool, notes: list[str]) -> list[str]:
    """The run's categories: the listed ones (a missing one makes that job fail, not the sweep),
    or for ``all`` those its dataset finds under the root (a dry run without the data: those the
    dataset assumes, :meth:`padim_bench.data.Dataset.assumed_categories`)."""
    from ..data import dataset_for

    wanted = cfg.dataset.categories
    root = Path(cfg.dataset.root)
    dataset = dataset_for(cfg.dataset)
    if not root.is_dir():
        if not dry_run:
            raise PadimBenchError(f"dataset.root {root} not found (run {cfg.name}); every worker must see the data "
                                  "at this path: use --data-root")
        note = f"dataset.root {root} not found"
        if wanted == "all":
            assumed = dataset.assumed_categories()
            if assumed is None:
                raise PadimBenchError(f"{note}: cannot list the categories of run {cfg.name}")
            wanted = assumed
            note += f": its {len(assumed)} {dataset.label()} categories assumed"
        if note not in notes:
            notes.append(note)
        return list(wanted)
    if wanted == "all":
        return dataset.categories()
    return list(dict.fromkeys([wanted] if isinstance(wanted, str) else wanted))


def _splits(cfg: RunConfig, categories: list[str], cache: dict[tuple, dict[str, Any]]) -> dict[str, Any]:
    """Each category's split (or the exception scanning it raised) from the run's dataset,
    scanned once per dataset, root and parameters over the whole sweep."""
    from ..data import dataset_for

    ds = cfg.dataset
    key = (ds.name, str(Path(ds.root).resolve()), repr(ds.params))
    known = cache.setdefault(key, {})
    missing = [c for c in categories if c not in known]
    if missing:
        known.update(dataset_for(ds).plan_splits(missing))
    return {c: known[c] for c in categories}


def plan_sweep(path: str | Path, sets: list[str] | None = None, *, dry_run: bool = False, force: bool = False,
               process_bytes: int = PROCESS_BYTES, reuse_results: bool = False, **named: Any) -> SweepPlan:
    """Expand a sweep file into jobs, predict each job's memory and find the finished ones.

    Args:
        path: a sweep (experiment) file or a plain config.
        sets, named: command-line overrides, as :func:`padim_bench.config.load_experiments`.
        dry_run: tolerate a missing data root (categories and counts of MVTec AD are assumed).
        force: mark every job ``todo`` (recompute; folders of another run are overwritten).
        reuse_results: a category record made by other code (:mod:`padim_bench.store.code`) is
            ``finished`` too; by default it is ``todo`` (recomputed).
        process_bytes: the per-process constant of the memory prediction.

    Raises:
        ConfigError: a malformed sweep file (see ``load_experiments``), unknown names.
        PadimBenchError: a missing data root (unless ``dry_run``).
    """
    from ..data import dataset_for
    from ..runner import check_names
    from ..envinfo import code_identity
    from ..store import finished_record, other_run_hash
    from ..store.code import other_code

    runs = expand_experiments(path, sets, **named)
    plan = SweepPlan(Path(path), _sweep_folder(runs), runs, reuse_results=reuse_results)
    code = code_identity()
    cache: dict[tuple, dict[str, Any]] = {}
    folders: dict[Path, str] = {}
    for r in runs:
        folder = Path(r.config.output.dir)
        if folder in folders:
            raise ConfigError(f"{path}: runs {folders[folder]} and {r.run_name} share the folder {folder}")
        folders[folder] = r.run_name
        check_names(r.config)  # method, backbone, layers and d: before any job exists
        other = other_run_hash(folder, r.config.run_hash())
        categories = _run_categories(r.config, dry_run, plan.notes)
        splits = _splits(r.config, categories, cache)
        for category in categories:
            split = splits[category]
            if isinstance(split, Exception):
                n_train, n_test, counts = dataset_for(r.config.dataset).assumed_counts(category)
                data_error = str(split)
            else:
                n_train, n_test, counts, data_error = len(split.train), len(split.test), "scanned", None
            cfg = dataclasses.replace(r.config, dataset=dataclasses.replace(r.config.dataset, categories=[category]))
            job = Job(f"{r.run_name}/{category}", r, category, cfg, n_train, n_test, counts,
                      predict_memory(cfg, n_train, n_test, process_bytes=process_bytes), data_error=data_error,
                      data_error_type=type(split).__name__ if data_error else None)
            if force:
                job.status, job.reason = "todo", "--force"
            elif other is not None:
                job.status, job.reason = "conflict", f"{folder} holds a run with run hash {other}, this one {cfg.run_hash()}"
            elif data_error is None and (rec := finished_record(cfg, split)) is not None:
                why = None if reuse_results else other_code(rec, code)
                job.status, job.reason = ("finished", "category record of this run hash, data files and code") \
                    if why is None else ("todo", f"category record {why}")
            else:
                job.status, job.reason = "todo", "no category record" if data_error is None else "data not scanned"
            plan.jobs.append(job)
    _results_present(plan)
    return plan


def _results_present(plan: SweepPlan) -> None:
    """A run whose categories are all finished but whose ``results.json`` is missing gets one job
    back (the runner skips the finished category and writes the run's files)."""
    by_run: dict[str, list[Job]] = {}
    for j in plan.jobs:
        by_run.setdefault(j.run.run_name, []).append(j)
    for jobs in by_run.values():
        if all(j.status == "finished" for j in jobs) and not (jobs[0].folder / "results.json").is_file():
            jobs[0].status, jobs[0].reason = "todo", "results.json missing (finished categories are reused)"


def job_row(job: Job) -> dict[str, Any]:
    """Plain-data summary of a job for ``sweep.json``."""
    return {"id": job.id, "run": job.run.run_name, "variant": job.run.variant, "values": job.run.values,
            "category": job.category, "folder": str(job.folder), "run_hash": job.config.run_hash(),
            "status": job.status, "reason": job.reason, "n_train": job.n_train, "n_test": job.n_test,
            "counts": job.counts, "predicted_bytes": job.memory.total, "predicted_parts": job.memory.parts}
