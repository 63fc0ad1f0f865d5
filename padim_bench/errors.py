"""Exception types shared by every stage.

Every error a user can cause (bad config, bad data, missing weights) is a :class:`PadimBenchError`
with a message that names the file, key or value at fault. The CLI prints these without a traceback
and exits with status 2; any other exception is a bug and keeps its traceback.
"""


class PadimBenchError(Exception):
    """Base class of user-facing errors (configuration, data, weights)."""


class ConfigError(PadimBenchError):
    """A configuration file or override is invalid (unknown key, wrong type, bad value)."""


class DataError(PadimBenchError):
    """A dataset folder or file is missing, unreadable or inconsistent."""


class WeightsError(PadimBenchError):
    """Backbone weights are unavailable (not cached and cannot be downloaded)."""
