"""A paper table laid out for the terminal's width, with nothing a reader needs cut.

:class:`FittedTable` is a rich renderable that picks its layout when it is drawn, at the width it
is given (``ConsoleOptions.max_width``): the first of these whose lines fit, without a word cut or
wrapped, is drawn:

1. every cell ``paper → ours (diff) [n/N] xR`` (:func:`~.render.cell_text`), full row labels;
2. the same with short row labels (``#1``, ``#2``, ...) for labels over :data:`LABEL_MAX`
   characters, each explained in a legend under the table;
3. short labels, and the paper's value, ours and the difference in adjacent sub-columns under
   one header (``paper  ours  diff``); a coverage ``[n/N]`` the same in every cell of a column
   goes into its header, a run count the same in every cell of a row into the legend;
4. layout 3 split into several tables of the same rows, as many value columns in each as fit.

Per-category views (:attr:`~.cells.TableData.per_category`, e.g. Table III's second part) are
transposed: categories as rows, methods as columns, and only the categories something was
measured in (``all_categories`` shows every category).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.table import Table
from rich.text import Text

from .cells import Cell, TableData
from .render import cell_parts, cell_text, metric_name

#: a row label longer than this (characters) is shown as a short code with a legend line
LABEL_MAX = 21
SUB_GAP = "  "  # between the sub-columns paper / ours / diff of one column


@dataclass
class Grid:
    """A table before it is drawn: the label column (``corner`` header lines, ``labels``), value
    columns as ``(header lines, one text per row)``, and the lines under the table."""

    corner: list[str]
    labels: list[str]
    columns: list[tuple[list[str], list[str]]]
    legend: list[str] = field(default_factory=list)
    padded: bool = False  # the cells are sub-columns padded to one width per column

    def widths(self) -> list[int]:
        """Width in terminal cells of the label column, then of each value column."""
        label = max(cell_len(s) for s in self.corner + self.labels)
        return [label] + [max(cell_len(s) for s in head + cells) for head, cells in self.columns]


def table_width(widths: list[int]) -> int:
    """Width of a rich ``Table`` (default box, padding 1 each side) with columns of ``widths``."""
    return sum(w + 2 for w in widths) + len(widths) + 1


def _codes(labels: list[str], limit: int | None) -> tuple[list[str], dict[int, str]]:
    """Shown labels and, per shortened row index, its code (``#1`` ...): labels longer than
    ``limit`` characters are shortened (None: none)."""
    shown, codes = [], {}
    for i, label in enumerate(labels):
        if limit is not None and len(label) > limit:
            codes[i] = f"#{len(codes) + 1}"
        shown.append(codes.get(i, label))
    return shown, codes


def _constant(values: list[str]) -> str:
    """The one non-empty value of ``values`` when all non-empty ones agree, else ``""``."""
    got = {v for v in values if v}
    return got.pop() if len(got) == 1 else ""


def _split_column(cells: list[Cell], unit: str, drop_runs: list[bool]) -> tuple[str, str, list[str]]:
    """One value column as aligned sub-columns paper / ours / diff: ``(cover, header line,
    lines)``; ``cover`` is the coverage ``[n/N]`` where the same in every cell (left out of the
    cells then, for the column's header), the run count is left out of the rows in ``drop_runs``."""
    parts = [cell_parts(c, unit) for c in cells]
    cover = _constant([p[3] for p in parts])
    ours = []
    for (paper, value, diff, cov, runs), drop in zip(parts, drop_runs):
        extra = [x for x in ((cov if cov != cover else ""), ("" if drop else runs)) if x]
        ours.append(" ".join([value] + extra) if value else "")
    subs = [("paper", [p[0] for p in parts]), ("ours", ours), ("diff", [p[2] for p in parts])]
    subs = [(name, vals) for name, vals in subs if any(vals)] or [("", [""] * len(cells))]
    widths = [max(cell_len(name), *(cell_len(v) for v in vals)) for name, vals in subs]
    head = SUB_GAP.join(name.rjust(w) for (name, _), w in zip(subs, widths))
    lines = [SUB_GAP.join(vals[i].rjust(w) for (_, vals), w in zip(subs, widths)) for i in range(len(cells))]
    return cover, head, lines


def _legend(full: list[str], codes: dict[int, str], runs: dict[int, str]) -> list[str]:
    lines = []
    for i, label in enumerate(full):
        if i in codes or i in runs:
            name = f"{codes[i]} = {label}" if i in codes else label
            lines.append(name + (f": mean of {runs[i][1:]} runs" if i in runs else ""))
    return lines


def grid(data: TableData, split: bool, limit: int | None, all_categories: bool = False) -> Grid:
    """``data`` as a :class:`Grid`: rows are the table's rows (methods), or, for a per-category
    view, its columns (categories) with the methods as columns; labels longer than ``limit`` are
    shortened to codes (None: none; in a per-category view the methods' labels are headers, over
    :data:`LABEL_MAX` always shortened)."""
    if data.per_category:
        return _transposed(data, split, all_categories)
    full = [label for label, _ in data.rows]
    labels, codes = _codes(full, limit)
    runs = {i: _constant([cell_parts(c, data.unit)[4] for c in cells]) for i, (_, cells) in enumerate(data.rows)}
    runs = {i: r for i, r in runs.items() if r and split}
    columns = []
    for j, (column, metric) in enumerate(data.columns):
        cells = [cells[j] for _, cells in data.rows]
        if split:
            cover, sub, lines = _split_column(cells, data.unit, [i in runs for i in range(len(cells))])
            columns.append(([f"{column} {cover}".strip(), metric_name(metric), sub], lines))
        else:
            columns.append(([column, metric_name(metric)], [cell_text(c, data.unit) for c in cells]))
    return Grid(["", "method"], labels, columns, _legend(full, codes, runs), padded=split)


def _transposed(data: TableData, split: bool, all_categories: bool) -> Grid:
    """Categories as rows (only those with a measurement unless ``all_categories``, or nothing is
    measured: then the paper's alone, every category), methods as columns (only those with a value
    in a shown category)."""
    keep = [j for j in range(len(data.columns)) if any(cells[j].ours is not None for _, cells in data.rows)]
    if all_categories or not keep:
        keep = list(range(len(data.columns)))
    methods = [i for i, (_, cells) in enumerate(data.rows)
               if all_categories or any(cells[j].ours is not None or cells[j].paper is not None for j in keep)]
    full = [data.rows[i][0] for i in methods]
    shown, codes = _codes(full, LABEL_MAX)
    metrics = {m for _, m in data.columns}
    labels = [c if len(metrics) == 1 else f"{c} {metric_name(m)}" for c, m in (data.columns[j] for j in keep)]
    runs: dict[int, str] = {}
    columns = []
    for k, i in enumerate(methods):
        cells = [data.rows[i][1][j] for j in keep]
        if split:
            runs_k = _constant([cell_parts(c, data.unit)[4] for c in cells])
            if runs_k:
                runs[k] = runs_k
            cover, sub, lines = _split_column(cells, data.unit, [bool(runs_k)] * len(cells))
            columns.append(([f"{shown[k]} {cover}".strip(), sub], lines))
        else:
            columns.append(([shown[k]], [cell_text(c, data.unit) for c in cells]))
    legend = _legend(full, codes, runs)
    hidden = len(data.columns) - len(keep)
    if hidden:
        legend.append(f"{hidden} {'category' if hidden == 1 else 'categories'} without a measurement not shown "
                      "(--all-categories shows them)")
    corner = ["category"] + ([metric_name(next(iter(metrics)))] if len(metrics) == 1 else [])
    return Grid(corner, labels, columns, legend, padded=split)


def chunks(g: Grid, width: int) -> list[list[int]]:
    """The value columns of ``g`` in groups that each fit ``width`` beside the label column (one
    column per group at the least)."""
    w = g.widths()
    groups: list[list[int]] = [[]]
    for j in range(len(g.columns)):
        if groups[-1] and table_width([w[0]] + [w[1 + k] for k in groups[-1] + [j]]) > width:
            groups.append([])
        groups[-1].append(j)
    return groups


def layout(data: TableData, width: int, all_categories: bool = False) -> tuple[Grid, list[list[int]]]:
    """The first layout of the module's list that fits ``width``: the grid and its value columns
    per table drawn. Labels are shortened only where longer than the room the value columns leave
    (:data:`LABEL_MAX` at the least)."""
    for split, shorten in [(False, False), (False, True), (True, True)][1 if data.per_category else 0:]:
        limit = None
        if shorten:
            values = grid(data, split, 0, all_categories).widths()[1:]
            limit = max(LABEL_MAX, width - table_width([0] + values) - 2)
        g = grid(data, split, limit, all_categories)
        if table_width(g.widths()) <= width:
            return g, [list(range(len(g.columns)))]
    values = grid(data, True, 0, all_categories).widths()[1:] or [0]
    room = width - table_width([0, max(values)])  # for the label beside the widest column
    g = grid(data, True, min(LABEL_MAX, max(3, room)), all_categories)
    return g, chunks(g, width)


def _table(g: Grid, cols: list[int], no_wrap: bool) -> Table:
    heads = [g.corner] + [g.columns[j][0] for j in cols]
    height = max(len(h) for h in heads)
    pad = lambda h: [""] * (height - len(h)) + h  # noqa: E731  (headers bottom-aligned)
    widths = g.widths()
    t = Table()
    t.add_column(Text("\n".join(pad(g.corner))), no_wrap=no_wrap)
    for j in cols:  # sub-columns: every line padded to the column's width keeps them aligned
        t.add_column(Text("\n".join(pad(g.columns[j][0])), justify="right"), justify="left" if g.padded else "right",
                     no_wrap=no_wrap)
    for i, label in enumerate(g.labels):
        cells = [g.columns[j][1][i] for j in cols]
        if g.padded:
            cells = [" " * (widths[1 + j] - cell_len(c)) + c for j, c in zip(cols, cells)]
        t.add_row(Text(label), *(Text(c) for c in cells))
    return t


class FittedTable:
    """A paper table (:class:`~.cells.TableData`) drawn to fit the console's width: the title, one
    or more tables, the legend and the notes (see the module doc)."""

    def __init__(self, data: TableData, all_categories: bool = False):
        self.data, self.all_categories = data, all_categories

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        g, groups = layout(self.data, options.max_width, self.all_categories)
        yield Text(self.data.title, style="table.title")
        for cols in groups:
            widths = g.widths()
            fits = table_width([widths[0]] + [widths[1 + j] for j in cols]) <= options.max_width
            yield _table(g, cols, no_wrap=fits)
        for line in g.legend + self.data.notes:
            yield Text(line, style="table.caption")


def to_rich(data: TableData, all_categories: bool = False) -> FittedTable:
    """The table for the terminal, laid out at the width it is printed at (:class:`FittedTable`;
    text is escaped: ``[2/15]`` is not rich markup)."""
    return FittedTable(data, all_categories)
