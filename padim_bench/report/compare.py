"""The same test images across every run of a report: which images (the union of the runs'
selections), and each run's map and rank for each of them (:func:`comparison`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .data import GROUPS
from .runs import Run, _input_image

MAX_COMPARED = 24  # images per category in the comparison figure (3 blocks of 8)


def _ranks(rec: dict) -> dict[str, tuple[int, int]]:
    """Test image path -> (rank by image score, 1 = highest; number of test images)."""
    scores = np.asarray(rec["image_scores"], dtype=np.float64)
    order = np.argsort(-scores, kind="stable")
    return {rec["image_paths"][int(i)]: (k + 1, len(scores)) for k, i in enumerate(order)}


def union_of_selections(cat: str, runs: list[Run]) -> list[str]:
    """Paths of the test images any run kept a map of, group by group (highest-scored defective,
    lowest-scored defective, highest-scored good), each run's in its order, the first run first;
    each path once."""
    out: list[str] = []
    for group in GROUPS:
        for r in runs:
            cd = r.data.get(cat)
            if cd is None or cd.curves is None or cd.maps is None:
                continue
            out += [s["path"] for s in cd.curves["selected"] if s["group"] == group and s["path"] not in out]
    return out


def comparison(cat: str, runs: list[Run], data_root, problems: list[str], limit: int = MAX_COMPARED):
    """The comparison figure's data for category ``cat``: ``(images, compare_runs, cells, left_out)``
    as :func:`padim_bench.report.overlays.comparison_figure` takes them, the images being the union
    of the runs' selections (at most ``limit``; ``left_out`` counts the others); None when fewer than
    two runs kept maps of the category. Unreadable inputs are named in ``problems``."""
    from .overlays import CompareCell, CompareImage, CompareRun

    shown = [r for r in runs if r.data.get(cat) is not None and r.data[cat].maps is not None]
    if len(shown) < 2:
        return None
    paths = union_of_selections(cat, shown)
    left_out, paths = max(0, len(paths) - limit), paths[:limit]
    recs = {id(r): next(c for c in r.record["categories"] if c["category"] == cat) for r in shown}
    ranks = {id(r): _ranks(recs[id(r)]) for r in shown}
    kept = {id(r): {s["path"]: k for k, s in enumerate(r.data[cat].curves["selected"])} for r in shown}
    images = []
    for p in paths:
        owner = next(r for r in shown if p in kept[id(r)])  # the first run that kept it: its input and mask
        k, rec = kept[id(owner)][p], recs[id(owner)]
        img, note = _input_image(owner, p, rec["image_paths"].index(p), data_root, rec.get("dataset_root_resolved"))
        if img is None:
            problems.append(f"comparison {cat}: {note}")
        mask = owner.data[cat].masks[k]
        images.append(CompareImage(f"{Path(p).parent.name}/{Path(p).stem}", img if img is None or img.shape[:2] ==
                                   mask.shape else None, mask))
    compare_runs, cells = [], []
    for r in shown:
        cur = r.data[cat].curves
        compare_runs.append(CompareRun(r.label, r.color, cur["map_range"]["lo"], cur["map_range"]["hi"],
                                       (cur.get("pixel_threshold") or {}).get("value")))
        row = []
        for p in paths:
            rank, n = ranks[id(r)].get(p, (None, len(recs[id(r)]["image_scores"])))
            k = kept[id(r)].get(p)
            row.append(CompareCell(None if k is None else r.data[cat].maps[k], rank, n))
        cells.append(row)
    return images, compare_runs, cells, left_out
