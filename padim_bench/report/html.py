"""The report page: one self-contained HTML file (figures embedded as base64 PNG data URIs, no
script, no external resource), readable offline in any browser.

Tables are the Markdown tables of :mod:`padim_bench.output` and :mod:`padim_bench.tables`
converted by :func:`markdown_to_html` (bold title line, pipe table, italic note lines), so the page
shows exactly the numbers ``padim-bench table`` and ``results.md`` show.
"""

from __future__ import annotations

import base64
import html
import re
from typing import Sequence

STYLE = """
body { font-family: system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif; margin: 1.5em auto;
       max-width: 1250px; padding: 0 1em; color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
h3 { margin-top: 1.5em; } h4 { margin: 1em 0 .3em; }
table { border-collapse: collapse; font-size: .85em; margin: .3em 0 .6em; }
td, th { border: 1px solid #ccc; padding: .2em .5em; text-align: right; white-space: nowrap; }
td:first-child, th:first-child { text-align: left; }
th { background: #f2f2f2; }
.scroll { overflow-x: auto; }
.note { font-size: .85em; color: #555; margin: .2em 0; }
.problem { color: #a40; }
figure { margin: .8em 0 1.5em; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: .85em; color: #444; }
code { background: #f4f4f4; padding: 0 .2em; }
"""


def esc(text: object) -> str:
    """HTML-escaped text (quotes included)."""
    return html.escape(str(text), quote=True)


def data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` for PNG bytes."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _inline(text: str) -> str:
    """Escape, then Markdown ``**bold**``."""
    t = esc(text)
    t = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", t)
    return t


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
        out.append('<div class="scroll"><table><thead><tr>' + "".join(f"<th>{_inline(c)}</th>" for c in head)
                   + "</tr></thead><tbody>")
        out.extend("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in body)
        out.append("</tbody></table></div>")
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


def page(title: str, sections: Sequence[str]) -> str:
    """The whole document around already-rendered ``sections`` (HTML strings)."""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{esc(title)}</title>"
            f"<style>{STYLE}</style></head><body>\n<h1>{esc(title)}</h1>\n" + "\n".join(sections)
            + "\n</body></html>\n")
