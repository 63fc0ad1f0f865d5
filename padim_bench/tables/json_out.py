"""A paper table as plain data (``padim-bench table N --format json``): every cell's numbers as
the other formats print them, and its text (:func:`padim_bench.tables.render.cell_text`)."""

from __future__ import annotations

import dataclasses
from typing import Any

from .cells import TableData
from .render import cell_text


def to_json(data: TableData) -> dict[str, Any]:
    """``title``, ``unit``, ``columns`` (``column``, ``metric``), ``rows`` (``label`` and one
    cell per column: ``paper``, ``tag``, ``ours``, ``diff``, ``spread``, ``runs``, ``covered``,
    ``of``, ``text``) and ``notes``; values in the table's unit (percent, seconds or GB)."""
    def cell(c: Any) -> dict[str, Any]:
        return {**dataclasses.asdict(c), "diff": c.diff, "text": cell_text(c, data.unit)}

    return {"title": data.title, "unit": data.unit, "columns": [{"column": c, "metric": m} for c, m in data.columns],
            "rows": [{"label": label, "cells": [cell(c) for c in cells]} for label, cells in data.rows],
            "notes": list(data.notes)}
