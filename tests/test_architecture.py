"""The layout's rules, checked on the source (issue: open architecture).

* No module outside ``methods/`` and ``data/`` has a method's or a dataset's name in its logic
  (string constants and identifiers; docstrings and comments are prose and do not count): the
  rest of the tool asks the registered plug-in instead of switching on its name.
* No module over 400 lines and no function over 80 lines.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from padim_bench.data import DATASETS
from padim_bench.methods import METHODS

PKG = Path(__file__).resolve().parents[1] / "padim_bench"
PLUGIN_DIRS = ("methods", "data")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80

# Deliberate uses, each with its reason. Keep this short: an entry is a place where the name is
# data (a default value), not a branch of the logic.
ALLOWED: dict[tuple[str, str], str] = {
    ("config/schema.py", "padim"): "the default method of a config without method.name",
    ("config/schema.py", "mvtec_ad"): "the default dataset of a config without dataset.name",
}


def _modules() -> list[Path]:
    return sorted(p for p in PKG.rglob("*.py") if "__pycache__" not in p.parts)


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the Constant nodes that are docstrings."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                out.add(id(first.value))
    return out


def _words(text: str) -> set[str]:
    """Lower-case words of ``text`` split at anything but letters and digits; the tool's own
    name (``padim-bench``, ``padim_bench``) is not the method's."""
    text = re.sub(r"padim[-_ ]bench", " ", text, flags=re.IGNORECASE)
    return {w for w in re.split(r"[^A-Za-z0-9]+", text) if w}


def plugin_names() -> set[str]:
    """Every registered method and dataset name, and their parts (``mvtec_ad`` -> also itself)."""
    return set(METHODS.names()) | set(DATASETS.names())


def name_uses(path: Path, names: set[str]) -> list[tuple[int, str]]:
    """``(line, name)`` for each string constant (not a docstring) or identifier of ``path``
    that contains a plug-in name as a whole word (or whole underscore-separated identifier)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docs = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        texts: list[str] = []
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            texts = [node.value]
        elif isinstance(node, ast.Name):
            texts = [node.id]
        elif isinstance(node, ast.Attribute):
            texts = [node.attr]
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
            texts = [node.name]
        for text in texts:
            words = _words(text.replace("_", " ")) | {text.lower()} | _words(text)
            for name in names & {w.lower() for w in words}:
                found.append((getattr(node, "lineno", 0), name))
    return found


def test_no_module_outside_the_plugins_names_a_method_or_a_dataset():
    names = plugin_names()
    assert {"padim", "spade", "vae"} <= names and "stc" in names  # the check has something to find
    bad = []
    for path in _modules():
        rel = path.relative_to(PKG).as_posix()
        if rel.split("/")[0] in PLUGIN_DIRS:
            continue
        for line, name in name_uses(path, names):
            if (rel, name) not in ALLOWED:
                bad.append(f"{rel}:{line}: {name!r}")
    assert not bad, "plug-in names in the logic outside methods/ and data/:\n" + "\n".join(sorted(set(bad)))


def test_the_name_check_finds_a_switch_on_a_name(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text('"""Docstring naming padim and stc is prose."""\n'
                     'def f(cfg):\n    return cfg.method.name == "spade"\n'
                     'def is_stc(r):\n    return "padim-bench"\n', encoding="utf-8")
    assert sorted(n for _, n in name_uses(probe, plugin_names())) == ["spade", "stc"]


@pytest.mark.parametrize("path", _modules(), ids=lambda p: p.relative_to(PKG).as_posix())
def test_module_and_function_sizes(path):
    text = path.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= MAX_MODULE_LINES, f"{path.name}: {len(text.splitlines())} lines"
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines)" for node in ast.walk(ast.parse(text))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f"{path.name}: functions over {MAX_FUNCTION_LINES} lines: {', '.join(long)}"
