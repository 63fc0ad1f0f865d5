"""Experiment files: one base config expanded into variants x axis values x seeds (the paper's
tables; see :func:`load_experiments` for the file format).
"""

from __future__ import annotations

import copy
import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .loading import apply_overrides, config_from_dict, load_config, read_yaml, set_dotted
from .schema import RunConfig


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``top`` merged over it, section by section (a deep copy; neither is modified)."""
    out = copy.deepcopy(base)
    for k, v in top.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def is_experiment_file(data: dict[str, Any]) -> bool:
    """True for a file that expands into several runs (``variants``, ``seeds``, ``axes`` or
    ``extends``)."""
    return any(k in data for k in ("variants", "seeds", "axes", "extends"))


_RUN_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+\-]*")


@dataclass(frozen=True)
class ExperimentRun:
    """One run of an experiment file.

    Attributes:
        run_name: the run's folder name below the file's ``output.dir`` (``rd100_seed3``), or the
            config's name for a plain config file (whose folder is its ``output.dir``).
        variant: the variant's name (``base`` without variants; ``""`` for a plain config).
        values: the axis values of this run, ``{dotted.key: value}`` in file order (``seeds``
            appear as ``method.seed``).
        config: the validated config.
    """

    run_name: str
    variant: str
    values: dict[str, Any]
    config: RunConfig


def axis_label(key: str, value: Any) -> str:
    """The folder-name part of one axis value: ``seed3``, ``d100``, ``backbone-resnet18``,
    ``layers-layer1+layer2`` (numbers follow the key's last part directly, other values after a
    dash; characters other than letters, digits and ``_ . + -`` become ``-``)."""
    last = key.rsplit(".", 1)[-1]
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(value, list):
        text = "+".join("null" if x is None else str(x) for x in value)
    else:
        text = "null" if value is None else str(value).replace("-", "m") if numeric else str(value)
    text = re.sub(r"[^A-Za-z0-9_.+\-]+", "-", text).strip("-.") or "x"
    return f"{last}{text}" if numeric else f"{last}-{text}"


def _read_parent(p: Path, ref: Any, where: str) -> dict[str, Any]:
    """The plain config that ``extends: ref`` in experiment file ``p`` names (relative to ``p``);
    ``where`` prefixes the error (``"variant 'rd' "`` or ``""``)."""
    parent = p.parent / str(ref)
    if parent.resolve() == p.resolve():
        raise ConfigError(f"{p}: {where}extends itself; extends names a base config file")
    parent_data = read_yaml(parent)
    if is_experiment_file(parent_data):
        raise ConfigError(f"{p}: {where}extends {parent}, which is itself an experiment file")
    return parent_data


def _check_variants(p: Path, data: dict[str, Any]) -> list[dict[str, Any]]:
    """The file's ``variants`` (one ``base`` variant without the key), checked."""
    if "variants" in data and not data["variants"]:
        raise ConfigError(f"{p}: variants is empty; list at least one {{name: ..., set: {{key: value}}}} "
                          "or leave the key out")
    variants = data.get("variants") or [{"name": "base", "set": {}}]
    if not isinstance(variants, list) or not all(isinstance(v, dict) and isinstance(v.get("name"), str)
                                                 for v in variants):
        raise ConfigError(f"{p}: variants must be a list of {{name: ..., set: {{key: value}}}}")
    return variants


def _check_axes(p: Path, data: dict[str, Any]) -> tuple[dict[str, list[Any]], list[str] | None]:
    """The file's ``axes`` with ``seeds`` appended as ``method.seed``, and the categories that
    ``axes: {dataset.categories: [...]}`` sets for every run (``None`` when not given)."""
    seeds = data.get("seeds")
    axes = data.get("axes") or {}
    if seeds is not None and (not isinstance(seeds, list) or not seeds
                              or not all(isinstance(x, int) and not isinstance(x, bool) for x in seeds)):
        raise ConfigError(f"{p}: seeds must be a non-empty list of integers")
    if not isinstance(axes, dict) or not all(isinstance(k, str) and k and isinstance(v, list) and v
                                             for k, v in axes.items()):
        raise ConfigError(f"{p}: axes must map dotted keys to non-empty lists, e.g. axes: {{method.d: [100, 200]}}")
    axes = dict(axes)
    for key in axes:
        if key == "name" or key.startswith("output."):
            raise ConfigError(f"{p}: axes.{key}: the run's name and output folder follow from the axes; "
                              "use output.dir (or --out) for the whole experiment")
    if seeds is not None:
        if "method.seed" in axes:
            raise ConfigError(f"{p}: give the seeds once, as seeds: or as axes: {{method.seed: ...}}")
        axes["method.seed"] = seeds
    categories = axes.pop("dataset.categories", None)
    if categories is not None and not all(isinstance(c, str) for c in categories):
        raise ConfigError(f"{p}: axes.dataset.categories must be a list of category names")
    return axes, categories


def _check_variant_names(p: Path, variants: list[dict[str, Any]]) -> None:
    """Variant names are distinct plain folder names; a variant holds only name, set, extends."""
    names = [v["name"] for v in variants]
    if len(set(names)) != len(names):
        raise ConfigError(f"{p}: variant names must be distinct, got {names}")
    for v in variants:
        if not _RUN_PART.fullmatch(v["name"]):
            raise ConfigError(f"{p}: variant name {v['name']!r}: use letters, digits, '_', '.', '+' and '-' "
                              "(it names a folder), starting with a letter or digit")
        extra = set(v) - {"name", "set", "extends"}
        if extra:
            raise ConfigError(f"{p}: variant {v['name']!r} has unknown keys {sorted(extra)} "
                              "(valid: name, set, extends)")


def _run_data(merged: dict[str, Any], variant: dict[str, Any], values: dict[str, Any],
              categories: list[str] | None, run_name: str, layout: tuple[str, str],
              sets: list[str] | None, named: dict[str, Any]) -> dict[str, Any]:
    """The plain data of one run: ``merged`` (base and the file's sections), then the variant's
    ``set``, the axis ``values``, the categories, the run's name and folder (``layout``:
    the experiment's name and output folder) and the command-line overrides."""
    name, out_root = layout
    d = copy.deepcopy(merged)
    for key, value in (variant.get("set") or {}).items():
        set_dotted(d, key, value)
    for key, value in values.items():
        set_dotted(d, key, copy.deepcopy(value))
    if categories is not None:
        set_dotted(d, "dataset.categories", list(categories))
    d["name"] = f"{name}/{run_name}"
    d = apply_overrides(d, sets, **{**named, "out": None})
    set_dotted(d, "output.dir", str(Path(out_root) / run_name))
    return d


def _refuse_same_experiment(p: Path, runs: list[ExperimentRun]) -> None:
    """Two runs of one file that are the same experiment (same run hash, data root and categories;
    e.g. ``axes: {evaluation.sigma: [1.0, 1]}``: two folders, one experiment) are refused."""
    same: dict[tuple[str, str, tuple[str, ...] | str], str] = {}
    for r in runs:
        cats = r.config.dataset.categories
        key = (r.config.run_hash(), str(Path(r.config.dataset.root).resolve()),
               tuple(sorted(cats)) if isinstance(cats, list) else cats)
        if key in same:
            raise ConfigError(f"{p}: runs {same[key]!r} and {r.run_name!r} are the same experiment "
                              "(same configuration, runtime, data root and categories); "
                              "remove one of the two values or variants")
        same[key] = r.run_name


def expand_experiments(path: str | Path, sets: list[str] | None = None, **named: Any) -> list[ExperimentRun]:
    """Read a config file that may expand into several runs (see :func:`load_experiments`) and
    say, for each run, which variant and axis values made it.

    Raises:
        ConfigError: as :func:`load_experiments`.
    """
    p = Path(path)
    data = read_yaml(p)
    if not is_experiment_file(data):
        cfg = load_config(p, sets, **named)
        return [ExperimentRun(cfg.name, "", {}, cfg)]
    base = _read_parent(p, data["extends"], "") if "extends" in data else {}
    variants = _check_variants(p, data)
    axes, categories = _check_axes(p, data)
    _check_variant_names(p, variants)
    own = {k: v for k, v in data.items() if k not in ("extends", "variants", "seeds", "axes")}
    file_merged = _deep_merge(base, own)
    name = file_merged.get("name") or p.stem
    out_root = named.get("out") or (file_merged.get("output") or {}).get("dir") or f"results/runs/{name}"
    keys = list(axes)
    runs: list[ExperimentRun] = []
    seen: dict[str, dict[str, Any]] = {}
    for v in variants:
        merged = (_deep_merge(_read_parent(p, v["extends"], f"variant {v['name']!r} "), own) if "extends" in v
                  else file_merged)
        for combo in itertools.product(*(axes[k] for k in keys)):
            values = dict(zip(keys, combo))
            run_name = "_".join([v["name"]] + [axis_label(k, x) for k, x in values.items()])
            if run_name in seen:
                raise ConfigError(f"{p}: two runs would share the folder {run_name!r} "
                                  f"({seen[run_name]} and {values}); rename a variant or an axis")
            seen[run_name] = values
            d = _run_data(merged, v, values, categories, run_name, (name, out_root), sets, named)
            try:
                runs.append(ExperimentRun(run_name, v["name"], values, config_from_dict(d, default_name=name)))
            except ConfigError as e:
                raise ConfigError(f"{p} (variant {run_name}): {e}") from None
    _refuse_same_experiment(p, runs)
    return runs


def load_experiments(path: str | Path, sets: list[str] | None = None, **named: Any) -> list[RunConfig]:
    """Read a config file that may expand into several runs.

    A plain config gives one run. An experiment file may hold ``extends: FILE`` (a base config,
    relative to this file), sections merged over it, ``variants:`` (a list of ``{name, set:
    {dotted.key: value}, extends: FILE}``; a variant's own ``extends`` replaces the file's base, so
    variants may be different methods), ``axes:`` (``{dotted.key: [values]}``) and ``seeds:`` (a
    list of ``method.seed`` values, the same as ``axes: {method.seed: [...]}``). Every variant x
    combination of axis values (cartesian product, file order, seeds last) is a run named
    ``<name>/<variant>[_<axis value>...]`` whose output folder is ``<output.dir>/<variant>[_<axis
    value>...]`` (:func:`axis_label`: ``rd100_seed3``, ``base_d200_seed0``). ``axes:
    {dataset.categories: [...]}`` is the exception: categories are never separate runs (a run
    covers its categories, and the tables average them); it sets the categories of every run.
    Values are set in this order: base, the file's sections, the variant's ``set``, the axes, then
    the command-line overrides (which apply to every run).

    Raises:
        ConfigError: as :func:`load_config`, plus malformed ``variants`` / ``seeds`` / ``axes`` /
            ``extends`` (a file extending itself), a variant name that is not a plain folder name,
            two runs that would share a folder, or two runs that are the same experiment.
    """
    return [r.config for r in expand_experiments(path, sets, **named)]
