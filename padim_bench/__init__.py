"""padim-bench: reproduce and benchmark the PaDiM paper (Defard et al., ICPR 2020 workshops).

The package is laid out along the data flow::

    config -> data (datasets, transforms) -> backbones (feature taps) -> methods (PaDiM, ...)
           -> metrics (ROC-AUC, PRO) -> profiling (time, memory) -> runner -> output (tables, files)

``cli`` is the only module that knows about the command line; nothing imports it.
"""

__version__ = "0.1.0"
