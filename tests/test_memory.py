"""The memory model (padim_bench.memory) and the methods' memory contract, against figures worked
out by hand from the architecture (ResNet18 at 64 px: layer1 64 x 16 x 16, layer2 128 x 8 x 8,
layer3 256 x 4 x 4; 11,689,512 parameters)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from padim_bench import memory
from padim_bench.config import config_from_dict
from padim_bench.errors import ConfigError
from padim_bench.methods import padim as padim_module
from padim_bench.methods.base import Method, MethodMemory
from padim_bench.methods.padim import (CHUNK_BYTES, FLOAT64_MAX_BYTES, Padim, PadimParams, accumulator_dtype,
                                       grid_sizes)
from padim_bench.methods.spade import Spade, SpadeParams
from padim_bench.methods.vae import Vae, VaeParams
from tests.test_padim import FakeExtractor, images

R18 = 11_689_512 * 4  # float32 parameters of torchvision's ResNet18
LAYERS = ["layer1", "layer2", "layer3"]


def cfg_for(method: dict, batch: int = 4, workers: int = 1):
    return config_from_dict({"method": {"backbone": "resnet18", "layers": LAYERS, **method},
                             "dataset": {"resize": 64, "crop": 64},
                             "runtime": {"batch_size": batch, "workers": workers}})


def test_the_accumulator_rule_is_float64_up_to_two_gb():
    assert FLOAT64_MAX_BYTES == 2_000_000_000 and CHUNK_BYTES == 64_000_000  # every committed run's
    assert accumulator_dtype(1000, 500) == torch.float64  # 1000 x 500^2 x 8 = 2.0e9 bytes: fits
    assert accumulator_dtype(1001, 500) == torch.float32
    assert accumulator_dtype(3136, 100) == torch.float64  # R18-Rd100 at 224: 0.25 GB
    assert accumulator_dtype(3136, 550) == torch.float32  # WR50-Rd550: 7.6 GB
    assert accumulator_dtype(10, 10, float64_max_bytes=0) == torch.float32


@pytest.mark.parametrize("budget, dtype", [(FLOAT64_MAX_BYTES, "float64"), (8 * 8 * 16 * 16 * 8, "float64"),
                                           (8 * 8 * 16 * 16 * 8 - 1, "float32")])
def test_a_fitted_model_records_the_accumulator_it_used(budget, dtype, monkeypatch):
    seen = []
    update = padim_module.GaussianGrid.update

    def spy(grid, emb):
        update(grid, emb)
        seen.append(str(grid._m2[0].dtype).removeprefix("torch."))

    monkeypatch.setattr(padim_module.GaussianGrid, "update", spy)
    m = Padim(PadimParams(d=None), FakeExtractor(), float64_max_bytes=budget)  # one 8 x 8 grid, d = 16 at 32 px
    m.fit([images(3, 0), images(2, 1)])
    assert seen == [dtype, dtype] and m.describe()["accumulator_dtypes"] == [dtype]


def test_the_per_layer_split_of_d_is_the_fitted_one():
    params = PadimParams(d=8, combine="sum")
    m = Padim(params, FakeExtractor(), seed=0)
    m.fit([images(4, 0)])
    predicted = grid_sizes(params, {"layer1": (6, 8, 8), "layer2": (10, 4, 4)})
    assert predicted == [(g.grid[0] * g.grid[1], g.d) for g in m.gaussians]
    assert sum(d for _, d in predicted) == 8 and [p for p, _ in predicted] == [64, 16]


def test_padim_memory_by_hand():
    pred = memory.predict_memory(cfg_for({"name": "padim", "d": 10}), 6, 3)
    own = pred.method
    assert own.state == {"Gaussian means (float32)": 256 * 10 * 4, "covariance factors (float32)": 256 * 100 * 4}
    assert own.fit == {"co-moment and mean (float64)": 256 * 10 * 11 * 8, "factorisation chunks": 3 * 64_000_000,
                       "PCA samples (float64)": 0, "embeddings of a batch": 4 * 256 * 10 * (8 + 8)}
    assert own.score == {"embeddings of a batch": 3 * 256 * 10 * 12}
    act = pred.fit["backbone activations of a batch"]
    assert act == 4 * pred.score["backbone activations of a batch"] // 3 > 0  # batch 4 in the fit, 3 test images
    assert pred.score["test maps and masks"] == 3 * 64 * 64 * 10
    assert pred.metrics == {"test maps and masks": 3 * 64 * 64 * 10, "metrics' sorted copies": 3 * 64 * 64 * 80}
    fit = 256 * 10 * 11 * 8 + 192_000_000 + 4 * 256 * 10 * 16 + act  # the fit is the largest phase here
    assert pred.parts == {"process": 1_000_000_000, "backbone": R18, "state": 256 * 10 * 4 + 256 * 100 * 4,
                          "working": fit, "loader_workers": 250_000_000}
    assert pred.total == 1_000_000_000 + R18 + 112_640 + fit + 250_000_000
    # run's check: what the fit adds to the running process, all of it in RAM on the CPU
    need = pred.fit_need()
    assert need.host == {"DataLoader worker processes": 250_000_000}
    assert need.ram(on_cuda=False) == pred.total - 1_000_000_000
    assert need.ram(on_cuda=True) == 250_000_000 and sum(need.device.values()) == pred.total - 1_250_000_000


def test_padim_pca_sample_is_host_memory():
    pred = memory.predict_memory(cfg_for({"name": "padim", "d": 10, "reduction": "pca"}, workers=0), 6, 3)
    samples = 3 * 256 * 6 * 448 * 8  # 256 positions per image (pca_samples / 6 is more), 448 channels, float64
    assert pred.method.fit["PCA samples (float64)"] == samples
    assert pred.method.fit["embeddings of a batch"] == 4 * (256 * 10 * 16 + 256 * 448 * 8)
    assert pred.method.state["PCA projection (float32)"] == 11 * 448 * 4
    need = pred.fit_need()
    assert need.host == {"PCA samples (float64)": samples} and need.ram(on_cuda=True) == samples


def test_padim_sum_of_layers_by_hand():
    pred = memory.predict_memory(cfg_for({"name": "padim", "d": None, "combine": "sum"}), 6, 3)
    grids = [(256, 64), (64, 128), (16, 256)]
    assert pred.method.state == {"Gaussian means (float32)": sum(p * d * 4 for p, d in grids),
                                 "covariance factors (float32)": 3 * 1_048_576 * 4}
    assert pred.method.fit["co-moment and mean (float64)"] == sum(p * d * (d + 1) * 8 for p, d in grids)


def test_spade_memory_by_hand():
    per_image = (64 * 16 * 16 + 128 * 8 * 8 + 256 * 4 * 4 + 512) * 4  # pixel maps + pooled layer4
    own = Spade.predict_memory(SpadeParams(k=2), "resnet18", LAYERS, 64, 5, 3, 4)
    assert own.state == {"feature bank (float32)": 5 * per_image}
    assert own.fit == {"features of a batch": 4 * per_image}
    assert own.score == {"features of a batch": 3 * per_image, "gathered nearest-image maps": 2 * 64 * 16 * 16 * 4,
                         "distance blocks": 2 * 256 * 8192 * 4}  # spade.KNN_CHUNK_ROWS
    assert own.host == set(own.state) | set(own.fit) | set(own.score) and not own.disk
    concat = Spade.predict_memory(SpadeParams(k=2, combine="concat", bank="mmap", bank_dir="/x"),
                                  "resnet18", LAYERS, 64, 5, 3, 4)
    assert concat.score["gathered nearest-image maps"] == 2 * 256 * (64 + 128 + 256) * 4 * 2
    assert concat.disk == {"feature bank (float32)"} and concat.disk_folder == "/x" and not concat.advice


def test_vae_counts_its_own_network_not_the_frozen_backbone():
    params = VaeParams(batch_size=8)
    own = Vae.predict_memory(params, "resnet18", ["layer4"], 64, 10, 3, 4)
    state = Vae.predict_state_nbytes(params, "resnet18", ["layer4"], 64, 10)
    assert not own.runs_backbone and sum(own.state.values()) == sum(state.values()) > R18 / 2  # a trunk copy
    assert own.fit["gradients and Adam moments"] == 3 * sum(state.values())
    assert own.fit["training images (uint8)"] == 10 * 3 * 64 * 64
    pred = memory.predict_memory(cfg_for({"name": "vae", "layers": ["layer4"], "batch_size": 8}), 10, 3)
    assert "backbone activations of a batch" not in pred.fit and pred.backbone == R18


def test_the_activation_count_of_a_small_network():
    net = nn.Sequential(nn.Conv2d(3, 2, 1), nn.ReLU(), nn.Conv2d(2, 5, 1, stride=2))
    # float32 outputs per image: conv 2 x 4 x 4, relu the same, conv 5 x 2 x 2
    assert memory.activations.leaf_output_bytes(net, (1, 3, 4, 4)) == 4 * (32 + 32 + 20)


def test_a_method_without_its_own_prediction_gets_the_defaults():
    class Toy(Method):
        name = "toy"

        def fit(self, batches): ...
        def score(self, images): ...
        def state_nbytes(self): ...
        def state_dict(self): ...
        def load_state_dict(self, state): ...

    class Sized(Toy):
        @classmethod
        def predict_state_nbytes(cls, params, backbone, layers, size, n_train):
            return {"table": 7 * n_train, "backbone": 1}

    assert Toy.predict_memory(None, "resnet18", LAYERS, 64, 5, 3, 4) == MethodMemory(
        note="toy does not predict its state: working memory only")
    assert Sized.predict_memory(None, "resnet18", LAYERS, 64, 5, 3, 4) == MethodMemory(state={"state: table": 35})
    assert Toy.predict_score_cost(None, "resnet18", LAYERS, 64, 5) is None
    assert Padim.predict_score_cost(PadimParams(), "resnet18", LAYERS, 64, 5) is None
    assert Spade.predict_score_cost(SpadeParams(k=2), "resnet18", LAYERS, 64, 5)["macs"] > 0


def test_padim_refusal_names_its_own_ways_out():
    split = type("Split", (), {"name": "bottle", "train": [None] * 6, "test": [None] * 3})()
    with pytest.raises(memory.MemoryRefused) as e:
        memory.check_run(cfg_for({"name": "padim", "d": 10}), [split], torch.device("cpu"), 64, ram=10**6)
    text = str(e.value)
    assert "but 0.00 GB is available" in text and "factorisation chunks 0.19 GB" in text
    assert "a smaller method.d" in text and "fewer training images" not in text  # its state does not grow with N
    assert "accumulate" not in text and "a smaller runtime.batch_size" in text


def test_the_implementation_knobs_are_not_config_keys():
    for key, value in (("accumulate_dtype", "float32"), ("accumulate_max_gb", 4.0), ("chunk_mb", 8)):
        with pytest.raises(ConfigError, match=rf"unknown key 'method\.{key}'"):
            cfg_for({"name": "padim", key: value})
