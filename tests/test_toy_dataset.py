"""Adding a dataset is one module: a toy dataset defined and registered in this file only goes
through ``validate``, ``run`` and ``table`` (tiny generated images, random ResNet18 at 64 px).

The toy layout is flat, one folder per category::

    ROOT/<category>/train_<i>.png            normal training images
    ROOT/<category>/test_good_<i>.png        normal test images
    ROOT/<category>/test_bad_<i>.png         defective test images, with test_bad_<i>_mask.png

and it has one key of its own, ``dataset.min_train`` (the fewest training images a category may
have), written flat in the ``dataset:`` section like any dataset's own keys.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from padim_bench.cli import app
from padim_bench.config import config_from_dict
from padim_bench.data import DATASETS, Dataset, Prepared
from padim_bench.data.mvtec import CategorySplit, Sample
from padim_bench.errors import ConfigError, DataError

runner = CliRunner()
TOY = "toy_flat"


@dataclass(frozen=True)
class ToyParams:
    """Attributes: min_train: the fewest training images a category may have (>= 1)."""

    min_train: int = 2

    def check(self) -> None:
        if self.min_train < 1:
            raise ConfigError(f"dataset.min_train: must be >= 1, got {self.min_train}")


class ToyFlat(Dataset):
    """The flat toy layout above: each category's samples from its file names."""

    name = TOY
    display_name = "toy flat folder"
    params_class = ToyParams
    paper_tables = "mvtec_ad"  # its runs are rows of their own in the MVTec AD tables

    def _split(self, category: str) -> CategorySplit:
        folder = Path(self.config.root) / category
        train = tuple(Sample(p, 0, "good") for p in sorted(folder.glob("train_*.png")))
        if len(train) < self.params.min_train:
            raise DataError(f"{folder}: {len(train)} training images, dataset.min_train is {self.params.min_train}")
        good = [Sample(p, 0, "good") for p in sorted(folder.glob("test_good_*.png"))]
        bad = [Sample(p, 1, "bad", p.with_name(p.stem + "_mask.png"))
               for p in sorted(folder.glob("test_bad_*.png")) if not p.stem.endswith("_mask")]
        return CategorySplit(category, folder, train, tuple(good + bad))

    def prepare(self, threads: int = 2) -> Prepared:
        root, wanted = Path(self.config.root), self.config.categories
        categories = sorted(p.name for p in root.iterdir() if p.is_dir()) if wanted == "all" else list(wanted)
        return Prepared(tuple(self._split(c) for c in categories), {c: [] for c in categories})

    def loader(self, samples: Sequence[Any], prep: Any, augment: Any, batch_size: int, workers: int, which: str):
        from padim_bench.data.transforms import make_loader

        return make_loader(samples, prep, batch_size, workers, augment, which)


def write_toy(root: Path, categories=("alpha", "beta"), n_train=4, n_good=2, n_bad=2, size=64) -> Path:
    rng = np.random.default_rng(0)
    for c in categories:
        folder = root / c
        folder.mkdir(parents=True)
        noise = lambda: rng.integers(70, 131, size=(size, size, 3), dtype=np.uint8)  # noqa: E731
        for i in range(n_train):
            Image.fromarray(noise()).save(folder / f"train_{i}.png")
        for i in range(n_good):
            Image.fromarray(noise()).save(folder / f"test_good_{i}.png")
        for i in range(n_bad):
            img, mask = noise(), np.zeros((size, size), np.uint8)
            top, left = rng.integers(0, size - 12, 2)
            img[top:top + 12, left:left + 12] = 255
            mask[top:top + 12, left:left + 12] = 255
            Image.fromarray(img).save(folder / f"test_bad_{i}.png")
            Image.fromarray(mask).save(folder / f"test_bad_{i}_mask.png")
    return root


@pytest.fixture(scope="module")
def toy_registered():
    """The toy in :data:`DATASETS` for this module's tests only (a plug-in registers itself on
    import; here it is taken out again so that other tests see the built-in datasets)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(DATASETS._items, TOY, ToyFlat)
        yield


def _config(path: Path, root: Path, out: Path, **dataset) -> Path:
    cfg = {
        "dataset": {"name": TOY, "root": str(root), "resize": 64, "crop": 56, "min_train": 3, **dataset},
        "method": {"name": "padim", "backbone": "resnet18", "weights": "random", "d": 10},
        "runtime": {"device": "cpu", "batch_size": 4, "workers": 0, "threads": 1, "timing_images": 1,
                    "warmup_images": 0},
        "output": {"dir": str(out)},
    }
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def toy_run(toy_registered, tmp_path_factory) -> Path:
    """One ``padim-bench run`` on the toy dataset; its output folder."""
    tmp = tmp_path_factory.mktemp("toy_dataset")
    res = runner.invoke(app, ["run", str(_config(tmp / "toy.yaml", write_toy(tmp / "data"), tmp / "run")), "--quiet"])
    assert res.exit_code == 0, res.output
    return tmp / "run"


def test_the_toy_dataset_runs_end_to_end_with_its_own_key(toy_run):
    record = json.loads((toy_run / "results.json").read_text())
    ds = record["config"]["dataset"]
    assert ds["name"] == TOY and ds["min_train"] == 3  # its own key, flat beside the shared ones
    assert [c["category"] for c in record["categories"]] == ["alpha", "beta"]
    for c in record["categories"]:
        assert (c["n_train"], c["n_test"], c["n_test_anomalous"]) == (4, 4, 2)
        assert c["kind"] == "custom"  # the base class's grouping: one group, no textures / objects
        assert 0.0 <= c["metrics"]["pixel_roc_auc"] <= 1.0


def test_its_key_is_checked_and_belongs_to_it(toy_registered, tmp_path):
    with pytest.raises(ConfigError, match="dataset.min_train: must be >= 1"):
        config_from_dict({"dataset": {"name": TOY, "min_train": 0}})
    with pytest.raises(ConfigError, match="dataset.min_train: a key of dataset 'toy_flat' only"):
        config_from_dict({"dataset": {"name": "mvtec_ad", "min_train": 3}})
    res = runner.invoke(app, ["validate", str(_config(tmp_path / "c.yaml", write_toy(tmp_path / "d"), tmp_path / "o",
                                                      min_train=5))])
    assert res.exit_code == 2 and "4 training images, dataset.min_train is 5" in res.output
    res = runner.invoke(app, ["list", "datasets"])
    assert res.exit_code == 0 and f"{TOY}: toy flat folder" in res.output


def test_table_shows_the_toy_as_a_row_of_its_own(toy_run):
    res = runner.invoke(app, ["table", "3", str(toy_run), "--format", "md"])
    assert res.exit_code == 0, res.output
    row = next(line for line in res.output.splitlines() if "toy_flat" in line)
    # never beside the paper's PaDiM values, and its means are not "n of MVTec AD's 15"
    assert row.startswith(f"| padim-resnet18-Rd10 on {TOY} (not in the paper) [RANDOM weights] |")
    assert "/15]" not in row
    res = runner.invoke(app, ["table", "4", str(toy_run), "--format", "md"])
    assert res.exit_code == 0 and "left out (not STC runs; Table IV is STC's)" in res.output
