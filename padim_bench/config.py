"""Experiment configuration: frozen dataclasses loaded strictly from YAML.

One YAML file describes one experiment (``configs/*.yaml``). Loading is strict: an unknown key, a
value of the wrong type or a value outside its allowed set raises :class:`ConfigError` naming the
file and the dotted key (``method.d``). Defaults follow the PaDiM paper (Sec. IV; see
``padim_bench/reference/paper.yaml``): resize 256, centre-crop 224, R18 with d = 100, covariance
epsilon 0.01, Gaussian sigma 4, PRO integrated to FPR 0.3.

Method-specific keys (``d`` and ``epsilon`` for PaDiM, ...) sit in the same ``method:`` section and
are checked against the registered method's own parameter dataclass, so a misspelt key is an error
rather than silently ignored.

Overrides from the command line are applied on top of the file in a fixed order (file, then
``--set key=value`` pairs, then the named options) by :func:`apply_overrides`.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import hashlib
import itertools
import json
import re
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from .errors import ConfigError

METRIC_NAMES = ("image_roc_auc", "pixel_roc_auc", "pro")
INTERPOLATIONS = ("nearest", "bilinear", "bicubic")


@dataclass(frozen=True)
class DatasetConfig:
    """Where the data is and how images are prepared.

    Attributes:
        name: dataset format; ``mvtec_ad`` reads the official MVTec AD layout (and any user folder
            in that layout); ``stc`` reads ShanghaiTech Campus (``training/videos``,
            ``testing/frames``, ``testing/test_frame_mask``, ``testing/test_pixel_mask``; see
            :mod:`padim_bench.data.stc`), one model per scene, with ``crop: null``.
        root: folder holding one sub-folder per category (STC: ``training/`` and ``testing/``).
        categories: ``"all"`` (every category folder found under ``root``; STC: every scene) or a
            list of names (STC: scene names, quoted in YAML: ``['01', '02']``).
        resize: side in pixels of the square resize (paper: 256).
        crop: side in pixels of the centre crop, or ``None`` for no crop (paper: 224 on MVTec AD).
        interpolation: image resize filter (paper: bicubic [one source]); masks always use nearest.
        texture_categories: categories counted as textures in the textures / objects / all means;
            ``None`` means MVTec AD's five (carpet, grid, leather, tile, wood).
        on_unreadable: ``error`` (default): an undecodable image or mask stops the run before any
            model is loaded, naming the files; ``skip``: such samples are left out and counted.
        bit_depth: significant bits of 16-bit images (e.g. 12); ``None``: the PNG ``sBIT`` chunk
            where the file has one, else 16. The same for every image, so brightness is comparable.
        augment: ``none``, or ``nonaligned`` (paper Table VI): every train and test image and mask
            rotated by a random angle in [-augment_rotation_deg, augment_rotation_deg] and cropped
            at a random place, deterministically from ``augment_seed`` (null: ``method.seed``).
        train_stride: STC only: keep frames 0, s, 2s, ... of every training video; ``None``
            derives ``s`` from ``train_frames_total`` (the stride used is recorded).
        train_frames_total: STC only: with ``train_stride: null``, the smallest stride keeping at
            most this many training frames over all the dataset's videos (SPADE's protocol:
            about 5,000).
        test_stride: STC only: keep frames 0, s, 2s, ... of every test clip (SPADE's protocol: 5).
        The three STC keys are left out of MVTec AD runs' recorded config and config hash (they
        change nothing there).
    """

    name: Literal["mvtec_ad", "stc"] = "mvtec_ad"
    root: str = "../shared/data/mvtec_ad"
    categories: Union[str, list[str]] = "all"
    resize: int = 256
    crop: Union[int, None] = 224
    interpolation: Literal["nearest", "bilinear", "bicubic"] = "bicubic"
    texture_categories: Union[list[str], None] = None
    on_unreadable: Literal["error", "skip"] = "error"
    augment: Literal["none", "nonaligned"] = "none"
    bit_depth: Union[int, None] = None
    augment_rotation_deg: float = 10.0
    augment_seed: Union[int, None] = None
    train_stride: Union[int, None] = None
    train_frames_total: int = 5000
    test_stride: int = 5


#: dataset keys that only STC reads (left out of MVTec AD runs' config hash)
STC_KEYS = ("train_stride", "train_frames_total", "test_stride")


@dataclass(frozen=True)
class MethodConfig:
    """The anomaly-detection method, its backbone and its own parameters.

    Attributes:
        name: registered method name (``padim``).
        backbone: registered backbone name (``resnet18``, ``wide_resnet50_2``, ...).
        weights: ``imagenet`` (pretrained, the paper's setting) or ``random`` (seeded random
            initialisation; only for time and memory figures, and labelled so in every output).
        layers: backbone layers tapped for the embedding, shallowest first.
        seed: seed for every random choice of the method (channel selection, random weights).
        params: the method's own parameters (a frozen dataclass owned by the method).
    """

    name: str = "padim"
    backbone: str = "resnet18"
    weights: Literal["imagenet", "random"] = "imagenet"
    layers: list[str] = field(default_factory=lambda: ["layer1", "layer2", "layer3"])
    seed: int = 0
    params: Any = None


@dataclass(frozen=True)
class EvaluationConfig:
    """How anomaly maps are post-processed and scored.

    Attributes:
        metrics: subset of ``image_roc_auc``, ``pixel_roc_auc``, ``pro``.
        sigma: standard deviation in pixels of the Gaussian filter applied to each map (paper: 4).
        pro_fpr_limit: upper FPR bound of the PRO integral (paper: 0.3).
        map_interpolation: filter used to upsample patch-level maps to the crop size.
    """

    metrics: list[str] = field(default_factory=lambda: list(METRIC_NAMES))
    sigma: float = 4.0
    pro_fpr_limit: float = 0.3
    map_interpolation: Literal["nearest", "bilinear", "bicubic"] = "bilinear"


@dataclass(frozen=True)
class RuntimeConfig:
    """Where and how the computation runs.

    Attributes:
        device: ``auto`` (CUDA when available, else CPU), ``cpu`` or ``cuda``.
        batch_size: images per forward pass during fitting and batched scoring.
        workers: DataLoader worker processes for decoding images; 0 = a decoding thread in the
            main process, one batch ahead of the backbone (no extra processes, so the main
            process's memory is the whole run's).
        threads: torch intra-op threads; ``None`` keeps torch's default.
        channels_last: run the backbone's convolutions in NHWC layout (faster on CPU, same
            numbers to float32 rounding); false = NCHW.
        timing_images: test images scored one at a time for the batch-1 inference timing.
        warmup_images: images scored (and discarded) before the timed batch-1 span.
        allow_memory_over: run a fit even when its predicted memory exceeds what is available
            (``padim-bench run --force-memory``; see :mod:`padim_bench.memcheck`). Changes no
            number, so it is outside the run hash.
    """

    device: Literal["auto", "cpu", "cuda"] = "auto"
    batch_size: int = 32
    workers: int = 0
    threads: Union[int, None] = None
    channels_last: bool = True
    timing_images: int = 20
    warmup_images: int = 2
    allow_memory_over: bool = False


@dataclass(frozen=True)
class OutputConfig:
    """Where results go.

    Attributes:
        dir: output folder of the run (created; never silently overwritten).
        save_models: also save each fitted model (``models/<category>.pt``, tensors only).
        model_cache: folder of fitted models reused across runs, keyed by config hash and a
            fingerprint of the training files (names, sizes, modification times); ``None`` = off.
            A reused fit reports the fit time and memory measured when it was made, flagged.
        report_images: test images per group whose anomaly maps are kept for the report's
            overlays (``report_data/<category>.npz``): the highest- and lowest-scored defective
            ones and the highest-scored good ones; 0 keeps the curves only.
        report: also write the HTML report and its figures into ``<dir>/report`` at the end of the
            run (``padim-bench run --report``; ``padim-bench report`` makes it any time).
        The output section changes no number: it is outside the config and run hashes.
    """

    dir: str = "results/runs/default"
    save_models: bool = False
    model_cache: Union[str, None] = None
    report_images: int = 3
    report: bool = False


@dataclass(frozen=True)
class RunConfig:
    """A whole experiment: dataset, method, evaluation, runtime and output."""

    name: str = "experiment"
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (what :func:`config_from_dict` reads back), method params flattened;
        the STC-only dataset keys are left out of other datasets' (they are at their defaults)."""
        d = dataclasses.asdict(self)
        params = d["method"].pop("params") or {}
        d["method"].update(params)
        if self.dataset.name != "stc":
            for key in STC_KEYS:
                d["dataset"].pop(key)
        return d

    def config_hash(self) -> str:
        """First 12 hex digits of the SHA-256 of the canonical JSON of everything that changes the
        numbers of a category: the name, ``dataset.categories``, ``dataset.root``, the output and
        runtime sections and hash-neutral method keys are left out. Keys the model cache.

        The data root is a place, not the data: the same dataset under another path (or the same
        path written relative vs absolute) is the same experiment, and which files a finished
        category used is checked by its data fingerprint (names and sizes of every file,
        ``runner.data_fingerprint``), so a different dataset at the same path is recomputed."""
        return self._config_hash(with_root=False)

    def _config_hash(self, with_root: bool) -> str:
        d = self.to_dict()
        for key in ("output", "runtime", "name"):
            d.pop(key)
        d["dataset"].pop("categories")
        if not with_root:
            d["dataset"].pop("root")
        for key in getattr(type(self.method.params), "HASH_NEUTRAL", ()):
            d["method"].pop(key, None)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]

    def legacy_hashes(self) -> tuple[str, str]:
        """``(config hash, run hash)`` by the rule before ``dataset.root`` left the config hash
        (padim-bench commit 5d26a99): run folders written then are re-keyed, not refused
        (``padim_bench.legacy``)."""
        ch = self._config_hash(with_root=True)
        return ch, self._run_hash(ch)

    def run_hash(self) -> str:
        """:meth:`config_hash` plus the runtime section (device, threads, batch size, timing),
        which changes the time and memory figures: an output folder and its finished categories
        are reused only under the same run hash."""
        return self._run_hash(self.config_hash())

    def _run_hash(self, config_hash: str) -> str:
        rt = dataclasses.asdict(self.runtime)
        rt.pop("allow_memory_over")  # refuses or allows a run, changes no figure
        if not rt["channels_last"]:  # NCHW: the layout of every run made before this key existed,
            rt.pop("channels_last")  # so their folders keep their run hash
        blob = json.dumps({"config": config_hash, "runtime": rt}, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


# --------------------------------------------------------------------------------------------
# strict construction from plain data


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against type ``tp``; returns the (possibly converted) value."""
    origin = typing.get_origin(tp)
    bad = ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r} ({type(value).__name__})")
    if tp is Any:
        return value
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise bad
        return value
    if origin in (Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _coerce(value, arg, key)
            except ConfigError:
                continue
        raise bad
    if tp is type(None):
        if value is not None:
            raise bad
        return None
    if origin is list:
        if not isinstance(value, list):
            raise bad
        (item,) = typing.get_args(tp)
        return [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise bad
        return value
    if dataclasses.is_dataclass(tp):
        return build_dataclass(tp, value, key)
    raise TypeError(f"unsupported config type {tp!r} at {key}")  # a bug, not a user error


def build_dataclass(cls: type, data: Any, prefix: str) -> Any:
    """Build dataclass ``cls`` from mapping ``data``, rejecting unknown keys and wrong types.

    Raises:
        ConfigError: naming ``prefix.key`` for an unknown key (with a suggestion) or a bad value.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    kwargs = {}
    for key, value in data.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"unknown key {dotted!r}.{hint} Valid keys: {', '.join(names)}")
        kwargs[key] = _coerce(value, hints[key], dotted)
    return cls(**kwargs)


def _method_params_class(name: str) -> type:
    from .methods import METHODS  # local import: methods register themselves on import

    return METHODS.get(name).params_class


def config_from_dict(data: dict[str, Any], *, default_name: str = "experiment") -> RunConfig:
    """Build and validate a :class:`RunConfig` from plain data (as read from YAML).

    Raises:
        ConfigError: unknown key, wrong type, unknown method or an invalid value.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"config: expected a mapping at the top level, got {type(data).__name__}")
    data = dict(data)
    method_raw = data.pop("method", None)
    if method_raw is None:
        method_raw = {}
    if not isinstance(method_raw, dict):
        raise ConfigError(f"method: expected a mapping, got {method_raw!r}")
    common = {f.name for f in dataclasses.fields(MethodConfig)} - {"params"}
    method_common = {k: v for k, v in method_raw.items() if k in common}
    method_own = {k: v for k, v in method_raw.items() if k not in common}
    data.setdefault("name", default_name)
    cfg = build_dataclass(RunConfig, data, "")
    mc = build_dataclass(MethodConfig, method_common, "method")
    try:
        params_cls = _method_params_class(mc.name)
    except ConfigError as e:
        raise ConfigError(f"method.name: {e}") from None
    try:
        params = build_dataclass(params_cls, method_own, "method")
    except ConfigError as e:
        raise ConfigError(f"{e} (keys of method {mc.name!r} plus {', '.join(sorted(common))})") from None
    cfg = dataclasses.replace(cfg, method=dataclasses.replace(mc, params=params))
    validate(cfg)
    return cfg


def _validate_stc(ds: DatasetConfig) -> None:
    """The STC keys: ranges on STC, defaults elsewhere; STC frames are never cropped (paper
    Sec. IV-A: 256 x 256, no crop) nor augmented.

    Raises:
        ConfigError: naming the key.
    """
    defaults = DatasetConfig()
    if ds.name != "stc":
        for key in STC_KEYS:
            if getattr(ds, key) != getattr(defaults, key):
                raise ConfigError(f"dataset.{key}: applies to STC only (dataset.name: stc), this is {ds.name}")
        return
    if ds.crop is not None:
        raise ConfigError(f"dataset.crop: STC frames are resized to dataset.resize without a crop (paper Sec. IV-A: "
                          f"256x256, a 64x64 grid); set dataset.crop: null (got {ds.crop})")
    if ds.augment != "none":
        raise ConfigError("dataset.augment: nonaligned is MVTec AD's Table VI protocol; STC takes none")
    if ds.train_stride is not None and ds.train_stride < 1:
        raise ConfigError(f"dataset.train_stride: must be >= 1, or null to derive it from train_frames_total, "
                          f"got {ds.train_stride}")
    if ds.train_frames_total < 1:
        raise ConfigError(f"dataset.train_frames_total: must be >= 1, got {ds.train_frames_total}")
    if ds.test_stride < 1:
        raise ConfigError(f"dataset.test_stride: must be >= 1, got {ds.test_stride}")


def validate(cfg: RunConfig) -> None:
    """Value checks that need no data and no model (ranges, metric names, layer list).

    Raises:
        ConfigError: the first invalid value, naming its key.
    """
    ds, ev, rt = cfg.dataset, cfg.evaluation, cfg.runtime
    if ds.bit_depth is not None and not 1 <= ds.bit_depth <= 16:
        raise ConfigError(f"dataset.bit_depth: between 1 and 16, or null, got {ds.bit_depth}")
    if ds.resize < 8:
        raise ConfigError(f"dataset.resize: must be >= 8 pixels, got {ds.resize}")
    if ds.crop is not None and not 8 <= ds.crop <= ds.resize:
        raise ConfigError(f"dataset.crop: must be between 8 and dataset.resize ({ds.resize}), got {ds.crop}")
    _validate_stc(ds)
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


# --------------------------------------------------------------------------------------------
# experiment files: one base config expanded into variants and seeds (the paper's tables)


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
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

    def parent_of(ref: Any, where: str) -> dict[str, Any]:
        parent = p.parent / str(ref)
        if parent.resolve() == p.resolve():
            raise ConfigError(f"{p}: {where}extends itself; extends names a base config file")
        parent_data = read_yaml(parent)
        if is_experiment_file(parent_data):
            raise ConfigError(f"{p}: {where}extends {parent}, which is itself an experiment file")
        return parent_data

    base = parent_of(data["extends"], "") if "extends" in data else {}
    if "variants" in data and not data["variants"]:
        raise ConfigError(f"{p}: variants is empty; list at least one {{name: ..., set: {{key: value}}}} or leave the key out")
    variants = data.get("variants") or [{"name": "base", "set": {}}]
    seeds = data.get("seeds")
    axes = data.get("axes") or {}
    if not isinstance(variants, list) or not all(isinstance(v, dict) and isinstance(v.get("name"), str) for v in variants):
        raise ConfigError(f"{p}: variants must be a list of {{name: ..., set: {{key: value}}}}")
    if seeds is not None and (not isinstance(seeds, list) or not seeds
                              or not all(isinstance(x, int) and not isinstance(x, bool) for x in seeds)):
        raise ConfigError(f"{p}: seeds must be a non-empty list of integers")
    if not isinstance(axes, dict) or not all(isinstance(k, str) and k and isinstance(v, list) and v for k, v in axes.items()):
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
    names = [v["name"] for v in variants]
    if len(set(names)) != len(names):
        raise ConfigError(f"{p}: variant names must be distinct, got {names}")
    for v in variants:
        if not _RUN_PART.fullmatch(v["name"]):
            raise ConfigError(f"{p}: variant name {v['name']!r}: use letters, digits, '_', '.', '+' and '-' "
                              "(it names a folder), starting with a letter or digit")
        extra = set(v) - {"name", "set", "extends"}
        if extra:
            raise ConfigError(f"{p}: variant {v['name']!r} has unknown keys {sorted(extra)} (valid: name, set, extends)")
    own = {k: v for k, v in data.items() if k not in ("extends", "variants", "seeds", "axes")}
    file_merged = _deep_merge(base, own)
    name = file_merged.get("name") or p.stem
    out_root = named.get("out") or (file_merged.get("output") or {}).get("dir") or f"results/runs/{name}"
    keys = list(axes)
    runs: list[ExperimentRun] = []
    seen: dict[str, dict[str, Any]] = {}
    for v in variants:
        merged = _deep_merge(parent_of(v["extends"], f"variant {v['name']!r} "), own) if "extends" in v else file_merged
        for combo in itertools.product(*(axes[k] for k in keys)):
            values = dict(zip(keys, combo))
            run_name = "_".join([v["name"]] + [axis_label(k, x) for k, x in values.items()])
            if run_name in seen:
                raise ConfigError(f"{p}: two runs would share the folder {run_name!r} ({seen[run_name]} and {values}); "
                                  "rename a variant or an axis")
            seen[run_name] = values
            d = copy.deepcopy(merged)
            for key, value in (v.get("set") or {}).items():
                set_dotted(d, key, value)
            for key, value in values.items():
                set_dotted(d, key, copy.deepcopy(value))
            if categories is not None:
                set_dotted(d, "dataset.categories", list(categories))
            d["name"] = f"{name}/{run_name}"
            d = apply_overrides(d, sets, **{**named, "out": None})
            set_dotted(d, "output.dir", str(Path(out_root) / run_name))
            try:
                runs.append(ExperimentRun(run_name, v["name"], values, config_from_dict(d, default_name=name)))
            except ConfigError as e:
                raise ConfigError(f"{p} (variant {run_name}): {e}") from None
    same: dict[tuple[str, str, tuple[str, ...] | str], str] = {}
    for r in runs:  # e.g. axes {evaluation.sigma: [1.0, 1]}: two folders, one experiment
        cats = r.config.dataset.categories
        key = (r.config.run_hash(), str(Path(r.config.dataset.root).resolve()),
               tuple(sorted(cats)) if isinstance(cats, list) else cats)
        if key in same:
            raise ConfigError(f"{p}: runs {same[key]!r} and {r.run_name!r} are the same experiment (same configuration, "
                              "runtime, data root and categories); remove one of the two values or variants")
        same[key] = r.run_name
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
