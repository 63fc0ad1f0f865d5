"""``run``'s memory check: every category's fit predicted before any image is read, and refused
when it will not fit.

The runner calls :func:`check_run` after scanning the data and before loading the backbone: for
every category (STC: every scene) it takes what the fit adds to the running process
(:meth:`~padim_bench.memory.model.MemoryPrediction.fit_need`: the backbone, the method's state
and the fit's working memory, placed in RAM, GPU memory or on disk) and compares it with what is
available now. When a fit will not fit, the run stops with the figures (GB = 1e9 bytes) unless
``runtime.allow_memory_over: true`` (``padim-bench run --force-memory``).

This is a planning figure, not a measurement (``fit peak GB`` in the results is): the process
itself is already resident when the check runs and is left out; allocator slack is not modelled,
so a fit the check lets through can still come close to the limit. The paper's 37.0 GB for SPADE
on STC (a bank of 5,000 frames at 256) is the case this check exists for.
"""

from __future__ import annotations

import tempfile
import warnings
from typing import Any

import torch

from ..errors import PadimBenchError
from . import system
from .model import FitMemory, predict_memory

GB = 1e9


class MemoryRefused(PadimBenchError):
    """A fit predicted to need more memory than is available (and not forced)."""


def _gb(n: int | float) -> str:
    return f"{n / GB:.2f} GB"


def _parts(parts: dict[str, int]) -> str:
    return ", ".join(f"{k} {_gb(v)}" for k, v in sorted(parts.items(), key=lambda kv: -kv[1]) if v)


def _problems(mem: FitMemory, on_cuda: bool, ram: int, device_free: int | None, disk_free: int | None) -> list[str]:
    """What exceeds what is available, in words (empty when the fit fits)."""
    out = []
    need_ram = mem.ram(on_cuda)
    if need_ram > ram:
        parts = {**mem.host, **({} if on_cuda else mem.device)}
        out.append(f"about {_gb(need_ram)} of RAM ({_parts(parts)}) but {_gb(ram)} is available")
    need_dev = sum(mem.device.values())
    if on_cuda and device_free is not None and need_dev > device_free:
        out.append(f"about {_gb(need_dev)} of GPU memory ({_parts(mem.device)}) but {_gb(device_free)} is free")
    need_disk = sum(mem.disk.values())
    if need_disk and disk_free is not None and need_disk > disk_free:
        out.append(f"about {_gb(need_disk)} of disk ({_parts(mem.disk)}, memory-mapped) but {_gb(disk_free)} is free")
    return out


def _ways(cfg: Any, advice: tuple[str, ...], grows_with_train: bool) -> list[str]:
    """Ways out of a refusal: the method's own, then fewer images (where that helps; naming the
    dataset's keys that thin its training images, :attr:`padim_bench.data.Dataset.thinning_keys`),
    then a smaller batch."""
    from ..data import dataset_class

    ways = list(advice)
    if grows_with_train:
        keys = dataset_class(cfg.dataset.name).thinning_keys
        ways.append("fewer training images" + (f" ({keys})" if keys else ""))
    return ways + ["a smaller runtime.batch_size"]


def check_run(cfg: Any, splits: list[Any], device: torch.device, size: int, *,
              ram: int | None = None, device_free: int | None = None) -> dict[str, dict[str, Any]]:
    """Predict every category's fit and refuse the run when one will not fit.

    Args:
        cfg: the run's :class:`~padim_bench.config.RunConfig`.
        splits: the scanned categories (``name``, ``train`` and ``test``, lists of samples).
        device: where the method computes.
        size: the input side in pixels (crop, or resize without a crop).
        ram, device_free: available bytes (default: measured now; tests pass their own).

    Returns:
        ``{category: {"predicted_fit_bytes": {"host": {...}, "device": {...}, "disk": {...}},
        "predicted_fit_ram_bytes": int, "available_ram_bytes": int,
        "predicted_fit_device_bytes": int | None, "available_device_bytes": int | None,
        "forced": bool}}`` for the results.

    Raises:
        MemoryRefused: a category's predicted RAM (or GPU memory, or disk for a memory-mapped
            bank) exceeds what is available and ``runtime.allow_memory_over`` is false; the
            message gives both figures in GB (1e9 bytes), the largest parts and the ways out.
        ConfigError: unknown method, backbone or layer.
    """
    on_cuda = device.type == "cuda"
    ram = system.available_ram_bytes() if ram is None else ram
    if device_free is None:
        device_free = system.available_device_bytes(device)
    allow = bool(cfg.runtime.allow_memory_over)
    out: dict[str, dict[str, Any]] = {}
    for split in splits:
        pred = predict_memory(cfg, len(split.train), len(split.test), size=size)
        mem = pred.fit_need()
        need_dev = sum(mem.device.values()) if on_cuda else 0
        disk_free = None
        if mem.disk:
            disk_free = system.available_disk_bytes(pred.method.disk_folder or tempfile.gettempdir())
        out[split.name] = {"predicted_fit_bytes": mem.to_dict(), "predicted_fit_ram_bytes": mem.ram(on_cuda),
                           "available_ram_bytes": ram, "predicted_fit_device_bytes": need_dev or None,
                           "available_device_bytes": device_free, "forced": allow}
        problems = _problems(mem, on_cuda, ram, device_free, disk_free)
        if problems and not allow:
            m = cfg.method
            what = f"{m.name} with {m.backbone} on {split.name} ({len(split.train)} training images at {size}x{size})"
            raise MemoryRefused(
                f"{what}: the fit needs {'; and '.join(problems)} (GB = 1e9 bytes). Not started. "
                f"Options: {'; '.join(_ways(cfg, pred.method.advice, pred.method.grows_with_train))}; "
                "or --force-memory (runtime.allow_memory_over: true) to try anyway")
        if problems:
            warnings.warn(f"{split.name}: the fit needs {'; and '.join(problems)}; continuing (runtime.allow_memory_over)")
    return out
