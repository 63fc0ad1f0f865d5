"""Timed spans shared with other processes: the threshold above which a time figure is flagged as
not a quiet machine's, and which spans of a category record cross it. ``run`` warns as a category
ends; ``table 7`` and the report flag the records (every time figure is kept, flagged, not dropped).
Imports nothing heavy (the tables read records without torch)."""

from __future__ import annotations

from typing import Any

BUSY_CORES = 0.5
"""Mean CPU cores used by other processes during a timed span above which the run warns that its
time figures are not a quiet machine's (``profiling.Span.other_cpu_cores``)."""

#: a category record's ``time`` keys of the cores other processes kept busy, by span
SPAN_KEYS = {"fit": "other_cpu_cores_fit", "batch-1 timing": "other_cpu_cores_timing"}


def busy_cores(category: dict[str, Any], span: str) -> float | None:
    """Mean cores other processes kept busy during ``span`` (``fit`` or ``batch-1 timing``) of a
    category record, or None where the record does not say (a record from before the field, a fit
    from the model cache, a span too short to measure)."""
    v = (category.get("time") or {}).get(SPAN_KEYS[span])
    return float(v) if isinstance(v, (int, float)) else None


def contended(category: dict[str, Any], span: str, threshold: float = BUSY_CORES) -> bool:
    """``span`` of the category record was timed while other processes kept more than
    ``threshold`` cores busy."""
    v = busy_cores(category, span)
    return v is not None and v > threshold
