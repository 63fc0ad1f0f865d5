"""Screenshots of the report page in headless Chromium, for docs/ (and a check that it renders).

    .venv/bin/python scripts/screenshot_report.py [--report REPORT.html] [--out docs] [--width 1400]

Without ``--report`` it builds the report of the committed example runs (results/runs/mvtec_effl0,
mvtec_spade_effl0, mvtec_vae_cpu; the runs of scripts/docs_figures.py) into a temporary folder.
It opens the page at ``--width`` CSS px, measures it (no sideways scrolling, every table of
contents link resolves) and writes three PNGs cut from one full-page screenshot, each reduced to
256 colours (about 100-400 KB):

    OUT/report_top.png       contents, the runs, the metric chart
    OUT/report_tables.png    the tables section (first 1400 px)
    OUT/report_compare.png   the first category: curves and the same images in every run

Needs Chromium (Debian: ``apt-get install chromium``; or set ``$CHROMIUM``). Exit status 1 when the
page scrolls sideways or has broken links (the measurement is printed).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from padim_bench.report.browser import find_chromium, probe, screenshot  # noqa: E402
from padim_bench.report.build import build_report  # noqa: E402

RUNS = ["results/runs/mvtec_effl0", "results/runs/mvtec_spade_effl0", "results/runs/mvtec_vae_cpu"]
MAX_BYTES = 500_000


def _crop(full: Image.Image, top: float, height: float, out: Path, left: float = 0) -> int:
    """Save ``full``'s rows ``[top, top + height)`` from column ``left`` on as a 256-colour PNG;
    returns its size in bytes."""
    box = (max(0, int(left)), max(0, int(top)), full.width, min(full.height, int(top + height)))
    part = full.crop(box).convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE,
                                                  dither=Image.Dither.NONE)
    part.save(out, format="PNG", optimize=True)
    return out.stat().st_size


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--report", type=Path, help="a report.html (default: build the committed example's)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs", help="where the PNGs go (default: docs/)")
    ap.add_argument("--width", type=int, default=1400, help="window width, CSS px")
    args = ap.parse_args()
    if find_chromium() is None:
        print("no Chromium: install Debian's chromium (apt-get install chromium) or set $CHROMIUM", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="padim-report-") as tmp:
        page = args.report
        if page is None:
            summary = build_report([ROOT / r for r in RUNS], Path(tmp) / "report")
            page = summary.html
        m = probe(page, args.width)
        print(json.dumps({k: m[k] for k in ("scroll_width", "client_width", "height", "wide", "toc_links",
                                            "broken_links")}))
        full_png = screenshot(page, Path(tmp) / "full.png", args.width, int(m["height"]) + 20)
        full = Image.open(full_png)
        tops = {s["id"]: s for s in m["sections"]}
        args.out.mkdir(parents=True, exist_ok=True)
        first_cat = next(s for s in m["sections"] if s["id"].startswith("category-"))
        shots = {"report_top.png": (0, tops["cost"]["top"] - 10),
                 "report_tables.png": (tops["tables"]["top"] - 10, min(1400, tops["tables"]["height"] + 20)),
                 "report_compare.png": (first_cat["top"] - 10, first_cat["height"] - tops.get(
                     first_cat["id"][len("category-"):] + "-overlays", {"height": 0})["height"])}
        for name, (top, height) in shots.items():  # below the top, the contents column is empty: left out
            left = 0 if name == "report_top.png" else m["main"]["left"] - 16
            size = _crop(full, top, height, args.out / name, left)
            print(f"{args.out / name}: {size / 1e3:.0f} KB{'  (over 500 KB)' if size > MAX_BYTES else ''}")
    bad = m["scroll_width"] > m["client_width"] or m["wide"] or m["broken_links"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
