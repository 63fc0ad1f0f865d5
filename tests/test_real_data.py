"""PaDiM on genuine MVTec AD (bottle), with the real ImageNet EfficientNet-Lite0.

Reads ``../shared/data/mvtec_ad`` next to the repository; skipped where it is absent. Select with
``pytest -m real_data``. Bounds: bottle image ROC-AUC >= 0.98 and pixel ROC-AUC >= 0.97
(calibrated once outside the project at 0.998 / 0.979; the paper reports 0.981 pixel ROC-AUC for
R18-Rd100 on bottle).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from typer.testing import CliRunner

from padim_bench.cli import app
from padim_bench.config import load_config
from padim_bench.runner import run

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mvtec_ad"
CONFIG = Path(__file__).resolve().parents[1] / "configs" / "mvtec_effl0.yaml"
BASELINE = Path(__file__).resolve().parents[1] / "results" / "baselines" / "padim_effl0_bottle" / "results.json"

pytestmark = [
    pytest.mark.real_data,
    pytest.mark.skipif(not (DATA / "bottle").is_dir(), reason=f"real MVTec AD not found at {DATA}"),
]


def test_padim_effl0_on_bottle_meets_the_calibrated_bounds(tmp_path):
    cfg = load_config(CONFIG, data_root=str(DATA), categories="bottle", out=str(tmp_path / "run"),
                      sets=["runtime.timing_images=3", "runtime.workers=0"])
    record = run(cfg, show_progress=False)
    (bottle,) = record["categories"]
    assert bottle["n_train"] == 209 and bottle["n_test"] == 83 and bottle["n_test_anomalous"] == 63
    assert bottle["metrics"]["image_roc_auc"] >= 0.98
    assert bottle["metrics"]["pixel_roc_auc"] >= 0.97
    assert 0.0 < bottle["metrics"]["pro"] <= 1.0
    assert record["backbone"]["weights"] == "imagenet"
    assert "synthetic_data" not in record  # genuine MVTec AD: no generator marker
    # regression check against the committed baseline: a change that moves a number fails CI
    base = json.loads(BASELINE.read_text())["config"]
    ours = record["config"]
    assert ours["method"] == base["method"] and ours["evaluation"] == base["evaluation"]
    assert {k: v for k, v in ours["dataset"].items() if k != "root"} == {k: v for k, v in base["dataset"].items() if k != "root"}
    res = CliRunner().invoke(app, ["check", str(tmp_path / "run"), "--against", str(BASELINE)])
    assert res.exit_code == 0, res.output
