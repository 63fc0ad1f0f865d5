"""The config and run hashes that key the committed runs (results/**/run.json) and the shipped
configs that resume them. The expected values are the hashes each run.json stored when its run was
made (not numbers typed here), so these tests guard the hash rule across refactors of
padim_bench.config and still hold when results/ is re-keyed on purpose."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from padim_bench.config import RunConfig, config_from_dict, expand_experiments

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
SHIPPED = sorted(CONFIGS.glob("*.yaml")) + sorted((CONFIGS / "paper").glob("*.yaml"))
PAPER_EXPERIMENTS = [CONFIGS / "paper" / f"table{n}.yaml" for n in (1, 2, 6)]
RUN_FILES = sorted((REPO / "results").rglob("run.json"))

def _folder(run_json: Path) -> str:
    return run_json.parent.relative_to(REPO).as_posix()


def _stored(run_json: Path) -> dict:
    return json.loads(run_json.read_text(encoding="utf-8"))


def _rebuilt(stored: dict) -> RunConfig:
    """The config a run.json recorded, rebuilt."""
    return config_from_dict(copy.deepcopy(stored["config"]))


def test_there_are_committed_runs_to_guard():
    assert len(RUN_FILES) >= len(PAPER_EXPERIMENTS)


@pytest.mark.parametrize("run_json", RUN_FILES, ids=_folder)
def test_a_committed_config_gives_its_stored_config_hash(run_json):
    stored = _stored(run_json)
    assert _rebuilt(stored).config_hash() == stored["config_hash"]


@pytest.mark.parametrize("run_json", RUN_FILES, ids=_folder)
def test_a_committed_config_gives_its_stored_run_hash(run_json):
    stored = _stored(run_json)
    assert _rebuilt(stored).run_hash() == stored["run_hash"]


def test_shipped_configs_keep_the_hashes_of_their_committed_runs():
    """Every shipped config (experiment files expanded) whose output folder holds a committed run
    gives that run's config hash, and its run hash where the run was made with the file's own
    runtime section; every run of the paper's experiment files (Tables I, II, VI) is such a run."""
    resumed, compared = set(), 0
    for path in SHIPPED:
        for run in expand_experiments(path):
            run_json = REPO / run.config.output.dir / "run.json"
            if not run_json.is_file():
                continue
            stored, compared = _stored(run_json), compared + 1
            assert run.config.config_hash() == stored["config_hash"], (path.name, run.run_name)
            if run.config.runtime == _rebuilt(stored).runtime:
                assert run.config.run_hash() == stored["run_hash"], (path.name, run.run_name)
                resumed.add(run.config.output.dir)
    paper = {run.config.output.dir for path in PAPER_EXPERIMENTS for run in expand_experiments(path)}
    assert len(paper) == 5 + 30 + 5  # Table I: 5 layer choices; II: 3 variants x 10 seeds; VI: 5 seeds
    assert paper <= resumed
    assert compared > len(paper)  # and the single-run configs with a committed folder
