"""``padim-bench table backbones`` and ``list backbones``: values computed by hand from the
records written here, the categories' intersection, seeds' spread, the random-weights section,
the paper's rows, sorting and the four formats; the report's backbone chart."""

from __future__ import annotations

import csv
import io
import json
import statistics

import pytest
from typer.testing import CliRunner

from padim_bench.cli import app
from padim_bench.errors import PadimBenchError
from padim_bench.tables.backbones import build_backbones
from padim_bench.tables import backbones_render as R


def _cat(name, img, pix, pro, fit, infer, state, peak):
    return {"category": name, "kind": "object", "metrics": {"image_roc_auc": img, "pixel_roc_auc": pix, "pro": pro},
            "time": {"fit_s": fit, "infer_s_per_image": infer},
            "memory": {"state_gb": state, "fit_peak_rss_bytes": peak * 1e9}}


def _rec(backbone, cats, weights="imagenet", seed=0, d=100):
    return {"name": backbone, "config": {"dataset": {"name": "mvtec_ad"},
                                         "method": {"name": "padim", "backbone": backbone, "weights": weights,
                                                    "layers": ["layer1", "layer2", "layer3"], "seed": seed, "d": d}},
            "categories": cats}


RECORDS = [
    _rec("efficientnet_lite0", [_cat("bottle", 0.99, 0.97, 0.90, 10.0, 0.06, 0.15, 1.3),
                                _cat("grid", 0.87, 0.97, 0.88, 2.0, 0.05, 0.15, 1.4),
                                _cat("cable", 0.50, 0.50, 0.50, 1.0, 1.00, 1.00, 1.0)]),  # not in every run
    _rec("efficientnet_lite1", [_cat("bottle", 0.95, 0.96, 0.85, 12.0, 0.08, 0.16, 1.5),
                                _cat("grid", 0.80, 0.95, 0.80, 3.0, 0.07, 0.16, 1.5)]),
    _rec("efficientnet_lite1", [_cat("bottle", 0.97, 0.96, 0.87, 14.0, 0.10, 0.16, 1.7),
                                _cat("grid", 0.84, 0.95, 0.82, 5.0, 0.09, 0.16, 1.7)], seed=1),
    _rec("timm/resnet18", [_cat("bottle", 0.60, 0.70, 0.30, 4.0, 0.03, 0.17, 1.1),
                           _cat("grid", 0.55, 0.65, 0.20, 1.0, 0.02, 0.17, 1.1)], weights="random"),
]


def test_rows_are_means_over_the_shared_categories_with_seed_spread():
    t = build_backbones(RECORDS)
    assert t.categories == ["bottle", "grid"]  # cable: only one run has it
    (real_title, real), (random_title, rand), (paper_title, paper) = t.sections
    assert [r.backbone for r in real] == ["efficientnet_lite0", "efficientnet_lite1"]  # by image ROC-AUC
    lite0, lite1 = real
    assert lite0.values["image_roc_auc"].mean == pytest.approx(93.0)  # (99 + 87) / 2, cable left out
    assert lite0.values["fit_s"].mean == pytest.approx(6.0) and lite0.values["fit_peak_gb"].mean == pytest.approx(1.35)
    seeds = [(95 + 80) / 2, (97 + 84) / 2]
    assert lite1.values["image_roc_auc"].mean == pytest.approx(statistics.fmean(seeds))
    assert lite1.values["image_roc_auc"].spread == pytest.approx(statistics.stdev(seeds))
    assert lite1.values["image_roc_auc"].runs == 2 and lite1.label == "padim efficientnet_lite1-Rd100"
    assert lite1.values["infer_s_per_image"].mean == pytest.approx((0.075 + 0.095) / 2)
    assert "RANDOM" in random_title and [r.backbone for r in rand] == ["timm/resnet18"]
    assert rand[0].values["image_roc_auc"].mean is None and rand[0].values["pro"].mean is None  # not meaningful
    assert rand[0].values["infer_s_per_image"].mean == pytest.approx(0.025)
    assert "paper" in paper_title and [r.label for r in paper] == ["PaDiM-R18-Rd100", "PaDiM-WR50-Rd550",
                                                                   "PaDiM-EfficientNet-B5"]
    wr50 = paper[1].values  # paper.yaml: Tables V, III, VII, VIII
    assert (wr50["image_roc_auc"].mean, wr50["pixel_roc_auc"].mean, wr50["pro"].mean) == (95.3, 97.5, 92.1)
    assert (wr50["infer_s_per_image"].mean, wr50["state_gb"].mean) == (0.95, 3.8)
    assert paper[0].values["image_roc_auc"].mean is None and paper[2].values["image_roc_auc"].mean == 97.9
    assert any("measured rows: means over the 2 categories every such run has (bottle, grid)" in n for n in t.notes)


def test_random_rows_have_their_own_category_intersection():
    grid_only = _rec("timm/convnext_atto", [_cat("grid", 0.5, 0.5, 0.5, 1.0, 0.04, 0.2, 1.2)], weights="random")
    t = build_backbones(RECORDS + [grid_only])
    (_, real), (_, rand), _ = t.sections
    assert real[0].values["image_roc_auc"].mean == pytest.approx(93.0)  # still bottle and grid
    r18 = next(r for r in rand if r.backbone == "timm/resnet18")
    assert r18.values["infer_s_per_image"].mean == pytest.approx(0.02)  # grid only now
    assert r18.values["fit_s"].mean == pytest.approx(1.0)
    assert any("RANDOM-weights rows: means over the 1 categories every such run has (grid)" in n for n in t.notes)


def test_sort_by_time_and_errors():
    t = build_backbones(RECORDS, sort="infer_s_per_image")
    assert [r.backbone for r in t.sections[0][1]] == ["efficientnet_lite0", "efficientnet_lite1"]
    t = build_backbones(RECORDS[1:3] + [_rec("efficientnet_lite2", [_cat("bottle", 0.9, 0.9, 0.9, 1, 0.01, 0.1, 1),
                                                                    _cat("grid", 0.9, 0.9, 0.9, 1, 0.01, 0.1, 1)])],
                        sort="fit_s")
    assert [r.backbone for r in t.sections[0][1]] == ["efficientnet_lite2", "efficientnet_lite1"]
    with pytest.raises(PadimBenchError, match="--sort 'speed'"):
        build_backbones(RECORDS, sort="speed")
    with pytest.raises(PadimBenchError, match="share no category"):
        build_backbones([RECORDS[0], _rec("x", [_cat("wood", 1, 1, 1, 1, 1, 1, 1)])])


def test_formats():
    t = build_backbones(RECORDS)
    md = R.to_markdown(t)
    assert "| padim efficientnet_lite0-Rd100 | 93.0 | 97.0 | 89.0 | 6.000 | 0.055 | 0.150 | 1.350 |" in md
    assert "| padim efficientnet_lite1-Rd100 | 89.0±2.1 x2 |" in md  # seeds 87.5 and 90.5
    rows = list(csv.DictReader(io.StringIO(R.to_csv(t))))
    img = [r for r in rows if r["row"] == "padim efficientnet_lite1-Rd100" and r["column"] == "image_roc_auc"]
    assert float(img[0]["mean"]) == pytest.approx(89.0) and img[0]["runs"] == "2"
    assert not [r for r in rows if r["backbone"] == "timm/resnet18" and r["column"] == "pro"]
    tex = R.to_latex(t)
    assert r"\multicolumn{8}{l}{\textit{RANDOM backbone weights" in tex and "efficientnet\\_lite0" in tex


def test_cli_table_backbones_and_list(tmp_path):
    folders = []
    for i, rec in enumerate(RECORDS):
        folder = tmp_path / f"run{i}"
        folder.mkdir()
        (folder / "results.json").write_text(json.dumps(rec))
        folders.append(str(folder))
    runner = CliRunner()
    res = runner.invoke(app, ["table", "backbones", *folders, "--format", "md", "--sort", "pro"])
    assert res.exit_code == 0, res.output
    assert "padim efficientnet_lite0-Rd100 | 93.0" in res.output and "PaDiM-WR50-Rd550" in res.output
    res = runner.invoke(app, ["list", "backbones", "--search", "convnext_atto"])
    assert res.exit_code == 0, res.output
    assert "timm/convnext_atto [timm] channels layer1/2/3/4 40/80/160/320" in res.output
    assert "stages.0" in res.output and "missing:" in res.output
    res = runner.invoke(app, ["list", "backbones"])
    assert "efficientnet_lite0 [efficientnet_lite] channels layer1/2/3/4 24/40/112/320; weights yes:" in res.output
    assert "resnet18 [torchvision] channels layer1/2/3/4 64/128/256/512" in res.output


def test_report_chart_marks_random_points_apart():
    from padim_bench.report.backbone_chart import backbone_figure

    fig = backbone_figure(build_backbones(RECORDS))
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert "timm/resnet18 (RANDOM)" in texts and "efficientnet_lite0" in texts and "PaDiM-WR50-Rd550" in texts
    assert ax.get_xscale() == "log"


def test_times_taken_on_a_busy_machine_are_marked():
    busy = _rec("efficientnet_lite0", [_cat("bottle", 0.99, 0.97, 0.90, 10.0, 0.06, 0.15, 1.3)])
    busy["categories"][0]["time"]["other_cpu_cores_timing"] = 1.7  # the runner's measurement
    t = build_backbones([busy])
    row = t.sections[0][1][0]
    assert row.values["infer_s_per_image"].tag == "busy" and row.values["fit_s"].tag is None
    assert "| 10.000 | 0.060* |" in R.to_markdown(t) and any(n.startswith("* timed while") for n in t.notes)
