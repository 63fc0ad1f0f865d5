"""Rendering a :class:`~padim_bench.tables.cells.TableData` as Markdown, CSV and LaTeX, every cell
``paper → ours (difference) [n/N]``, and the cell texts the terminal's layout uses
(:mod:`.layout`)."""

from __future__ import annotations

import csv
import io

from .cells import Cell, TableData

TAG_MARK = {"2": "", "1": "¹", "?": "?"}


def _fmt(v: float | None, unit: str, digits: int | None = None) -> str:
    if v is None:
        return ""
    if digits is None:
        digits = 3 if unit == "GB" else 2 if unit == "s" else 1
    return f"{v:.{digits}f}"


def paper_digits(v: float) -> int:
    """Decimals the paper printed (``37.0`` -> 1, ``0.09`` -> 2)."""
    text = repr(float(v))
    return len(text.split(".")[1]) if "." in text else 0


def cell_parts(c: Cell, unit: str) -> tuple[str, str, str, str, str]:
    """A cell's parts as text, ``""`` where unknown: ``(paper, ours, diff, cover, runs)``, e.g.
    ``("97.5¹", "98.1±0.2", "+0.6", "[2/15]", "x11")`` (``diff`` is ``=`` when it rounds to 0;
    ``cover`` only when the mean covers fewer categories than the paper's; ``runs`` only for a
    mean of several runs). When the paper gives the value, ours is printed to its precision."""
    digits = paper_digits(c.paper) if c.paper is not None else None
    paper = f"{_fmt(c.paper, unit, digits)}{TAG_MARK.get(c.tag or '2', '')}" if c.paper is not None else ""
    if c.ours is None:
        return paper, "", "", "", ""
    ours = _fmt(c.ours, unit, digits)
    if c.spread is not None:
        ours += f"±{_fmt(c.spread, unit)}"
    diff = ""
    if c.diff is not None:
        d = round(c.diff, digits if digits is not None else 2)
        diff = "=" if d == 0 else f"{d:+.{digits if digits is not None else 2}f}"
    cover = f"[{c.covered}/{c.of}]" if c.of and c.covered is not None and c.covered != c.of else ""
    runs = f"x{c.runs}" if c.runs > 1 else ""
    return paper, ours, diff, cover, runs


def cell_text(c: Cell, unit: str) -> str:
    """``paper → ours (±diff) [n/N]``, parts left out where unknown (:func:`cell_parts`)."""
    paper, ours, diff, cover, runs = cell_parts(c, unit)
    if not ours:
        return paper  # the paper's value alone: nothing measured
    head = f"{paper} → " if paper else ""
    return head + ours + (f" ({diff})" if diff else "") + "".join(f" {p}" for p in (cover, runs) if p)


METRIC_NAMES = {"pixel_roc_auc": "pixel ROC-AUC", "image_roc_auc": "image ROC-AUC", "pro": "PRO",
                "frame_roc_auc": "frame ROC-AUC", "infer_s_per_image": "s / image", "state_gb": "GB",
                "fit_peak_rss_bytes": "GB", "fitted_gb": "GB"}


def metric_name(metric: str) -> str:
    """A metric's name in table headers (``pixel_roc_auc`` -> ``pixel ROC-AUC``)."""
    return METRIC_NAMES.get(metric, metric)


def _header(column: str, metric: str) -> str:
    return f"{column}\n{metric_name(metric)}"


def to_markdown(data: TableData) -> str:
    head = ["method"] + [_header(c, m).replace("\n", " ") for c, m in data.columns]
    lines = [f"**{data.title}**", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, cells in data.rows:
        lines.append("| " + " | ".join([label] + [cell_text(c, data.unit) for c in cells]) + " |")
    return "\n".join(lines + [""] + [f"_{n}_" for n in data.notes]) + "\n"


def to_csv(data: TableData) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["row", "column", "metric", "paper", "tag", "ours", "diff", "spread", "runs", "covered", "of"])
    for label, cells in data.rows:
        for (column, metric), c in zip(data.columns, cells):
            w.writerow([label, column, metric, c.paper, c.tag, c.ours, c.diff, c.spread, c.runs, c.covered, c.of])
    return buf.getvalue()


def to_latex(data: TableData) -> str:
    def esc(s: str) -> str:
        return s.replace("&", r"\&").replace("%", r"\%").replace("_", r"\_").replace("→", r"$\to$").replace("±", r"$\pm$")

    cols = "l" + "r" * len(data.columns)
    lines = [r"\begin{table}", r"\centering", rf"\caption{{{esc(data.title)}}}", rf"\begin{{tabular}}{{{cols}}}",
             r"\hline", " & ".join(["method"] + [esc(_header(c, m).replace("\n", " ")) for c, m in data.columns]) + r" \\",
             r"\hline"]
    for label, cells in data.rows:
        lines.append(" & ".join([esc(label)] + [esc(cell_text(c, data.unit)) for c in cells]) + r" \\")
    lines += [r"\hline", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"
