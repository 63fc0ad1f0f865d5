"""The command line's texts: ``--help`` without type placeholders and wrapped at word boundaries,
``list layers``, and ``run --categories`` showing only what was asked for."""

from __future__ import annotations

import re

import pytest
import yaml
from typer.testing import CliRunner

from padim_bench.cli import app

runner = CliRunner()
COMMANDS = ["run", "sweep", "demo", "validate", "table", "check", "report", "list"]


def _help(*args: str) -> str:
    res = runner.invoke(app, [*args, "--help"], env={"COLUMNS": "80"})
    assert res.exit_code == 0, res.output
    return res.output


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_has_no_type_placeholders(command):
    text = _help(*([command] if command else []))
    assert not re.search(r"<(bool|str|int|float|path|list\[[^>]*\]|[a-z]+ range)>", text, re.I), text
    assert "--help  " in text or "--help" in text  # the flag itself is still listed
    assert max(len(line) for line in text.splitlines()) <= 80


def test_command_descriptions_wrap_at_word_boundaries():
    """A description continues on the next line only once its line is full (the old help broke
    it where the docstring's source lines ended, e.g. after "(layout and decoding)")."""
    text = _help()
    panel = text[text.index("Commands"):]
    rows = [line[1:-1].rstrip() for line in panel.splitlines()[1:-1]]  # inside the box
    width = max(len(r) for r in rows)
    for here, nxt in zip(rows, rows[1:]):
        if re.match(r"^ {4,}\S", nxt):  # a continuation line: its first word did not fit on this one
            assert len(here) + 1 + len(nxt.split()[0]) > width - 3, (here, nxt)  # 3: the cells' padding
    flat = " ".join(text.replace("│", " ").split())  # the box's borders are not words
    assert "(layout and decoding) without loading a model or fitting anything" in flat
    run = " ".join(_help("run").split())
    assert "Before anything is loaded, each fit's memory is predicted" in run


def test_list_layers_shows_channels_and_strides():
    """ResNet18 (He et al.): layer1..4 have 64, 128, 256, 512 channels at strides 4, 8, 16, 32."""
    res = runner.invoke(app, ["list", "layers", "resnet18"], env={"COLUMNS": "100"})
    assert res.exit_code == 0, res.output
    rows = {m.group(1): (int(m.group(2)), int(m.group(3))) for m in
            re.finditer(r"(layer\d) +│ +\S+ +│ +(\d+) │ +(\d+) │", res.output)}
    assert rows == {"layer1": (64, 4), "layer2": (128, 8), "layer3": (256, 16), "layer4": (512, 32)}
    assert "14 x 14" in res.output
    backbones = runner.invoke(app, ["list", "backbones"]).output
    assert backbones != res.output
    bad = runner.invoke(app, ["list", "layers", "resnet19"])
    assert bad.exit_code == 2 and "unknown backbone 'resnet19'" in bad.output


def test_csv_tag_values_are_explained_in_the_tables_notes():
    from padim_bench import tables

    for number in ("3", "8"):
        md = tables.to_markdown(tables.build(number, [])[0])
        assert "2 = confirmed by two or more sources" in md or "confirmed by two or more sources (tag 2)" in md
        assert "(tag 1)" in md or "1 = by one source only" in md


def test_run_prints_only_the_categories_asked_for(tmp_path, demo_data):
    cfg = {"dataset": {"root": str(demo_data), "categories": ["brick", "gravel"], "resize": 64, "crop": 56},
           "method": {"name": "padim", "backbone": "resnet18", "weights": "random", "d": 20},
           "runtime": {"device": "cpu", "batch_size": 4, "workers": 0, "timing_images": 1, "warmup_images": 1},
           "output": {"dir": str(tmp_path / "out")}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert runner.invoke(app, ["run", str(path), "--quiet"]).exit_code == 0
    res = runner.invoke(app, ["run", str(path), "--quiet", "--categories", "gravel"], env={"COLUMNS": "120"})
    assert res.exit_code == 0, res.output
    table = res.stdout
    assert "gravel" in table and "brick" not in table
    assert "the run folder also holds brick" in res.stderr
