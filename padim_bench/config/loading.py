"""Loading an experiment configuration: strict YAML reading, command-line overrides, and the
validated :class:`~padim_bench.config.schema.RunConfig`.

One YAML file describes one experiment (``configs/*.yaml``). Loading is strict: a duplicated key,
an unknown key, a value of the wrong type or a value outside its allowed set raises
:class:`~padim_bench.errors.ConfigError` naming the file and the dotted key (``method.d``).

Method-specific keys (``d`` and ``epsilon`` for PaDiM, ...) sit in the same ``method:`` section and
are checked against the registered method's own parameter dataclass, so a misspelt key is an error
rather than silently ignored; the same holds for a dataset's own keys in ``dataset:`` (STC's
strides), checked against the registered dataset's parameter dataclass.

Overrides from the command line are applied on top of the file in a fixed order (file, then
``--set key=value`` pairs, then the named options) by :func:`apply_overrides`.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import re
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from .builder import build_dataclass
from .schema import METRIC_NAMES, DatasetConfig, MethodConfig, RunConfig

# --------------------------------------------------------------------------------------------
# YAML and command-line overrides


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses duplicated keys (the last one would silently win)."""


def _mapping_no_duplicates(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicated key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_no_duplicates)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping with a safe loader (never executes code from the file) that also
    refuses duplicated keys.

    Raises:
        ConfigError: the file is missing, a folder, empty, not valid YAML, or not a mapping.
    """
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{p}: is a folder; give a config file (e.g. configs/mvtec_r18.yaml)")
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        data = yaml.load(p.read_text(encoding="utf-8"), Loader=_StrictLoader)  # a SafeLoader subclass
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML: {e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{p}: not a UTF-8 text file ({e})") from None
    if data is None:  # every default silently (a ResNet-18 run) is never what an empty file meant
        raise ConfigError(f"{p}: the file is empty (or only comments); see configs/ for complete examples")
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``data['a']['b'] = value`` for ``dotted == 'a.b'``, creating sections as needed."""
    parts = dotted.split(".")
    node = data
    for part in parts[:-1]:
        nxt = node.get(part)
        if nxt is None:
            nxt = node[part] = {}
        if not isinstance(nxt, dict):
            raise ConfigError(f"--set {dotted}: {part!r} is not a section")
        node = nxt
    node[parts[-1]] = value


_OPTION_KEYS = {"data_root": "dataset.root", "categories": "dataset.categories", "device": "runtime.device",
                "out": "output.dir", "weights": "method.weights"}
"""Named command-line overrides and the config keys they set."""


def apply_overrides(data: dict[str, Any], sets: list[str] | None = None, **named: Any) -> dict[str, Any]:
    """Apply command-line overrides to raw config data (before validation).

    Args:
        data: the mapping read from YAML (not modified; a deep copy is returned).
        sets: ``key.path=value`` strings; ``value`` is parsed with ``yaml.safe_load`` so ``3``,
            ``0.5``, ``null`` and ``[a, b]`` get their YAML types.
        named: ``data_root``, ``categories`` (comma-separated), ``device``, ``out``, ``weights``;
            ``None`` values are ignored. Applied after ``sets``.

    Raises:
        ConfigError: a malformed ``--set`` string.
    """
    data = copy.deepcopy(data)  # YAML may hold dates or sets, which JSON cannot copy
    for item in sets or []:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. method.d=200")
        key, raw = item.split("=", 1)
        if not raw.strip():
            raise ConfigError(f"--set {item!r}: empty value; write null explicitly if that is meant")
        if not key.strip():
            raise ConfigError(f"--set {item!r}: empty key, expected KEY=VALUE, e.g. method.d=200")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as e:
            raise ConfigError(f"--set {item!r}: value is not valid YAML ({e})") from None
        set_dotted(data, key.strip(), value)
    for name, value in named.items():
        if value is None:
            continue
        if not str(value).strip() and name != "categories":  # '' would read as the current folder
            raise ConfigError(f"--{name.replace('_', '-')}: empty value")
        if name == "categories":
            cats = [c.strip() for c in str(value).split(",") if c.strip()]
            set_dotted(data, "dataset.categories", "all" if cats == ["all"] else cats)
        elif name in _OPTION_KEYS:
            set_dotted(data, _OPTION_KEYS[name], str(value))
        else:
            raise TypeError(f"unknown override {name!r}")  # a bug, not a user error
    return data

# --------------------------------------------------------------------------------------------
# plain data -> validated config


def _method_params_class(name: str) -> type:
    from ..methods import METHODS  # local import: methods register themselves on import

    return METHODS.get(name).params_class


def _dataset(raw: Any) -> DatasetConfig:
    """The ``dataset:`` section: the shared keys of :class:`DatasetConfig`, and the registered
    dataset's own keys (its ``params_class``) beside them.

    Raises:
        ConfigError: an unknown key (with a suggestion over both kinds, or the dataset that has
            it), a wrong type, or an unknown dataset name.
    """
    from ..data import DATASETS  # local import: datasets register themselves on import

    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"dataset: expected a mapping, got {raw!r}")
    common = [f.name for f in dataclasses.fields(DatasetConfig) if f.name != "params"]
    dc = build_dataclass(DatasetConfig, {k: v for k, v in raw.items() if k in common}, "dataset")
    try:
        cls = DATASETS.get(dc.name)
    except ConfigError as e:
        raise ConfigError(f"dataset.name: {e}") from None
    own = [f.name for f in dataclasses.fields(cls.params_class)]
    for key in raw:
        if key in common or key in own:
            continue
        others = [n for n in DATASETS.names() if key in {f.name for f in dataclasses.fields(DATASETS.get(n).params_class)}]
        if others:
            raise ConfigError(f"dataset.{key}: a key of dataset {' and '.join(map(repr, others))} only (dataset.name: "
                              f"{others[0]}), this is {dc.name}")
        close = difflib.get_close_matches(str(key), common + own, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown key 'dataset.{key}'.{hint} Valid keys: {', '.join(common + own)}")
    params = build_dataclass(cls.params_class, {k: v for k, v in raw.items() if k in own}, "dataset")
    return dataclasses.replace(dc, params=params)


def config_from_dict(data: dict[str, Any], *, default_name: str = "experiment") -> RunConfig:
    """Build and validate a :class:`RunConfig` from plain data (as read from YAML).

    Raises:
        ConfigError: unknown key, wrong type, unknown method or dataset, or an invalid value.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"config: expected a mapping at the top level, got {type(data).__name__}")
    data = dict(data)
    method_raw = data.pop("method", None)
    dataset_raw = data.pop("dataset", None)
    if method_raw is None:
        method_raw = {}
    if not isinstance(method_raw, dict):
        raise ConfigError(f"method: expected a mapping, got {method_raw!r}")
    common = {f.name for f in dataclasses.fields(MethodConfig)} - {"params"}
    method_common = {k: v for k, v in method_raw.items() if k in common}
    method_own = {k: v for k, v in method_raw.items() if k not in common}
    data.setdefault("name", default_name)
    cfg = build_dataclass(RunConfig, data, "")
    dataset = _dataset(dataset_raw)
    mc = build_dataclass(MethodConfig, method_common, "method")
    try:
        params_cls = _method_params_class(mc.name)
    except ConfigError as e:
        raise ConfigError(f"method.name: {e}") from None
    try:
        params = build_dataclass(params_cls, method_own, "method")
    except ConfigError as e:
        raise ConfigError(f"{e} (keys of method {mc.name!r} plus {', '.join(sorted(common))})") from None
    cfg = dataclasses.replace(cfg, dataset=dataset, method=dataclasses.replace(mc, params=params))
    validate(cfg)
    return cfg


def validate(cfg: RunConfig) -> None:
    """Value checks that need no data and no model (ranges, metric names, layer list).

    Raises:
        ConfigError: the first invalid value, naming its key.
    """
    ds, ev, rt = cfg.dataset, cfg.evaluation, cfg.runtime
    if ds.bit_depth is not None and not 1 <= ds.bit_depth <= 16:
        raise ConfigError(f"dataset.bit_depth: between 1 and 16, or null, got {ds.bit_depth}")
    from ..data import dataset_class
    from ..data.shapes import check_sizes

    check_sizes(ds.resize, ds.crop)

    dataset_class(ds.name).check_config(ds)  # the dataset's own keys, and what it requires of the shared ones
    if isinstance(ds.categories, str) and ds.categories != "all":
        raise ConfigError(f"dataset.categories: 'all' or a list of names, got {ds.categories!r} (a list: [bottle, grid]; one category: [bottle])")
    if isinstance(ds.categories, list) and not ds.categories:
        raise ConfigError("dataset.categories: the list is empty")
    if not ev.metrics:
        raise ConfigError(f"evaluation.metrics: at least one of {', '.join(METRIC_NAMES)}")
    if len(set(ev.metrics)) != len(ev.metrics):
        raise ConfigError(f"evaluation.metrics: listed twice in {ev.metrics}")
    if cfg.output.dir.strip() == "":
        raise ConfigError("output.dir: empty; give a folder")
    if not 0 <= cfg.output.report_images <= 50:
        raise ConfigError(f"output.report_images: between 0 and 50 per group, got {cfg.output.report_images}")
    for m in ev.metrics:
        if m not in METRIC_NAMES:
            raise ConfigError(f"evaluation.metrics: unknown metric {m!r}. Valid: {', '.join(METRIC_NAMES)}")
    if not 0 <= ev.sigma < math.inf:  # also rejects nan
        raise ConfigError(f"evaluation.sigma: must be finite and >= 0 (0 disables the filter), got {ev.sigma}")
    if not 0 < ev.pro_fpr_limit <= 1:
        raise ConfigError(f"evaluation.pro_fpr_limit: must be in (0, 1], got {ev.pro_fpr_limit}")
    if not cfg.method.layers:
        raise ConfigError("method.layers: at least one layer is needed")
    w = cfg.method.weights
    if w not in ("imagenet", "random") and not w.lower().endswith((".safetensors", ".pth", ".pt", ".bin")):
        raise ConfigError(f"method.weights: 'imagenet', 'random' or a weights file (.safetensors, .pth, .pt, "
                          f".bin), got {w!r}")
    if len(set(cfg.method.layers)) != len(cfg.method.layers):
        raise ConfigError(f"method.layers: duplicated layer in {cfg.method.layers}")
    for key in ("batch_size", "timing_images"):
        if getattr(rt, key) < 1:
            raise ConfigError(f"runtime.{key}: must be >= 1, got {getattr(rt, key)}")
    for key in ("workers", "warmup_images"):
        if getattr(rt, key) < 0:
            raise ConfigError(f"runtime.{key}: must be >= 0, got {getattr(rt, key)}")
    if rt.threads is not None and rt.threads < 1:
        raise ConfigError(f"runtime.threads: must be >= 1 or null, got {rt.threads}")
    check = getattr(cfg.method.params, "check", None)
    if check is not None:
        check()


def load_config(path: str | Path, sets: list[str] | None = None, **named: Any) -> RunConfig:
    """Read ``path``, apply overrides (see :func:`apply_overrides`) and validate.

    The experiment name defaults to the file's stem and the output folder to
    ``results/runs/<name>``.

    Raises:
        ConfigError: see :func:`read_yaml`, :func:`apply_overrides` and :func:`config_from_dict`.
    """
    p = Path(path)
    data = apply_overrides(read_yaml(p), sets, **named)
    name = data.get("name") or p.stem
    if (not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.\-/]+", name) or ".." in name.split("/")
            or not re.search(r"[A-Za-z0-9]", name)):
        raise ConfigError(f"{p}: name {name!r}: use letters, digits, '_', '-', '.' and '/' (no '..'); "
                          "it names the default output folder results/runs/<name>")
    output = data.get("output")
    if output is None or (isinstance(output, dict) and "dir" not in output):
        set_dotted(data, "output.dir", f"results/runs/{name}")  # a non-mapping is reported below
    try:
        return config_from_dict(data, default_name=p.stem)
    except ConfigError as e:
        msg = str(e)
        given = [(text.split("=", 1)[0].strip(), f"--set {text}") for text in sets or [] if "=" in text]
        given += [(key, f"--{opt.replace('_', '-')} {named[opt]!r}") for opt, key in _OPTION_KEYS.items()
                  if named.get(opt) is not None]
        for key, how in given:  # a bad value given on the command line is named as such
            if msg.startswith(key + ":") or msg.startswith(key + " "):
                raise ConfigError(f"{p} with {how}: {msg}") from None
        raise ConfigError(f"{p}: {msg}") from None
