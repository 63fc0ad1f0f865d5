"""Every registered method on every registered dataset, end to end through ``runner.run`` on tiny
generated data (random ResNet18 weights, 64 px, a few images; the VAE's training budget cut down
through its own parameters): every metric is in [0, 1] or undefined with its reason recorded, and
the records have the shape the tables, checks and reports read.

The parametrisation is the registries themselves, so a new built-in method or dataset is smoke
tested here as soon as it registers; a dataset needs a tiny generator below (or a demo of its
own), a method may give faster settings.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
from rich.console import Console

from padim_bench.config import config_from_dict
from padim_bench.data import DATASETS, dataset_for
from padim_bench.methods import METHODS
from padim_bench.runner import run

from .conftest import write_mvtec

#: per method, the keys of its ``method:`` section that make a run fast (none: its defaults)
FAST_METHOD = {
    "padim": {"d": 10},
    "spade": {"k": 1},
    "vae": {"layers": ["layer4"], "latent_channels": 4, "n_augmented": 4, "epochs": 1, "batch_size": 4,
            "progress": False},
}

CATEGORY_KEYS = {"category", "kind", "n_train", "n_test", "n_test_anomalous", "metrics", "undefined_metrics", "time",
                 "memory", "model", "image_scores", "labels", "image_paths", "map_postprocessing", "config_hash", "run_hash",
                 "skipped_files", "data_fingerprint", "dataset_root_resolved", "method", "environment"}
RUN_KEYS = {"record_version", "name", "config_hash", "run_hash", "config", "backbone", "timed_spans", "environment",
            "categories", "dataset_root_resolved", "code"}


def _mvtec_layout(root: Path) -> dict:
    for i, category in enumerate(("widget", "gadget")):
        write_mvtec(root, category, n_train=3, n_test_good=1, defects={"scratch": 2}, size=64, seed=i)
    return {"texture_categories": ["widget"]}


def _stc(root: Path) -> dict:
    pytest.importorskip("av", reason="STC videos need PyAV")
    from padim_bench.data.stc_synth import generate_stc

    generate_stc(root, scenes=3, scenes_without_test=1, train_videos=1, train_frames=4, test_clips=1,
                 test_frames=10, size=(64, 48))
    return {"test_stride": 3}


def _image_folder(root: Path) -> dict:
    """One category: normal images, one defect folder and its masks (a MVTec category's files)."""
    made = write_mvtec(root, "parts", n_train=5, n_test_good=0, defects={"scratch": 2}, size=64)
    return {"normal_dir": str(made.path / "train/good"), "abnormal_dir": str(made.path / "test/scratch"),
            "mask_dir": str(made.path / "ground_truth/scratch"), "normal_split_ratio": 0.4}


#: per dataset, a writer of tiny data under a folder, returning the dataset keys its config needs
TINY_DATA = {"mvtec_ad": _mvtec_layout, "mvtec_folder": _mvtec_layout, "stc": _stc, "image_folder": _image_folder}
#: categories of each dataset's tiny data (default 2)
TINY_CATEGORIES = {"image_folder": 1}
#: datasets whose own part is in results.json only, not in category records
RUN_PART_ONLY = {"image_folder"}


@pytest.fixture(scope="module")
def tiny_roots(tmp_path_factory):
    """Each dataset's tiny data, written once for every method: ``{name: (root, dataset keys)}``."""
    made: dict[str, tuple[Path, dict]] = {}

    def get(name: str) -> tuple[Path, dict]:
        if name not in made:
            root = tmp_path_factory.mktemp(name) / "data"
            if name in TINY_DATA:
                made[name] = (root, TINY_DATA[name](root))
            else:  # a dataset without a tiny writer here: its own demo, if it has one
                demo = DATASETS.get(name).demo(root)
                if demo is None:
                    pytest.fail(f"dataset {name!r}: no tiny data generator in TINY_DATA and no demo of its own")
                made[name] = (demo.root, {})
        return made[name]

    return get


@pytest.mark.parametrize("dataset", DATASETS.names())
@pytest.mark.parametrize("method", METHODS.names())
def test_every_method_on_every_dataset(method, dataset, tiny_roots, tmp_path):
    root, keys = tiny_roots(dataset)
    cfg = config_from_dict({
        "name": f"smoke_{method}_{dataset}",
        "dataset": {"name": dataset, "root": str(root), "resize": 64, "crop": None, **keys},
        "method": {"name": method, "backbone": "resnet18", "weights": "random", **FAST_METHOD.get(method, {})},
        "runtime": {"device": "cpu", "batch_size": 4, "workers": 0, "threads": 1, "timing_images": 1,
                    "warmup_images": 0},
        "output": {"dir": str(tmp_path / "out"), "report_images": 0},
    })
    made_up = pytest.warns(UserWarning, match="not among MVTec AD's 15 categories")  # said once, not refused
    with made_up if dataset == "mvtec_ad" else contextlib.nullcontext():
        record = run(cfg, console=Console(file=io.StringIO()), show_progress=False)
    ds = dataset_for(cfg.dataset)
    own = {ds.record_key} if ds.record_key else set()
    assert RUN_KEYS | own <= set(record) <= RUN_KEYS | own | {"synthetic_data"}
    assert record["config"]["dataset"]["name"] == dataset and record["config"]["method"]["name"] == method
    assert len(record["categories"]) == TINY_CATEGORIES.get(dataset, 2)
    own_cat = set() if dataset in RUN_PART_ONLY else own
    for c in record["categories"]:
        assert set(c) == CATEGORY_KEYS | own_cat | ({"synthetic_data"} if "synthetic_data" in record else set())
        assert c["kind"] == ds.kind(c["category"])
        assert len(c["image_scores"]) == len(c["labels"]) == len(c["image_paths"]) == c["n_test"]
        assert 0 < c["n_test_anomalous"] < c["n_test"] and c["n_train"] > 0
        assert set(c["metrics"]) == {"image_roc_auc", "pixel_roc_auc", "pro"}
        for name, value in c["metrics"].items():
            assert (value is None and name in c["undefined_metrics"]) or 0.0 <= value <= 1.0, (name, value)
        assert c["time"]["fit_s"] > 0 and sum(c["memory"]["state_bytes"].values()) > 0
