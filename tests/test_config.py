"""Tests of strict config loading (padim_bench.config): the shipped configs against the paper's
values (typed here, not read from the code), rejection of every kind of bad key or value with the
key and file named, safe YAML loading, command-line overrides and the config hash."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from padim_bench.config import (
    RunConfig,
    apply_overrides,
    config_from_dict,
    load_config,
    read_yaml,
)
from padim_bench.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
SHIPPED = ["mvtec_r18.yaml", "mvtec_wr50.yaml", "mvtec_effb5.yaml", "mvtec_effl0.yaml"]


def _write(tmp_path: Path, data, name: str = "exp.yaml") -> Path:
    p = tmp_path / name
    p.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
    return p


def _r18() -> dict:
    return yaml.safe_load((CONFIGS / "mvtec_r18.yaml").read_text())


# --------------------------------------------------------------------------------- shipped files


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_configs_load_with_paper_settings(name):
    cfg = load_config(CONFIGS / name)
    assert isinstance(cfg, RunConfig)
    assert cfg.name == Path(name).stem
    assert cfg.dataset.resize == 256 and cfg.dataset.crop == 224
    assert cfg.method.name == "padim"
    assert cfg.method.params.epsilon == 0.01
    assert cfg.evaluation.sigma == 4.0
    assert cfg.evaluation.pro_fpr_limit == 0.3
    assert cfg.method.layers == ["layer1", "layer2", "layer3"]
    assert cfg.output.dir == f"results/runs/{Path(name).stem}"


def test_paper_d_per_backbone():
    r18 = load_config(CONFIGS / "mvtec_r18.yaml")
    wr50 = load_config(CONFIGS / "mvtec_wr50.yaml")
    assert (r18.method.backbone, r18.method.params.d) == ("resnet18", 100)
    assert (wr50.method.backbone, wr50.method.params.d) == ("wide_resnet50_2", 550)
    assert type(r18.method.params.d) is int


def test_defaults_follow_the_paper():
    cfg = config_from_dict({})
    assert (cfg.dataset.resize, cfg.dataset.crop) == (256, 224)
    assert (cfg.method.name, cfg.method.backbone, cfg.method.params.d) == ("padim", "resnet18", 100)
    assert cfg.method.params.epsilon == 0.01
    assert (cfg.evaluation.sigma, cfg.evaluation.pro_fpr_limit) == (4.0, 0.3)
    assert cfg.evaluation.metrics == ["image_roc_auc", "pixel_roc_auc", "pro"]


# ---------------------------------------------------------------------------------- strictness


def _bad(tmp_path, mutate, *needles):
    data = _r18()
    mutate(data)
    p = _write(tmp_path, data)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert str(p) in msg, msg
    for n in needles:
        assert n in msg, msg
    return msg


def test_unknown_top_level_key(tmp_path):
    _bad(tmp_path, lambda d: d.update(evalution={}), "'evalution'", "Did you mean 'evaluation'")


def test_unknown_section_key_with_suggestion(tmp_path):
    _bad(tmp_path, lambda d: d["dataset"].update(rezise=128), "dataset.rezise", "Did you mean 'resize'")


def test_unknown_method_key(tmp_path):
    _bad(tmp_path, lambda d: d["method"].update(dd=5), "method.dd")


def test_method_params_key_is_not_a_back_door(tmp_path):
    _bad(tmp_path, lambda d: d["method"].update(params={"d": 5}), "method.params")


def test_wrong_type_names_key(tmp_path):
    _bad(tmp_path, lambda d: d["method"].update(d="a lot"), "method.d", "a lot")


@pytest.mark.parametrize(
    "section, key, value",
    [("method", "d", True), ("dataset", "resize", False), ("runtime", "batch_size", True), ("method", "seed", True)],
)
def test_bool_where_int_expected_is_rejected(tmp_path, section, key, value):
    _bad(tmp_path, lambda d: d[section].update({key: value}), f"{section}.{key}")


def test_float_where_int_expected_is_rejected(tmp_path):
    _bad(tmp_path, lambda d: d["dataset"].update(resize=256.5), "dataset.resize")


def test_unknown_method_lists_valid_methods(tmp_path):
    _bad(tmp_path, lambda d: d["method"].update(name="padimm"), "method.name", "'padimm'", "padim")


def test_method_section_must_be_a_mapping(tmp_path):
    _bad(tmp_path, lambda d: d.update(method="padim"), "method", "mapping")


def test_section_must_be_a_mapping(tmp_path):
    _bad(tmp_path, lambda d: d.update(dataset=[1, 2]), "dataset", "mapping")


def test_bad_metric_name(tmp_path):
    _bad(tmp_path, lambda d: d["evaluation"].update(metrics=["image_roc_auc", "f1"]), "evaluation.metrics", "'f1'")


def test_bad_literal_value(tmp_path):
    _bad(tmp_path, lambda d: d["dataset"].update(interpolation="lanczos"), "dataset.interpolation", "lanczos")


def test_crop_larger_than_resize(tmp_path):
    _bad(tmp_path, lambda d: d["dataset"].update(resize=128, crop=224), "dataset.crop", "224")


def test_crop_null_means_no_crop(tmp_path):
    data = _r18()
    data["dataset"]["crop"] = None
    assert load_config(_write(tmp_path, data)).dataset.crop is None


@pytest.mark.parametrize("d", [0, -3])
def test_d_below_one(tmp_path, d):
    _bad(tmp_path, lambda data: data["method"].update(d=d), "method.d", str(d))


@pytest.mark.parametrize(
    "section, key, value",
    [
        ("evaluation", "sigma", -1.0),
        ("evaluation", "sigma", float("nan")),
        ("evaluation", "pro_fpr_limit", 0.0),
        ("evaluation", "pro_fpr_limit", 1.5),
        ("runtime", "batch_size", 0),
        ("runtime", "workers", -1),
        ("method", "epsilon", -0.1),
    ],
)
def test_out_of_range_values(tmp_path, section, key, value):
    _bad(tmp_path, lambda d: d[section].update({key: value}), f"{section}.{key}")


def test_categories_string_other_than_all(tmp_path):
    _bad(tmp_path, lambda d: d["dataset"].update(categories="bottle"), "dataset.categories")


def test_duplicate_layers(tmp_path):
    _bad(tmp_path, lambda d: d["method"].update(layers=["layer1", "layer1"]), "method.layers")


# ------------------------------------------------------------------------------- file handling


def test_missing_file(tmp_path):
    p = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="nope.yaml"):
        load_config(p)


def test_not_yaml(tmp_path):
    p = _write(tmp_path, "dataset: [resize: 256\n  crop: {\n", "broken.yaml")
    with pytest.raises(ConfigError, match="broken.yaml"):
        load_config(p)


def test_binary_file(tmp_path):
    p = tmp_path / "binary.yaml"
    p.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00\x01")
    with pytest.raises(ConfigError, match="binary.yaml"):
        load_config(p)


def test_yaml_list_at_top_level(tmp_path):
    p = _write(tmp_path, "- a\n- b\n", "list.yaml")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert "list.yaml" in str(e.value) and "mapping" in str(e.value)


def test_python_object_tag_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "pwned"
    p = _write(tmp_path, f'name: !!python/object/apply:os.system ["touch {marker}"]\n', "evil.yaml")
    with pytest.raises(ConfigError, match="evil.yaml"):
        load_config(p)
    with pytest.raises(ConfigError):
        read_yaml(p)
    assert not marker.exists()


def test_yaml_date_value_gives_config_error_not_crash(tmp_path):
    p = _write(tmp_path, "name: 2024-01-01\n", "dated.yaml")
    with pytest.raises(ConfigError, match="name"):
        load_config(p)


# ------------------------------------------------------------------------------------ overrides


def test_named_overrides_set_fields(tmp_path):
    cfg = load_config(
        CONFIGS / "mvtec_r18.yaml",
        sets=["method.d=200", "evaluation.sigma=2", "dataset.crop=null"],
        data_root=str(tmp_path / "data"),
        categories="bottle, grid",
        device="cpu",
        out=str(tmp_path / "out"),
        weights="random",
    )
    assert cfg.method.params.d == 200 and type(cfg.method.params.d) is int
    assert cfg.evaluation.sigma == 2.0
    assert cfg.dataset.crop is None
    assert cfg.dataset.root == str(tmp_path / "data")
    assert cfg.dataset.categories == ["bottle", "grid"]
    assert cfg.runtime.device == "cpu"
    assert cfg.output.dir == str(tmp_path / "out")
    assert cfg.method.weights == "random"


def test_apply_overrides_does_not_modify_its_input():
    data = {"method": {"d": 100}}
    out = apply_overrides(data, ["method.d=7", "dataset.resize=128"], categories="all", device=None)
    assert data == {"method": {"d": 100}}
    assert out == {"method": {"d": 7}, "dataset": {"resize": 128, "categories": "all"}}


def test_named_options_win_over_set():
    out = apply_overrides({}, ["runtime.device=cuda"], device="cpu")
    assert out["runtime"]["device"] == "cpu"


def test_categories_all():
    assert apply_overrides({}, categories="all")["dataset"]["categories"] == "all"
    assert apply_overrides({}, categories="grid")["dataset"]["categories"] == ["grid"]


@pytest.mark.parametrize("bad", ["method.d", "=5", "method.d: 3"])
def test_malformed_set(bad):
    with pytest.raises(ConfigError, match="--set"):
        apply_overrides({}, [bad])


def test_set_with_bad_value_is_reported_via_load_config():
    with pytest.raises(ConfigError) as e:
        load_config(CONFIGS / "mvtec_r18.yaml", sets=["method.d=lots"])
    assert "method.d" in str(e.value) and "mvtec_r18.yaml" in str(e.value)


def test_set_into_a_non_section():
    with pytest.raises(ConfigError, match="method.d.x"):
        apply_overrides({"method": {"d": 1}}, ["method.d.x=2"])


# ---------------------------------------------------------------------------------- hash, output


def test_config_hash():
    base = config_from_dict(_r18())

    def variant(section: str, key: str, value) -> RunConfig:
        d = _r18()
        d[section][key] = value
        return config_from_dict(d)

    h = base.config_hash()
    assert len(h) == 12 and int(h, 16) >= 0
    assert config_from_dict(_r18()).config_hash() == h
    assert variant("method", "d", 200).config_hash() != h
    assert variant("dataset", "crop", 192).config_hash() != h
    assert variant("method", "epsilon", 0.1).config_hash() != h
    assert variant("output", "dir", "elsewhere").config_hash() == h
    assert variant("dataset", "root", "/elsewhere/mvtec_ad").config_hash() == h  # a place, not the data
    assert variant("runtime", "batch_size", 4).config_hash() == h
    assert variant("runtime", "workers", 0).config_hash() == h
    renamed = _r18()
    renamed["name"] = "other"
    assert config_from_dict(renamed).config_hash() == h


def test_to_dict_round_trips():
    cfg = load_config(CONFIGS / "mvtec_wr50.yaml")
    d = cfg.to_dict()
    assert d["method"]["d"] == 550 and "params" not in d["method"]
    assert config_from_dict(d) == cfg


def test_default_output_dir_from_file_stem(tmp_path):
    data = _r18()
    del data["output"]
    del data["name"]
    cfg = load_config(_write(tmp_path, data, "my_exp.yaml"))
    assert cfg.name == "my_exp"
    assert cfg.output.dir == "results/runs/my_exp"
    # an output section without dir gets the default dir too
    data["output"] = {"save_models": True}
    cfg = load_config(_write(tmp_path, data, "other_exp.yaml"))
    assert cfg.output.dir == "results/runs/other_exp" and cfg.output.save_models is True


def test_output_not_a_mapping(tmp_path):
    data = _r18()
    data["output"] = "results/x"
    p = _write(tmp_path, data)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert "output" in str(e.value) and "--set" not in str(e.value)


def test_empty_file_or_folder_is_refused_but_a_minimal_file_gives_defaults(tmp_path):
    for text in ("", "# only a comment\n"):
        with pytest.raises(ConfigError, match="blank.yaml: the file is empty"):
            load_config(_write(tmp_path, text, "blank.yaml"))
    with pytest.raises(ConfigError, match="is a folder; give a config file"):
        load_config(tmp_path)
    cfg = load_config(_write(tmp_path, "name: blank\nmethod:\n", "blank.yaml"))  # an empty section: its defaults
    assert cfg.name == "blank" and cfg.output.dir == "results/runs/blank"
    assert cfg.method.params.d == 100


def test_a_bad_value_from_a_named_option_is_named(tmp_path):
    p = _write(tmp_path, "name: x\n", "c.yaml")
    with pytest.raises(ConfigError, match="--data-root: empty value"):
        load_config(p, data_root="")
    with pytest.raises(ConfigError, match=r"c.yaml with --categories ' , ': dataset.categories"):
        load_config(p, categories=" , ")


def test_channels_last_is_in_the_run_hash_not_in_the_config_hash(tmp_path):
    """runtime.channels_last changes timings (so the run hash), not the numbers' experiment (the
    config hash); both values are hashed as they are (no value is left out)."""
    import dataclasses
    import hashlib
    import json

    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(yaml.safe_dump({"method": {"backbone": "resnet18", "d": 10}}))
    nhwc = load_config(cfg_file)
    nchw = load_config(cfg_file, ["runtime.channels_last=false"])
    assert nhwc.runtime.channels_last is True and nhwc.config_hash() == nchw.config_hash()
    assert nhwc.run_hash() != nchw.run_hash()
    for cfg in (nhwc, nchw):
        rt = dataclasses.asdict(cfg.runtime)
        del rt["allow_memory_over"]  # refuses or allows a run, changes no figure
        blob = json.dumps({"config": cfg.config_hash(), "runtime": rt}, sort_keys=True).encode()
        assert cfg.run_hash() == hashlib.sha256(blob).hexdigest()[:12]


def test_a_bad_set_value_is_named_as_given_on_the_command_line(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(yaml.safe_dump({"method": {"backbone": "resnet18", "d": 10}}))
    with pytest.raises(ConfigError, match=r"c\.yaml with --set runtime\.workers=-1: runtime\.workers: must be >= 0"):
        load_config(cfg_file, ["runtime.workers=-1"])
    with pytest.raises(ConfigError, match=r"one category: \[bottle\]"):
        load_config(cfg_file, ["dataset.categories=bottle"])
