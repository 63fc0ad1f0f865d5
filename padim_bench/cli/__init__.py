"""The ``padim-bench`` command line (Typer): thin commands that call the runner and the readers.

User errors (:class:`~padim_bench.errors.PadimBenchError`) are printed in one line, without a
traceback, and exit with status 2. Nothing else imports this package.

* :mod:`.common`: the app, consoles, shared options, the error line; :mod:`.helptext`: how
  ``--help`` shows parameters;
* :mod:`.experiments`: ``run``, ``sweep``, ``demo``, ``validate``;
* :mod:`.results`: ``table``, ``check``, ``report``, ``list``.
"""

import typer.core

from .common import _fail, app, main  # noqa: F401  (_fail: the one error line, also for tests)

from . import experiments, results  # noqa: F401,E402  (register the commands)
from .helptext import PlainHelpCommand  # noqa: E402

for _info in app.registered_commands:  # every command's --help without type placeholders (.helptext)
    if _info.cls in (None, typer.core.TyperCommand):
        _info.cls = PlainHelpCommand

__all__ = ["app", "main"]
