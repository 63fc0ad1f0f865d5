"""Rendering the backbone comparison (:class:`~padim_bench.tables.backbones.BackboneTable`):
terminal (rich), Markdown, CSV (one line per cell, plain numbers) and LaTeX. Metrics in percent
with one decimal, seconds with three significant decimals, GB with three decimals."""

from __future__ import annotations

import csv
import io

from rich.markup import escape
from rich.table import Table

from .backbones import COLUMNS, BackboneTable, Value

_MARK = {"1": "¹", "?": "?", "busy": "*"}


def value_text(v: Value, unit: str) -> str:
    """``mean±spread xN`` to the unit's precision, ``—`` where there is no value."""
    if v.mean is None:
        return "—"
    digits = {"%": 1, "s": 3, "GB": 3}[unit]
    text = f"{v.mean:.{digits}f}"
    if v.spread is not None:
        text += f"±{v.spread:.{digits}f}"
    if v.runs > 1:
        text += f" x{v.runs}"
    return text + _MARK.get(v.tag or "", "")


def _lines(table: BackboneTable) -> list[tuple[str, list[list[str]]]]:
    return [(title, [[r.label] + [value_text(r.values[k], COLUMNS[k][1]) for k in COLUMNS] for r in rows])
            for title, rows in table.sections]


def to_rich(table: BackboneTable, all_categories: bool = False) -> Table:
    """The table for the terminal, one rule-separated block per section."""
    t = Table(title=escape(table.title), caption=escape("\n".join(table.notes)), caption_justify="left")
    t.add_column("row")
    for header, _, _ in COLUMNS.values():
        t.add_column(escape(header), justify="right")
    for title, lines in _lines(table):
        t.add_section()
        t.add_row(f"[bold]{escape(title)}[/]", *[""] * len(COLUMNS))
        for line in lines:
            t.add_row(*map(escape, line))
    return t


def to_markdown(table: BackboneTable) -> str:
    head = ["row"] + [h for h, _, _ in COLUMNS.values()]
    out = [f"**{table.title}**", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for title, lines in _lines(table):
        out.append(f"| **{title}** |" + " |" * len(COLUMNS))
        out += ["| " + " | ".join(line) + " |" for line in lines]
    return "\n".join(out + [""] + [f"_{n}_" for n in table.notes]) + "\n"


def to_csv(table: BackboneTable) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["section", "row", "backbone", "weights", "column", "mean", "spread", "runs", "tag", "categories"])
    cats = " ".join(table.categories)
    for title, rows in table.sections:
        for r in rows:
            for k in COLUMNS:
                v = r.values[k]
                if v.mean is not None:
                    w.writerow([title, r.label, r.backbone, r.weights, k, repr(v.mean),
                                "" if v.spread is None else repr(v.spread), v.runs, v.tag or "",
                                "all 15" if r.weights == "paper" else cats])
    return buf.getvalue()


def to_latex(table: BackboneTable) -> str:
    def esc(s: str) -> str:
        return (s.replace("&", r"\&").replace("%", r"\%").replace("_", r"\_").replace("±", r"$\pm$")
                .replace("—", "--").replace("¹", r"$^1$").replace("*", r"$^*$"))

    lines = [r"\begin{table}", r"\centering", rf"\caption{{{esc(table.title)}}}",
             rf"\begin{{tabular}}{{l{'r' * len(COLUMNS)}}}", r"\hline",
             " & ".join(["row"] + [esc(h) for h, _, _ in COLUMNS.values()]) + r" \\"]
    for title, rows in _lines(table):
        lines += [r"\hline", rf"\multicolumn{{{len(COLUMNS) + 1}}}{{l}}{{\textit{{{esc(title)}}}}} \\"]
        lines += [" & ".join(map(esc, line)) + r" \\" for line in rows]
    lines += [r"\hline", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"
