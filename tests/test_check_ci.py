"""The regression check as a CI gate: ``--direction drop``, ``--format json``, ``--junit`` (parsed
against the common JUnit XML structure), the exit codes, and output that is complete without a
terminal (a 50-character run name and all 15 MVTec AD categories, untruncated in a non-TTY log).

Records are hand-made (fractions typed here); expected differences are computed here from them.
"""

from __future__ import annotations

import copy
import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

from padim_bench import check as C
from padim_bench.cli import app
from padim_bench.console import LOG_WIDTH, make_console
from padim_bench.data.mvtec_ad import MVTEC_COUNTS
from padim_bench.output import rich_table

runner = CliRunner()
NO_COLUMNS = {"COLUMNS": None}  # as in a CI job: no terminal, no COLUMNS


def record(metrics: dict[str, tuple[float, float, float]], name: str = "run", backbone: str = "efficientnet_lite0") -> dict:
    """A minimal results.json with the given metrics (fractions) per category."""
    cats = [{"category": c, "kind": "texture" if c in ("grid", "carpet", "leather", "tile", "wood") else "object",
             "metrics": {"image_roc_auc": i, "pixel_roc_auc": p, "pro": r},
             "time": {"fit_s": 1.25, "infer_s_per_image": 0.0625},
             "memory": {"fit_peak_rss_bytes": 2e9, "state_gb": 0.2}} for c, (i, p, r) in metrics.items()]
    return {"name": name, "config_hash": "abc", "categories": cats,
            "config": {"method": {"name": "padim", "backbone": backbone, "d": 100, "weights": "imagenet",
                                  "layers": ["layer1", "layer2", "layer3"], "seed": 0},
                       "dataset": {"name": "mvtec_ad"}, "output": {"dir": "x"}}}


def write(tmp: Path, name: str, rec: dict) -> Path:
    folder = tmp / name
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(rec))
    return folder


BASE = {"bottle": (0.99, 0.980, 0.900)}


# ------------------------------------------------------------------------------ direction
def test_drop_only_passes_an_improvement_and_fails_a_drop(tmp_path):
    base = write(tmp_path, "base", record(BASE))
    up = write(tmp_path, "up", record({"bottle": (0.99, 0.985, 0.900)}))  # pixel +0.5 points
    down = write(tmp_path, "down", record({"bottle": (0.99, 0.975, 0.900)}))  # pixel -0.5 points
    # today's two-sided check fails both
    assert runner.invoke(app, ["check", str(up), "--against", str(base)]).exit_code == 1
    assert runner.invoke(app, ["check", str(down), "--against", str(base)]).exit_code == 1
    res = runner.invoke(app, ["check", str(up), "--against", str(base), "--direction", "drop"], env=NO_COLUMNS)
    assert res.exit_code == 0, res.output
    assert "0 moved, 0 missing, 2 improved" in res.output  # bottle and the mean over it (all)
    res = runner.invoke(app, ["check", str(down), "--against", str(base), "--direction", "drop"], env=NO_COLUMNS)
    assert res.exit_code == 1
    assert "MOVED: bottle pixel_roc_auc: reference 98.00, ours 97.50, diff -0.50 points, tolerance 0.10" in res.output
    # a fall within a per-metric tolerance passes
    res = runner.invoke(app, ["check", str(down), "--against", str(base), "--direction", "drop",
                              "--tolerance", "pixel_roc_auc=0.6"])
    assert res.exit_code == 0, res.output


def test_cell_status_by_direction():
    assert C.cell_status(98.2, 98.0, 0.1, "drop") == "improved"
    assert C.cell_status(97.8, 98.0, 0.1, "drop") == "MOVED"
    assert C.cell_status(98.1, 98.0, 0.1, "drop") == "ok" == C.cell_status(97.9, 98.0, 0.1, "both")
    assert C.cell_status(98.2, 98.0, 0.1, "both") == "MOVED"


def test_exit_codes_0_1_2_and_bad_input(tmp_path):
    base = write(tmp_path, "base", record(BASE))
    same = write(tmp_path, "same", record(BASE))
    assert runner.invoke(app, ["check", str(same), "--against", str(base)]).exit_code == 0
    missing = write(tmp_path, "missing", record({"grid": (0.9, 0.9, 0.9)}))
    assert runner.invoke(app, ["check", str(missing), "--against", str(base)]).exit_code == 1
    for bad in (["--direction", "up"], ["--tolerance", "auc=1"], ["--format", "xml"]):
        res = runner.invoke(app, ["check", str(same), "--against", str(base), *bad])
        assert res.exit_code == 2 and "error:" in res.output, bad
    res = runner.invoke(app, ["check", str(tmp_path / "nope"), "--against", str(base)])
    assert res.exit_code == 2 and "no such run folder" in res.output
    # nothing enforceable: R18 on bottle only has no confirmed full paper cell
    r18 = write(tmp_path, "r18", record(BASE, backbone="resnet18"))
    res = runner.invoke(app, ["check", str(r18), "--format", "json"])
    assert res.exit_code == 2 and json.loads(res.stdout)["exit_code"] == 2


def test_json_output_lists_every_cell_with_its_status(tmp_path):
    base = write(tmp_path, "base", record(BASE))
    down = write(tmp_path, "down", record({"bottle": (0.99, 0.975, 0.905)}))
    res = runner.invoke(app, ["check", str(down), "--against", str(base), "--direction", "drop", "--format", "json"])
    assert res.exit_code == 1
    doc = json.loads(res.stdout)  # stdout is the JSON document alone
    assert doc["direction"] == "drop" and doc["exit_code"] == 1 and doc["tolerances_points"]["pro"] == 0.1
    cells = {(c["where"], c["metric"]): c for c in doc["cells"]}
    pix = cells[("bottle", "pixel_roc_auc")]
    assert pix["status"] == "MOVED" and pix["reference"] == pytest.approx(98.0) and pix["ours"] == pytest.approx(97.5)
    assert pix["diff"] == pytest.approx(-0.5)
    assert cells[("bottle", "pro")]["status"] == "improved" and cells[("bottle", "image_roc_auc")]["status"] == "ok"
    assert doc["summary"] == {"cells": 6, "enforced": 6, "ok": 2, "improved": 2, "MOVED": 2, "MISSING": 0, "info": 0}


# ------------------------------------------------------------------------------ JUnit
def validate_junit(path: Path) -> ET.Element:
    """Parse ``path`` against the common JUnit XML structure (the Ant / Jenkins ``junit-10.xsd``
    flavour, with every optional count present): ``<testsuites>`` of ``<testsuite>`` elements
    (name, tests, failures, errors, skipped, time), each of ``<properties>`` and ``<testcase>``
    elements (name, classname, time) whose children are at most one ``<failure>`` / ``<error>`` /
    ``<skipped>`` (failure and error: message and type) and ``<system-out>`` / ``<system-err>``;
    the counts of every suite and of the root are those of its cases."""
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    totals = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    for suite in root:
        assert suite.tag == "testsuite"
        for attr in ("name", "tests", "failures", "errors", "skipped", "time"):
            assert attr in suite.attrib, attr
        float(suite.attrib["time"])
        counts = dict.fromkeys(totals, 0)
        for child in suite:
            if child.tag == "properties":
                assert all(p.tag == "property" and {"name", "value"} <= set(p.attrib) for p in child)
                continue
            assert child.tag == "testcase", child.tag
            assert {"name", "classname", "time"} <= set(child.attrib)
            float(child.attrib["time"])
            outcome = [c for c in child if c.tag in ("failure", "error", "skipped")]
            assert len(outcome) <= 1 and all(c.tag in ("failure", "error", "skipped", "system-out", "system-err")
                                             for c in child)
            counts["tests"] += 1
            for c in outcome:
                if c.tag in ("failure", "error"):
                    assert {"message", "type"} <= set(c.attrib)
                counts[{"failure": "failures", "error": "errors", "skipped": "skipped"}[c.tag]] += 1
        assert {k: int(suite.attrib[k]) for k in counts} == counts
        totals = {k: totals[k] + counts[k] for k in totals}
    assert {k: int(root.attrib[k]) for k in totals} == totals
    return root


def test_junit_report_validates_and_names_reference_ours_tolerance(tmp_path):
    base = write(tmp_path, "base", record({"bottle": (0.99, 0.98, 0.90), "grid": (0.95, 0.97, 0.88)}))
    ours = write(tmp_path, "ours", record({"bottle": (0.99, 0.97, 0.90), "grid": (0.96, 0.97, 0.88)}))
    junit = tmp_path / "reports" / "check.xml"
    junit.parent.mkdir()
    res = runner.invoke(app, ["check", str(ours), "--against", str(base), "--direction", "drop", "--junit", str(junit)])
    assert res.exit_code == 1
    root = validate_junit(junit)
    cases = {(c.get("classname"), c.get("name")): c for c in root.iter("testcase")}
    # one case per category x metric, and per mean (textures, objects, all) x metric
    assert len(cases) == 2 * 3 + 3 * 3
    (failure,) = cases[("bottle", "pixel_roc_auc")].findall("failure")
    assert failure.get("type") == "MOVED"
    assert "reference 98.00, ours 97.00, diff -1.00 points, tolerance 0.10 points" in failure.get("message")
    assert cases[("grid", "image_roc_auc")].find("failure") is None  # +1 point: improved, passes
    assert "improved" in cases[("grid", "image_roc_auc")].find("system-out").text
    failed = {k for k, c in cases.items() if c.find("failure") is not None}
    # bottle's pixel ROC-AUC, and the means it is part of (objects = bottle; all: -0.5 points)
    assert failed == {("bottle", "pixel_roc_auc"), ("mean: objects", "pixel_roc_auc"), ("mean: all", "pixel_roc_auc")}
    # a baseline category missing from ours is a failure of type MISSING
    only_grid = write(tmp_path, "grid_only", record({"grid": (0.95, 0.97, 0.88)}))
    runner.invoke(app, ["check", str(only_grid), "--against", str(base), "--junit", str(junit)])
    root = validate_junit(junit)
    types = {(c.get("classname"), c.get("name")): c.find("failure").get("type")
             for c in root.iter("testcase") if c.find("failure") is not None}
    assert types[("bottle", "pro")] == "MISSING"
    assert all(c.find("skipped") is not None for c in root.iter("testcase") if c.get("classname").startswith("mean"))


def test_junit_into_a_missing_folder_is_refused_before_any_work(tmp_path):
    base = write(tmp_path, "base", record(BASE))
    res = runner.invoke(app, ["check", str(base), "--against", str(base), "--junit", str(tmp_path / "no" / "x.xml")])
    assert res.exit_code == 2 and "does not exist" in res.output


# ------------------------------------------------------------------------------ no terminal
LONG = "a_run_name_of_exactly_fifty_characters_0123456789x"


def fifteen(name: str = LONG) -> dict:
    """All 15 MVTec AD categories, distinct values per category (fractions with 4 decimals)."""
    metrics = {c: (0.9 + i / 1000, 0.95 + i / 1000, 0.8 + i / 1000) for i, c in enumerate(MVTEC_COUNTS)}
    return record(metrics, name=name)


def test_non_tty_console_renders_tables_at_their_full_width():
    assert len(LONG) == 50 and len(MVTEC_COUNTS) == 15
    buf = io.StringIO()
    console = make_console(file=buf)
    assert not console.is_terminal and console.width == LOG_WIDTH
    rec = fifteen()
    console.print(rich_table(rec))
    text = buf.getvalue()
    assert "…" not in text
    for i, c in enumerate(MVTEC_COUNTS):
        line = next(ln for ln in text.splitlines() if f" {c} " in ln)
        assert f"{100 * (0.95 + i / 1000):.1f}" in line and f"{100 * (0.8 + i / 1000):.1f}" in line, line
    assert all(label in text for label in ("image ROC-AUC %", "pixel ROC-AUC %", "PRO %", "fit peak GB"))
    # an explicit COLUMNS (or a terminal) keeps rich's own sizing
    assert make_console(file=io.StringIO(), _environ={"COLUMNS": "90"}).width == 90


def test_cli_output_in_a_log_is_untruncated(tmp_path):
    """``check`` and ``table 3`` through the CLI with stdout captured (not a TTY), no COLUMNS: the
    50-character run folder and every category, number and header are there in full."""
    base = write(tmp_path, LONG, fifteen())
    other = copy.deepcopy(fifteen())
    res = runner.invoke(app, ["check", str(write(tmp_path, "ours", other)), "--against", str(base)], env=NO_COLUMNS)
    assert res.exit_code == 0, res.output
    assert "…" not in res.output and f"against {base}" in res.output
    for c in MVTEC_COUNTS:
        assert f" {c} " in res.output and "mean: all" in res.output
    res = runner.invoke(app, ["table", "3", str(base)], env=NO_COLUMNS)
    assert res.exit_code == 0 and "…" not in res.output
    for c in MVTEC_COUNTS:  # whatever the layout: every category's name in full
        assert c in res.output, c
    for i, _ in enumerate(MVTEC_COUNTS):
        assert f"{100 * (0.95 + i / 1000):.1f}" in res.output


# ------------------------------------------------------------------------------ the example workflow
REPO = Path(__file__).resolve().parents[1]


def padim_commands(text: str) -> list[list[str]]:
    """Every ``padim-bench ...`` command line in a shell text (continuation lines joined; the
    ``.venv/bin/`` prefix dropped), split like a shell would, variables left as they are."""
    import shlex

    joined = text.replace("\\\n", " ")
    out = []
    for line in joined.splitlines():
        line = line.strip().replace(".venv/bin/padim-bench", "padim-bench")
        if line.startswith("padim-bench "):
            out.append(shlex.split(line)[1:])
    return out


def test_the_example_workflow_runs_the_commands_of_ci_and_they_parse():
    import yaml
    import typer.main

    workflow = yaml.safe_load((REPO / "docs" / "ci" / "github-actions.yml").read_text())
    steps = workflow["jobs"]["regression"]["steps"]
    uses = [s.get("uses", "").split("@")[0] for s in steps]
    assert {"actions/checkout", "actions/setup-python", "actions/cache", "actions/upload-artifact"} <= set(uses)
    cached = [s["with"]["path"] for s in steps if s.get("uses", "").startswith("actions/cache")]
    env = workflow["jobs"]["regression"]["env"]
    assert ".data/mvtec_ad" in cached and env["DATA"].endswith("/.data/mvtec_ad")  # the dataset folder
    assert ".cache/torch" in cached and env["TORCH_HOME"].endswith("/.cache/torch")  # TORCH_HOME
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["if"] == "always()"
    run_text = "\n".join(s.get("run", "") for s in steps)
    assert "pip install -e '.[test,ray]'" in run_text
    example = padim_commands(run_text)
    ci = padim_commands((REPO / ".ci" / "run").read_text())

    def shape(cmds):  # the subcommands and their options, paths and variables aside
        return [(c[0], sorted(a for a in c if a.startswith("--") and a != "--out"), [a for a in c if "/" in a
                 and not a.startswith("$") and "$" not in a]) for c in cmds]

    assert [c[0] for c in example] == ["run", "leaderboard", "check"] == [c[0] for c in ci]
    assert shape(example) == shape(ci)  # same config, categories, baseline, --direction drop, --junit
    check = example[2]
    assert check[check.index("--direction") + 1] == "drop" and "--junit" in check
    group = typer.main.get_command(app)
    import click

    ctx = click.Context(group)
    for args in example + ci:  # every option exists and takes what it is given
        cmd = group.get_command(ctx, args[0])
        cmd.make_context(args[0], [a.replace("$", "X") for a in args[1:]])
    assert "make test" in (REPO / ".ci" / "run").read_text()
    assert "'.[test,ray]'" in (REPO / "Makefile").read_text()


# ------------------------------------------------------------------------------ machine-readable results
def test_table_json_holds_every_cell(tmp_path):
    run = write(tmp_path, "r", record({"bottle": (0.99, 0.981, 0.90), "grid": (0.95, 0.973, 0.88)},
                                      backbone="wide_resnet50_2"))
    rec = json.loads((run / "results.json").read_text())
    rec["config"]["method"]["d"] = 550
    (run / "results.json").write_text(json.dumps(rec))
    res = runner.invoke(app, ["table", "3", str(run), "--format", "json"])
    assert res.exit_code == 0, res.output
    parts = json.loads(res.stdout)
    assert len(parts) == 2  # Table III: the means, then per category
    per_class = parts[1]
    cols = [(c["column"], c["metric"]) for c in per_class["columns"]]
    row = next(r for r in per_class["rows"] if r["label"] == "PaDiM-WR50-Rd550")
    bottle = row["cells"][cols.index(("bottle", "pixel_roc_auc"))]
    assert bottle["paper"] == 98.3 and bottle["ours"] == pytest.approx(98.1) and bottle["diff"] == pytest.approx(-0.2)
    assert bottle["text"] == "98.3 → 98.1 (-0.2)"
    out = tmp_path / "t3.json"
    assert runner.invoke(app, ["table", "3", str(run), "-o", str(out)]).exit_code == 0  # .json: the same document
    assert json.loads(out.read_text()) == parts


def test_flat_results_concatenate_into_one_leaderboard(tmp_path):
    import csv

    from padim_bench.leaderboard import FLAT_FIELDS, flat_csv

    a = record({"bottle": (0.99, 0.98, 0.90), "grid": (0.95, 0.97, 0.88)}, name="a")
    b = record({"bottle": (0.97, 0.96, 0.85)}, name="b", backbone="resnet18")
    b["environment"] = {"code": {"key": "0.1.0+abc", "git_commit": "123", "dirty": True}}
    files = [write(tmp_path, n, r) for n, r in (("a", a), ("b", b))]
    for f, r in zip(files, (a, b)):  # as a run writes it
        (f / "results_flat.csv").write_text(flat_csv([r]))
    heads = {(f / "results_flat.csv").read_text().splitlines()[0] for f in files}
    assert heads == {",".join(FLAT_FIELDS)}  # one header for every run
    by_hand = (files[0] / "results_flat.csv").read_text() + "".join(
        (f / "results_flat.csv").read_text().split("\n", 1)[1] for f in files[1:])  # head + tail -n +2
    board = tmp_path / "board.csv"
    res = runner.invoke(app, ["leaderboard", str(tmp_path / "a"), str(tmp_path / "b"), "-o", str(board)])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(board.open()))
    # a: bottle, grid, mean: textures, mean: objects, mean: all; b: bottle, mean: all
    assert [(r["run"], r["row"]) for r in rows] == [
        ("a", "bottle"), ("a", "grid"), ("a", "mean: textures"), ("a", "mean: objects"), ("a", "mean: all"),
        ("b", "bottle"), ("b", "mean: all")]
    mean_a = rows[4]
    assert float(mean_a["pixel_roc_auc"]) == pytest.approx((0.98 + 0.97) / 2) and mean_a["n_categories"] == "2"
    assert rows[5]["backbone"] == "resnet18" and rows[5]["code_version"] == "0.1.0+abc" and rows[5]["dirty"] == "True"
    assert rows[0]["layers"] == "layer1+layer2+layer3" and rows[0]["d"] == "100" and rows[0]["seed"] == "0"
    strip = lambda text: [ln.rsplit(",", 1)[0] for ln in text.splitlines()]  # noqa: E731 (the results path differs)
    assert strip(board.read_text()) == strip(by_hand)
