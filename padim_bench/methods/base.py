"""The interface every method implements, and the post-processing they share.

A method is fitted on normal images only, then turns a batch of test images into patch-level
anomaly maps. :func:`postprocess` (shared by all methods, paper Sec. III-C) upsamples each map to
the input size, applies a Gaussian filter and takes the maximum as the image score.

Everything the rest of the tool needs from a method is declared on :class:`Method`: the runner's
calls (fit, score, state, training-set size, progress), and the facts tables and reports show
(display label, whether it trains its backbone, its standard layers). Code outside ``methods/``
looks a record's method up with :func:`method_class` and asks it; it never tests a method's name.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterable, Mapping

import numpy as np
import scipy.ndimage
import torch
import torch.nn.functional as F

from ..registry import Registry


class Method(ABC):
    """An anomaly-detection method: fit on normal images, score test images.

    Subclasses take ``(params, extractor, device, seed)`` in their constructor, where ``params``
    is their own frozen parameter dataclass and ``extractor`` a
    :class:`~padim_bench.backbones.FeatureExtractor` (or ``None`` for methods without one), and
    register themselves in :data:`METHODS`.

    Before :meth:`fit` the runner calls :meth:`set_train_size` and :meth:`attach_progress`.
    """

    #: the registered name (``method.name`` in configs and records)
    name: ClassVar[str] = "method"
    #: the name tables and reports show (e.g. ``PaDiM``); ``None`` shows the registered name
    display_name: ClassVar[str | None] = None
    #: the method trains its backbone (the VAE's encoder): random initial weights are then a
    #: setting of the method, not a stand-in that makes its metrics meaningless
    trains_backbone: ClassVar[bool] = False
    #: backbone layers of the method's standard configuration (the paper's); Table VIII predicts
    #: state sizes with them
    default_layers: ClassVar[tuple[str, ...]] = ("layer1", "layer2", "layer3")
    #: components of :meth:`state_nbytes` that grow linearly with the training images (SPADE's
    #: ``bank``); Table VIII scales them from a run's training set to the paper's
    per_image_state: ClassVar[tuple[str, ...]] = ()
    #: the number of training images announced by :meth:`set_train_size` (``None`` until then)
    n_train_expected: int | None = None

    @abstractmethod
    def fit(self, batches: Iterable[torch.Tensor]) -> None:
        """Fit on normal images.

        Args:
            batches: iterable of float32 tensors ``(B, 3, H, W)`` in [0, 1] (not normalised).
        """

    @abstractmethod
    def score(self, images: torch.Tensor) -> torch.Tensor:
        """Patch-level anomaly maps for ``images`` ``(B, 3, H, W)`` float32 in [0, 1].

        Returns:
            float32 tensor ``(B, h, w)`` on the CPU, before upsampling and smoothing.
        """

    def score_images(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Patch-level maps and, for methods whose image score is not the map maximum (SPADE),
        their own image scores ``(B,)`` float32; ``None`` means "max of the smoothed map"."""
        return self.score(images), None

    @classmethod
    def extractor_layers(cls, params: Any, layers: list[str]) -> list[str]:
        """Backbone layers the method needs (default: the configured ``method.layers``)."""
        return list(layers)

    def set_train_size(self, n: int) -> None:
        """Announce the number of training images before :meth:`fit`, so methods that store
        features (SPADE) allocate their bank once and PaDiM's PCA samples evenly.

        Raises:
            ValueError: ``n`` < 0.
        """
        if n < 0:
            raise ValueError(f"the number of training images must be >= 0, got {n}")
        self.n_train_expected = int(n)

    def attach_progress(self, progress: Any) -> None:
        """Report the progress of a long :meth:`fit` (training) as tasks in ``progress``, a
        ``rich.progress.Progress`` already started (disabled under the CLI's ``--quiet``). The
        default does nothing: a fit in one pass over the images needs no progress of its own."""
    @abstractmethod
    def state_nbytes(self) -> dict[str, int]:
        """Bytes of the fitted state by component (e.g. ``mean``, ``cov``, ``backbone``)."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Fitted state as tensors and plain data (saved with ``torch.save``)."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the state written by :meth:`state_dict`."""

    @classmethod
    def check_embedding(cls, params: Any, channels: dict[str, int]) -> None:
        """Check ``params`` against the backbone's channels per layer before any data is read.

        Raises:
            ConfigError: parameters that cannot work with this embedding.
        """

    @classmethod
    def predict_state_nbytes(cls, params: Any, backbone: str, layers: list[str], size: int, n_train: int) -> dict[str, int]:
        """Bytes of the fitted state by component, predicted before fitting from the architecture
        (``meta`` device) for ``size`` x ``size`` inputs and ``n_train`` training images.

        Equals :meth:`state_nbytes` after fitting; used for Table VIII and memory checks.
        """
        raise NotImplementedError(f"{cls.__name__} does not predict its state size")

    @classmethod
    def predict_memory(cls, params: Any, backbone: str, layers: list[str], size: int, n_train: int,
                       n_test: int, batch: int) -> "MethodMemory":
        """The method's own memory for one category (``n_train`` training and ``n_test`` test
        images of ``size`` x ``size`` pixels, ``batch`` images per batch), predicted from the
        architecture before any image is read. :mod:`padim_bench.memory` adds what every method
        shares (process, backbone parameters and activations, test maps, loader workers).

        Default: the state of :meth:`predict_state_nbytes` without the backbone (nothing when
        the method does not predict it; the note says so) and no working memory of its own.

        Raises:
            ConfigError: unknown backbone or layer, parameters that do not fit the embedding.
        """
        try:
            state = cls.predict_state_nbytes(params, backbone, layers, size, n_train)
        except NotImplementedError:
            return MethodMemory(note=f"{cls.name} does not predict its state: working memory only")
        return MethodMemory(state={f"state: {k}": v for k, v in state.items() if k != "backbone"})

    @classmethod
    def predict_score_cost(cls, params: Any, backbone: str, layers: list[str], size: int,
                           n_train: int) -> dict[str, int] | None:
        """Work (``macs``) and temporary bytes of scoring ONE test image where the method's own
        computation dominates it (SPADE's kNN search), predicted before fitting; the runner
        records it beside the measured batch-1 time. Default ``None``: not predicted."""
        return None

    def describe(self) -> dict[str, Any]:
        """Plain-data facts about the fitted model to record in results (e.g. chosen channels)."""
        return {}

    # ------------------------------------------------------------------ labels of tables and reports
    @classmethod
    def label_parts(cls, settings: Mapping[str, Any]) -> list[str]:
        """Parts of the short label after method and backbone (e.g. ``["Rd100"]`` for PaDiM).

        Args:
            settings: the method's section of a record's config (``config.method``: its
                parameters flat beside ``name``, ``backbone``, ``layers``; see :func:`as_settings`).
        """
        return []

    @classmethod
    def variant_parts(cls, settings: Mapping[str, Any]) -> list[str]:
        """Non-default settings that set a run apart from the method's standard form, as the
        label of a table row the paper does not have shows them (e.g. ``["pca"]``)."""
        return []

    @classmethod
    def label(cls, settings: Mapping[str, Any] | Any, backbone: str) -> str:
        """Short label ``<display name>-<backbone>[-<part>...]``, e.g. ``PaDiM-EffL0-Rd100``,
        ``SPADE-WR50``, ``VAE-R18``; ``backbone`` as the caller abbreviates it. ``settings`` as
        :meth:`label_parts` takes them, or the method's params dataclass."""
        s = as_settings(settings)
        name = cls.display_name or s.get("name", cls.name)
        return "-".join([name, backbone, *cls.label_parts(s)])


@dataclass(frozen=True)
class MethodMemory:
    """A method's own memory prediction for one category, in bytes (GB = 1e9 bytes), by named part
    (the names appear in the run's refusal message and its ``fit_memory_check`` record).

    Attributes:
        state: the fitted state without the backbone (resident from the fit to the end of scoring).
        fit: working memory of the fit at its peak, beyond the state.
        score: working memory of scoring one batch, beyond the state (the test set's maps and the
            metrics' copies are counted by :mod:`padim_bench.memory`).
        host: names of parts held in host RAM whatever the compute device; the others live on it
            (GPU memory on CUDA, RAM on the CPU).
        disk: names of parts on disk (memory-mapped), checked against the free space of
            ``disk_folder`` (None: the system temp folder) instead of RAM.
        runs_backbone: every batch goes through the frozen backbone, whose activations the memory
            model then counts (False for a method that trains its own copy, as the VAE).
        advice: the method's own ways to need less memory (config keys), for the refusal message.
        grows_with_train: fewer training images need less memory.
        note: what the prediction leaves out.
    """

    state: dict[str, int] = field(default_factory=dict)
    fit: dict[str, int] = field(default_factory=dict)
    score: dict[str, int] = field(default_factory=dict)
    host: frozenset[str] = frozenset()
    disk: frozenset[str] = frozenset()
    disk_folder: str | None = None
    runs_backbone: bool = True
    advice: tuple[str, ...] = ()
    grows_with_train: bool = True
    note: str = ""


@dataclass(frozen=True)
class MethodSpec:
    """Registry entry: the method class and its parameter dataclass."""

    cls: type
    params_class: type


METHODS: Registry[MethodSpec] = Registry("method")


def method_class(name: str) -> type[Method]:
    """The class registered as ``name``, or the base :class:`Method` (generic label, no
    method-specific parts) for a name not registered in this process, e.g. a record written with
    a plug-in that is not imported; tables and reports then still show it."""
    return METHODS.get(name).cls if name in METHODS else Method


def as_settings(settings: Mapping[str, Any] | Any) -> Mapping[str, Any]:
    """A method's settings as a mapping: a record's ``config.method`` as it is, a params
    dataclass through :func:`dataclasses.asdict`.

    Raises:
        TypeError: neither a mapping nor a dataclass instance.
    """
    if isinstance(settings, Mapping):
        return settings
    if dataclasses.is_dataclass(settings) and not isinstance(settings, type):
        return dataclasses.asdict(settings)
    raise TypeError(f"method settings must be a mapping or a params dataclass, got {type(settings).__name__}")


#: the Gaussian filter of the anomaly maps beyond its sigma (``evaluation.sigma``): scipy's
#: ``gaussian_filter`` with the kernel truncated at 4 sigma (the reference implementation's scipy
#: default) and reflected borders (``mode="reflect"``, scipy's default: ``d c b a | a b c d``)
MAP_FILTER = {"filter": "scipy.ndimage.gaussian_filter", "truncate": 4.0, "mode": "reflect", "cval": 0.0}


def map_postprocessing(sigma: float, interpolation: str, shape: tuple[int, int]) -> dict[str, Any]:
    """Every parameter of :func:`postprocess` that changes the maps, for the results: the
    upsampling (filter, ``align_corners``, output ``[H, W]`` in pixels) and the Gaussian filter
    (:data:`MAP_FILTER` and ``sigma`` in pixels; 0: no filter)."""
    return {"upsample": {"mode": interpolation, "align_corners": None if interpolation == "nearest" else False,
                         "size": [int(shape[0]), int(shape[1])]},
            "smoothing": {"sigma": float(sigma), **MAP_FILTER}}


def postprocess(
    raw: torch.Tensor, size: tuple[int, int], sigma: float, interpolation: str = "bilinear",
    image_scores: torch.Tensor | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Upsample patch-level maps, smooth them, and take image scores.

    Follows the paper (Sec. III-C) and the reference implementation: the map is upsampled to the
    input size, filtered with ``scipy.ndimage.gaussian_filter`` (``sigma`` in pixels, truncate 4,
    reflected borders: :data:`MAP_FILTER`; :func:`map_postprocessing` records them), and the image score is the maximum of the filtered map.

    Args:
        raw: float32 ``(B, h, w)`` patch-level maps.
        size: ``(H, W)`` output size in pixels (the crop size).
        sigma: Gaussian standard deviation in pixels; 0 disables the filter.
        interpolation: ``nearest``, ``bilinear`` or ``bicubic`` (``align_corners=False``).
        image_scores: the method's own image scores ``(B,)``, returned as they are; when
            ``None`` the score is the maximum of each smoothed map.

    Returns:
        ``(maps, scores)``: float32 arrays ``(B, H, W)`` and ``(B,)``.
    """
    x = raw.detach().to("cpu", torch.float32)[:, None]
    if tuple(x.shape[-2:]) != tuple(size):
        kw = {} if interpolation == "nearest" else {"align_corners": False}
        x = F.interpolate(x, size=size, mode=interpolation, **kw)
    maps = x[:, 0].numpy()
    if sigma > 0:
        maps = np.stack([scipy.ndimage.gaussian_filter(m, sigma=sigma, truncate=MAP_FILTER["truncate"],
                                                       mode=MAP_FILTER["mode"], cval=MAP_FILTER["cval"])
                         for m in maps])
    maps = np.ascontiguousarray(maps, dtype=np.float32)
    if image_scores is not None:
        return maps, image_scores.detach().to("cpu", torch.float32).numpy()
    return maps, maps.reshape(len(maps), -1).max(axis=1)
