"""Which code made a record: the resume rule's code check and the labels of a run's code.

Every category record and run record carries ``environment.code``
(:func:`padim_bench.envinfo.code_identity`: ``key`` = package version + hash of the package's
sources, with the git commit and the dirty flag as provenance). A finished category is reused on
resume only when its ``key`` is the running code's (unless ``--reuse-results``); a record from
before padim-bench recorded its code has no key and counts as other code.
"""

from __future__ import annotations

from typing import Any

NO_CODE = "unknown code (recorded before padim-bench kept its code identity)"


def record_code(record: dict[str, Any]) -> dict[str, Any] | None:
    """``record["environment"]["code"]`` of a category or run record, or None where absent."""
    env = record.get("environment")
    code = env.get("code") if isinstance(env, dict) else None
    return code if isinstance(code, dict) and code.get("key") else None


def describe(code: dict[str, Any] | None) -> str:
    """``padim-bench 0.1.0, source 9c6c1b0b8c0f75e2, git 73581b1 (uncommitted changes)``, or
    :data:`NO_CODE`."""
    if code is None:
        return NO_CODE
    git = code.get("git_commit")
    text = f"padim-bench {code.get('version')}, source {code.get('source_sha256')}"
    if git:
        text += f", git {git[:7]}" + (" (uncommitted changes)" if code.get("dirty") else "")
    return text


def other_code(record: dict[str, Any], current: dict[str, Any]) -> str | None:
    """Why ``record`` was made by other code than ``current`` (a :func:`code_identity` dict), or
    None when it is the same code (same ``key``)."""
    have = record_code(record)
    if have is not None and have.get("key") == current.get("key"):
        return None
    return f"made by {describe(have)}; this is {describe(current)}"


def run_code(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The run record's ``code``: the category records' code identities (``categories``:
    category -> key or None), ``same`` (one key for all, None absent), and ``dirty`` (any of them
    made by code with uncommitted changes)."""
    codes = {r["category"]: record_code(r) for r in records}
    keys = {None if c is None else c["key"] for c in codes.values()}
    return {"same": len(keys) == 1 and None not in keys,
            "dirty": any(bool(c and c.get("dirty")) for c in codes.values()),
            "categories": {k: None if c is None else c["key"] for k, c in codes.items()}}


def code_note(record: dict[str, Any]) -> str | None:
    """The caption of a run made by code with uncommitted changes, or of categories made by
    different code (kept with ``--reuse-results``); None otherwise (and for records older than
    the code identity)."""
    code = record.get("code")
    if not isinstance(code, dict):
        return None
    notes = []
    if not code.get("same"):
        keys = sorted({k or "unknown" for k in code.get("categories", {}).values()})
        notes.append(f"categories made by {len(keys)} different code versions ({', '.join(keys)}; kept with "
                     "--reuse-results): not one code's numbers")
    if code.get("dirty"):
        notes.append("made by code with UNCOMMITTED changes: " + describe(record_code(record)))
    return "; ".join(notes) or None
