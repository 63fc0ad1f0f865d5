"""ShanghaiTech Campus (STC): layout, per-clip alignment, subsampling, video streaming, memory
refusal, metrics and an end-to-end run on the synthetic STC dataset (padim_bench.data.stc_synth)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from scipy import ndimage
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

pytest.importorskip("av", reason="STC videos need PyAV (pip install av; a dependency of padim-bench)")

from padim_bench import memory, tables  # noqa: E402
from padim_bench.memory import system as memory_system  # noqa: E402
from padim_bench import metrics as M  # noqa: E402
from padim_bench.cli import app  # noqa: E402
from padim_bench.config import config_from_dict, load_config  # noqa: E402
from padim_bench.data import stc as S  # noqa: E402
from padim_bench.data.stc_synth import generate_stc  # noqa: E402
from padim_bench.data.transforms import Preprocess  # noqa: E402
from padim_bench.errors import ConfigError, DataError  # noqa: E402

runner = CliRunner()
SMALL = dict(scenes=3, scenes_without_test=1, train_videos=2, train_frames=12, test_clips=2, test_frames=20)


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """3 scenes (03 without test clips), 2 videos x 12 frames and 2 clips x 20 frames per scene."""
    return generate_stc(tmp_path_factory.mktemp("stc") / "stc", **SMALL)


@pytest.fixture
def copy_of(synth, tmp_path):
    """A writable copy of the synthetic dataset (for tests that break it)."""
    dst = tmp_path / "stc"
    shutil.copytree(synth.root, dst)
    return dst


def stc_config(root, out, **over) -> dict:
    cfg = {
        "dataset": {"name": "stc", "root": str(root), "resize": 64, "crop": None, "test_stride": 2},
        "method": {"name": "padim", "backbone": "efficientnet_lite0", "weights": "imagenet", "d": 20},
        "evaluation": {"metrics": ["image_roc_auc", "pixel_roc_auc"]},
        "runtime": {"device": "cpu", "batch_size": 8, "workers": 0, "timing_images": 2, "warmup_images": 1},
        "output": {"dir": str(out)},
    }
    for key, value in over.items():
        section, name = key.split(".")
        cfg[section][name] = value
    return cfg


# ------------------------------------------------------------------------------ generator, layout
def test_generator_writes_the_stc_layout_with_exact_masks(synth, tmp_path):
    root = synth.root
    assert sorted(p.name for p in (root / "training" / "videos").iterdir()) == [
        f"{s}_{v:03d}.avi" for s in ("01", "02", "03") for v in (1, 2)]
    assert synth.scenes_without_test == ("03",)
    assert sorted(synth.test_clips) == ["01_0001", "01_0002", "02_0003", "02_0004"]
    for clip, n in synth.test_clips.items():
        frames = sorted((root / "testing" / "frames" / clip).iterdir())
        assert [p.name for p in frames] == [f"{i:03d}.jpg" for i in range(n)]
        labels = np.load(root / "testing" / "test_frame_mask" / f"{clip}.npy", allow_pickle=False)
        masks = np.load(root / "testing" / "test_pixel_mask" / f"{clip}.npy", allow_pickle=False)
        assert masks.shape == (n, 96, 160) and labels.shape == (n,)
        assert np.array_equal(labels, masks.reshape(n, -1).any(1))  # a frame is anomalous iff its mask is
        assert 0 < labels.sum() < n
        # the mask is exactly the orange disc: orange inside it in the JPEG, nowhere outside (edges
        # left out, where JPEG blurs)
        t = int(np.flatnonzero(labels)[0])
        img = np.asarray(Image.open(frames[t]).convert("RGB")).astype(int)
        orange = (img[..., 0] > 200) & (img[..., 2] < 90)
        disc = masks[t].astype(bool)
        assert orange[ndimage.binary_erosion(disc, iterations=2)].all()
        assert not orange[~ndimage.binary_dilation(disc, iterations=2)].any()
    # deterministic: the same seed writes the same masks and frames
    again = generate_stc(tmp_path / "again", **SMALL)
    clip = "01_0001"
    for kind in ("test_pixel_mask", "test_frame_mask"):
        assert (root / "testing" / kind / f"{clip}.npy").read_bytes() == (again.root / "testing" / kind / f"{clip}.npy").read_bytes()
    assert (root / "testing/frames/01_0001/007.jpg").read_bytes() == (again.root / "testing/frames/01_0001/007.jpg").read_bytes()


def test_scan_finds_videos_clips_and_scenes(synth):
    layout = S.scan_stc(synth.root)
    assert layout.scenes() == ["01", "02", "03"] and layout.test_scenes() == ["01", "02"]
    assert [(v.path.name, v.scene, v.n_frames, v.count_source) for v in layout.videos][:2] == [
        ("01_001.avi", "01", 12, "header"), ("01_002.avi", "01", 12, "header")]
    clip = layout.clips[0]
    assert (clip.name, clip.scene, clip.n_frames, clip.size) == ("01_0001", "01", 20, (160, 96))
    assert sum(clip.labels) == synth.anomalous_frames["01_0001"]
    fit, no_test = S.resolve_scenes(layout, "all")
    assert (fit, no_test) == (["01", "02"], ["03"])
    assert S.resolve_scenes(layout, ["02", "03"]) == (["02"], ["03"])
    with pytest.raises(ConfigError, match="scene.*07.*not found.*01, 02, 03"):
        S.resolve_scenes(layout, ["07"])


# ------------------------------------------------------------------------------------ subsampling
def test_stride_subsampling_counts_by_hand(synth):
    assert list(S.select_frames(12, 5)) == [0, 5, 10] and len(S.select_frames(20, 3)) == 7
    # kept(s) = sum(ceil(n / s)): 27 at s=1, 14 at 2, 11 at 3, 8 at 4 -> the smallest with <= 10 is 4
    assert S.derive_train_stride([10, 10, 7], 10) == 4
    assert S.derive_train_stride([10, 10, 7], 27) == 1 and S.derive_train_stride([10, 10, 7], 2) == 10
    # real STC's size: 330 videos, 274,515 frames in total -> about 5,000 frames, never more
    counts = [832] * 165 + [831] * 165
    s = S.derive_train_stride(counts, 5000)
    kept = sum(len(S.select_frames(n, s)) for n in counts)
    assert kept <= 5000 < sum(len(S.select_frames(n, s - 1)) for n in counts) and kept > 4800

    layout = S.scan_stc(synth.root)
    plan = S.make_plan(layout, "all", 5, 5000, 3)  # 12-frame videos: 0, 5, 10; 20-frame clips: 0, 3, ..., 18
    a = plan.splits[0]
    assert len(a.train) == 2 * 3 and [t.frame for t in a.train[:3]] == [0, 5, 10]
    assert len(a.test) == 2 * 7 and [t.frame for t in a.test[:7]] == [0, 3, 6, 9, 12, 15, 18]
    assert [t.label for t in a.test[:7]] == [layout.clips[0].labels[i] for i in range(0, 20, 3)]
    # derived: 6 videos x 12 frames = 72; at most 20 -> stride 4 (6 x 3 = 18); every scene's videos count
    plan = S.make_plan(layout, ["01"], None, 20, 5)
    assert plan.info["train_stride"] == 4 and plan.info["train_frames_selected_all_scenes"] == 18
    assert len(plan.splits[0].train) == 6 and plan.info["scenes_without_test"] == []
    assert plan.info["train_frames_available"] == 72


# ------------------------------------------------------------------------------------- alignment
def test_a_clip_missing_a_frame_is_named_with_both_counts(copy_of):
    (copy_of / "testing/frames/02_0003/019.jpg").unlink()
    with pytest.raises(DataError, match=r"clip 02_0003: 19 frames .* 20 labels .* 20 masks"):
        S.scan_stc(copy_of)


def test_a_short_frame_mask_or_pixel_mask_is_named(copy_of):
    f = copy_of / "testing/test_frame_mask/01_0002.npy"
    np.save(f, np.load(f)[:-3])
    with pytest.raises(DataError, match=r"clip 01_0002: 20 frames .* 17 labels .* 20 masks"):
        S.scan_stc(copy_of)
    np.save(f, np.zeros(20, np.uint8))
    p = copy_of / "testing/test_pixel_mask/01_0002.npy"
    np.save(p, np.load(p)[:18])
    with pytest.raises(DataError, match=r"clip 01_0002: 20 frames .* 20 labels .* 18 masks"):
        S.scan_stc(copy_of)


def test_numbering_gap_size_mismatch_and_orphan_masks(copy_of):
    d = copy_of / "testing/frames/01_0001"
    (d / "005.jpg").rename(d / "020.jpg")  # same count, frame 5 missing: alignment by number, not position
    with pytest.raises(DataError, match="clip 01_0001: frame 5 is missing.*020.jpg"):
        S.scan_stc(copy_of)
    (d / "020.jpg").rename(d / "005.jpg")
    p = copy_of / "testing/test_pixel_mask/01_0001.npy"
    np.save(p, np.zeros((20, 48, 80), np.uint8))
    with pytest.raises(DataError, match="clip 01_0001: pixel masks are 80x48, frames are 160x96"):
        S.scan_stc(copy_of)
    shutil.rmtree(copy_of / "testing/frames/01_0001")
    with pytest.raises(DataError, match="mask.*without a testing/frames/<clip> folder: 01_0001"):
        S.scan_stc(copy_of)


def test_an_unreadable_video_is_a_clear_error_or_skipped(copy_of):
    bad = copy_of / "training/videos/02_002.avi"
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])  # truncated: FFmpeg cannot open it
    with pytest.raises(DataError, match=r"1 unreadable training video.*02_002\.avi: cannot read video \(InvalidData"):
        S.scan_stc(copy_of)
    with pytest.raises(DataError, match=r"02_002\.avi: cannot read video"):
        S.video_frame_count(bad)
    with pytest.warns(UserWarning, match="skipped 1 unreadable training video"):
        layout = S.scan_stc(copy_of, on_unreadable="skip")
    assert [v.path.name for v in layout.videos if v.scene == "02"] == ["02_001.avi"]
    plan = S.make_plan(layout, "all", 1, 5000, 5)
    assert [len(s.skipped) for s in plan.splits] == [0, 1]


def test_a_pickled_mask_is_refused(copy_of):
    f = copy_of / "testing/test_frame_mask/01_0001.npy"
    np.save(f, np.array([{"x": 1}] * 20, dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="01_0001.npy: not a readable .npy array"):
        S.scan_stc(copy_of)


# --------------------------------------------------------------------------------------- loading
def test_video_frames_stream_exactly_the_selected_frames(synth):
    import av

    plan = S.make_plan(S.scan_stc(synth.root), ["01"], 5, 5000, 5)
    train = plan.splits[0].train
    prep = Preprocess(32, None, "bilinear")
    ds = S.VideoFrames(train, prep)
    got = [img for img, _ in ds]
    assert len(got) == len(ds) == len(train) == 6
    with av.open(str(train[0].path)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    for k, i in enumerate((0, 5, 10)):
        assert torch.equal(got[k], prep.image(frames[i].astype(np.float32) / 255.0))
    # two worker processes split the videos and yield the same frames, once each
    loader = S.make_stc_loader(train, prep, batch_size=4, workers=2)
    batches = torch.cat([b for b, _ in loader])
    key = lambda t: sorted(float(x.sum()) for x in t)  # noqa: E731
    assert key(batches) == pytest.approx(key(got))
    # a video shorter than its plan: named, with what decoded and what the header said
    short = S.TrainFrame(train[0].path, 30, 40)
    with pytest.raises(DataError, match=r"01_001\.avi: only 12 frames decode, its header says 40; selected frame 30"):
        list(S.VideoFrames([short], prep))


def test_clip_frames_read_one_mask_slice(synth):
    plan = S.make_plan(S.scan_stc(synth.root), ["01"], 1, 5000, 1)
    test = plan.splits[0].test
    ds = S.ClipFrames(test, Preprocess(96, None, "bilinear"))
    t = next(i for i, s in enumerate(test) if s.label == 1)
    img, mask, label, idx = ds[t]
    full = np.load(test[t].mask_path, allow_pickle=False)[test[t].frame]
    assert img.shape == (3, 96, 96) and mask.dtype == torch.uint8 and label == 1 and idx == t
    assert set(mask.unique().tolist()) == {0, 1} and mask.sum() > 0
    assert isinstance(ds._masks[test[t].mask_path], np.memmap)  # memory-mapped, not loaded whole
    assert abs(mask.float().mean().item() - full.mean()) < 0.01


# ------------------------------------------------------------------------------------------ config
def test_stc_config_rules_and_hashes():
    base = stc_config("/nowhere", "/tmp/x")
    cfg = config_from_dict(base)
    assert cfg.dataset.name == "stc" and cfg.dataset.params == S.StcParams(None, 5000, 2)
    with pytest.raises(ConfigError, match="dataset.crop: STC frames are resized .* without a crop"):
        config_from_dict({**base, "dataset": {**base["dataset"], "crop": 56}})
    with pytest.raises(ConfigError, match="dataset.test_stride: must be >= 1"):
        config_from_dict({**base, "dataset": {**base["dataset"], "test_stride": 0}})
    with pytest.raises(ConfigError, match="dataset.train_stride: a key of dataset 'stc' only .*this is mvtec_ad"):
        config_from_dict({"dataset": {"train_stride": 3}})
    # the strides change an STC run's numbers, so they are in its hash ...
    other = config_from_dict({**base, "dataset": {**base["dataset"], "test_stride": 3}})
    assert other.config_hash() != cfg.config_hash()
    # ... and are outside MVTec AD's: the committed runs keep their hash (and resume)
    committed = json.loads((Path(__file__).resolve().parents[1] / "results/runs/mvtec_effl0/run.json").read_text())
    assert load_config("configs/mvtec_effl0.yaml").config_hash() == committed["config_hash"] == "a9d8cf739f31"
    forced = config_from_dict({**base, "runtime": {**base["runtime"], "allow_memory_over": True}})
    assert forced.run_hash() == cfg.run_hash()
    for name in ("stc_r18", "stc_effl0", "stc_spade"):
        c = load_config(f"configs/{name}.yaml")
        assert (c.dataset.name, c.dataset.resize, c.dataset.crop, c.dataset.params.test_stride) == ("stc", 256, None, 5)


# ------------------------------------------------------------------------------------------- memory
def test_spade_on_stc_is_refused_with_the_figure(monkeypatch):
    cfg = load_config("configs/stc_spade.yaml")
    split = type("Split", (), {"name": "01", "train": [None] * 5000, "test": [None] * 10})()
    bank = 5000 * 7_348_224  # (256*64*64 + 512*32*32 + 1024*16*16 + 2048) * 4 bytes per frame: 37.0 GB, paper Table VIII
    with pytest.warns(UserWarning, match="continuing"):
        forced = load_config("configs/stc_spade.yaml", sets=["runtime.allow_memory_over=true"])
        info = memory.check_run(forced, [split], torch.device("cpu"), 256, ram=16 * 10**9)["01"]
    parts = info["predicted_fit_bytes"]
    assert parts["host"]["feature bank (float32)"] == bank and parts["disk"] == {}
    assert parts["host"]["features of a batch"] == 16 * 7_348_224  # runtime.batch_size 16
    assert parts["device"]["backbone parameters (float32)"] == 68_883_240 * 4  # WR50's parameters
    acts = parts["device"]["backbone activations of a batch"]
    assert 0 < acts < 1e9 and acts % 16 == 0  # 16 images' share of WR50's layer outputs at 256
    need = bank + 16 * 7_348_224 + 68_883_240 * 4 + acts
    assert info["predicted_fit_ram_bytes"] == need and info["forced"]
    with pytest.raises(memory.MemoryRefused, match=rf"about {need / 1e9:.2f} GB of RAM \(feature bank \(float32\) "
                                                   r"36\.74 GB.*but 16\.00 GB is available.*method\.bank: mmap"
                                                   r".*dataset\.train_frames_total.*--force-memory"):
        memory.check_run(cfg, [split], torch.device("cpu"), 256, ram=16 * 10**9)
    mm = load_config("configs/stc_spade.yaml", sets=["method.bank=mmap"])
    # the bank goes to disk: the check then depends on free disk, set here so the test does not
    # depend on the machine's (CI had 32.6 GB free, less than the 36.74 GB bank)
    monkeypatch.setattr(memory_system, "available_disk_bytes", lambda folder: 100 * 10**9)
    info = memory.check_run(mm, [split], torch.device("cpu"), 256, ram=16 * 10**9)["01"]
    assert info["predicted_fit_ram_bytes"] == need - bank and info["predicted_fit_bytes"]["disk"] == {
        "feature bank (float32)": bank}
    monkeypatch.setattr(memory_system, "available_disk_bytes", lambda folder: 30 * 10**9)
    with pytest.raises(memory.MemoryRefused, match=r"about 36\.74 GB of disk .* but 30\.00 GB is free"):
        memory.check_run(mm, [split], torch.device("cpu"), 256, ram=16 * 10**9)


@pytest.mark.slow
def test_fitted_state_sizes_give_table8_stc_row():
    """Table VIII's STC cells from fitted models (SPADE-WR50 and PaDiM-R18 at 256, random weights):
    0.21 GB and, SPADE's bank scaled to 5,000 frames, 37.0 GB."""
    from padim_bench.backbones import load_backbone
    from padim_bench.methods.padim import Padim, PadimParams
    from padim_bench.methods.spade import Spade, SpadeParams

    images = torch.rand(2, 3, 256, 256)
    sp = SpadeParams(k=1)
    spade = Spade(sp, load_backbone("wide_resnet50_2", Spade.extractor_layers(sp, ["layer1", "layer2", "layer3"]),
                                    weights="random"))
    spade.set_train_size(2)
    spade.fit([images])
    padim = Padim(PadimParams(d=100), load_backbone("resnet18", ["layer1", "layer2", "layer3"], weights="random"))
    padim.fit([images[:1], images[1:]])

    def rec(method, backbone, state, d=None):
        return {"config": {"method": {"name": method, "backbone": backbone, "d": d}, "dataset": {"name": "stc", "resize": 256, "crop": None}},
                "categories": [{"category": "01", "n_train": 2, "memory": {"state_bytes": state, "fit_peak_rss_bytes": 2e9}}]}

    records = [rec("spade", "wide_resnet50_2", spade.state_nbytes()), rec("padim", "resnet18", padim.state_nbytes(), 100)]
    (data,) = tables.build("8", records)
    fitted = {label: cells[3] for label, cells in data.rows}
    assert round(fitted["SPADE (WR50), stc, with backbone"].ours, 1) == 37.0
    assert round(fitted["PaDiM-R18-Rd100, stc, with backbone"].ours, 2) == 0.21
    assert fitted["PaDiM-WR50-Rd550, stc, with backbone"].ours is None  # not fitted here


# ------------------------------------------------------------------------------------------ metrics
def test_pooled_pixel_roc_auc_matches_sklearn():
    rng = np.random.default_rng(0)
    maps, masks = [], []
    for k in range(3):  # three "scenes" on different score scales
        m = rng.random((4, 16, 16)) < 0.1
        maps.append((rng.normal(size=m.shape) + 1.5 * m + k).astype(np.float32))
        masks.append(m)
    ref = roc_auc_score(np.concatenate([m.ravel() for m in masks]), np.concatenate([s.ravel() for s in maps]))
    exact, bound32 = M.pooled_roc_auc([M.score_histogram(s, m, bits=32) for s, m in zip(maps, masks)])
    assert exact == pytest.approx(ref, abs=1e-12) and bound32 < 1e-5
    binned, bound = M.pooled_roc_auc([M.score_histogram(s, m) for s, m in zip(maps, masks)])
    assert abs(binned - ref) <= bound + 1e-12 and bound < 1e-3
    assert M.pooled_roc_auc([M.score_histogram(maps[0], np.zeros_like(masks[0]))]) == (None, 0.0)


# --------------------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_end_to_end_on_synthetic_stc(tmp_path, synth, monkeypatch):
    """PaDiM with the real EfficientNet-Lite0 through the CLI: refused when memory is short, then
    forced; one model per scene, scene 03 reported without test clips; frame- and pixel-level
    ROC-AUC far above chance per scene and pooled; resumes; Table IV renders."""
    out = tmp_path / "out"
    path = tmp_path / "stc.yaml"
    path.write_text(yaml.safe_dump(stc_config(synth.root, out)))
    monkeypatch.setattr(memory_system, "available_ram_bytes", lambda: 50 * 10**6)
    res = runner.invoke(app, ["run", str(path), "--quiet"])
    assert res.exit_code == 2 and "GB of RAM" in res.output and "0.05 GB is available" in res.output
    assert not (out / "results.json").exists()
    res = runner.invoke(app, ["run", str(path), "--quiet", "--force-memory"])
    assert res.exit_code == 0, res.output
    rec = json.loads((out / "results.json").read_text())
    assert [c["category"] for c in rec["categories"]] == ["01", "02"]
    stc = rec["stc"]
    assert stc["scenes_without_test"] == ["03"] and stc["train_stride"] == 1 and stc["test_stride"] == 2
    assert "scene(s) without test clips, not evaluated: 03" in stc["protocol"] and "03" in res.output
    for c in rec["categories"]:
        assert c["kind"] == "scene" and c["n_train"] == 24 and c["n_test"] == 20
        labels = [np.load(synth.root / "testing/test_frame_mask" / f"{clip}.npy")[::2] for clip in synth.test_clips
                  if clip.startswith(c["category"] + "_")]
        assert c["n_test_anomalous"] == sum(int(x.sum()) for x in labels) > 0
        assert c["metrics"]["pixel_roc_auc"] > 0.9 and c["metrics"]["image_roc_auc"] > 0.8
        assert c["stc"]["frame_roc_auc"] == c["metrics"]["image_roc_auc"]  # PaDiM: image score = map maximum
        assert c["memory"]["fit_memory_check"]["forced"] is True
        assert (out / "categories" / f"{c['category']}.pixhist.npz").is_file()
    pooled = stc["pooled"]
    assert pooled["scenes"] == 2 and pooled["pixel_roc_auc"] > 0.9 and pooled["frame_roc_auc"] > 0.8
    assert pooled["pixel_roc_auc_binning_bound"] < 1e-3
    assert "all (pooled)" in (out / "results.md").read_text()
    # generated data is labelled wherever its values appear next to the paper's, and not checked against them
    assert rec["synthetic_data"]["marker"] == ".padim_bench_synthetic_stc.json"
    assert rec["synthetic_data"]["params"]["seed"] == 0 and "synthetic data:" in res.output
    assert "SYNTHETIC data" in (out / "results.md").read_text()
    # resume: both scenes skipped, the pooled figures unchanged
    res = runner.invoke(app, ["run", str(path), "--quiet", "--force-memory"])
    assert res.exit_code == 0 and res.output.count("already done") == 2
    assert json.loads((out / "results.json").read_text())["stc"]["pooled"] == pooled
    res = runner.invoke(app, ["table", "4", str(out), "--format", "md"])
    assert res.exit_code == 0 and "91.2" in res.output and "[2/12]" in res.output
    assert "padim-efficientnet_lite0-Rd20 (not in the paper)" in res.output
    assert "SYNTHETIC data (padim-bench synthetic ShanghaiTech Campus" in res.output
    res = runner.invoke(app, ["check", str(out)])
    assert res.exit_code == 2 and "SYNTHETIC data" in res.output and "baseline" in res.output
    res = runner.invoke(app, ["table", "3", str(out), "--format", "md"])
    assert "efficientnet_lite0" not in res.output  # an STC run is no MVTec AD row
    monkeypatch.undo()
    res = runner.invoke(app, ["validate", str(path)])
    assert res.exit_code == 0 and "scene 01: 2 videos, 24 training frames" in res.output


# ------------------------------------------------------------------------------------------- tables
def _stc_record(pixel=0.95, pooled=0.93, scenes=("01", "02"), backbone="resnet18", d=100) -> dict:
    cats = [{"category": s, "kind": "scene", "n_train": 10, "metrics": {"image_roc_auc": 0.8, "pixel_roc_auc": pixel},
             "stc": {"frame_roc_auc": 0.8}, "time": {"fit_s": 1.0, "infer_s_per_image": 0.1},
             "memory": {"fit_peak_rss_bytes": 1e9, "state_gb": 0.2}} for s in scenes]
    return {"config_hash": "x", "categories": cats,
            "config": {"method": {"name": "padim", "backbone": backbone, "d": d, "weights": "imagenet"},
                       "dataset": {"name": "stc", "resize": 256, "crop": None},
                       "evaluation": {"metrics": ["image_roc_auc", "pixel_roc_auc"]}},
            "stc": {"protocol": "STC protocol: test", "pooled": {"scenes": len(scenes), "pixel_roc_auc": pooled,
                                                                 "image_roc_auc": 0.7, "frame_roc_auc": 0.7}}}


def test_table4_takes_stc_runs_only_and_pools_all_scenes():
    from padim_bench import check as C

    mvtec = {"config_hash": "y", "categories": [{"category": "bottle", "kind": "object",
                                                 "metrics": {"pixel_roc_auc": 0.9}, "time": {}, "memory": {}}],
             "config": {"method": {"name": "padim", "backbone": "resnet18", "d": 100, "weights": "imagenet"},
                        "dataset": {"name": "mvtec_ad"}}}
    mvtec["_path"] = "runs/mvtec/results.json"
    (data,) = tables.build("4", [_stc_record(), mvtec])
    assert data.notes[0] == "left out (not STC runs; Table IV is STC's): runs/mvtec/results.json"
    rows = dict(data.rows)
    assert len([r for r in rows if "PaDiM-R18" in r]) == 1  # the MVTec AD run is no Table IV row
    cells = dict(zip(data.columns, rows["PaDiM-R18-Rd100"]))
    assert cells[("all", "pixel_roc_auc")].paper == 91.2 and cells[("all", "pixel_roc_auc")].ours == pytest.approx(93.0)
    assert (cells[("all", "pixel_roc_auc")].covered, cells[("all", "pixel_roc_auc")].of) == (2, 12)
    assert cells[(S.SCENE_MEAN, "pixel_roc_auc")].ours == pytest.approx(95.0)
    assert cells[("all", "frame_roc_auc")].ours == pytest.approx(70.0)
    assert any("STC protocol: test" in n for n in data.notes)
    groups, _ = tables.build("3", [_stc_record(), mvtec])
    assert "PaDiM-R18-Rd100" in dict(groups.rows) and dict(groups.rows)["PaDiM-R18-Rd100"][-2].ours == pytest.approx(90.0)
    # against the paper: only Table IV's cell; enforced once every one of the 12 scenes is pooled
    rows = C.against_paper(_stc_record(), {"pixel_roc_auc": 0.5, "image_roc_auc": 0.5, "pro": 0.5})
    assert [(r.where, r.status) for r in rows] == [("table 4: all [2/12]", "info")]
    full = _stc_record(pooled=0.912, scenes=tuple(f"{i:02d}" for i in range(1, 13)))
    assert [r.status for r in C.against_paper(full, {"pixel_roc_auc": 0.5})] == ["ok"]
