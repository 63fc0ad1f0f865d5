"""Memory available now: RAM, a CUDA device's free memory, free disk space (bytes)."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from ..errors import PadimBenchError


def available_ram_bytes() -> int:
    """Memory the kernel can give now without swapping (Linux ``MemAvailable``), via psutil;
    ``/proc/meminfo`` directly if psutil fails.

    Raises:
        PadimBenchError: neither psutil nor ``/proc/meminfo`` tells it.
    """
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
