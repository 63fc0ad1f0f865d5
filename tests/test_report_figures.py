"""The report's figures and page parts, on hand-made inputs: readable axes, faded runs, legends
instead of text over plots, labels and headings that tell runs apart, the image comparison."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from padim_bench.report import html as H
from padim_bench.report.figures import (FADED_HATCH, FADED_TEXT, BarRun, CostRun, CurveSeries, bar_figure,
                                        cost_figure, curves_figure, png_bytes)
from padim_bench.report.runs import Run, _label_runs


def _labelled_ticks(ax) -> list[str]:
    """The y tick labels matplotlib draws inside the view (independent of our locator's code)."""
    FigureCanvasAgg(ax.figure).draw()
    lo, hi = ax.get_ylim()
    return [t.get_text() for t in ax.get_yticklabels() if t.get_text() and lo <= t.get_position()[1] <= hi]


def _cost_run(label, color, fit, infer, faded=False):
    return CostRun(label, color, fit_s=fit, infer_s=infer, state_gb=[0.1, 0.12], state_gb_without_backbone=[0.09, 0.1],
                   fit_peak_gb=[1.3, 1.4], faded=faded)


@pytest.mark.parametrize("fit", [[1.5, 9.0], [2.0, 2.5], [1.0, 3000.0]])
def test_log_axes_have_at_least_three_labelled_ticks(fit):
    fig = cost_figure([_cost_run("A", "#1f77b4", fit, [0.06, 0.07]), _cost_run("B", "#d62728", fit, [1.5, 1.6])])
    for ax in fig.axes[:3]:
        labels = _labelled_ticks(ax)
        assert len(labels) >= 3, (ax.get_title(), labels)
        assert all(float(t) > 0 for t in labels)  # plain numbers, no 10^k mathtext


def test_missing_curves_are_legend_entries_not_text_over_the_panel():
    c = {"fpr": [0, 0.5, 1], "tpr": [0, 0.9, 1], "auc": 0.8}
    pro = {"fpr": [0, 0.3], "pro": [0, 0.8], "area": 0.5, "fpr_limit": 0.3}
    fig = curves_figure("grid", [CurveSeries("A", "#1f77b4", {"image_roc": c, "pixel_roc": c, "pro": pro}),
                                 CurveSeries("B", "#d62728", None, faded=True)])
    for ax in fig.axes:
        assert len(ax.texts) == 0
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        assert "B: no data" in legend
    assert "dashed" in fig._suptitle.get_text()


def test_faded_runs_are_hatched_and_named_in_the_legend():
    real = BarRun("A", "#1f77b4", values={("bottle", "pro"): 90.0})
    fake = BarRun("B [random]", "#d62728", values={("bottle", "pro"): 60.0}, faded=True)
    fig = bar_figure([real, fake], ["bottle"], ["bottle"], [("pro", "PRO %")])
    bars = [p for p in fig.axes[0].patches if p.get_height() in (90.0, 60.0)]
    assert {p.get_height(): p.get_hatch() for p in bars} == {90.0: None, 60.0: FADED_HATCH}
    assert [p.get_alpha() for p in bars if p.get_height() == 60.0][0] < 1
    assert FADED_TEXT in [t.get_text() for t in fig.legends[0].get_texts()]
    fig = bar_figure([real], ["bottle"], ["bottle"], [("pro", "PRO %")])
    assert FADED_TEXT not in [t.get_text() for t in fig.legends[0].get_texts()]  # no entry without faded runs


def test_value_labels_are_horizontal_where_bars_are_wide():
    runs = [BarRun(f"R{i}", "#1f77b4", values={(c, "pro"): 90.0 for c in ("a", "b")}) for i in range(3)]
    fig = bar_figure(runs, ["a", "b"], ["a", "b"], [("pro", "PRO %")])
    assert {t.get_rotation() for t in fig.axes[0].texts} == {0.0}
    assert min(t.get_fontsize() for t in fig.axes[0].texts) >= 8.5


def test_figures_draw_without_layout_warnings():
    many = [_cost_run(f"PaDiM-EffL0-Rd100 variant_{i}", "#1f77b4", [1.0, 2.0], [0.1, 0.2], faded=i % 2 == 1)
            for i in range(10)]
    bars = [BarRun(r.label, r.color, values={(c, "pro"): 80.0 for c in "abcdefg"}, faded=r.faded) for r in many]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "constrained_layout not applied" included
        png_bytes(cost_figure(many))
        png_bytes(bar_figure(bars, list("abcdefg"), list("abcdefg"), [("pro", "PRO %"), ("pixel_roc_auc", "pix")]))


def _record(name, d, seed, weights="imagenet"):
    return {"name": name, "config": {"method": {"name": "padim", "backbone": "efficientnet_lite0", "weights": weights,
                                                "layers": ["layer1", "layer2"], "seed": seed, "d": d},
                                     "dataset": {"name": "mvtec_ad", "augment": "none", "crop": 224}}}


def test_sweep_runs_are_labelled_by_variant_and_headed_by_what_differs():
    runs = [Run(_record("table2/rd100_seed0", 100, 0), Path("x/rd100_seed0")),
            Run(_record("table2/rd100_seed1", 100, 1), Path("x/rd100_seed1")),
            Run(_record("table2/rd50_seed0", 50, 0, "random"), Path("x/rd50_seed0"))]
    _label_runs(runs)
    assert [r.label for r in runs] == ["PaDiM-EffL0-Rd100 rd100_seed0", "PaDiM-EffL0-Rd100 rd100_seed1",
                                       "PaDiM-EffL0-Rd50 [random]"]
    assert len({r.details for r in runs}) == 3
    assert runs[0].details == ("run rd100_seed0 · method padim · backbone efficientnet_lite0 · weights imagenet · "
                               "seed 0 · d 100")
    assert runs[2].details.endswith("d 50 · RANDOM WEIGHTS") and runs[2].caveats == ["random weights"]
    assert runs[0].caveats == []


def test_page_has_a_table_of_contents_and_refuses_duplicate_ids():
    kids = [H.Section("a-1", "first <one>"), H.Section("a-2", "second")]
    page = H.page("T", "", [H.Section("a", "A", "<p>x</p>", kids)])
    assert '<nav class="toc">' in page and 'href="#a-1"' in page and 'id="a-1"' in page
    assert "first &lt;one&gt;" in page  # escaped
    with pytest.raises(ValueError, match="a-1"):
        H.page("T", "", [H.Section("a-1", "A", "", kids)])
    assert H.anchor("Table", "III!") == "table-iii"
