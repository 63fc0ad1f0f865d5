"""The memory model: predicted peak memory of one category of a run, by phase and part.

All figures are bytes; messages and tables print GB = 1e9 bytes. One category runs in one process
(a sweep job runs in a fresh one), whose peak resident memory is::

    process                             PROCESS_BYTES: interpreter, torch, padim-bench,
                                        scikit-learn / scipy imported
  + backbone parameters x 4             the frozen network's float32 weights (all of them, as loaded)
  + the method's state                  ``Method.predict_memory``: PaDiM mean + covariance factor,
                                        SPADE feature bank, VAE encoder + decoder
  + max(fit, scoring, metrics)          the largest working set of the three phases (below)
  + runtime.workers x WORKER_BYTES      DataLoader decoding processes

Working memory, from the architecture (PyTorch's ``meta`` device, no weights, no pixels):

* the frozen backbone's activations of a batch (methods that run it on every batch):
  ``batch x ACTIVATION_FRACTION x`` the bytes of every layer output of one forward pass (an upper
  bound if all stayed alive; under ``inference_mode`` most are freed); the batch is
  ``runtime.batch_size``, or the number of images when there are fewer;
* the method's own fit and scoring working sets (``Method.predict_memory``: PaDiM's float64
  co-moment, factorisation chunks, batch embeddings and PCA sample; SPADE's batch features,
  gathered gallery and distance blocks; the VAE's gradients, Adam moments, training images and
  training activations);
* scoring keeps the test set's maps and masks (``MAP_BYTES_PER_PIXEL`` per test pixel) beside the
  scoring batches; the metrics then add their sorted copies (``METRIC_BYTES_PER_PIXEL``).

Two views of the one prediction: :attr:`MemoryPrediction.total`, the process's peak, is what the
sweep scheduler requests per job; :meth:`MemoryPrediction.fit_need` is what the fit adds to a
process already running, by where it lives (RAM, GPU memory, disk), which ``run`` checks against
what is available (:mod:`padim_bench.memory.refusal`).

Calibration (CPU, torch 2.14.1, one category per fresh process; peaks are ``ru_maxrss`` /
``VmHWM`` of the job's process): above every measured peak so far. PaDiM-EfficientNet-Lite0-Rd100
on bottle: 2.31 GB predicted, 2.06-2.23 GB measured with 2 torch threads (committed runs), 1.65-1.78
GB with 1 thread (sweep jobs); Table I's variants: 1.2-2.0 x the 1-thread peaks (the largest slack
for ``d = all``, whose float64 co-moment and batch terms do not peak together); PaDiM-WR50-Rd550,
batch 16, no loader workers: 6.2 GB predicted, 5.50-5.61 GB measured (``results/bench/
padim_cpu.md``). More threads need more memory (per-thread buffers), hence the slack; the tests
check the bounds. The total is a host figure: on CUDA the sweep requests it as it is (the state
then lives on the GPU, so it over-estimates host memory); ``fit_need`` splits RAM and GPU memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..methods.base import MethodMemory
from .activations import backbone_activation_bytes

#: interpreter + torch + torchvision + padim-bench's runner, methods, scikit-learn and scipy
#: imported: 0.83 GB resident measured on this project's CPU machine (torch 2.14.1 CPU build; a
#: CUDA build adds about 0.2 GB), plus 0.17 GB for the allocator's arenas, the file lists and the
#: first decoded batch ("RSS before fit" is 1.02-1.11 GB in results/bench/padim_cpu.md, backbone
#: included). ``plan_sweep(process_bytes=...)`` takes another figure.
PROCESS_BYTES = 1_000_000_000
#: one DataLoader worker process (forked, so it shares the parent's pages): decoding buffers and
#: two prefetched batches. An estimate, not a measurement.
WORKER_BYTES = 250_000_000
#: per test pixel: float32 maps and uint8 masks, each as the per-batch list and its concatenation
MAP_BYTES_PER_PIXEL = 10
#: per test pixel, on top of the maps: the float64 / int64 sorted copies of scikit-learn's ROC
#: (measured: 75 bytes per pixel for 83 x 224 x 224 pixels) and of the PRO curve (64)
METRIC_BYTES_PER_PIXEL = 80

BACKBONE_PARAMETERS = "backbone parameters (float32)"
BACKBONE_ACTIVATIONS = "backbone activations of a batch"
TEST_MAPS = "test maps and masks"
LOADER_WORKERS = "DataLoader worker processes"


@dataclass(frozen=True)
class FitMemory:
    """What a fit adds to a running process, in bytes, by part and by where it lives: ``host``
    (RAM), ``device`` (GPU memory when the method computes on CUDA; RAM on the CPU) and ``disk``
    (memory-mapped files)."""

    host: dict[str, int] = field(default_factory=dict)
    device: dict[str, int] = field(default_factory=dict)
    disk: dict[str, int] = field(default_factory=dict)

    def ram(self, on_cuda: bool) -> int:
        """Bytes of RAM: the host parts, plus the device ones when computing on the CPU."""
        return sum(self.host.values()) + (0 if on_cuda else sum(self.device.values()))

    def to_dict(self) -> dict[str, dict[str, int]]:
        """Plain data as recorded in a category's ``memory.fit_memory_check.predicted_fit_bytes``."""
        return {"host": dict(self.host), "device": dict(self.device), "disk": dict(self.disk)}


@dataclass(frozen=True)
class MemoryPrediction:
    """Predicted memory of one category (see the module doc), bytes by part.

    Attributes:
        process: the process before any model (:data:`PROCESS_BYTES` unless given).
        backbone: the frozen backbone's float32 parameters.
        loader: the DataLoader worker processes.
        fit, score, metrics: each phase's working memory by part (the method's own, the
            backbone's activations, the test maps), beyond the state.
        method: the method's own prediction (its state, where its parts live, its advice).
    """

    process: int
    backbone: int
    loader: int
    fit: dict[str, int]
    score: dict[str, int]
    metrics: dict[str, int]
    method: MethodMemory

    @property
    def state(self) -> int:
        """Bytes of the method's fitted state (backbone excluded)."""
        return sum(self.method.state.values())

    @property
    def working(self) -> int:
        """The largest working memory of the three phases."""
        return max(sum(self.fit.values()), sum(self.score.values()), sum(self.metrics.values()))

    @property
    def parts(self) -> dict[str, int]:
        """The peak's summands: ``process``, ``backbone``, ``state``, ``working``,
        ``loader_workers`` (as ``sweep.json`` records them)."""
        return {"process": int(self.process), "backbone": int(self.backbone), "state": int(self.state),
                "working": int(self.working), "loader_workers": int(self.loader)}

    @property
    def total(self) -> int:
        """Predicted peak resident bytes of the process (the sum of :attr:`parts`)."""
        return sum(self.parts.values())

    @property
    def gb(self) -> float:
        """:attr:`total` in GB (1e9 bytes)."""
        return self.total / 1e9

    @property
    def note(self) -> str:
        """What the method's prediction leaves out ('' when nothing)."""
        return self.method.note

    def fit_need(self) -> FitMemory:
        """What the fit adds to a process already running (the process itself excluded): the
        backbone, the state and the fit's working memory, placed where each lives."""
        out = FitMemory()
        if self.loader:
            out.host[LOADER_WORKERS] = int(self.loader)
        out.device[BACKBONE_PARAMETERS] = int(self.backbone)
        for name, value in {**self.method.state, **self.fit}.items():
            place = out.disk if name in self.method.disk else out.host if name in self.method.host else out.device
            if value:
                place[name] = place.get(name, 0) + int(value)
        return out


def predict_memory(cfg: Any, n_train: int, n_test: int, *, size: int | None = None,
                   process_bytes: int = PROCESS_BYTES) -> MemoryPrediction:
    """Predicted memory of one category of ``cfg`` (a :class:`~padim_bench.config.RunConfig`)
    with ``n_train`` training and ``n_test`` test images of ``size`` x ``size`` pixels (default:
    the crop, or the resize without a crop; of a non-square ``[H, W]``, the longer side); see the
    module doc for the model and its calibration.

    Raises:
        ConfigError: unknown method, backbone or layer, or ``d`` larger than the embedding.
    """
    from ..backbones import full_param_count
    from ..data.shapes import output_shape
    from ..methods import METHODS

    m, rt = cfg.method, cfg.runtime
    size = size or max(output_shape(cfg.dataset.resize, cfg.dataset.crop))  # non-square: the longer side
    cls = METHODS.get(m.name).cls
    own = cls.predict_memory(m.params, m.backbone, list(m.layers), size, n_train, n_test, rt.batch_size)
    fit, score = dict(own.fit), dict(own.score)
    if own.runs_backbone:
        act = backbone_activation_bytes(m.backbone, cls.extractor_layers(m.params, list(m.layers)), size)
        fit[BACKBONE_ACTIVATIONS] = min(rt.batch_size, n_train) * act
        score[BACKBONE_ACTIVATIONS] = min(rt.batch_size, n_test) * act
    pixels = n_test * size * size
    score[TEST_MAPS] = pixels * MAP_BYTES_PER_PIXEL
    metrics = {TEST_MAPS: pixels * MAP_BYTES_PER_PIXEL, "metrics' sorted copies": pixels * METRIC_BYTES_PER_PIXEL}
    return MemoryPrediction(process=int(process_bytes), backbone=full_param_count(m.backbone) * 4,
                            loader=rt.workers * WORKER_BYTES, fit=fit, score=score, metrics=metrics, method=own)
