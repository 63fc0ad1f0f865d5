"""The report page in a real browser: headless Chromium measures it (:func:`probe`) and takes
screenshots (:func:`screenshot`). Used by ``scripts/screenshot_report.py`` and the report's
browser test; nothing else in padim-bench needs a browser.

Chromium is found on ``PATH`` (``chromium``, ``chromium-browser``, ``google-chrome``; Debian:
``apt-get install chromium``) or named by ``$CHROMIUM``. It is started headless without sandbox,
GPU, network services or a profile of its own (a fresh empty ``--user-data-dir`` each time): it
reads only the local file given.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--force-device-scale-factor=1")

#: injected into a copy of the page: after load, writes what the page measures into <pre id="probe">
_PROBE_JS = """<script>window.addEventListener('load', () => {
  const d = document.documentElement, w = d.clientWidth;
  const top = e => e.getBoundingClientRect().top + window.scrollY;
  const wide = [...document.querySelectorAll('body *')].filter(e => !e.closest('.scroll, #probe')
      && e.getBoundingClientRect().right > w + 1).map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : ''));
  const main = document.querySelector('main'), mr = main ? main.getBoundingClientRect() : {left: 0, width: w};
  const out = {scroll_width: d.scrollWidth, client_width: w, height: d.scrollHeight, wide: wide.slice(0, 20),
    main: {left: mr.left, width: mr.width},
    sections: [...document.querySelectorAll('section[id]')].map(s => ({id: s.id, top: top(s),
      height: s.getBoundingClientRect().height})),
    toc_links: document.querySelectorAll('nav.toc a').length,
    broken_links: [...document.querySelectorAll('a[href^="#"]')].filter(
      a => !document.getElementById(decodeURIComponent(a.getAttribute('href').slice(1)))).length,
    scroll_boxes: [...document.querySelectorAll('.scroll')].map(b => ({top: top(b),
      overflows: b.scrollWidth > b.clientWidth + 1})),
    images: [...document.images].map(i => ({natural: i.naturalWidth, shown: i.getBoundingClientRect().width}))};
  const pre = document.createElement('pre'); pre.id = 'probe'; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});</script>"""


def find_chromium() -> str | None:
    """The Chromium executable (``$CHROMIUM`` or the first on ``PATH``), or None."""
    if os.environ.get("CHROMIUM"):
        return os.environ["CHROMIUM"]
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    exe = find_chromium()
    if exe is None:
        raise FileNotFoundError("no Chromium found (install Debian's chromium, or set $CHROMIUM)")
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        return subprocess.run([exe, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                              timeout=timeout, check=False)


def probe(page: str | Path, width: int = 1400, height: int = 1000, timeout: float = 120) -> dict[str, Any]:
    """Open a copy of ``page`` (the report's HTML, with a measuring script added) at ``width`` x
    ``height`` CSS px and return what it measured: ``scroll_width`` and ``client_width`` (px; the
    page scrolls sideways where the first exceeds the second), ``wide`` (elements outside the
    scrolling table boxes that reach past the window), ``height`` (px), ``sections`` (``id``,
    ``top``, ``height`` in px), ``main`` (``left``, ``width`` of the page's column, px), ``toc_links``, ``broken_links`` (``#`` links to no element),
    ``scroll_boxes`` (``top``, whether the table is wider than its box) and ``images`` (natural
    and shown width, px).

    Raises:
        FileNotFoundError: no Chromium. RuntimeError: Chromium printed no measurement (its
            stderr is in the message). subprocess.TimeoutExpired: it took over ``timeout`` s.
    """
    text = Path(page).read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory(prefix="report-probe-") as tmp:
        copy = Path(tmp) / "probe.html"
        copy.write_text(text.replace("</body>", _PROBE_JS + "</body>", 1), encoding="utf-8")
        res = _run([f"--window-size={width},{height}", "--virtual-time-budget=10000", "--dump-dom",
                    copy.as_uri()], timeout)
    m = re.search(r'<pre id="probe">(.*?)</pre>', res.stdout, re.S)
    if not m:
        raise RuntimeError(f"{page}: Chromium printed no measurement; stderr: {res.stderr[-2000:]}")
    import html

    return json.loads(html.unescape(m.group(1)))


def screenshot(page: str | Path, png: str | Path, width: int = 1400, height: int = 3000,
               timeout: float = 180) -> Path:
    """A PNG of the top ``height`` px of ``page`` at ``width`` px (a whole page: its ``probe``
    height).

    Raises:
        FileNotFoundError: no Chromium. RuntimeError: no PNG written (stderr in the message).
    """
    png = Path(png).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    res = _run([f"--window-size={width},{height}", f"--screenshot={png}", Path(page).resolve().as_uri()], timeout)
    if not png.is_file():
        raise RuntimeError(f"{page}: Chromium wrote no screenshot; stderr: {res.stderr[-2000:]}")
    return png
