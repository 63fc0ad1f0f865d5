"""The consoles every command prints with: complete output without a terminal.

Rich sizes its output to the terminal, and without one (a CI log, a pipe, a file) to 80 columns,
which truncates a table's names and numbers to ``image_ro…``. A console made here renders, when
its stream is not a terminal and ``COLUMNS`` is not set, at :data:`LOG_WIDTH` columns: a table
takes the width its cells need (rich tables do not stretch), so nothing is cut or wrapped.
Set ``COLUMNS`` to choose another width; on a terminal rich's own sizing applies.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console, ConsoleDimensions

LOG_WIDTH = 10_000
"""Columns of a console whose stream is not a terminal (no table of this tool comes near it)."""


class _LogConsole(Console):
    """A rich Console whose width is :data:`LOG_WIDTH` when its stream is not a terminal and
    neither ``COLUMNS`` nor an explicit width is set (checked at each print: the stream may change,
    e.g. under a test runner)."""

    def _get_size(self) -> ConsoleDimensions:
        size = Console.size.fget(self)
        if self._width is None and not self.is_terminal and not self._environ.get("COLUMNS", "").isdigit():
            return ConsoleDimensions(LOG_WIDTH, size.height)
        return size

    size = property(_get_size, Console.size.fset)


def make_console(stderr: bool = False, **kwargs: Any) -> Console:
    """A rich Console on stdout (or stderr) with the policy of the module doc; ``kwargs`` go to
    :class:`rich.console.Console` (``file``, ``width``, ``quiet``...)."""
    return _LogConsole(stderr=stderr, **kwargs)
