"""Memory a fit will need, predicted before any image is read, and the refusal rule.

The runner calls :func:`check_run` after scanning the data and before loading the backbone: for
every category (STC: every scene) it predicts the bytes the fit will hold at its peak and compares
them with the memory available now. When a fit will not fit, the run stops with the figures (GB =
1e9 bytes) unless ``runtime.allow_memory_over: true`` (``padim-bench run --force-memory``).

Prediction (bytes; from the architecture on PyTorch's ``meta`` device, no weights, no data):

* every method: the backbone's parameters (float32), one input batch
  (``batch_size x 3 x S x S`` float32) per DataLoader slot (2 per worker, 1 without workers) plus
  the batch on the device, and the tapped feature maps of one batch (float32, counted twice for
  the backbone's intermediate activations);
* PaDiM: the running mean and co-moment in the accumulation dtype (float64 where
  ``accumulate_dtype: auto`` fits them in ``accumulate_max_gb``, as :class:`GaussianGrid` decides),
  four ``chunk_mb`` work buffers, and the PCA's sample matrix under ``reduction: pca``; the fitted
  state (``predict_state_nbytes``) replaces the co-moment chunk by chunk, so the peak is
  the larger of the two;
* SPADE: the feature bank, ``n_train x`` the bytes per image (``predict_state_nbytes``); with
  ``bank: mmap`` it goes to disk and is checked against the free space of ``bank_dir`` instead;
* VAE: the training images as uint8 (it keeps them), its parameters four times (weights,
  gradients, Adam's two moments) and its training batch's activations (counted like the backbone's).

This is a planning figure, not a measurement (``fit peak GB`` in the results is): it leaves out the
interpreter and libraries (about 0.5 to 1 GB, already resident when the check runs) and
allocator slack, so a fit that the check lets through can still come close to the limit. The
paper's 37.0 GB for SPADE on STC (a bank of 5,000 frames at 256) is the case this check exists for.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .errors import PadimBenchError

GB = 1e9


class MemoryRefused(PadimBenchError):
    """A fit predicted to need more memory than is available (and not forced)."""


@dataclass
class FitMemory:
    """Predicted peak of one fit, in bytes, by component: ``host`` (RAM), ``device`` (GPU memory
    when the method computes on CUDA; on CPU these count as RAM) and ``disk`` (memory-mapped)."""

    host: dict[str, int] = field(default_factory=dict)
    device: dict[str, int] = field(default_factory=dict)
    disk: dict[str, int] = field(default_factory=dict)

    def ram(self, on_cuda: bool) -> int:
        """Bytes of RAM: the host components, plus the device ones when computing on the CPU."""
        return sum(self.host.values()) + (0 if on_cuda else sum(self.device.values()))

    def to_dict(self) -> dict[str, dict[str, int]]:
        return {"host": dict(self.host), "device": dict(self.device), "disk": dict(self.disk)}


def available_ram_bytes() -> int:
    """Memory the kernel can give now without swapping (Linux ``MemAvailable``), via psutil;
    ``/proc/meminfo`` directly if psutil fails."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # pragma: no cover - psutil is a dependency
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
        raise PadimBenchError("cannot tell the available memory (no psutil, no /proc/meminfo MemAvailable); "
                              "use --force-memory to run without the check") from None


def available_device_bytes(device: torch.device) -> int | None:
    """Free memory of a CUDA device (``torch.cuda.mem_get_info``), or None on the CPU."""
    if device.type != "cuda":
        return None
    return int(torch.cuda.mem_get_info(device)[0])


def available_disk_bytes(folder: str | Path) -> int:
    """Free bytes on the file system holding ``folder`` (its nearest existing parent)."""
    p = Path(folder).resolve()
    while not p.exists():
        p = p.parent
    return int(shutil.disk_usage(p).free)


def _activations(backbone: str, layers: list[str], size: int, batch: int) -> int:
    from .backbones import layer_shapes

    shapes = layer_shapes(backbone, layers, size)
    return 2 * batch * 4 * sum(c * h * w for c, h, w in shapes.values())


def predict_fit_memory(cfg: Any, n_train: int, size: int) -> FitMemory:
    """Predicted peak memory of fitting ``cfg``'s method on ``n_train`` images of ``size`` x
    ``size`` pixels (see the module doc for what is counted).

    Raises:
        ConfigError: unknown method, backbone or layer (as the runner's name check).
    """
    from .backbones import full_param_count
    from .methods import METHODS

    m, rt = cfg.method, cfg.runtime
    spec = METHODS.get(m.name)
    params = m.params
    layers = spec.cls.extractor_layers(params, list(m.layers))
    batch = rt.batch_size
    slots = 2 * rt.workers if rt.workers else 1
    mem = FitMemory()
    mem.host["input batches"] = slots * batch * 3 * size * size * 4
    mem.device["input batch"] = batch * 3 * size * size * 4
    if m.name == "vae":
        state = spec.cls.predict_state_nbytes(params, m.backbone, list(m.layers), size, n_train)
        train_batch = getattr(params, "batch_size", batch)
        mem.host["training images (uint8)"] = n_train * 3 * size * size
        mem.device["training images (uint8, on the device)"] = n_train * 3 * size * size
        mem.device["parameters, gradients, Adam moments"] = 4 * sum(state.values())
        mem.device["training activations"] = 3 * _activations(m.backbone, list(m.layers), size, train_batch)
        return mem
    mem.device["backbone parameters"] = full_param_count(m.backbone) * 4
    mem.device["feature maps of a batch"] = _activations(m.backbone, layers, size, batch)
    try:
        state = spec.cls.predict_state_nbytes(params, m.backbone, list(m.layers), size, n_train)
    except NotImplementedError:
        return mem
    if m.name == "spade":
        key = "feature bank (float32)"
        if getattr(params, "bank", "memory") == "mmap":
            mem.disk[key] = state["bank"]
        else:
            mem.host[key] = state["bank"]
        return mem
    if m.name == "padim":
        fitted = state["mean"] + state["cov"]
        item = 4
        if params.accumulate_dtype == "float64" or (params.accumulate_dtype == "auto"
                                                    and state["cov"] * 2 <= params.accumulate_max_gb * GB):
            item = 8
        accum = (state["mean"] + state["cov"]) * item // 4
        mem.device["mean and co-moment (accumulation)"] = max(accum, fitted)
        mem.device["work chunks"] = 4 * int(params.chunk_mb * 1e6)
        if params.reduction == "pca":
            from .backbones import layer_shapes

            total = sum(c for c, _, _ in layer_shapes(m.backbone, layers, size).values())
            mem.host["PCA samples"] = 3 * min(params.pca_samples, n_train * (size // 4) ** 2) * total * 4
        return mem
    other = {k: v for k, v in state.items() if k != "backbone"}  # a method of its own: its state
    mem.device.update({f"state: {k}": v for k, v in other.items()})
    return mem


def _gb(n: int | float) -> str:
    return f"{n / GB:.2f} GB"


def _parts(parts: dict[str, int]) -> str:
    return ", ".join(f"{k} {_gb(v)}" for k, v in sorted(parts.items(), key=lambda kv: -kv[1]) if v)


def check_run(cfg: Any, splits: list[Any], device: torch.device, size: int, *,
              ram: int | None = None, device_free: int | None = None) -> dict[str, dict[str, Any]]:
    """Predict every category's fit and refuse the run when one will not fit.

    Args:
        cfg: the run's :class:`~padim_bench.config.RunConfig`.
        splits: the scanned categories (``name`` and ``train``).
        device: where the method computes.
        size: the input side in pixels (crop, or resize without a crop).
        ram, device_free: available bytes (default: measured now; tests pass their own).

    Returns:
        ``{category: {"predicted_fit_bytes": {...}, "predicted_fit_ram_bytes": int,
        "available_ram_bytes": int, ...}}`` for the results.

    Raises:
        MemoryRefused: a category's predicted RAM (or GPU memory, or disk for a memory-mapped
            bank) exceeds what is available and ``runtime.allow_memory_over`` is false; the
            message gives both figures in GB (1e9 bytes), the largest parts and the ways out.
    """
    on_cuda = device.type == "cuda"
    ram = available_ram_bytes() if ram is None else ram
    if device_free is None:
        device_free = available_device_bytes(device)
    allow = bool(getattr(cfg.runtime, "allow_memory_over", False))
    out: dict[str, dict[str, Any]] = {}
    for split in splits:
        mem = predict_fit_memory(cfg, len(split.train), size)
        need_ram = mem.ram(on_cuda)
        need_dev = sum(mem.device.values()) if on_cuda else 0
        need_disk = sum(mem.disk.values())
        disk_free = None
        if need_disk:
            folder = getattr(cfg.method.params, "bank_dir", None) or __import__("tempfile").gettempdir()
            disk_free = available_disk_bytes(folder)
        out[split.name] = {"predicted_fit_bytes": mem.to_dict(), "predicted_fit_ram_bytes": need_ram,
                           "available_ram_bytes": ram, "predicted_fit_device_bytes": need_dev or None,
                           "available_device_bytes": device_free, "forced": allow}
        problems = []
        if need_ram > ram:
            parts = {**mem.host, **({} if on_cuda else mem.device)}
            problems.append(f"about {_gb(need_ram)} of RAM ({_parts(parts)}) but {_gb(ram)} is available")
        if on_cuda and device_free is not None and need_dev > device_free:
            problems.append(f"about {_gb(need_dev)} of GPU memory ({_parts(mem.device)}) but {_gb(device_free)} is free")
        if need_disk and disk_free is not None and need_disk > disk_free:
            problems.append(f"about {_gb(need_disk)} of disk for the memory-mapped bank but {_gb(disk_free)} is free")
        if problems and not allow:
            what = f"{cfg.method.name} with {cfg.method.backbone} on {split.name} ({len(split.train)} training images at {size}x{size})"
            if cfg.method.name == "padim":  # its state does not grow with the number of images
                ways = ["a smaller method.d (the co-moment and factor grow with d squared)",
                        "method.accumulate_dtype: float32 (halves the co-moment)", "a smaller runtime.batch_size"]
            else:
                ways = ["fewer training images" + (" (dataset.train_frames_total or dataset.train_stride)"
                                                   if cfg.dataset.name == "stc" else ""),
                        "a smaller runtime.batch_size"]
            if cfg.method.name == "spade" and getattr(cfg.method.params, "bank", "memory") == "memory":
                ways.insert(0, "method.bank: mmap (the bank on disk)")
            raise MemoryRefused(
                f"{what}: the fit needs {'; and '.join(problems)} (GB = 1e9 bytes). Not started. "
                f"Options: {'; '.join(ways)}; or --force-memory (runtime.allow_memory_over: true) to try anyway")
        if problems:
            import warnings

            warnings.warn(f"{split.name}: the fit needs {'; and '.join(problems)}; continuing (runtime.allow_memory_over)")
    return out
