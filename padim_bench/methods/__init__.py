"""Anomaly-detection methods behind one interface (:class:`~padim_bench.methods.base.Method`).

Importing this package registers every method in :data:`METHODS`.
"""

from .base import METHODS, Method, MethodMemory, MethodSpec, method_class

from . import padim  # noqa: F401,E402  (registers "padim")
from . import spade  # noqa: F401,E402  (registers "spade")
from . import vae  # noqa: F401,E402  (registers "vae")

__all__ = ["METHODS", "Method", "MethodMemory", "MethodSpec", "method_class"]
