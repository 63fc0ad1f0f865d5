"""Run folders written before ``dataset.root`` left the config hash (padim-bench commit 5d26a99).

Their ``run.json``, ``results.json`` and ``categories/*.json`` carry the config and run hashes of
the old rule (:meth:`padim_bench.config.RunConfig.legacy_hashes`). Such a folder of the same
configuration is re-keyed in place (hash fields only, each file written atomically) so that it
resumes instead of being refused as another run. Model-cache entries of the old config hash are
not moved: those categories are fitted again if their records are missing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .config import RunConfig
from .output import atomic_write_json


def is_legacy_run(folder: str | Path, cfg: RunConfig) -> bool:
    """True when ``folder/run.json`` holds ``cfg``'s run hash by the old rule (and it differs
    from the current one)."""
    try:
        old = json.loads((Path(folder) / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    legacy_rh = cfg.legacy_hashes()[1]
    return isinstance(old, dict) and old.get("run_hash") == legacy_rh != cfg.run_hash()


def rekey_run_folder(folder: str | Path, cfg: RunConfig) -> list[Path]:
    """Re-key a legacy run folder of ``cfg`` (see module doc); returns the files rewritten
    (empty when the folder is not such a folder). Files of other hashes are left as they are.

    Raises:
        OSError: a file cannot be written.
    """
    folder = Path(folder)
    if not is_legacy_run(folder, cfg):
        return []
    (old_ch, old_rh), (new_ch, new_rh) = cfg.legacy_hashes(), (cfg.config_hash(), cfg.run_hash())

    def rekey(rec: Any) -> bool:
        if not isinstance(rec, dict) or rec.get("run_hash") != old_rh:
            return False
        rec["run_hash"] = new_rh
        if rec.get("config_hash") == old_ch:
            rec["config_hash"] = new_ch
        return True

    done = []
    for path in [folder / "run.json", folder / "results.json", *sorted((folder / "categories").glob("*.json"))]:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not rekey(data):
            continue
        for cat in data.get("categories", []) if path.name == "results.json" else []:
            rekey(cat)
        atomic_write_json(path, data)
        done.append(path)
    return done
