"""The notes under the paper tables that compare runs with one another (Tables VI and VII), flag
contended timings (Table VII) and label generated data."""

from __future__ import annotations

import statistics
from typing import Any

from .. import reference
from ..contention import BUSY_CORES, busy_cores, contended
from ..methods import method_class
from .cells import TableData


def synthetic_notes(records: list[dict[str, Any]]) -> list[str]:
    """One line per run on a padim-bench generated dataset (``synthetic_data`` in its record)."""
    return [f"{r.get('_path', r.get('name', 'run'))}: SYNTHETIC data ({r['synthetic_data']['what']}): "
            "its values are not comparable with the paper's" for r in records if r.get("synthetic_data")]


def table6_drops(records: list[dict[str, Any]]) -> list[str]:
    """Pixel ROC-AUC lost by the non-aligned runs against aligned runs of the same method,
    backbone and d over the same categories (the paper: PaDiM -5.3, SPADE -8.8, VAE -12.2)."""
    paper = {row: value for row, value, _ in reference.load_paper()["tables"]["6"].get("drops", [])}
    labels = {k: v["label"] for k, v in reference.rows("6").items()}
    notes = ["paper: pixel ROC-AUC drop from Table III: " + ", ".join(f"{labels[r]} {v:+.1f}" for r, v in paper.items())]
    key = lambda r: (r["config"]["method"]["name"], r["config"]["method"]["backbone"], r["config"]["method"].get("d"))  # noqa: E731
    for k in sorted({key(r) for r in records}, key=str):
        shifted = [r for r in records if key(r) == k and r["config"]["dataset"].get("augment", "none") != "none"]
        aligned = [r for r in records if key(r) == k and r["config"]["dataset"].get("augment", "none") == "none"]
        if not shifted or not aligned:
            continue
        cats = set.intersection(*({c["category"] for c in r["categories"]} for r in shifted + aligned))
        def mean_pix(rs):
            vals = [100 * c["metrics"]["pixel_roc_auc"] for r in rs for c in r["categories"]
                    if c["category"] in cats and c["metrics"].get("pixel_roc_auc") is not None]
            return statistics.fmean(vals) if vals else None
        a, b = mean_pix(aligned), mean_pix(shifted)
        if a is not None and b is not None:
            parts = "".join(f"-{p}" for p in method_class(k[0]).label_parts(shifted[0]["config"]["method"]))
            notes.append(f"ours: {k[0]}-{k[1]}{parts}" +
                         f": pixel ROC-AUC {a:.1f} aligned -> {b:.1f} non-aligned ({b - a:+.1f}) over {len(cats)} categories, "
                         f"{len(shifted)} non-aligned run(s)")
    return notes


def same_backbone_ratios(records: list[dict[str, Any]]) -> list[str]:
    """The inference-time ratio of the two methods of paper.yaml's Table VII ``same_backbone``
    rows, each with the same backbone, over the categories both measured (the paper: SPADE /
    PaDiM = 7.10 / 0.95 = 7.5 with WR50)."""
    spec = reference.load_paper()["tables"]["7"].get("same_backbone")
    if not spec:
        return []
    rows, paper = reference.rows("7"), {c.row: c.value for c in reference.cells("7") if c.column == "all"}
    num_row, den_row = spec["rows"]
    methods = [rows[num_row]["method"], rows[den_row]["method"]]
    names = [method_class(m).display_name or m for m in methods]

    def times(method: str, backbone: str) -> dict[str, float]:
        return {c["category"]: c["time"]["infer_s_per_image"] for r in records
                if r["config"]["method"]["name"] == method and r["config"]["method"]["backbone"] == backbone
                for c in r["categories"] if c["time"].get("infer_s_per_image")}

    notes = []
    for backbone in sorted({r["config"]["method"]["backbone"] for r in records}):
        num, den = (times(m, backbone) for m in methods)
        common = sorted(set(num) & set(den))
        if common:
            ratio = statistics.fmean(num[c] for c in common) / statistics.fmean(den[c] for c in common)
            notes.append(f"ours, {backbone}: {names[0]} / {names[1]} = {ratio:.1f} over {', '.join(common)} "
                         f"(paper, {spec['paper_backbone']}: {paper[num_row] / paper[den_row]:.1f})")
    return notes


def table7_ratios(data: TableData) -> list[str]:
    """Each of paper.yaml's Table VII ``ratios`` (numerator row, denominator row): the paper's and
    ours, and every measured time against the paper's."""
    by_label = {label.split(" [")[0]: cells[0] for label, cells in data.rows if cells}
    rows = reference.rows("7")
    notes = []
    for label, cells in data.rows:
        c = cells[0]
        if c.paper and c.ours:
            notes.append(f"{label}: ours {c.ours:.3f} s = {c.ours / c.paper:.2f} x the paper's {c.paper} s "
                         "(other CPU; the ratios between methods below should carry over)")
    for num_row, den_row in reference.load_paper()["tables"]["7"].get("ratios", []):
        num, den = rows[num_row]["label"], rows[den_row]["label"]
        a, b = by_label.get(num), by_label.get(den)
        if a and b and a.paper and b.paper:
            ours = f"{a.ours / b.ours:.2f}" if a.ours and b.ours else "not measured"
            notes.append(f"ratio {num} / {den}: paper {a.paper / b.paper:.2f}, ours {ours}")
    return notes


def contended_tag(records: list[dict[str, Any]]) -> str:
    """A Table VII row's flag: `` [contended timing: bottle, grid]`` naming the categories of
    ``records`` whose batch-1 timing (the s/image) was shared with other processes
    (:data:`padim_bench.contention.BUSY_CORES`), or ``""``."""
    cats = sorted({c["category"] for r in records for c in r["categories"] if contended(c, "batch-1 timing")})
    return f" [contended timing: {', '.join(cats)}]" if cats else ""


def contention_notes(records: list[dict[str, Any]], spans: tuple[str, ...] = ("batch-1 timing",)) -> list[str]:
    """Notes on load (Table VII: the batch-1 timing; the report: the fit too): each category span
    timed while other processes kept more than ``BUSY_CORES`` cores busy (its figure stays in the
    means, flagged, not dropped), and the runs whose records do not say (made before the figure was
    recorded)."""
    busy, unknown = [], {}
    for r in records:
        name = str(r.get("_path", r.get("name", "run")))
        for c in r["categories"]:
            cores = (c.get("environment") or {}).get("cpu_count") or "?"
            if all(busy_cores(c, span) is None for span in spans):
                unknown.setdefault(name, []).append(c["category"])
            busy += [f"{name} {c['category']} {span} ({busy_cores(c, span):.1f} of {cores} cores)"
                     for span in spans if contended(c, span)]
    notes = []
    if busy:
        notes.append(f"contended timing (other processes kept more than {BUSY_CORES} cores busy while it was timed; "
                     "the time is inflated and still in the means): " + "; ".join(busy))
    if unknown:
        notes.append("timing load not recorded (records from before it was measured; see their load average): "
                     + "; ".join(f"{name} ({', '.join(cats)})" for name, cats in unknown.items()))
    return notes
