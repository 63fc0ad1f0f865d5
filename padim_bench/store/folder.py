"""A run's output folder: claiming it, its category records, resuming, and its result files.

Layout (``output.dir``)::

    run.json                     {"config_hash", "run_hash", "config"}: whose folder this is
    categories/<category>.json   one finished category record each, written as soon as it is done
    categories/<category>.pixhist.npz   the category's pixel-score histogram, where the dataset's
                                 run summary pools pixels over categories (STC)
    results.json, .csv, .md      the run record over every finished category (:data:`RUN_FILES`)
    results_flat.csv             its rows under the leaderboard header (:mod:`padim_bench.leaderboard`)
    report_data/, report/        the report's data and pages (:mod:`padim_bench.report`)
    models/                      saved fits (``output.save_models``)

A folder holding another run (another run hash) is never overwritten without ``--force``; under
``--force`` only the files and folders listed here are removed, never the user's other files.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.console import Console

from ..errors import PadimBenchError
from ..leaderboard import flat_csv
from ..output import csv_table, markdown_table
from .cache import data_fingerprint
from .code import other_code, run_code
from .files import atomic_write_json, atomic_write_text, read_json_or_none

if TYPE_CHECKING:
    from ..config import RunConfig

RECORD_VERSION = 1
"""``record_version`` of ``results.json``: a resumed run rewrites a record of another version."""
RUN_INFO = "run.json"
RESULTS = "results.json"
RUN_FILES = (RESULTS, "results.csv", "results.md", "results_flat.csv")
"""The result files a run writes into its folder (:meth:`RunFolder.write_results`), beside ``run.json``."""
RUN_FOLDERS = ("categories", "report_data", "models", "report")
"""The folders a run writes into its output folder (other files there are the user's)."""


def run_info(cfg: RunConfig) -> dict[str, Any]:
    """The content of ``run.json``: the config, its hash and the run hash."""
    return {"config_hash": cfg.config_hash(), "run_hash": cfg.run_hash(), "config": cfg.to_dict()}


@dataclass(frozen=True)
class RunFolder:
    """The output folder ``path`` of the run with hash ``run_hash`` (layout in the module doc)."""

    path: Path
    run_hash: str

    @property
    def models_dir(self) -> Path:
        return self.path / "models"

    def category_file(self, category: str) -> Path:
        return self.path / "categories" / f"{category}.json"

    def histogram_file(self, category: str) -> Path:
        return self.path / "categories" / f"{category}.pixhist.npz"

    def finished(self, split: Any, metrics: list[str], *, histogram: bool = False,
                 console: Console | None = None, code: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """The finished record of category ``split`` when it is complete, of this run hash, of
        this category and of the same data files (:func:`padim_bench.store.cache.data_fingerprint`),
        with ``histogram``, when its pixel histogram is readable, and with ``code`` (the running
        :func:`padim_bench.envinfo.code_identity`), when the same code made it
        (:func:`padim_bench.store.code.other_code`; None: any code, ``--reuse-results``); else None
        (recomputed). A damaged file, changed data or other code is reported on ``console``,
        another run's record is not."""
        console = console or Console(quiet=True)
        path = self.category_file(split.name)
        if not path.exists():
            return None
        rec = read_json_or_none(path)
        try:
            ok = (isinstance(rec, dict) and rec.get("run_hash") == self.run_hash and rec.get("category") == split.name
                  and isinstance(rec.get("metrics"), dict) and sorted(rec["metrics"]) == sorted(set(metrics))
                  and all(v is None or 0.0 <= v <= 1.0 for v in rec["metrics"].values())
                  and isinstance(rec.get("time", {}).get("fit_s"), (int, float)))
            if ok and rec.get("data_fingerprint") != data_fingerprint(split):
                console.print(f"[yellow]warning:[/] {split.name}: the data files changed since {path} was written; "
                              "recomputing that category", highlight=False)
                return None
        except (OSError, ValueError, TypeError, AttributeError):
            ok = False
        if not ok:
            if isinstance(rec, dict) and rec.get("run_hash") not in (None, self.run_hash):
                return None  # another run's record (after --force elsewhere): recompute quietly
            console.print(f"[yellow]warning:[/] {path} is damaged or incomplete; recomputing that category", highlight=False)
            return None
        if histogram and load_histogram(self.histogram_file(split.name)) is None:
            console.print(f"[yellow]warning:[/] {self.histogram_file(split.name)} is missing or damaged; "
                          f"recomputing {split.name}", highlight=False)
            return None
        why = None if code is None else other_code(rec, code)
        if why is not None:
            console.print(f"{split.name}: {path} was {why}: recomputing (--reuse-results keeps it)", highlight=False)
            return None
        return rec

    def write_category(self, record: dict[str, Any]) -> Path:
        """Write the finished category record atomically (``categories/<category>.json``).

        Raises:
            PadimBenchError: the folder is not writable.
        """
        path = self.category_file(record["category"])
        try:
            atomic_write_json(path, record)
        except OSError as e:
            raise PadimBenchError(f"{path}: cannot write the category result ({e.strerror or e})") from None
        return path

    def category_records(self) -> dict[str, dict[str, Any]]:
        """Every readable category record of this run hash in the folder, by category (sorted);
        records of other runs and unreadable files are left out."""
        out = {}
        for p in sorted((self.path / "categories").glob("*.json")):
            rec = read_json_or_none(p)
            if isinstance(rec, dict) and rec.get("run_hash") == self.run_hash and rec.get("category") == p.stem:
                out[p.stem] = rec
        return dict(sorted(out.items()))

    def with_other_categories(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``records`` plus the category records of this run written by other invocations (a folder
        may gather categories from several), sorted by category."""
        have = {r["category"] for r in records}
        out = records + [r for c, r in self.category_records().items() if c not in have]
        return sorted(out, key=lambda r: r["category"])

    def unchanged_results(self, categories: list[str]) -> dict[str, Any] | None:
        """The run record in ``results.json`` when it is of this run hash and record version, holds
        exactly ``categories`` and its ``.csv`` and ``.md`` are there, i.e. writing it again would
        only change its environment (a missing ``results_flat.csv`` is written from it); else None."""
        old = read_json_or_none(self.path / RESULTS)
        if not isinstance(old, dict) or old.get("run_hash") != self.run_hash or not isinstance(old.get("categories"), list):
            return None
        if old.get("record_version") != RECORD_VERSION or not all((self.path / f).is_file() for f in RUN_FILES[:3]):
            return None  # an older record, or a deleted table: written again
        if [c.get("category") if isinstance(c, dict) else None for c in old["categories"]] != categories:
            return None
        if not (self.path / RUN_FILES[3]).is_file():  # a folder from before results_flat.csv: add it alone
            atomic_write_text(self.path / RUN_FILES[3], flat_csv([old]))
        return old

    def write_results(self, record: dict[str, Any]) -> list[Path]:
        """Write ``results.json`` (``record``), ``results.csv`` and ``results.md`` (its tables,
        :mod:`padim_bench.output`) and ``results_flat.csv`` (:mod:`padim_bench.leaderboard`)
        atomically.

        Raises:
            PadimBenchError: the folder is not writable.
        """
        files = [self.path / name for name in RUN_FILES]
        try:
            atomic_write_json(files[0], record)
            atomic_write_text(files[1], csv_table(record))
            atomic_write_text(files[2], markdown_table(record))
            atomic_write_text(files[3], flat_csv([record]))
        except OSError as e:
            raise PadimBenchError(f"{e.filename or self.path}: cannot write the results ({e.strerror or e}); "
                                  "the previous file is unchanged") from None
        return files


def claim_run_folder(cfg: RunConfig, force: bool) -> RunFolder:
    """Create the output folder ``cfg.output.dir``, or check that an existing one belongs to this
    run; ``run.json`` is written for a new (or forced) run, left as it was on resume.

    Raises:
        PadimBenchError: the folder holds a run with another run hash (unless ``force``), an
            unreadable ``run.json``, is a file, or is not writable.
    """
    out, rh = Path(cfg.output.dir), cfg.run_hash()
    if out.exists() and not out.is_dir():
        raise PadimBenchError(f"output.dir {out} exists and is not a folder")
    info = out / RUN_INFO
    if info.exists() and not force:
        try:
            old = json.loads(info.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise PadimBenchError(f"{info}: unreadable ({e}); use --force to start over or --out elsewhere") from None
        if not isinstance(old, dict):
            raise PadimBenchError(f"{info}: not a padim-bench run file; use --force to start over or --out elsewhere")
        if old.get("run_hash") != rh:
            raise PadimBenchError(
                f"{out} holds a run with another configuration or runtime settings (run hash "
                f"{old.get('run_hash')}, this one {rh}); choose another --out, or --force to overwrite it"
            )
    if not info.exists() and not force:
        _refuse_foreign_files(out)
    try:
        if force and info.exists():
            _clear_other_run(out, rh, cfg.output.model_cache)
        (out / "categories").mkdir(parents=True, exist_ok=True)
        if force or not info.exists():  # a resumed run leaves the folder's run file as it was
            atomic_write_json(info, run_info(cfg))
    except OSError as e:
        raise PadimBenchError(f"output.dir {out}: cannot write there ({e.strerror or e})") from None
    return RunFolder(out, rh)


def _refuse_foreign_files(out: Path) -> None:
    """A folder without ``run.json`` that holds files a run would write (``results.json``,
    ``.csv``, ``.md``, category records) is not this tool's run: refuse rather than overwrite them.

    Raises:
        PadimBenchError: naming the files found.
    """
    found = [name for name in RUN_FILES if (out / name).exists()]
    categories = out / "categories"
    if categories.is_dir() and any(categories.iterdir()):
        found.append("categories/")
    if found:
        raise PadimBenchError(f"output.dir {out} holds {', '.join(found)} but no {RUN_INFO}: not a padim-bench run; "
                              "choose another --out, or --force to overwrite them")


def _clear_other_run(out: Path, run_hash: str, keep: str | None = None) -> None:
    """Under ``--force``, remove the files of a previous run with another (or an unreadable) run
    hash before this run's ``run.json`` is written, so an interrupted forced run never leaves the
    new ``run.json`` beside the old run's results. Only the files a run writes are removed, and
    never a folder holding ``keep`` (the model cache, should it live there)."""
    old = read_json_or_none(out / RUN_INFO)
    if isinstance(old, dict) and old.get("run_hash") == run_hash:
        return  # the same run: its finished categories are recomputed or reused as usual
    for name in RUN_FILES:
        (out / name).unlink(missing_ok=True)
    kept = Path(keep).resolve() if keep else None
    for name in RUN_FOLDERS:
        folder = out / name
        if folder.is_dir() and not (kept and (kept == folder.resolve() or folder.resolve() in kept.parents)):
            shutil.rmtree(folder)


def other_run_hash(folder: str | Path, run_hash: str) -> str | None:
    """The run hash of another run held by ``folder`` (its ``run.json``; ``"unreadable run.json"``
    when it cannot be read), or None when the folder holds no run or this one."""
    info = Path(folder) / RUN_INFO
    if not info.is_file():
        return None
    old = read_json_or_none(info)
    if old is None:
        return "unreadable run.json"
    have = old.get("run_hash") if isinstance(old, dict) else None
    return None if have == run_hash else str(have)


def finished_record(cfg: RunConfig, split: Any, code: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The finished record of category ``split`` in ``cfg.output.dir`` when ``run`` would skip it
    (:meth:`RunFolder.finished`, ``code`` as there); prints nothing. Used by sweeps to skip jobs
    before scheduling."""
    return RunFolder(Path(cfg.output.dir), cfg.run_hash()).finished(split, cfg.evaluation.metrics, code=code)


def consolidate_run(folder: str | Path, cfg: RunConfig, only_if_incomplete: bool = False) -> bool:
    """Rewrite a run folder's ``results.json`` (and ``.csv``, ``.md``, ``run.json``) so that it
    covers every finished category record of the run hash, with the run's full config. Jobs of one
    run (a sweep's) finish in any order and each writes ``results.json`` as it ends; this settles
    the race. With ``only_if_incomplete``, a ``results.json`` that already lists every finished
    category is left untouched.

    Returns:
        False when nothing was written (no ``results.json`` of this run hash, or complete).

    Raises:
        PadimBenchError: the folder is not writable.
    """
    run = RunFolder(Path(folder), cfg.run_hash())
    record = read_json_or_none(run.path / RESULTS)
    if not isinstance(record, dict) or record.get("run_hash") != run.run_hash:
        return False
    cats = run.category_records()
    listed = [c.get("category") for c in record.get("categories", []) if isinstance(c, dict)]
    if only_if_incomplete and listed == list(cats):
        return False
    record["categories"] = list(cats.values())
    record["code"] = run_code(record["categories"])  # which code made each of them
    record["config"] = cfg.to_dict()
    run.write_results(record)
    atomic_write_json(run.path / RUN_INFO, run_info(cfg))
    return True


# ------------------------------------------------------------------------ pixel histograms
def save_histogram(path: Path, hist: dict[str, np.ndarray]) -> None:
    """Write a pixel-score histogram (:func:`padim_bench.metrics.score_histogram`) atomically as
    ``.npz`` (plain arrays, read back with ``allow_pickle=False``).

    Raises:
        PadimBenchError: not writable.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    try:
        np.savez(tmp, **hist)
        os.replace(tmp, path)
    except OSError as e:
        raise PadimBenchError(f"{path}: cannot write the pixel histogram ({e.strerror or e})") from None


def load_histogram(path: Path) -> dict[str, np.ndarray] | None:
    """The histogram at ``path``, or None when it is missing or damaged."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in ("keys", "pos", "neg", "bits")}
    except (OSError, ValueError, KeyError):
        return None
