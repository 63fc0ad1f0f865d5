"""One memory model for ``run``'s refusal and the sweep scheduler.

* :mod:`~padim_bench.memory.model`: the prediction of one category (process, backbone, the
  method's own prediction through ``Method.predict_memory``, test maps, loader workers), its
  calibration and its two views (the process's peak; what a fit adds);
* :mod:`~padim_bench.memory.refusal`: ``run``'s check against the memory available now;
* :mod:`~padim_bench.memory.system`: what is available (RAM, GPU memory, disk);
* :mod:`~padim_bench.memory.activations`: activation bytes from the architecture (``meta`` device).
"""

from .activations import ACTIVATION_FRACTION, backbone_activation_bytes, forward_output_bytes
from .model import PROCESS_BYTES, WORKER_BYTES, FitMemory, MemoryPrediction, predict_memory
from .refusal import MemoryRefused, check_run
from .system import available_device_bytes, available_disk_bytes, available_ram_bytes

__all__ = ["ACTIVATION_FRACTION", "PROCESS_BYTES", "WORKER_BYTES", "FitMemory", "MemoryPrediction", "MemoryRefused",
           "available_device_bytes", "available_disk_bytes", "available_ram_bytes", "backbone_activation_bytes",
           "check_run", "forward_output_bytes", "predict_memory"]
