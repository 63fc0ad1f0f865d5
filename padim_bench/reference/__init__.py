"""The PaDiM paper's reported numbers (``paper.yaml``), with their confirmation tags.

``tag`` "2": confirmed by two or more sources (hard regression anchors); "1": one secondary
source; "?": unconfirmed. Loaded with ``yaml.safe_load``; the parsed text is kept per file version
(path, modification time, size) and every call gets its own copy, so an edited file is read again
and no caller sees another's changes.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PAPER_FILE = Path(__file__).with_name("paper.yaml")


@dataclass(frozen=True)
class PaperCell:
    """One reported number: ``row`` (a key of the rows), ``column`` (category, group or dataset),
    ``metric``, ``value`` (percent for metrics), ``tag`` and optional extra settings."""

    table: str
    row: str
    column: str
    metric: str
    value: float
    tag: str
    extra: dict[str, Any] = field(default_factory=dict)


def load_paper() -> dict[str, Any]:
    """The parsed ``paper.yaml`` (a fresh copy; a table reads it hundreds of times)."""
    st = PAPER_FILE.stat()
    return copy.deepcopy(_parsed(str(PAPER_FILE), st.st_mtime_ns, st.st_size))


@functools.lru_cache(maxsize=4)
def _parsed(path: str, mtime_ns: int, size: int) -> dict[str, Any]:
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


def table_ids() -> list[str]:
    """Table numbers present in the reference ("1" .. "8")."""
    return sorted(load_paper()["tables"], key=int)


def rows(table: str) -> dict[str, dict[str, Any]]:
    """Row specifications of ``table``: the table's own first (they are more specific), then the
    shared rows."""
    paper = load_paper()
    own = paper["tables"][table].get("rows", {})
    return {**own, **{k: v for k, v in paper["rows"].items() if k not in own}}


def cells(table: str) -> list[PaperCell]:
    """Every reported cell of ``table``."""
    spec = load_paper()["tables"][table]
    out = []
    for c in spec.get("cells", []):
        row, column, metric, value, tag, *extra = c
        out.append(PaperCell(table, row, column, metric, float(value), str(tag), extra[0] if extra else {}))
    return out
