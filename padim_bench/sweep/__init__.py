"""Sweeps: a sweep file expanded into jobs (one category of one run each), run by a memory-aware
local process pool or by Ray (``padim-bench sweep``).

Modules: :mod:`~padim_bench.sweep.plan` (expansion, finished jobs, run folders),
:mod:`~padim_bench.sweep.execute` (scheduler, local and Ray backends; a job's predicted memory comes
from :mod:`padim_bench.memory`), :mod:`~padim_bench.sweep.worker` (what a worker runs) and
:mod:`~padim_bench.sweep.driver` (the command: dry run, executor sizing, admission, driving the
jobs) with :mod:`~padim_bench.sweep.tracking` (progress, index, error records).

Nothing is imported here: a worker process loads :mod:`~padim_bench.sweep.worker` before numpy
and torch, so it can set its thread count first.
"""
