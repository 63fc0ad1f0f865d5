"""Adding a method is one module: a toy method defined and registered in this file only goes
through ``run``, ``table``, ``check`` and ``report`` (tiny generated data, random ResNet18 at 64 px).

The toy models each layer1 feature of each patch position by its mean and standard deviation over
the training images; a test patch scores the root mean square of its z-scores over the channels.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import pytest
import torch
import yaml
from typer.testing import CliRunner

from padim_bench.cli import app
from padim_bench.errors import ConfigError, PadimBenchError
from padim_bench.methods import METHODS, Method, MethodSpec

runner = CliRunner()
TOY = "toy_meanstd"


@dataclass(frozen=True)
class ToyParams:
    """Attributes: eps: added to the standard deviation (> 0)."""

    eps: float = 1e-3

    def check(self) -> None:
        if not self.eps > 0:
            raise ConfigError(f"method.eps: must be > 0, got {self.eps}")


class ToyMeanStd(Method):
    """Per-position mean / standard deviation of the first configured layer's features."""

    name = TOY
    display_name = "Toy"
    default_layers = ("layer1",)

    def __init__(self, params: ToyParams, extractor: Any, device: str | torch.device = "cpu", seed: int = 0):
        self.params, self.extractor, self.device = params, extractor, torch.device(device)
        self.layer = extractor.layers[0]
        self.mean: torch.Tensor | None = None  # (C, h, w)
        self.std: torch.Tensor | None = None

    @classmethod
    def label_parts(cls, settings: Mapping[str, Any]) -> list[str]:
        return ["L1"]

    @torch.inference_mode()
    def fit(self, batches: Iterable[torch.Tensor]) -> None:
        total = squares = None
        n = 0
        for images in batches:
            f = self.extractor(images.to(self.device))[self.layer].double()
            total = f.sum(0) if total is None else total + f.sum(0)
            squares = (f * f).sum(0) if squares is None else squares + (f * f).sum(0)
            n += len(f)
        if n < 2 or self.n_train_expected != n:
            raise PadimBenchError(f"toy: {n} training images, {self.n_train_expected} announced")
        mean = total / n
        self.mean = mean.float()
        self.std = ((squares / n - mean * mean).clamp_min(0).sqrt() + self.params.eps).float()

    @torch.inference_mode()
    def score(self, images: torch.Tensor) -> torch.Tensor:
        f = self.extractor(images.to(self.device))[self.layer].float()
        return ((f - self.mean) / self.std).square().mean(1).sqrt().cpu()

    def state_nbytes(self) -> dict[str, int]:
        return {"mean": self.mean.numel() * 4, "std": self.std.numel() * 4}

    def state_dict(self) -> dict[str, Any]:
        return {"method": self.name, "mean": self.mean.cpu(), "std": self.std.cpu()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mean, self.std = state["mean"].to(self.device), state["std"].to(self.device)

    def describe(self) -> dict[str, Any]:
        return {"grid": list(self.mean.shape[1:])}


@pytest.fixture(scope="module")
def toy_registered():
    """The toy in :data:`METHODS` for this module's tests only (a plug-in registers itself on
    import; here it is taken out again so that other tests see the three built-in methods)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(METHODS._items, TOY, MethodSpec(cls=ToyMeanStd, params_class=ToyParams))
        yield


@pytest.fixture(scope="module")
def toy_run(toy_registered, demo_data, tmp_path_factory) -> Path:
    """One ``padim-bench run`` of the toy on two generated categories; its output folder."""
    tmp = tmp_path_factory.mktemp("toy")
    out = tmp / "run"
    cfg = {
        "dataset": {"root": str(demo_data), "categories": ["brick", "gravel"], "resize": 64, "crop": 56,
                    "texture_categories": ["brick"]},
        "method": {"name": TOY, "backbone": "resnet18", "weights": "random", "layers": ["layer1"], "eps": 0.01},
        "runtime": {"device": "cpu", "batch_size": 4, "workers": 0, "timing_images": 2, "warmup_images": 1},
        "output": {"dir": str(out)},
    }
    path = tmp / "toy.yaml"
    path.write_text(yaml.safe_dump(cfg))
    res = runner.invoke(app, ["run", str(path), "--quiet"])
    assert res.exit_code == 0, res.output
    return out


def test_the_toy_runs_end_to_end_with_its_own_state_and_parameters(toy_run):
    record = json.loads((toy_run / "results.json").read_text())
    assert record["config"]["method"]["name"] == TOY and record["config"]["method"]["eps"] == 0.01
    assert [c["category"] for c in record["categories"]] == ["brick", "gravel"]
    for c in record["categories"]:
        assert c["n_train"] == 6  # the demo data's training images, announced before fit
        # ResNet18 layer1 of a 56 px crop: 64 channels on a 14 x 14 grid (stride 4), mean and std float32
        assert c["memory"]["state_bytes"] == {"mean": 64 * 14 * 14 * 4, "std": 64 * 14 * 14 * 4}
        for key in ("image_roc_auc", "pixel_roc_auc", "pro"):
            assert 0.0 <= c["metrics"][key] <= 1.0
    # not a method that trains its backbone: random weights mark the metrics as not meaningful
    assert "RANDOM backbone weights" in (toy_run / "results.md").read_text()


def test_the_toy_is_listed_and_its_config_is_checked(toy_registered, tmp_path, demo_data):
    res = runner.invoke(app, ["list", "methods"])
    assert res.exit_code == 0 and TOY in res.output.split()
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"dataset": {"root": str(demo_data), "categories": ["brick"]},
                                   "method": {"name": TOY, "backbone": "resnet18", "weights": "random",
                                              "layers": ["layer1"], "eps": -1}}))
    res = runner.invoke(app, ["validate", str(bad)])
    assert res.exit_code == 2 and "method.eps" in res.output


def test_table_shows_the_toy_with_its_declared_label_parts(toy_run):
    res = runner.invoke(app, ["table", "3", str(toy_run), "--format", "md"])
    assert res.exit_code == 0, res.output
    assert f"| {TOY}-resnet18-L1 layer1 (not in the paper) [RANDOM weights, SYNTHETIC data] |" in res.output


def test_check_of_the_toy_against_itself_passes(toy_run):
    res = runner.invoke(app, ["check", str(toy_run), "--against", str(toy_run)])
    assert res.exit_code == 0, res.output
    assert "0 moved, 0 missing" in res.output


def test_report_labels_the_toy_with_its_display_name(toy_run, tmp_path):
    res = runner.invoke(app, ["report", str(toy_run), "--out", str(tmp_path / "report"), "--dpi", "30"])
    assert res.exit_code == 0, res.output
    html = (tmp_path / "report" / "report.html").read_text()
    assert "Toy-R18-L1 [random] [synthetic]" in html


# the toy's memory, as it declares it: mean and std float32, and the fit's float64 running sums, of
# ResNet18's layer1 on a 56 px crop: 64 channels on a 14 x 14 grid
TOY_STATE = 2 * 64 * 14 * 14 * 4
TOY_FIT_SUMS = 2 * 64 * 14 * 14 * 8
R18_PARAMETERS = 11_689_512  # torchvision's resnet18 (its documentation's parameter count)


class ToyWithMemory(ToyMeanStd):
    """The toy, declaring its memory through the Method contract."""

    @classmethod
    def predict_memory(cls, params, backbone, layers, size, n_train, n_test, batch):
        from padim_bench.methods import MethodMemory

        return MethodMemory(state={"mean and std (float32)": TOY_STATE}, fit={"running sums (float64)": TOY_FIT_SUMS})


def test_a_sweep_dry_run_shows_the_toys_declared_memory(toy_registered, demo_data, tmp_path):
    """The sweep planner and its dry run take the method's memory from the method's own
    declaration (no edit outside this file): the job's state part is the toy's figure, the backbone
    part ResNet18's float32 parameters, and the toy's larger fit working set is what the job adds."""
    from padim_bench.sweep.plan import plan_sweep

    sweep = tmp_path / "s.yaml"
    sweep.write_text(yaml.safe_dump({
        "name": "toys", "dataset": {"root": str(demo_data), "categories": ["brick"], "resize": 64, "crop": 56},
        "method": {"name": TOY, "backbone": "resnet18", "weights": "random", "layers": ["layer1"]},
        "runtime": {"device": "cpu", "batch_size": 4, "workers": 0}, "output": {"dir": str(tmp_path / "out")},
        "seeds": [0]}))
    with pytest.MonkeyPatch.context() as mp:
        plain = plan_sweep(sweep, dry_run=True).jobs[0].memory
        mp.setitem(METHODS._items, TOY, MethodSpec(cls=ToyWithMemory, params_class=ToyParams))
        job = plan_sweep(sweep, dry_run=True).jobs[0]
        res = runner.invoke(app, ["sweep", str(sweep), "--dry-run"], env={"COLUMNS": "200"})
    assert job.memory.parts["state"] == TOY_STATE and job.memory.parts["backbone"] == R18_PARAMETERS * 4
    assert plain.parts["state"] == 0  # the default declaration: no state predicted
    # the fit's working set gains exactly the declared sums (the backbone's activations are the same)
    assert sum(job.memory.fit.values()) - sum(plain.fit.values()) == TOY_FIT_SUMS
    assert res.exit_code == 0, res.output
    assert job.id in res.output and f"{job.memory.total / 1e9:.2f}" in res.output, res.output
    assert not (tmp_path / "out").exists()
