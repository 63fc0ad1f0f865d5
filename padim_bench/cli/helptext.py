"""How ``--help`` shows parameters: no type placeholder on a flag (``--force``, not ``--force
<bool>``), and a value's kind in words (``TEXT``, ``PATH``, ``INTEGER``) instead of Typer's
``<str>`` / ``<list[str]>``; an explicit ``metavar`` is kept. The command and group classes of
every command (set in :mod:`padim_bench.cli`); the descriptions are wrapped at word boundaries by
Typer's Markdown mode (``rich_markup_mode="markdown"`` in :mod:`.common`)."""

from __future__ import annotations

import functools
from pathlib import PurePath
from typing import Any, get_args, get_origin

import typer.core

_KINDS = {str: "TEXT", int: "INTEGER", float: "NUMBER", bool: "BOOLEAN"}


def value_label(param: Any, ctx: Any = None) -> str | None:
    """What ``--help`` shows in a parameter's type column: nothing for a flag, its ``metavar``
    where given, else the kind of its values (a list's: of one element; the help says when an
    option repeats)."""
    if getattr(param, "is_flag", False):
        return None
    if param.metavar is not None:
        return param.metavar
    kind = param.type_descriptor.annotation
    if get_origin(kind) is list and get_args(kind):
        kind = get_args(kind)[0]
    if isinstance(kind, type) and issubclass(kind, PurePath):
        return "PATH"
    return _KINDS.get(kind) or getattr(kind, "__name__", str(kind)).upper()


def _plain(params: list[Any]) -> list[Any]:
    for p in params:
        if hasattr(p, "type_descriptor"):
            p.display_type_rich = functools.partial(value_label, p)  # this parameter object only
    return params


class PlainHelpCommand(typer.core.TyperCommand):
    """A command whose ``--help`` shows parameters as the module doc says."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _plain(super().get_params(ctx))


class PlainHelpGroup(typer.core.TyperGroup):
    """The command group (``padim-bench --help``), with its options shown as the module doc says."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _plain(super().get_params(ctx))
