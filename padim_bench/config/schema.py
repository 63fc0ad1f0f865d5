"""The experiment configuration's schema: frozen dataclasses, one per section of a config file,
and the config and run hashes that key the model cache and the run folders.

Defaults follow the PaDiM paper (Sec. IV; see ``padim_bench/reference/paper.yaml``): resize 256,
centre-crop 224, R18 with d = 100, covariance epsilon 0.01, Gaussian sigma 4, PRO integrated to
FPR 0.3. Construction from YAML is strict (:mod:`padim_bench.config.loading`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal, Union

METRIC_NAMES = ("image_roc_auc", "pixel_roc_auc", "pro")
INTERPOLATIONS = ("nearest", "bilinear", "bicubic")


@dataclass(frozen=True)
class DatasetConfig:
    """Where the data is and how images are prepared: the keys every dataset shares, and the
    dataset's own (``params``).

    Attributes:
        name: registered dataset (:data:`padim_bench.data.DATASETS`): ``mvtec_ad`` reads the
            official MVTec AD layout (its 15 categories, the paper's tables); ``mvtec_folder`` a
            folder of your own in that layout (its categories are never counted as MVTec AD's);
            ``stc`` ShanghaiTech Campus (``training/videos``, ``testing/frames``,
            ``testing/test_frame_mask``, ``testing/test_pixel_mask``; see
            :mod:`padim_bench.data.stc`), one model per scene, with ``crop: null``.
        root: folder holding one sub-folder per category (STC: ``training/`` and ``testing/``).
        categories: ``"all"`` (every category folder found under ``root``; STC: every scene) or a
            list of names (STC: scene names, quoted in YAML: ``['01', '02']``).
        resize: side in pixels of the square resize (paper: 256), or ``[height, width]`` for
            non-square images (:mod:`padim_bench.data.shapes`; an int hashes as it always did).
        crop: side in pixels of the centre crop, ``[height, width]``, or ``None`` for no crop
            (paper: 224 on MVTec AD).
        interpolation: image resize filter (paper: bicubic [one source]); masks always use nearest.
        texture_categories: categories counted as textures in the textures / objects / all means;
            ``None`` means MVTec AD's five (carpet, grid, leather, tile, wood) on MVTec AD, and no
            texture / object grouping on a folder of your own.
        on_unreadable: ``error`` (default): an undecodable image or mask stops the run before any
            model is loaded, naming the files; ``skip``: such samples are left out and counted.
        bit_depth: significant bits of 16-bit images (e.g. 12); ``None``: the PNG ``sBIT`` chunk
            where the file has one, else 16. The same for every image, so brightness is comparable.
        augment: ``none``, or ``nonaligned`` (paper Table VI): every train and test image and mask
            rotated by a random angle in [-augment_rotation_deg, augment_rotation_deg] and cropped
            at a random place, deterministically from ``augment_seed`` (null: ``method.seed``).
        params: the dataset's own parameters (a frozen dataclass owned by the dataset, e.g. STC's
            strides: :class:`padim_bench.data.stc.StcParams`); written flat beside the shared keys
            in YAML and in the recorded config.
    """

    name: str = "mvtec_ad"
    root: str = "../shared/data/mvtec_ad"
    categories: Union[str, list[str]] = "all"
    resize: Union[int, list[int]] = 256
    crop: Union[int, list[int], None] = 224
    interpolation: Literal["nearest", "bilinear", "bicubic"] = "bicubic"
    texture_categories: Union[list[str], None] = None
    on_unreadable: Literal["error", "skip"] = "error"
    augment: Literal["none", "nonaligned"] = "none"
    bit_depth: Union[int, None] = None
    augment_rotation_deg: float = 10.0
    augment_seed: Union[int, None] = None
    params: Any = None


@dataclass(frozen=True)
class MethodConfig:
    """The anomaly-detection method, its backbone and its own parameters.

    Attributes:
        name: registered method name (``padim``).
        backbone: registered backbone name (``resnet18``, ``wide_resnet50_2``, ...), or any library
            model by source and name: ``timm/convnext_tiny.fb_in1k``, ``torchvision/resnet50``.
        weights: ``imagenet`` (pretrained, the paper's setting), ``random`` (seeded random
            initialisation; only for time and memory figures, and labelled so in every output), or
            the path of a state-dict file (``.safetensors``, ``.pth``, ``.pt``, ``.bin``), loaded
            weights-only and recorded with its sha256.
        layers: backbone layers tapped for the embedding, shallowest first.
        seed: seed for every random choice of the method (channel selection, random weights).
        params: the method's own parameters (a frozen dataclass owned by the method).
    """

    name: str = "padim"
    backbone: str = "resnet18"
    weights: str = "imagenet"
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
            (``padim-bench run --force-memory``; see :mod:`padim_bench.memory`). Changes no
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
        """Plain-data form (what :func:`config_from_dict` reads back): the method's and the
        dataset's own parameters flattened into their sections, after the shared keys."""
        d = dataclasses.asdict(self)
        for section in ("method", "dataset"):
            d[section].update(d[section].pop("params") or {})
        return d

    def config_hash(self) -> str:
        """First 12 hex digits of the SHA-256 of the canonical JSON of everything that changes the
        numbers of a category: the name, ``dataset.categories``, ``dataset.root``, the output and
        runtime sections and hash-neutral method keys are left out, and so is a method key added later
        while it holds the value every run had before it (``HASH_OMITTED_AT``). Keys the model cache.

        The data root is a place, not the data: the same dataset under another path (or the same
        path written relative vs absolute) is the same experiment, and which files a finished
        category used is checked by its data fingerprint (names and sizes of every file,
        ``store.data_fingerprint``), so a different dataset at the same path is recomputed."""
        d = self.to_dict()
        for key in ("output", "runtime", "name"):
            d.pop(key)
        d["dataset"].pop("categories")
        d["dataset"].pop("root")
        for key in getattr(type(self.method.params), "HASH_NEUTRAL", ()):
            d["method"].pop(key, None)
        for key, legacy in getattr(type(self.method.params), "HASH_OMITTED_AT", {}).items():
            if d["method"].get(key) == legacy:  # a key added later, at the value runs had before it
                d["method"].pop(key)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]

    def run_hash(self) -> str:
        """:meth:`config_hash` plus the runtime section (device, threads, batch size, timing),
        which changes the time and memory figures: an output folder and its finished categories
        are reused only under the same run hash."""
        return self._run_hash(self.config_hash())

    def _run_hash(self, config_hash: str) -> str:
        rt = dataclasses.asdict(self.runtime)
        rt.pop("allow_memory_over")  # refuses or allows a run, changes no figure
        blob = json.dumps({"config": config_hash, "runtime": rt}, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

