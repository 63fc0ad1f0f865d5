"""Experiment configuration: frozen dataclasses loaded strictly from YAML.

- :mod:`.schema`: the dataclasses (one per section of a config file) and the config and run hashes.
- :mod:`.builder`: strict construction of a dataclass from plain data (unknown keys, wrong types).
- :mod:`.loading`: YAML reading, command-line overrides, validation, :func:`load_config`.
- :mod:`.experiments`: experiment files (``extends``, variants x axes x seeds).
"""

from .builder import build_dataclass
from .experiments import ExperimentRun, axis_label, expand_experiments, is_experiment_file, load_experiments
from .loading import apply_overrides, config_from_dict, load_config, read_yaml, set_dotted, validate
from .schema import (
    INTERPOLATIONS,
    METRIC_NAMES,
    DatasetConfig,
    EvaluationConfig,
    MethodConfig,
    OutputConfig,
    RunConfig,
    RuntimeConfig,
)

__all__ = [
    "INTERPOLATIONS", "METRIC_NAMES", "DatasetConfig", "EvaluationConfig", "ExperimentRun",
    "MethodConfig", "OutputConfig", "RunConfig", "RuntimeConfig", "apply_overrides", "axis_label",
    "build_dataclass", "config_from_dict", "expand_experiments", "is_experiment_file", "load_config",
    "load_experiments", "read_yaml", "set_dotted", "validate",
]
