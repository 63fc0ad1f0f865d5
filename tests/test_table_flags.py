"""Table VII flags timings taken under load; Table VIII gives every run a row (hand-made records)."""

from __future__ import annotations

import pytest

from padim_bench import tables


def _record(backbone="resnet18", d=100, size=224, cats=None, name="run") -> dict:
    """A results.json of PaDiM with given per-category (s/image, other cores during the timing,
    state GB, fit peak bytes)."""
    cats = cats or {"bottle": (0.5, None, 0.2, 2e9)}
    return {"name": name, "config_hash": "abc", "_path": name,
            "config": {"method": {"name": "padim", "backbone": backbone, "d": d, "weights": "imagenet"},
                       "dataset": {"name": "mvtec_ad", "resize": 256 if size <= 256 else size, "crop": size}},
            "categories": [{"category": c, "kind": "object", "n_train": 10, "environment": {"cpu_count": 2},
                            "metrics": {"image_roc_auc": 0.9, "pixel_roc_auc": 0.9, "pro": 0.9},
                            "time": {"fit_s": 1.0, "infer_s_per_image": t, "other_cpu_cores_timing": busy},
                            "memory": {"fit_peak_rss_bytes": peak, "state_gb": state, "state_bytes": {"gaussian": state * 1e9}}}
                           for c, (t, busy, state, peak) in cats.items()]}


def test_table7_flags_a_category_timed_under_load_and_keeps_it_in_the_mean():
    r18 = _record(cats={"bottle": (0.5, 1.9, 0.2, 2e9), "grid": (0.7, 0.1, 0.2, 2e9)}, name="r18")
    wr50 = _record(backbone="wide_resnet50_2", d=550, cats={"bottle": (2.0, 0.2, 3.0, 5e9)}, name="wr50")
    (data,) = tables.build("7", [r18, wr50])
    rows = dict(data.rows)
    assert rows["PaDiM-R18-Rd100 [contended timing: bottle]"][0].ours == pytest.approx((0.5 + 0.7) / 2)
    assert "PaDiM-WR50-Rd550" in rows  # 0.2 cores busy: under the threshold, not flagged
    note = next(n for n in data.notes if n.startswith("contended timing"))
    assert "r18 bottle batch-1 timing (1.9 of 2 cores)" in note and "grid" not in note and "wr50" not in note
    # the ratio notes still find the flagged row: WR50 / R18 = 2.0 / 0.6
    assert any(n.startswith("ratio PaDiM-WR50-Rd550 / PaDiM-R18-Rd100") and "ours 3.33" in n for n in data.notes)


def test_table7_says_which_records_do_not_record_their_load():
    (data,) = tables.build("7", [_record(cats={"bottle": (0.5, None, 0.2, 2e9), "grid": (0.6, None, 0.2, 2e9)})])
    assert "PaDiM-R18-Rd100" in dict(data.rows)
    assert any(n.startswith("timing load not recorded") and "run (bottle, grid)" in n for n in data.notes)
    assert not any(n.startswith("contended timing") for n in data.notes)


def test_table8_gives_every_run_the_paper_lacks_its_own_row():
    """A backbone the paper lacks (EfficientNet-Lite0) and the paper's PaDiM-R18 at another input
    size (256 px): each in a labelled row with its fit peak and fitted state; the computed state of
    the R18 one by hand: 64 x 64 patches x (100 + 100^2) float32 + ResNet18's 11,689,512 parameters."""
    lite = _record(backbone="efficientnet_lite0", cats={"bottle": (0.1, None, 0.145, 1.4e9),
                                                         "grid": (0.1, None, 0.140, 1.5e9)}, name="lite")
    r18_256 = _record(size=256, cats={"bottle": (0.1, None, 0.2, 1.2e9)}, name="r18_256")
    r18 = _record(size=224, cats={"bottle": (0.1, None, 0.17, 1.1e9)}, name="r18")
    (data,) = tables.build("8", [lite, r18_256, r18])
    rows = dict(data.rows)
    own = rows["padim-efficientnet_lite0-Rd100 (not in the paper), mvtec_ad, 224 px"]
    assert own[2].ours == pytest.approx(1.5) and own[3].ours == pytest.approx(0.145) and own[0].paper is None
    assert own[1].ours is not None and own[1].ours > 0  # computed from its architecture
    other_size = rows["PaDiM-R18-Rd100, mvtec_ad, 256 px"]
    assert other_size[1].ours == pytest.approx((64 * 64 * (100 + 100 ** 2) + 11_689_512) * 4 / 1e9)
    assert other_size[2].ours == pytest.approx(1.2) and other_size[3].ours == pytest.approx(0.2)
    # the run at the paper's size is in the paper's row, not in a row of its own
    assert rows["PaDiM-R18-Rd100, mvtec_ad, with backbone"][3].ours == pytest.approx(0.17)
    assert not any(label.startswith("PaDiM-R18-Rd100, mvtec_ad, 224 px") for label in rows)
    assert any(n.startswith("rows without a paper value") for n in data.notes)


def test_the_reports_notes_flag_the_fit_too():
    """The report's time section names contended fits as well as timings (what `run` warns about)."""
    rec = _record(cats={"bottle": (0.5, 0.2, 0.2, 2e9)})
    rec["categories"][0]["time"]["other_cpu_cores_fit"] = 1.2
    (note,) = tables.contention_notes([rec], ("fit", "batch-1 timing"))
    assert "run bottle fit (1.2 of 2 cores)" in note and "batch-1 timing" not in note
    assert tables.contention_notes([rec]) == []  # Table VII: the timing alone, 0.2 cores: quiet
