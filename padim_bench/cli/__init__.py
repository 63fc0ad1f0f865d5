"""The ``padim-bench`` command line (Typer): thin commands that call the runner and the readers.

User errors (:class:`~padim_bench.errors.PadimBenchError`) are printed in one line, without a
traceback, and exit with status 2. Nothing else imports this package.

* :mod:`.common`: the app, consoles, shared options, the error line;
* :mod:`.experiments`: ``run``, ``sweep``, ``demo``, ``validate``;
* :mod:`.results`: ``table``, ``check``, ``report``, ``list``.
"""

from .common import _fail, app, main  # noqa: F401  (_fail: the one error line, also for tests)

from . import experiments, results  # noqa: F401,E402  (register the commands)

__all__ = ["app", "main"]
