"""The README's figures: the report of the committed real-data runs, a few PNGs copied to docs/.

    .venv/bin/python scripts/docs_figures.py [--out results/report/effl0_bottle_grid]

Runs ``padim-bench report`` on results/runs/mvtec_effl0, mvtec_spade_effl0 and mvtec_vae_cpu (the
full report, with every figure, goes to ``--out``; it is not committed), then copies the figures
the README shows into docs/ unchanged (the report's PNGs are already 256-colour palette images,
about 20-400 KB each). scripts/screenshot_report.py takes the screenshots of the page itself.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from padim_bench.report.build import build_report  # noqa: E402

RUNS = ["results/runs/mvtec_effl0", "results/runs/mvtec_spade_effl0", "results/runs/mvtec_vae_cpu"]
#: figure in the report -> file in docs/
DOCS = {
    "bars.png": "report_bars.png",
    "cost.png": "report_cost.png",
    "curves_bottle.png": "report_curves_bottle.png",
    "curves_grid.png": "report_curves_grid.png",
    "compare_bottle.png": "report_compare_bottle.png",
    "overlay_bottle_PaDiM-EffL0-Rd100_best_defective.png": "report_overlay_bottle_padim_best.png",
    "overlay_bottle_PaDiM-EffL0-Rd100_worst_defective.png": "report_overlay_bottle_padim_worst.png",
    "overlay_bottle_PaDiM-EffL0-Rd100_top_good.png": "report_overlay_bottle_padim_good.png",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="results/report/effl0_bottle_grid", help="report folder (not committed)")
    ap.add_argument("--docs", default="docs", help="where the README's PNGs go")
    args = ap.parse_args()
    summary = build_report([ROOT / r for r in RUNS], args.out)
    for p in summary.problems:
        print("warning:", p)
    print(f"report: {summary.html} ({summary.n_files} files, {summary.total_bytes / 1e6:.2f} MB; "
          f"PNGs {summary.figure_bytes / 1e6:.2f} MB); report data kept by the runs: "
          + ", ".join(f"{Path(k).name} {v / 1e3:.0f} KB" for k, v in summary.report_data_bytes.items()))
    docs = Path(args.docs)
    docs.mkdir(parents=True, exist_ok=True)
    for src, dst in DOCS.items():
        blob = (Path(args.out) / "figures" / src).read_bytes()
        (docs / dst).write_bytes(blob)
        print(f"{docs / dst}: {len(blob) / 1e3:.0f} KB")


if __name__ == "__main__":
    main()
