"""The dataset contract: everything the rest of the tool needs from a dataset, and the registry.

A dataset is a subclass of :class:`Dataset` registered in :data:`DATASETS` under the name configs
give as ``dataset.name``. It declares its own parameters (a frozen dataclass, ``params_class``:
the keys of the ``dataset:`` section that only it reads, flat beside the shared keys in YAML and
in recorded configs, as method parameters are in ``method:``), and implements:

* configuration: :meth:`Dataset.check_config` (its keys' ranges, and what it requires of the
  shared keys, e.g. STC: no crop);
* data: :meth:`Dataset.prepare` (scan and check every category before any model:
  :class:`Prepared`), :meth:`Dataset.loader` (the batches of a split's samples),
  :meth:`Dataset.kind` (a category's group: ``texture`` / ``object``, ``scene``, ...), and what
  the sweep planner needs without reading every file (:meth:`Dataset.categories`,
  :meth:`Dataset.plan_splits`, assumed counts where the data is not on this machine);
* records: :meth:`Dataset.category_extras` and :meth:`Dataset.run_summary`, its own part of a
  category record and of ``results.json`` (under :attr:`Dataset.record_key`), and the lines
  printed before a run (:meth:`Dataset.protocol_lines`) and by ``validate``;
* reading records back (class methods on plain record data, so a record of a dataset this
  process does not know still reads, through the base class): the paper tables its runs go in
  (:attr:`Dataset.paper_tables`), the group columns and the paper's categories behind them
  (:attr:`Dataset.group_sizes`), its own table values (:meth:`Dataset.measured`), the pooled row
  and captions of a run's table, the notes under a paper table;
* optionally a generated demo dataset (:meth:`Dataset.demo`).

A split (one category's data) has ``name``, ``root``, ``train`` and ``test`` (sequences of samples
with ``path``, ``label``, ``defect`` and ``mask_path``), ``data_files(train_only)`` and
``fingerprint_salt`` (:mod:`padim_bench.store.cache` fingerprints them).

Code outside ``data/`` looks a config's dataset up with :func:`dataset_for` and a record's with
:func:`dataset_class`, and asks it; it never tests a dataset's name. Importing this module imports
neither torch nor any dataset.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Iterable, Sequence

from ..registry import Registry

#: images per category assumed for the memory prediction of a category that is neither on this
#: machine nor known to its dataset (MVTec AD's largest: hazelnut's 391 training, pill's 167 test)
FALLBACK_COUNTS = (391, 167)


@dataclass(frozen=True)
class NoParams:
    """The parameters of a dataset that has no keys of its own."""

    def check(self) -> None:
        """Nothing to check."""


@dataclass(frozen=True)
class Prepared:
    """A run's data, scanned and checked before any model is loaded (:meth:`Dataset.prepare`).

    Attributes:
        splits: one split per category the run fits, in run order.
        skipped: per category, one line per file left out under ``dataset.on_unreadable: skip``.
        info: run-level protocol facts (plain data) for :meth:`Dataset.run_summary` and
            :meth:`Dataset.protocol_lines`, or None.
    """

    splits: tuple[Any, ...]
    skipped: dict[str, list[str]]
    info: dict[str, Any] | None = None


@dataclass(frozen=True)
class DemoData:
    """A generated demo dataset (:meth:`Dataset.demo`): its ``root``, the embedded ``config`` file
    that runs it, and ``run_name``, the run folder's default name under ``results/demo``."""

    root: Path
    config: Path
    run_name: str


class Dataset:
    """A dataset format and its evaluation protocol (see the module doc).

    An instance is bound to one run's :class:`~padim_bench.config.DatasetConfig` (``config``, and
    ``params``, the dataset's own parameters); the class methods read plain record data.
    """

    #: the registered name (``dataset.name`` in configs and records)
    name: ClassVar[str] = "dataset"
    #: the name notes and messages show (``MVTec AD``); ``None`` shows the registered name
    display_name: ClassVar[str | None] = None
    #: the frozen dataclass of the dataset's own keys (with an optional ``check()`` method)
    params_class: ClassVar[type] = NoParams
    #: the dataset whose paper tables show this one's runs (``padim_bench/reference/paper.yaml``:
    #: ``tables.N.dataset``), or None; a run is matched to the paper's rows only when this is its
    #: own name (another dataset's runs there are rows of their own, never beside the paper's values)
    paper_tables: ClassVar[str | None] = None
    #: the group columns its tables have (means over a kind of category, or every category) and
    #: how many of the paper's categories each covers (None: not a paper mean, no ``[n/N]``)
    group_sizes: ClassVar[dict[str, int | None]] = {"all": None}
    #: the categories the paper's group means cover (MVTec AD's 15): a category outside them is
    #: never averaged into those means, whatever its recorded kind; None: every category counts
    paper_categories: ClassVar[tuple[str, ...] | None] = None
    #: table columns computed as another (STC: ``scene mean`` is the mean over every scene)
    column_aliases: ClassVar[dict[str, str]] = {}
    #: metrics of its own in category records, read by :meth:`category_metric`
    own_metrics: ClassVar[tuple[str, ...]] = ()
    #: key of its own part of category records and of ``results.json`` (None: it has none)
    record_key: ClassVar[str | None] = None
    #: each category's pixel-score histogram is kept (``categories/<c>.pixhist.npz``) for
    #: :meth:`run_summary`'s pooled figures
    keeps_histograms: ClassVar[bool] = False
    #: the config keys that thin its training images, named by a memory refusal (None: none)
    thinning_keys: ClassVar[str | None] = None

    def __init__(self, config: Any) -> None:
        self.config = config
        self.params = config.params if config.params is not None else self.params_class()

    @classmethod
    def label(cls) -> str:
        """The name notes show: :attr:`display_name`, else the registered name."""
        return cls.display_name or cls.name

    # ------------------------------------------------------------------------------ config
    @classmethod
    def check_config(cls, ds: Any) -> None:
        """Check the dataset's own parameters (``ds.params.check()``) and what the dataset
        requires of the shared keys of ``ds`` (a :class:`~padim_bench.config.DatasetConfig`).

        Raises:
            ConfigError: naming the key.
        """
        check = getattr(ds.params, "check", None)
        if check is not None:
            check()

    # -------------------------------------------------------------------------------- data
    def prepare(self, threads: int = 2) -> Prepared:
        """Scan ``config.root`` into the run's categories and check every file the run reads
        (layout, alignment, decodability), before any model is loaded.

        Raises:
            ConfigError: a listed category that is not there (naming those that are).
            DataError: a broken layout or an unreadable file (under ``on_unreadable: error``).
        """
        raise NotImplementedError(f"dataset {self.name!r} does not scan")

    def loader(self, samples: Sequence[Any], prep: Any, augment: Any, batch_size: int, workers: int,
               which: str) -> Iterable:
        """Batches ``(images (B,3,S,S) float32 in [0, 1], masks (B,S,S) uint8, labels (B,), indices
        (B,))`` of a split's ``train`` or ``test`` (``which``) samples, in order (training batches
        may end after the images); ``prep`` is the :class:`~padim_bench.data.transforms.Preprocess`,
        ``augment`` the :class:`~padim_bench.data.transforms.Augment` or None."""
        raise NotImplementedError(f"dataset {self.name!r} has no loader")

    def kind(self, category: str) -> str:
        """The group of ``category`` in the means of its tables (``texture``, ``object``, ...)."""
        return "custom"

    def protocol_lines(self, info: dict[str, Any] | None) -> list[str]:
        """Lines printed before a run and by ``validate`` (e.g. STC's protocol), from
        :attr:`Prepared.info`."""
        return []

    def split_summary(self, split: Any) -> str:
        """``validate``'s line for one scanned category (its image counts)."""
        n_bad = sum(s.label for s in split.test)
        return f"{split.name}: {len(split.train)} train, {len(split.test) - n_bad} test good, {n_bad} test defective"

    # ---------------------------------------------------------------------- sweep planning
    def categories(self) -> list[str]:
        """The categories of ``dataset.categories: all`` under ``config.root`` (the sweep planner
        lists them before any job runs).

        Raises:
            DataError: the root is missing or holds no category.
        """
        raise NotImplementedError(f"dataset {self.name!r} cannot list its categories")

    def plan_splits(self, categories: Sequence[str]) -> dict[str, Any]:
        """Each category's split for the sweep planner's counts and resume check, or the exception
        that scanning it raised (that job then fails with the runner's own error). Default: one
        :meth:`prepare` of the listed categories."""
        try:
            prepared = type(self)(_with_categories(self.config, list(categories))).prepare()
        except Exception as e:  # noqa: BLE001 - recorded per job, raised again when the job runs
            return {c: e for c in categories}
        found = {s.name: s for s in prepared.splits}
        return {c: found.get(c, KeyError(c)) for c in categories}

    def assumed_categories(self) -> list[str] | None:
        """The categories of ``all`` when the root is not on this machine (a dry run), or None
        when they cannot be known without the data."""
        return None

    def assumed_counts(self, category: str) -> tuple[int, int, str]:
        """``(n_train, n_test, source)`` for the memory prediction of a category that could not be
        scanned: the dataset's known counts, else :data:`FALLBACK_COUNTS` (``assumed``)."""
        return (*FALLBACK_COUNTS, "assumed")

    # ---------------------------------------------------------------------------- records
    def category_extras(self, split: Any, maps: Any, masks: Any, labels: Any) -> dict[str, Any] | None:
        """The dataset's own part of a category record (under :attr:`record_key`), from the scored
        test set: ``maps`` float32 ``(N, S, S)``, ``masks`` ``(N, S, S)`` {0, 1}, ``labels``
        ``(N,)``; None: nothing."""
        return None

    def run_summary(self, info: dict[str, Any] | None, records: list[dict[str, Any]],
                    histograms: list[Any] | None) -> dict[str, Any] | None:
        """The dataset's own part of ``results.json`` (under :attr:`record_key`) over the finished
        category ``records``, with their pixel histograms where :attr:`keeps_histograms` (None
        for a missing or damaged one); None: nothing."""
        return None

    # ------------------------------------------------------------------- records read back
    @classmethod
    def measured(cls, record: dict[str, Any], column: str, metric: str) -> tuple[float | None, int] | None:
        """A table value the dataset computes itself (percent, and the categories behind it), or
        None to let the tables average the categories."""
        return None

    @classmethod
    def category_metric(cls, category: dict[str, Any], metric: str) -> float | None:
        """One of :attr:`own_metrics` of a category record, as a fraction, or None."""
        return None

    @classmethod
    def pooled_row(cls, record: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
        """``(label, {metric: fraction or None})``: a row of a run's table computed over the whole
        dataset at once (STC: ``all (pooled)``), or None."""
        return None

    @classmethod
    def captions(cls, record: dict[str, Any]) -> list[str]:
        """Lines under a run's table (e.g. the protocol it used)."""
        return []

    @classmethod
    def table_notes(cls, records: list[dict[str, Any]]) -> list[str]:
        """Notes under a paper table of this dataset over the runs shown."""
        return []

    # ------------------------------------------------------------------------------- demo
    @classmethod
    def demo(cls, data_dir: Path) -> DemoData | None:
        """Generate the dataset's demo data under ``data_dir`` (reused when it is already there)
        and name the embedded config that runs it; None: the dataset has no demo."""
        return None


DATASETS: Registry[type[Dataset]] = Registry("dataset")


def register(cls: type[Dataset]) -> type[Dataset]:
    """Class decorator registering ``cls`` under ``cls.name``; raises ValueError on a duplicate."""
    DATASETS.add(cls.name, cls)
    return cls


def dataset_for(config: Any) -> Dataset:
    """The registered dataset of ``config`` (a :class:`~padim_bench.config.DatasetConfig`),
    bound to it.

    Raises:
        ConfigError: ``config.name`` is not registered (naming the valid ones).
    """
    return DATASETS.get(config.name)(config)


def dataset_class(name: str | None) -> type[Dataset]:
    """The class registered as ``name``, or the base :class:`Dataset` for a name not registered
    in this process (e.g. a record written with a plug-in that is not imported): tables and
    reports then treat its categories as one group."""
    return DATASETS.get(name) if name in DATASETS else Dataset


def record_dataset(record: dict[str, Any]) -> type[Dataset]:
    """The dataset class of a run record (``config.dataset.name``)."""
    return dataset_class((record.get("config") or {}).get("dataset", {}).get("name"))


def demo_names() -> list[str]:
    """The registered datasets that have a demo (:meth:`Dataset.demo`), sorted."""
    return [n for n in DATASETS.names() if DATASETS.get(n).demo.__func__ is not Dataset.demo.__func__]


def _with_categories(config: Any, categories: list[str]) -> Any:
    import dataclasses

    return dataclasses.replace(config, categories=categories)
