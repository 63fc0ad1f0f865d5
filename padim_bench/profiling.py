"""Wall-clock timing and peak-memory measurement of a code span.

Peak process memory is the resident-set high-water mark: on Linux the kernel's ``VmHWM`` is reset
at the start of the span (``/proc/self/clear_refs``, value 5) and read at its end, so the figure
covers exactly the span; elsewhere a background thread samples the RSS with psutil every 5 ms (a
lower bound). On CUDA, ``torch.cuda.max_memory_allocated`` is reset and read as well. Memory is
reported in bytes; tables convert to GB = 1e9 bytes.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import torch

_STATUS = Path("/proc/self/status")
_CLEAR = Path("/proc/self/clear_refs")


MIN_CPU_SPAN_S = 1.0
"""Shortest span (seconds) whose ``other_cpu_cores`` is computed (tick granularity, see Span)."""


def _vm_hwm() -> int | None:
    try:
        m = re.search(r"VmHWM:\s+(\d+) kB", _STATUS.read_text())
    except OSError:
        return None
    return int(m.group(1)) * 1024 if m else None


def _reset_hwm() -> bool:
    try:
        _CLEAR.write_text("5")
    except OSError:
        return False
    return _vm_hwm() is not None


@dataclass
class Span:
    """Result of :func:`measure`: seconds, peak RSS bytes, peak CUDA bytes, the RSS at the start of
    the span (the baseline: interpreter, libraries, loaded model), the RSS method, and
    ``other_cpu_cores``: the mean number of CPU cores other processes (or, on a virtual machine,
    the hypervisor: steal time) kept busy during the span
    (machine-wide busy CPU time minus this process's and its reaped children's, over the wall
    time; None where psutil cannot tell). Above about half a core, the span's time is not what
    a quiet machine gives. Spans shorter than ``MIN_CPU_SPAN_S`` get None: the kernel counts
    machine-wide CPU time in clock ticks (4-10 ms), too coarse for them."""

    seconds: float = 0.0
    other_cpu_cores: float | None = None
    peak_rss_bytes: int = 0
    peak_cuda_bytes: int | None = None
    start_rss_bytes: int = 0
    rss_method: str = ""
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)


class measure:
    """Context manager timing a span (``time.perf_counter``) and its peak memory.

    Example::

        with measure(device) as span:
            model.fit(loader)
        span.seconds, span.peak_rss_bytes
    """

    def __init__(self, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.span = Span()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        proc = psutil.Process()
        while not self.span._stop.wait(0.005):
            self.span.peak_rss_bytes = max(self.span.peak_rss_bytes, proc.memory_info().rss)

    def __enter__(self) -> Span:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        self.span.start_rss_bytes = psutil.Process().memory_info().rss
        if _reset_hwm():
            self.span.rss_method = "VmHWM (kernel high-water mark, reset at span start)"
        else:
            self.span.rss_method = "psutil RSS sampled every 5 ms"
            self.span.peak_rss_bytes = psutil.Process().memory_info().rss
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        self._load = OtherCpuLoad().start()
        self._t0 = time.perf_counter()
        return self.span

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.span.seconds = time.perf_counter() - self._t0
        self.span.other_cpu_cores = self._load.stop().cores
        if self._thread is not None:
            self.span._stop.set()
            self._thread.join()
        else:
            self.span.peak_rss_bytes = _vm_hwm() or 0
        if self.device.type == "cuda":
            self.span.peak_cuda_bytes = int(torch.cuda.max_memory_allocated(self.device))


def _cpu_seconds() -> tuple[float, float] | None:
    """(busy CPU seconds of the whole machine, CPU seconds of this process and its reaped
    children) since boot / start; None where psutil cannot read them."""
    try:
        t = psutil.cpu_times()
        own = psutil.Process().cpu_times()
    except (psutil.Error, OSError):
        return None
    busy = sum(t) - t.idle - getattr(t, "iowait", 0.0) - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)
    return busy, own.user + own.system + own.children_user + own.children_system


class OtherCpuLoad:
    """Mean CPU cores that other processes (or the hypervisor: steal time) kept busy between
    :meth:`start` and :meth:`stop` (or over a ``with`` block): machine-wide busy CPU time minus
    this process's and its reaped children's, over the wall time, at most the machine's cores.
    ``cores`` stays None for spans shorter than ``MIN_CPU_SPAN_S`` (the kernel counts CPU time in
    4-10 ms ticks) or where psutil cannot read the counters. Used by :class:`measure` and by the
    benchmarks' contention checks."""

    cores: float | None = None

    def start(self) -> "OtherCpuLoad":
        self._t0, self._cpu0 = time.perf_counter(), _cpu_seconds()
        return self

    def stop(self) -> "OtherCpuLoad":
        wall, cpu1 = time.perf_counter() - self._t0, _cpu_seconds()
        if self._cpu0 is not None and cpu1 is not None and wall >= MIN_CPU_SPAN_S:
            machine, own = (b - a for a, b in zip(self._cpu0, cpu1))
            self.cores = min(float(psutil.cpu_count() or 1), max(0.0, (machine - own) / wall))
        return self

    def __enter__(self) -> "OtherCpuLoad":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def gemm_rate(device: torch.device | str = "cpu", seconds: float = 0.2) -> float:
    """Measured float32 matrix-product throughput of ``device`` now, in multiply-adds per second.

    Times ``(1024 x 512) @ (512 x 2048)`` products (the shape of a kNN distance block) for about
    ``seconds`` after one warm-up; used to turn a predicted number of multiply-adds into a
    predicted time. It reflects the machine's load at the moment it runs.
    """
    device = torch.device(device)
    g = torch.Generator().manual_seed(0)
    a = torch.rand(1024, 512, generator=g).to(device)
    b = torch.rand(512, 2048, generator=g).to(device)
    macs = 1024 * 512 * 2048
    torch.mm(a, b)
    n, t0 = 0, time.perf_counter()
    while True:
        torch.mm(a, b)
        n += 1
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            return n * macs / elapsed
