"""The Method contract: what tables and reports ask a method (labels, facts), and that no module
outside methods/ names a method in its logic."""

from __future__ import annotations

import ast
from pathlib import Path

import padim_bench
from padim_bench.methods import METHODS, Method, method_class
from padim_bench.methods.padim import PadimParams

#: modules of slices of issue 14 still in flight that name methods today (the memory model and
#: the config split); an entry goes when its slice lands
PENDING = {"config/schema.py"}  # the default method name (see tests/test_architecture.py once it lands)


def test_labels_as_the_paper_writes_them():
    padim, spade, vae = (METHODS.get(n).cls for n in ("padim", "spade", "vae"))
    assert padim.label({"name": "padim", "d": 100}, "R18") == "PaDiM-R18-Rd100"
    assert padim.label(PadimParams(d=550), "WR50") == "PaDiM-WR50-Rd550"  # a params dataclass works too
    assert padim.label({"name": "padim", "d": None}, "EffB5") == "PaDiM-EffB5"
    assert spade.label({"name": "spade", "k": 50}, "WR50") == "SPADE-WR50"
    assert vae.label({"name": "vae"}, "R18") == "VAE-R18"
    assert padim.variant_parts({"reduction": "pca", "combine": "joint"}) == ["pca"]
    assert padim.variant_parts({"reduction": "random", "combine": "sum"}) == ["sum"]
    assert padim.variant_parts({}) == [] and spade.variant_parts({"combine": "concat"}) == []


def test_facts_tables_and_reports_need():
    padim, spade, vae = (METHODS.get(n).cls for n in ("padim", "spade", "vae"))
    assert [c.trains_backbone for c in (padim, spade, vae)] == [False, False, True]
    assert vae.default_layers == ("layer4",) and padim.default_layers == ("layer1", "layer2", "layer3")
    assert spade.per_image_state == ("bank",) and padim.per_image_state == ()


def test_a_record_of_an_unregistered_method_gets_the_generic_label():
    cls = method_class("someone_elses_method")
    assert cls is Method and not cls.trains_backbone
    assert cls.label({"name": "someone_elses_method", "d": 100}, "R18") == "someone_elses_method-R18"


def _named_methods(path: Path, names: set[str]) -> list[tuple[int, str]]:
    """String literals (docstrings aside) equal to a registered method name."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    return [(n.lineno, n.value) for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value in names and id(n) not in docstrings]


def test_no_module_outside_methods_names_a_method(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text('"""Mentions padim in the docstring only."""\nif m["name"] == "padim":\n    pass\n')
    assert _named_methods(probe, {"padim"}) == [(2, "padim")]  # the check finds a name where there is one
    root = Path(padim_bench.__file__).parent
    names = set(METHODS.names())
    found = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel.startswith("methods/") or rel in PENDING:
            continue
        if hits := _named_methods(path, names):
            found[rel] = hits
    assert found == {}, f"method names in logic outside methods/ (ask the method class instead): {found}"
