"""Building a paper table from the paper's cells (``padim_bench/reference/paper.yaml``) and the
measured run records: one row per paper row (the runs that reproduce it beside its values), per
same experiment on another backbone, and per experiment the paper does not have."""

from __future__ import annotations

import statistics
from typing import Any

from .. import reference
from ..data import dataset_class, record_dataset
from ..errors import PadimBenchError
from .cells import (GROUP_KINDS, Cell, TableData, analog_row_for, dataset_name, extra_label, group_size, in_table,
                    measured_value, row_for, table_dataset)
from .notes import (contended_tag, contention_notes, same_backbone_ratios, synthetic_notes, table6_drops,
                    table7_ratios)
from .table8 import build_table8

#: what the paper values' tags mean (paper.yaml; the CSV's ``tag`` column)
TAG_NOTE = ("the paper's values are tagged (the CSV's tag column): 2 = confirmed by two or more sources, "
            "1 = by one source only (marked ¹), ? = unconfirmed (marked ?)")
#: the last note of every table but VIII, with the tags' marks
TABLE_LEGEND = ("paper value → ours (difference); a value alone is the paper's, not measured here; paper values "
                "unmarked are confirmed by two or more sources (tag 2), ¹ by one source only (tag 1), ? unconfirmed "
                "(tag ?); [n/N] = categories in our mean / in the paper's")


def build(table: str, records: list[dict[str, Any]]) -> list[TableData]:
    """Table ``table`` ("1" .. "8") from the paper's cells and the measured ``records``; Table III
    comes as two parts (textures / objects / all, then per category). Runs of datasets whose
    results go in other tables are left out, with a note naming them.

    Raises:
        PadimBenchError: unknown table number.
    """
    if table not in reference.table_ids():
        raise PadimBenchError(f"unknown table {table!r}; the paper has tables {', '.join(reference.table_ids())}")
    if table == "8":
        eight = build_table8(records)
        eight.notes.append(TAG_NOTE)
        return [eight]
    kept = [r for r in records if in_table(table, r)]
    left_out = [r for r in records if not in_table(table, r)]
    pcells = reference.cells(table)
    if table == "3":
        groups = [c for c in pcells if c.column in GROUP_KINDS]
        per_class = [c for c in pcells if c.column not in GROUP_KINDS]
        parts = [_build(table, kept, groups), _build(table, kept, per_class, " (per category)")]
        parts[1].per_category = True
    else:
        parts = [_build(table, kept, pcells)]
    for note in reversed(_left_out_notes(table, left_out)):
        for part in parts:
            part.notes.insert(0, note)
    return parts


def _table_name(table: str) -> str:
    """``Table IV`` (the paper's numbering, from the table's title)."""
    return reference.load_paper()["tables"][table]["title"].split(":")[0]


def _left_out_notes(table: str, records: list[dict[str, Any]]) -> list[str]:
    """One note per dataset whose runs are not this table's, saying where they go."""
    own = dataset_class(table_dataset(table)).label()
    tables_of: dict[str | None, list[str]] = {}
    for t in reference.table_ids():
        tables_of.setdefault(table_dataset(t), []).append(t)
    groups: dict[str | None, list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault(record_dataset(r).paper_tables, []).append(r)
    notes = []
    for target, recs in groups.items():
        theirs = tables_of.get(target, []) if target is not None else []
        if len(theirs) == 1:
            why = f"{dataset_class(target).label()} runs; they go in {_table_name(theirs[0])}"
        else:
            why = f"not {own} runs; {_table_name(table)} is {own}'s"
        notes.append(f"left out ({why}): " + ", ".join(str(r.get("_path", r.get("name", "run"))) for r in recs))
    return notes


def _columns(table: str, pcells: list[reference.PaperCell]) -> list[tuple[str, str]]:
    """The paper's ``(column, metric)`` pairs in order, then the table's extra columns
    (``paper.yaml: extra_columns``, e.g. Table IV's mean over scenes and frame-level ROC-AUC)."""
    columns: list[tuple[str, str]] = []
    for c in pcells:
        if (c.column, c.metric) not in columns:
            columns.append((c.column, c.metric))
    extra = [tuple(c) for c in reference.load_paper()["tables"][table].get("extra_columns", [])]
    return columns + [c for c in extra if c not in columns]


def _group_rows(table: str, records: list[dict[str, Any]]) -> tuple[dict[str, list], dict[str, str], dict[str, str]]:
    """The runs grouped into rows: ``(grouped, analog_of, split_of)``; ``grouped`` maps a row key
    to its runs, ``analog_of`` a row to the paper row it is the same experiment as (on another
    backbone), ``split_of`` a row to the key it was split from (runs with other flags or other
    categories are not averaged into one row)."""
    row_specs = reference.rows(table)
    grouped: dict[str, list[dict[str, Any]]] = {}
    analog_of: dict[str, str] = {}
    by_cats: dict[str, set[tuple[str, ...]]] = {}
    split_of: dict[str, str] = {}
    for rec in records:
        key = row_for(table, rec)
        if key is None and (analog := analog_row_for(table, rec)) is not None:
            key = f"{row_specs[analog]['label']} — ours with {rec['config']['method']['backbone']}"
            analog_of[key] = analog
        key = key or extra_label(rec)
        by_cats.setdefault(key, set()).add(_category_set(rec))
        grouped.setdefault(key, []).append(rec)
    for key in list(grouped):  # runs that are not the same experiment are not averaged into one row
        parts: dict[str, list[dict[str, Any]]] = {}
        for rec in grouped[key]:
            flags = [f for f, on in (("RANDOM weights", rec["config"]["method"].get("weights") == "random"),
                                     ("SYNTHETIC data", bool(rec.get("synthetic_data")))) if on]
            cats = ", ".join(_category_set(rec)) if len(by_cats[key]) > 1 else ""
            tag = f"{key} [{', '.join(flags)}]" if flags else key
            parts.setdefault(f"{tag} ({cats})" if cats else tag, []).append(rec)
        if list(parts) != [key]:
            del grouped[key]
            for tag, rs in parts.items():
                grouped[tag] = rs
                split_of[tag] = key
                if key in row_specs or key in analog_of:
                    analog_of[tag] = analog_of.get(key, key)
    return grouped, analog_of, split_of


def _build(table: str, records: list[dict[str, Any]], pcells: list[reference.PaperCell], suffix: str = "") -> TableData:
    spec = reference.load_paper()["tables"][table]
    columns = _columns(table, pcells)
    row_specs = reference.rows(table)
    grouped, analog_of, split_of = _group_rows(table, records)
    row_keys = []
    for k in row_specs:
        if any(c.row == k for c in pcells) or k in grouped:
            row_keys.append(k)
        row_keys += [a for a, src in analog_of.items() if src == k]
    row_keys += [k for k in grouped if k not in row_keys]
    data = TableData(spec["title"] + suffix, columns, unit="s" if table == "7" else "%")
    for key in row_keys:
        recs = grouped.get(key, [])
        paper_key = analog_of.get(key, key)
        base = split_of.get(key, key)
        label = (row_specs[base]["label"] if base in row_specs else base) + key[len(base):]  # + this group's tag
        tag = key[len(base):]  # the paper's own row, not flagged; Table VII's times hold with random weights
        genuine = base == paper_key and ("[" not in tag or (table == "7" and "SYNTHETIC" not in tag))
        dataset = dataset_name(recs[0]) if recs else table_dataset(table)  # whose groups the row's means are
        if table == "7":
            label += contended_tag(recs)  # after the ratios' " [" split point: the row stays matched
        data.rows.append((label, [_cell(pcells, recs, paper_key if genuine else None, column, metric, dataset)
                                  for column, metric in columns]))
    if table == "7":
        data.notes += table7_ratios(data) + same_backbone_ratios(records) + contention_notes(records)
    if table == "6":
        data.notes += table6_drops(records)
    data.notes += dataset_class(table_dataset(table)).table_notes(records)
    data.notes += synthetic_notes(records)
    data.notes.append(TABLE_LEGEND)
    return data


def _cell(pcells: list[reference.PaperCell], recs: list[dict[str, Any]], paper_row: str | None, column: str,
          metric: str, dataset: str | None) -> Cell:
    """One cell: the paper's value where ``paper_row`` has one (genuine runs of its own row
    only), and the mean of the runs' measured values, their spread and coverage."""
    cell = Cell(of=group_size(column, dataset))
    for pc in pcells:
        if (pc.row, pc.column, pc.metric) == (paper_row, column, metric):
            cell.paper, cell.tag = pc.value, pc.tag
    vals = [(v, n) for v, n in (measured_value(r, column, metric) for r in recs) if v is not None]
    if vals:
        cell.ours = statistics.fmean(v for v, _ in vals)
        cell.spread = statistics.stdev(v for v, _ in vals) if len(vals) > 1 else None
        cell.runs = len(vals)
        cell.covered = min(n for _, n in vals)
    return cell


def _category_set(rec: dict[str, Any]) -> tuple[str, ...]:
    return tuple(sorted(c["category"] for c in rec["categories"]))
