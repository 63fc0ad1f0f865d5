"""Print the README's results tables (Markdown) from committed results, so no number is typed by hand.

    .venv/bin/python scripts/readme_results.py > /tmp/results.md
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from padim_bench import tables  # noqa: E402
from padim_bench.output import markdown_table  # noqa: E402
from padim_bench.store import read_results  # noqa: E402

RUNS = ["results/runs/mvtec_effl0", "results/runs/mvtec_spade_effl0", "results/runs/mvtec_vae_cpu"]


def main() -> None:
    found = [ROOT / r for r in RUNS if (ROOT / r / "results.json").exists()]
    for rec in read_results(found):
        env = rec["environment"]
        print(markdown_table(rec))
        print(f"_{rec['_path'].replace(str(ROOT) + '/', '')}: {env['cpu']}, {env['cpu_count']} cores, "
              f"torch {env['versions']['torch']}, {env['date_utc']}, load average at the end "
              f"{[round(x, 1) for x in env.get('load_average') or []]}_\n")
    for number, paths in (("3", found), ("1", ["results/paper/table1"]), ("2", ["results/paper/table2"]),
                          ("6", ["results/paper/table6", "results/runs/mvtec_effl0"]), ("8", [])):
        paths = [ROOT / p for p in paths if (ROOT / p).exists()]
        if number != "8" and not paths:
            continue
        for part in tables.build(number, read_results(paths) if paths else []):
            print(tables.to_markdown(part))


if __name__ == "__main__":
    main()
