"""Where a dataset came from: genuine data, or one of padim-bench's generators.

The generators leave a marker file at the dataset root (``padim_bench.data.demo.MARKER_NAME`` for
the MVTec-layout demo, ``padim_bench.data.stc_synth.MARKER_NAME`` for the synthetic STC). A run on
such a folder records it, and tables and reports say the values are not comparable with the
paper's, since the demo's textures and defects, and the synthetic STC's scenes, are made up.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from . import demo, stc_synth

_MARKERS = {demo.MARKER_NAME: "padim-bench demo dataset (MVTec AD layout, synthetic defects)",
            stc_synth.MARKER_NAME: "padim-bench synthetic ShanghaiTech Campus (STC layout, generated videos)"}


def synthetic_origin(root: str | Path) -> dict[str, Any] | None:
    """The generator marker at ``root``: ``{"marker": file name, "what": description, "params":
    the generator's parameters, or None where the marker is not readable JSON}``; None where
    ``root`` has no marker (genuine data, as far as padim-bench can tell). Reads JSON only."""
    for name, what in _MARKERS.items():
        path = Path(root) / name
        if path.is_file():
            try:
                params = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, ValueError):
                params = None
            return {"marker": name, "what": what, "params": params if isinstance(params, dict) else None}
    return None
