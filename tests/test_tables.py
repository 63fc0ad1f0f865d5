"""Paper tables and the regression check, on hand-made results records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from padim_bench import check as C
from padim_bench import tables
from padim_bench.cli import app
from padim_bench.errors import PadimBenchError
from padim_bench.store import read_results

runner = CliRunner()


def record(method="padim", backbone="resnet18", d=100, weights="imagenet", metrics=None) -> dict:
    """A minimal results.json: categories with given metrics (fractions)."""
    metrics = metrics or {"bottle": (0.99, 0.98, 0.90), "grid": (0.95, 0.97, 0.88)}
    cats = []
    for name, (img, pix, pro) in metrics.items():
        cats.append({"category": name, "kind": "texture" if name in ("grid", "carpet") else "object",
                     "metrics": {"image_roc_auc": img, "pixel_roc_auc": pix, "pro": pro},
                     "time": {"fit_s": 1.0, "infer_s_per_image": 0.5},
                     "memory": {"fit_peak_rss_bytes": 2e9, "state_gb": 0.2}})
    return {"config_hash": "abc", "categories": cats,
            "config": {"method": {"name": method, "backbone": backbone, "d": d, "weights": weights},
                       "dataset": {"name": "mvtec_ad"}}}


def test_table8_is_computed_to_the_papers_values():
    """The seven PaDiM / SPADE cells of Table VIII (paper: 1.4, 0.17, 3.8, 37.0, 0.21, 5.2 GB),
    from the architectures, at the paper's precision."""
    (data,) = tables.build("8", [])
    computed = {label: cells[1].ours for label, cells in data.rows}
    expected = {
        "SPADE (WR50), mvtec_ad, without backbone": (1.4, 1),
        "PaDiM-R18-Rd100, mvtec_ad, with backbone": (0.17, 2),
        "PaDiM-WR50-Rd550, mvtec_ad, without backbone": (3.8, 1),
        "SPADE (WR50), stc, with backbone": (37.0, 1),
        "PaDiM-R18-Rd100, stc, with backbone": (0.21, 2),
        "PaDiM-WR50-Rd550, stc, with backbone": (5.2, 1),
    }
    for label, (value, digits) in expected.items():
        assert round(computed[label], digits) == value, label
    # the exact arithmetic of PaDiM-R18 on MVTec AD: 3136 x (100 + 100^2) x 4 + 11,689,512 x 4 bytes
    assert computed["PaDiM-R18-Rd100, mvtec_ad, with backbone"] == pytest.approx((3136 * 10100 + 11_689_512) * 4 / 1e9)


def test_table3_matches_rows_and_marks_partial_means():
    rec = record(backbone="wide_resnet50_2", d=550)
    groups, per_class = tables.build("3", [rec])
    rows = dict(groups.rows)
    wr50 = rows["PaDiM-WR50-Rd550"]
    all_pix = wr50[groups.columns.index(("all", "pixel_roc_auc"))]
    assert all_pix.paper == 97.5 and all_pix.ours == pytest.approx(97.5)  # mean of 98 and 97
    assert (all_pix.covered, all_pix.of) == (2, 15)
    assert "[2/15]" in tables.cell_text(all_pix, "%")
    bottle = dict(per_class.rows)["PaDiM-WR50-Rd550"][per_class.columns.index(("bottle", "pixel_roc_auc"))]
    assert bottle.paper == 98.3 and bottle.ours == pytest.approx(98.0) and bottle.diff == pytest.approx(-0.3)
    # unmeasured rows keep the paper's value and an empty measurement
    spade = rows["SPADE (WR50)"][groups.columns.index(("all", "pixel_roc_auc"))]
    assert spade.paper == 96.5 and spade.ours is None


def test_other_backbones_and_random_weights_are_labelled():
    rows = dict(tables.build("5", [record(backbone="efficientnet_lite0"), record(backbone="wide_resnet50_2", d=550, weights="random")])[0].rows)
    assert "padim-efficientnet_lite0-Rd100 (not in the paper)" in rows
    assert "PaDiM-WR50-Rd550 [RANDOM weights]" in rows


def test_seeds_are_averaged_with_their_spread():
    a = record(metrics={"bottle": (0.9, 0.96, 0.9)})
    b = record(metrics={"bottle": (0.9, 0.98, 0.9)})
    (data,) = tables.build("2", [a, b])
    cell = dict(data.rows)["Rd 100"][0]
    assert cell.ours == pytest.approx(97.0) and cell.spread == pytest.approx(2 ** 0.5) and cell.runs == 2


def test_formats_render():
    parts = tables.build("3", [record()])
    assert "| method |" in tables.to_markdown(parts[0])
    assert "\\begin{tabular}" in tables.to_latex(parts[0])
    assert tables.to_csv(parts[0]).startswith("row,column,metric,paper,tag,ours,diff")


def test_table_output_file_format_and_bad_paths(tmp_path):
    res_dir = write(tmp_path, "run", record()).parent
    out = tmp_path / "t3.tex"
    res = runner.invoke(app, ["table", "3", str(res_dir), "-o", str(out)])
    assert res.exit_code == 0 and "\\begin{tabular}" in out.read_text()  # format from the suffix
    assert runner.invoke(app, ["table", "3", str(res_dir), "-o", str(tmp_path / "t3.csv")]).exit_code == 0
    assert (tmp_path / "t3.csv").read_text().startswith("row,column,metric")
    for bad, says in ((tmp_path, "is a folder"), (tmp_path / "absent" / "t.md", "does not exist"),
                      (out / "t.md", "is not a folder"), (res_dir / "table.md", "a run's folder or file"),
                      (tmp_path / "results.json", "a run's folder or file")):
        res = runner.invoke(app, ["table", "3", str(res_dir), "-o", str(bad)])
        assert res.exit_code == 2 and says in res.output and "Traceback" not in res.output, res.output


def test_unknown_table_is_an_error():
    with pytest.raises(PadimBenchError, match="unknown table"):
        tables.build("9", [])


def write(tmp_path: Path, name: str, rec: dict) -> Path:
    path = tmp_path / name / "results.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(rec))
    return path


def test_check_passes_on_identical_and_fails_on_a_perturbed_result(tmp_path):
    base = write(tmp_path, "base", record(backbone="efficientnet_lite0"))
    same = runner.invoke(app, ["check", str(base), "--against", str(base)])
    assert same.exit_code == 0, same.output
    moved = record(backbone="efficientnet_lite0")
    moved["categories"][1]["metrics"]["pixel_roc_auc"] += 0.002  # +0.2 points on grid
    path = write(tmp_path, "moved", moved)
    res = runner.invoke(app, ["check", str(path), "--against", str(base)])
    assert res.exit_code == 1
    assert "MOVED" in res.output and "grid" in res.output and "pixel_roc_auc" in res.output
    assert runner.invoke(app, ["check", str(path), "--against", str(base), "--tolerance", "pixel_roc_auc=0.3"]).exit_code == 0


def test_check_reports_a_missing_category(tmp_path):
    base = write(tmp_path, "base", record())
    fewer = record(metrics={"bottle": (0.99, 0.98, 0.90)})
    res = runner.invoke(app, ["check", str(write(tmp_path, "fewer", fewer)), "--against", str(base)])
    assert res.exit_code == 1 and "MISSING" in res.output and "ours missing" in res.output
    assert "3 missing" in res.output  # grid's three metrics; the means over other categories are not enforced


def test_check_against_a_baseline_with_fewer_categories_enforces_only_theirs(tmp_path):
    """Baseline: bottle only; run: bottle (identical) and grid. The run's means include grid, so
    they are another quantity (info); bottle is enforced and passes."""
    base = write(tmp_path, "base", record(metrics={"bottle": (0.99, 0.98, 0.90)}))
    more = write(tmp_path, "more", record())
    rows = C.against_baseline(json.loads(more.read_text()), json.loads(base.read_text()), C.parse_tolerances(None))
    status = {(r.where, r.metric): r.status for r in rows}
    assert status[("bottle", "pixel_roc_auc")] == "ok"
    means = [r for r in rows if r.where.startswith("mean: ")]
    assert means and all(r.status == "info" and r.where.endswith("(over other categories)") for r in means)
    res = runner.invoke(app, ["check", str(more), "--against", str(base)])
    assert res.exit_code == 0, res.output
    assert "3 enforced cells: 0 moved, 0 missing" in res.output


def test_check_against_the_paper_refuses_random_weights_and_an_unchecked_run(tmp_path):
    rand = write(tmp_path, "rand", record(weights="random"))
    res = runner.invoke(app, ["check", str(rand)])
    assert res.exit_code == 2 and "RANDOM backbone weights" in res.output
    # R18-Rd100 on bottle and grid: every paper cell of this row is unconfirmed or a mean over
    # other categories, so nothing is enforced, and the gate must not pass
    rows = C.against_paper(record(), C.parse_tolerances(None))
    assert rows and all(r.status == "info" for r in rows)
    res = runner.invoke(app, ["check", str(write(tmp_path, "r18", record()))])
    assert res.exit_code == 2 and "nothing was enforced" in res.output


def test_check_against_the_paper_enforces_only_confirmed_full_means():
    rec = record(backbone="wide_resnet50_2", d=550)
    rows = C.against_paper(rec, C.parse_tolerances(["0.5"]))
    bottle = [r for r in rows if r.where == "table 3: bottle"][0]
    assert bottle.status == "ok" and bottle.reference == 98.3  # 98.0 vs 98.3, within 0.5
    partial = [r for r in rows if r.where.startswith("table 3: all")]
    assert partial and all(r.status == "info" for r in partial)  # 2 of 15 categories: not enforced
    grid = [r for r in rows if r.where == "table 3: grid"][0]
    assert grid.status == "ok"  # 97.0 vs 97.3


def test_tolerance_parsing():
    assert C.parse_tolerances(["0.5"])["pro"] == 0.5
    assert C.parse_tolerances(["pro=2"]) == {**C.DEFAULT_TOLERANCE, "pro": 2.0}
    for bad in (["x"], ["auc=1"], ["-1"]):
        with pytest.raises(PadimBenchError):
            C.parse_tolerances(bad)


def test_check_a_run_that_asked_for_fewer_metrics():
    """A run without PRO (evaluation.metrics) has no PRO cells, in its categories or its means."""
    rec = record(backbone="efficientnet_lite0")
    for c in rec["categories"]:
        del c["metrics"]["pro"]
    rows = C.against_baseline(rec, rec, C.parse_tolerances(None))
    assert rows and all(r.status == "ok" and r.metric != "pro" for r in rows)
    assert {r.where for r in rows} >= {"bottle", "mean: all"}


def test_check_refuses_a_baseline_of_another_dataset():
    import copy

    rec = record(backbone="efficientnet_lite0")
    stc = copy.deepcopy(rec)
    stc["config"]["dataset"]["name"] = "stc"
    with pytest.raises(PadimBenchError, match="results are on stc, the baseline on mvtec_ad: not comparable"):
        C.against_baseline(stc, rec, C.parse_tolerances(None))


def test_runs_that_are_not_the_same_experiment_get_their_own_rows(tmp_path):
    """A genuine WR50 run on bottle + grid, one on bottle only, and one on synthetic data: three
    rows under the paper's, none averaged with another; the paper's value beside genuine runs only."""
    both = record(backbone="wide_resnet50_2", d=550)
    bottle = record(backbone="wide_resnet50_2", d=550, metrics={"bottle": (0.99, 0.96, 0.90)})
    fake = record(backbone="wide_resnet50_2", d=550)
    fake["synthetic_data"] = {"marker": ".padim_bench_demo.json", "what": "demo", "params": None}
    groups, per_class = tables.build("3", [both, bottle, fake])
    rows = dict(per_class.rows)
    col = per_class.columns.index(("bottle", "pixel_roc_auc"))
    plain = rows["PaDiM-WR50-Rd550 (bottle, grid)"][col]
    assert plain.ours == pytest.approx(98.0) and plain.runs == 1 and plain.paper == 98.3
    only = rows["PaDiM-WR50-Rd550 (bottle)"][col]
    assert only.ours == pytest.approx(96.0) and only.runs == 1 and only.paper == 98.3
    synth = [v for k, v in rows.items() if "SYNTHETIC data" in k]
    assert len(synth) == 1 and synth[0][col].paper is None and synth[0][col].ours == pytest.approx(98.0)
    # the same results file reached twice (a sweep folder and a run folder inside it) is read once
    path = write(tmp_path, "sweep/run", both)
    assert len(read_results([tmp_path / "sweep", path])) == 1


def test_check_against_a_baseline_of_another_experiment_names_the_differences(tmp_path):
    base = record(backbone="efficientnet_lite0")
    base["config"]["runtime"] = {"batch_size": 8}
    other = record(backbone="resnet18", weights="random")
    other["config"]["runtime"] = {"batch_size": 32}  # runtime changes no number: not listed
    other["config_hash"] = "def"
    other["synthetic_data"] = {"marker": "m", "what": "demo", "params": None}
    diff = C.config_differences(other, base)
    assert diff == ["data: generated vs genuine", "method.backbone: 'resnet18' vs 'efficientnet_lite0'",
                    "method.weights: 'random' vs 'imagenet'"]
    res = runner.invoke(app, ["check", str(write(tmp_path, "other", other)), "--against", str(write(tmp_path, "base", base))])
    assert "not the same experiment (data: generated vs genuine; method.backbone" in res.output


def test_table7_keeps_the_papers_time_beside_a_random_weights_run():
    """Time figures hold with random weights (the weights change no operation count), so Table VII
    keeps the paper's value beside such a run; Table III does not."""
    rec = record(backbone="wide_resnet50_2", d=550, weights="random")
    (t7,) = tables.build("7", [rec])
    flagged = [(label, cells) for label, cells in t7.rows if "RANDOM weights" in label]
    assert flagged and any(c.paper is not None and c.ours is not None for c in flagged[0][1])
    _, per_class = tables.build("3", [rec])
    row = dict(per_class.rows)["PaDiM-WR50-Rd550 [RANDOM weights]"]
    assert all(c.paper is None for c in row) and any(c.ours is not None for c in row)
