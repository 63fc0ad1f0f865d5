"""A regression check as a whole (:func:`run_check`) and its machine-readable forms: JSON
(:func:`to_json`, ``check --format json``) and JUnit XML (:func:`junit_xml`, ``check --junit``).

Exit status of ``padim-bench check`` (:attr:`CheckOutcome.exit_code`): 0 every enforced cell
within tolerance; 1 a cell moved beyond its tolerance (``--direction drop``: fell) or a baseline
category is missing; 2 nothing could be enforced, or bad input (unreadable results, unknown
metric or direction: a one-line error, before any comparison).

JUnit (the common schema of Ant / Jenkins / GitLab / GitHub reporters, written with
:mod:`xml.etree.ElementTree`): one ``<testsuites>`` holding one ``<testsuite>`` for the check,
one ``<testcase>`` per compared cell (``classname`` the category or mean, ``name`` the metric);
a failing cell has a ``<failure type="MOVED|MISSING" message="...">`` naming reference, ours,
difference and tolerance; a cell not enforced is ``<skipped>``; every case's figures are also in
its ``<system-out>``.
"""

from __future__ import annotations

import datetime as _dt
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import check as C
from .errors import PadimBenchError


@dataclass
class CheckOutcome:
    """The compared cells of ``results`` against ``against`` (``paper`` or a baseline path)."""

    results: str
    against: str
    direction: str
    tolerances: dict[str, float]
    rows: list[C.Comparison]
    run_name: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[C.Comparison]:
        return [r for r in self.rows if r.status in C.FAILING]

    @property
    def enforced(self) -> int:
        return sum(r.status != "info" for r in self.rows)

    @property
    def exit_code(self) -> int:
        """0 ok, 1 moved or missing, 2 nothing enforced (module doc)."""
        return 1 if self.failed else 2 if not self.enforced else 0

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.rows)


def run_check(results: str | Path, against: str, tolerance: list[str] | None = None,
              direction: str = "both") -> CheckOutcome:
    """Compare the run at ``results`` with the paper (``against="paper"``) or a baseline run
    (:mod:`padim_bench.check`); a baseline of another config hash adds a warning naming the
    differences.

    Raises:
        PadimBenchError: bad tolerance or direction, unreadable runs, runs that cannot be compared.
    """
    from .store import read_run

    tol = C.parse_tolerances(tolerance)
    C.check_direction(direction)
    record = read_run(results)
    warnings = []
    if against == "paper":
        rows = C.against_paper(record, tol, direction)
    else:
        baseline = read_run(against)
        if baseline.get("config_hash") != record.get("config_hash"):
            diff = C.config_differences(record, baseline)
            warnings.append(f"config hash {record.get('config_hash')} differs from the baseline's "
                            f"{baseline.get('config_hash')}: not the same experiment" + (f" ({'; '.join(diff)})" if diff else ""))
        rows = C.against_baseline(record, baseline, tol, direction)
    return CheckOutcome(str(results), against, direction, tol, rows, record.get("name"), warnings)


def _num(v: float | None) -> str:
    return "undefined" if v is None else f"{v:.2f}"


def cell_line(r: C.Comparison) -> str:
    """``reference 97.74, ours 97.22, diff -0.52 points, tolerance 0.10 points`` (ours ``missing``)."""
    ours = "missing" if r.status == "MISSING" else _num(r.ours)
    diff = "" if r.diff is None else f", diff {r.diff:+.2f} points"
    return f"reference {_num(r.reference)}, ours {ours}{diff}, tolerance {_num(r.tolerance)} points"


def to_json(outcome: CheckOutcome) -> dict[str, Any]:
    """Plain data: what was checked, every cell (percent; diff and tolerance in points) and the
    counts by status, with the exit code."""
    return {
        "results": outcome.results, "against": outcome.against, "run": outcome.run_name,
        "direction": outcome.direction, "tolerances_points": outcome.tolerances,
        "exit_code": outcome.exit_code, "warnings": outcome.warnings,
        "summary": {"cells": len(outcome.rows), "enforced": outcome.enforced,
                    **{s: outcome.count(s) for s in ("ok", "improved", "MOVED", "MISSING", "info")}},
        "cells": [{"where": r.where, "metric": r.metric, "reference": r.reference, "ours": r.ours, "diff": r.diff,
                   "tolerance": r.tolerance, "status": r.status} for r in outcome.rows],
    }


def junit_xml(outcome: CheckOutcome) -> bytes:
    """The JUnit XML document of ``outcome`` (module doc), UTF-8 with its declaration."""
    failures, skipped = len(outcome.failed), outcome.count("info")
    counts = {"tests": str(len(outcome.rows)), "failures": str(failures), "errors": "0", "skipped": str(skipped),
              "time": "0"}
    name = f"padim-bench check {outcome.results} against {outcome.against}"
    root = ET.Element("testsuites", {"name": name, **counts})
    suite = ET.SubElement(root, "testsuite", {
        "name": name, **counts, "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")})
    props = ET.SubElement(suite, "properties")
    for key, value in [("direction", outcome.direction), ("run", outcome.run_name or ""),
                       *((f"tolerance.{k}", f"{v:g}") for k, v in outcome.tolerances.items())]:
        ET.SubElement(props, "property", {"name": key, "value": str(value)})
    for r in outcome.rows:
        case = ET.SubElement(suite, "testcase", {"classname": r.where, "name": r.metric, "time": "0"})
        line = cell_line(r)
        if r.status in C.FAILING:
            verb = "is missing" if r.status == "MISSING" else "moved beyond its tolerance"
            ET.SubElement(case, "failure", {"type": r.status, "message": f"{r.where} {r.metric} {verb}: {line}"}).text = \
                f"{r.status}: {r.where} {r.metric}: {line} (direction {outcome.direction})"
        elif r.status == "info":
            ET.SubElement(case, "skipped", {"message": f"not enforced: {line}"})
        ET.SubElement(case, "system-out").text = f"{r.status}: {line}"
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def check_output_file(path: Path, option: str) -> None:
    """Refuse an output file whose folder is missing or that is a folder, before any work.

    Raises:
        PadimBenchError: naming ``option`` and the path.
    """
    if path.is_dir():
        raise PadimBenchError(f"{option} {path}: is a folder; give a file name")
    if not path.parent.is_dir():
        raise PadimBenchError(f"{option} {path}: the folder {path.parent} does not exist or is not a folder")
