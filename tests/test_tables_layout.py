"""The paper tables in the terminal fit 80 and 120 columns with nothing cut: snapshot tests on the
committed results, and checks on hand-made tables.

The snapshots are ``tests/snapshots/table*_{80,120}.txt``; after a deliberate change of the
layout, write them again with ``PADIM_BENCH_UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest -q
tests/test_tables_layout.py`` and review the diff (tests/snapshots/README.md).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from rich.console import Console

from padim_bench import tables
from padim_bench.store import read_results
from padim_bench.tables import Cell, TableData

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOTS = Path(__file__).with_name("snapshots")
#: the committed runs the snapshots show (results/paper/table2 and table6 hold many seeds of the same)
INPUTS = [ROOT / "results" / "paper" / "table1", ROOT / "results" / "runs", ROOT / "results" / "baselines"]
UPDATE = os.environ.get("PADIM_BENCH_UPDATE_SNAPSHOTS") == "1"


def render(renderable, width: int) -> str:
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    console.print(renderable)
    return console.export_text()


@pytest.fixture(scope="module")
def records():
    """The committed runs, their ``_path`` relative to the checkout (notes name it; a clone
    elsewhere must give the same text)."""
    recs = read_results(INPUTS)
    for r in recs:
        if "_path" in r:
            r["_path"] = str(Path(r["_path"]).resolve().relative_to(ROOT))
    return recs


@pytest.mark.parametrize("width", [80, 120])
@pytest.mark.parametrize("number", ["1", "3", "5", "7", "8"])
def test_table_snapshots(records, number, width):
    """Each table at 80 and 120 columns: no line wider than the console, no ``…``, every row's
    full label shown (as the row's label or in the legend), and the text as committed."""
    parts = tables.build(number, [dict(r) for r in records])
    text = "\n".join(render(tables.to_rich(p), width) for p in parts)
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= width
    flat = " ".join(text.split())
    for part in parts:
        for label, _ in part.rows:
            assert " ".join(label.split()) in flat, label
    path = SNAPSHOTS / f"table{number}_{width}.txt"
    if UPDATE:
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"{path} is missing: write it with PADIM_BENCH_UPDATE_SNAPSHOTS=1"
    assert text == path.read_text(encoding="utf-8"), f"{path} differs (see the module doc to update it)"


def _per_category() -> TableData:
    data = TableData("per category", [("carpet", "pixel_roc_auc"), ("grid", "pixel_roc_auc"),
                                      ("bottle", "pixel_roc_auc")], per_category=True)
    data.rows = [
        ("SPADE (WR50)", [Cell(paper=97.5, tag="2"), Cell(paper=93.7, tag="2"), Cell(paper=98.4, tag="2")]),
        ("padim-resnet18-Rd100 layer1 (not in the paper)", [Cell(), Cell(ours=91.25), Cell(ours=99.5)]),
        ("padim-resnet18-Rd100 (not in the paper)", [Cell(), Cell(), Cell(ours=98.04, spread=0.21, runs=3)]),
    ]
    return data


def test_per_category_view_is_transposed_with_measured_categories_only():
    data = _per_category()
    text = render(tables.to_rich(data), 80)
    rows = [line for line in text.splitlines() if line.startswith("│")]
    assert [r.split()[1] for r in rows] == ["grid", "bottle"]  # categories as rows; carpet: nothing measured
    assert "carpet" not in text and "1 category without a measurement not shown" in text
    assert "SPADE (WR50)" in rows[0] or "SPADE (WR50)" in text.split("grid")[0]  # a method as a column header
    # the paper's value and ours in their own columns: grid's row holds 93.7 and 91.2 apart
    assert "93.7" in rows[0] and "91.2" in rows[0] and "→" not in rows[0]
    assert "98.0±0.2 x3" in rows[1]  # a mean of 3 runs
    assert "#1 = padim-resnet18-Rd100 layer1 (not in the paper)" in text
    assert "#2 = padim-resnet18-Rd100 (not in the paper)" in text
    every = render(tables.to_rich(data, all_categories=True), 80)
    assert "carpet" in every and "97.5" in every and "not shown" not in every


def test_wide_console_keeps_full_labels_and_joined_cells():
    """Where the table fits, rows keep their full labels and cells read ``paper → ours (diff)``."""
    data = TableData("t", [("all", "pixel_roc_auc")])
    data.rows = [("PaDiM-WR50-Rd550", [Cell(paper=97.5, tag="2", ours=97.0, of=15, covered=2)]),
                 ("padim-resnet18-Rd100 layer1 (not in the paper)", [Cell(ours=91.25, of=15, covered=2)])]
    wide = render(tables.to_rich(data), 120)
    assert "97.5 → 97.0 (-0.5) [2/15]" in wide and "padim-resnet18-Rd100 layer1 (not in the paper)" in wide
    assert "#1" not in wide
    narrow = render(tables.to_rich(data), 40)
    assert "#1 = padim-resnet18-Rd100 layer1 (not in the paper)" in " ".join(narrow.split()) and "…" not in narrow
    assert max(len(line) for line in narrow.splitlines()) <= 40


def test_narrow_console_splits_into_tables_of_the_same_rows():
    """Columns that do not fit side by side go into further tables; every value is still shown."""
    columns = [(g, m) for g in ("textures", "objects", "all") for m in ("pixel_roc_auc", "pro")]
    data = TableData("t", columns)
    data.rows = [("PaDiM-WR50-Rd550", [Cell(paper=90.0 + k, tag="1" if k % 2 else "2", ours=80.0 + k, spread=0.5)
                                       for k in range(6)])]
    text = render(tables.to_rich(data), 80)
    assert text.count("PaDiM-WR50-Rd550") >= 2  # the row label repeated in each table
    for k in range(6):
        assert f"{90 + k}.0{'¹' if k % 2 else ''}" in text and f"{80 + k}.0±0.5" in text and f"{-10:+.1f}" in text
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80


def test_markdown_and_csv_keep_one_cell_per_value():
    """The files are not laid out: Markdown keeps ``paper → ours`` cells, every category column."""
    data = _per_category()
    md = tables.to_markdown(data)
    assert "| carpet pixel ROC-AUC |" in md.splitlines()[2].replace("| method ", "") or "carpet" in md
    assert "98.4" in md and "98.0±0.2 x3" in md
    assert tables.to_csv(data).count("\n") == 1 + 3 * 3


@pytest.mark.parametrize("run", sorted(p.parent.name for p in (ROOT / "results" / "runs").glob("*/results.json")))
def test_run_tables_fit_80_columns(run):
    """A run's own table (``run`` prints it) at 80 columns: every category and mean named in full."""
    from padim_bench.output import rich_table
    from padim_bench.store import read_run

    record = read_run(ROOT / "results" / "runs" / run)
    text = render(rich_table(record), 80)
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80
    for name in [c["category"] for c in record["categories"]] + ["textures", "objects", "all"]:
        assert f"│ {name} " in text, name
