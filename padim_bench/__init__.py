"""padim-bench: reproduce and benchmark the PaDiM paper (Defard et al., ICPR 2020 workshops).

The package is laid out along the data flow::

    config -> data (datasets, transforms) -> backbones (feature taps) -> methods (PaDiM, ...)
           -> metrics (ROC-AUC, PRO) -> profiling (time, memory) -> steps (fit, score, time, evaluate)
           -> runner -> store (the run folder, results files) -> output (tables)

``cli`` is the only module that knows about the command line; nothing imports it.
"""

__version__ = "0.1.0"
