"""The report page: one self-contained HTML file (figures embedded as base64 PNG data URIs, no
script, no external resource), readable offline in any browser.

The page is a list of :class:`Section` objects: :func:`page` numbers nothing, gives each section
an ``id`` anchor and a line in the table of contents (a sticky column at the left on wide screens,
a block at the top on narrow ones). To add a section to the report, write a function that returns
a :class:`Section` and list it in :func:`padim_bench.report.build.build_report`.

Tables are the Markdown tables of :mod:`padim_bench.output` and :mod:`padim_bench.tables`
converted by :func:`markdown_to_html` (bold title line, pipe table, italic note lines), so the page
shows exactly the numbers ``padim-bench table`` and ``results.md`` show. Every table sits in a box
that scrolls sideways when the table is wider than the page (its first column stays in view);
header cells wrap, so the page itself never scrolls sideways.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from typing import Sequence

STYLE = """
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif; margin: 0; color: #222;
       line-height: 1.45; background: #fff; }
.layout { display: grid; grid-template-columns: 15rem minmax(0, 1fr); gap: 2rem; max-width: 1500px;
          margin: 0 auto; padding: 0 1rem; }
main { min-width: 0; padding-bottom: 4em; }
nav.toc { position: sticky; top: 0; align-self: start; max-height: 100vh; overflow-y: auto; padding: 1.2em 0;
          font-size: .85em; }
nav.toc b { display: block; margin-bottom: .4em; }
nav.toc ul { list-style: none; margin: 0; padding-left: 0; } nav.toc ul ul { padding-left: 1em; }
nav.toc li { margin: .15em 0; } nav.toc a { color: #1a4f8b; text-decoration: none; }
nav.toc a:hover { text-decoration: underline; }
@media (max-width: 900px) { .layout { grid-template-columns: minmax(0, 1fr); }
  nav.toc { position: static; max-height: none; border-bottom: 1px solid #ccc; } }
h1 { font-size: 1.6em; margin-top: .8em; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
h3 { margin-top: 1.6em; } h4 { margin: 1em 0 .3em; }
section { scroll-margin-top: .5em; }
.sub { font-size: .9em; color: #444; margin: -.3em 0 .6em; }
.scroll { overflow-x: auto; max-width: 100%; margin: .3em 0 .8em;  /* a shadow at an edge with more table beyond */
  background: linear-gradient(to left, #fff 30%, rgba(255,255,255,0)) right / 2.5em 100% no-repeat local,
              radial-gradient(farthest-side at 100% 50%, rgba(0,0,0,.25), rgba(0,0,0,0)) right / 1em 100% no-repeat scroll; }
table { border-collapse: collapse; font-size: .85em; }
td, th { border: 1px solid #ccc; padding: .2em .5em; text-align: right; white-space: nowrap; vertical-align: top; }
th { background: #f2f2f2; white-space: normal; min-width: 4.5em; }
td:first-child, th:first-child { text-align: left; position: sticky; left: 0; background: #fff; }
th:first-child { background: #f2f2f2; }
table.wrap td, table.wrap th { white-space: normal; text-align: left; }
table.wrap td:first-child { white-space: nowrap; }
.note { font-size: .85em; color: #555; margin: .2em 0; }
.problem { color: #a40; }
figure { margin: .8em 0 1.5em; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: .85em; color: #444; }
code { background: #f4f4f4; padding: 0 .2em; overflow-wrap: anywhere; }
details { margin: .6em 0; } summary { cursor: pointer; font-weight: 600; }
.tag { display: inline-block; font-size: .75em; padding: 0 .4em; border-radius: .3em; background: #fde7c8;
       color: #7a3e00; font-weight: 600; margin-left: .3em; vertical-align: middle; }
"""


@dataclass
class Section:
    """One part of the page.

    Attributes:
        id: the anchor (``#id``), unique on the page (:func:`anchor` makes one from a title).
        title: heading and table-of-contents text.
        body: HTML under the heading.
        children: sub-sections (``<h3>``), listed under the section in the table of contents.
        sub: a line under the heading (plain text, escaped), e.g. what sets a run apart.
    """

    id: str
    title: str
    body: str = ""
    children: list["Section"] = field(default_factory=list)
    sub: str = ""


def esc(text: object) -> str:
    """HTML-escaped text (quotes included)."""
    return html.escape(str(text), quote=True)


def anchor(*parts: object) -> str:
    """An ``id`` from ``parts``: lower case ``[a-z0-9-]``, never empty."""
    s = re.sub(r"[^a-z0-9]+", "-", "-".join(str(p) for p in parts).lower()).strip("-")
    return s or "section"


def data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` for PNG bytes."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _inline(text: str) -> str:
    """Escape, then Markdown ``**bold**``."""
    t = esc(text)
    t = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", t)
    return t


def table(head: Sequence[str], rows: Sequence[Sequence[str]], wrap: bool = False) -> str:
    """A table in its scrolling box; ``head`` and ``rows`` are HTML already (escape text with
    :func:`esc`). ``wrap``: body cells wrap (text columns) instead of staying on one line."""
    cls = ' class="wrap"' if wrap else ""
    return (f'<div class="scroll"><table{cls}><thead><tr>' + "".join(f"<th>{h}</th>" for h in head)
            + "</tr></thead><tbody>" + "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
            + "</tbody></table></div>")


def markdown_to_html(md: str) -> str:
    """Convert the Markdown that ``output.markdown_table`` / ``tables.to_markdown`` write (a
    ``**title**`` line, ``_note_`` lines, one pipe table) to HTML; any other line becomes a
    paragraph. Every text is escaped."""
    out: list[str] = []
    rows: list[list[str]] = []

    def flush() -> None:
        if not rows:
            return
        head, body = rows[0], [r for r in rows[1:] if not all(re.fullmatch(r"-+", c.strip()) for c in r if c.strip())]
        out.append(table([_inline(c) for c in head], [[_inline(c) for c in r] for r in body]))
        rows.clear()

    for line in md.splitlines():
        s = line.strip()
        if s.startswith("|"):
            rows.append([c.strip() for c in s.strip("|").split("|")])
            continue
        flush()
        if not s:
            continue
        if s.startswith("**") and s.endswith("**"):
            out.append(f"<h4>{esc(s[2:-2])}</h4>")
        elif s.startswith("_") and s.endswith("_"):
            out.append(f'<p class="note">{esc(s[1:-1])}</p>')
        else:
            out.append(f"<p>{_inline(s)}</p>")
    flush()
    return "\n".join(out)


def figure(png: bytes, alt: str, caption: str = "", embed: bool = True, src: str = "") -> str:
    """A ``<figure>``: the PNG embedded (``embed``) or referenced by relative path ``src``."""
    ref = data_uri(png) if embed else esc(src)
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="{ref}" alt="{esc(alt)}">{cap}</figure>'


def details(summary: str, body: str, open_: bool = False) -> str:
    """A collapsible block (``<details>``, no script): ``summary`` is plain text."""
    return f"<details{' open' if open_ else ''}><summary>{esc(summary)}</summary>{body}</details>"


def _render(s: Section, level: int) -> str:
    sub = f'<p class="sub">{esc(s.sub)}</p>' if s.sub else ""
    kids = "".join(_render(c, min(level + 1, 4)) for c in s.children)
    return f'<section id="{esc(s.id)}"><h{level}>{esc(s.title)}</h{level}>{sub}{s.body}{kids}</section>\n'


def _toc(sections: Sequence[Section]) -> str:
    def items(ss: Sequence[Section]) -> str:
        return "<ul>" + "".join(f'<li><a href="#{esc(s.id)}">{esc(s.title)}</a>'
                                + (items(s.children) if s.children else "") + "</li>" for s in ss) + "</ul>"

    return f'<nav class="toc"><b>Contents</b>{items(sections)}</nav>'


def check_ids(sections: Sequence[Section]) -> None:
    """Raise ``ValueError`` if two sections share an ``id`` (a link would go to the wrong one)."""
    seen: set[str] = set()
    stack = list(sections)
    while stack:
        s = stack.pop()
        if s.id in seen:
            raise ValueError(f"report page: two sections have the id {s.id!r}")
        seen.add(s.id)
        stack += s.children


def page(title: str, intro: str, sections: Sequence[Section]) -> str:
    """The whole document: ``title``, ``intro`` (HTML), the table of contents and ``sections``.

    Raises:
        ValueError: two sections share an id (a bug of the caller).
    """
    check_ids(sections)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{esc(title)}</title>"
            f"<style>{STYLE}</style></head><body>\n<div class=\"layout\">{_toc(sections)}<main>\n"
            f"<h1>{esc(title)}</h1>\n{intro}\n" + "".join(_render(s, 2) for s in sections)
            + "</main></div>\n</body></html>\n")
