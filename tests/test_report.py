"""The report: run-time report data (curves, thresholds, selected maps), the figures and the HTML
page, on tiny synthetic runs (random ResNet18, 64 px demo textures)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from padim_bench import metrics as M
from padim_bench import runner
from padim_bench.cli import app
from padim_bench.config import load_config
from padim_bench.report.browser import find_chromium, probe
from padim_bench.report.build import build_report
from padim_bench.report.data import (GROUPS, category_curves, load_category, safe_name, save_category, select_images,
                                     thin_curve)

cli = CliRunner()
PNG = b"\x89PNG\r\n\x1a\n"
trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy < 2 has only trapz


# ------------------------------------------------------------------------------ metrics / curves
def test_pro_curve_to_limit_is_what_pro_auc_integrates_hand_case(pro_hand_case):
    maps, masks, expected = pro_hand_case.maps, pro_hand_case.masks, pro_hand_case.expected
    fpr, pro = M.pro_curve_to_limit(maps, masks, 0.3)
    # thresholds 1.0, 0.9, 0.5, then the point at exactly FPR 0.3 (PRO 1: all regions found at 0.5)
    np.testing.assert_allclose(fpr, [0, 0, 5 / 182, 5 / 182, 0.3])
    np.testing.assert_allclose(pro, [0, 0.5, 0.5, 1, 1])
    assert M.curve_area(fpr, pro) / 0.3 == M.pro_auc(maps, masks, 0.3) == pytest.approx(expected, abs=1e-12)
    assert trapezoid(pro, fpr) / 0.3 == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("limit", [0.05, 0.3, 1.0])
def test_pro_curve_to_limit_area_equals_pro_auc_random(limit):
    rng = np.random.default_rng(1)
    masks = np.zeros((3, 32, 32), dtype=bool)
    masks[0, 4:12, 4:12] = masks[1, 20:30, 2:6] = True
    maps = rng.normal(size=masks.shape) + 1.5 * masks
    fpr, pro = M.pro_curve_to_limit(maps, masks, limit)
    assert fpr[0] == 0 and fpr[-1] == limit and np.all(np.diff(fpr) >= 0) and np.all(np.diff(pro) >= 0)
    assert M.curve_area(fpr, pro) / limit == M.pro_auc(maps, masks, limit)
    with pytest.raises(ValueError, match="fpr_limit"):
        M.pro_curve_to_limit(maps, masks, 0.0)


def test_thin_curve_keeps_endpoints_and_area():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 20000)
    s = rng.normal(size=20000) + y
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(y, s)
    assert len(fpr) > 400
    x2, y2 = thin_curve(fpr, tpr, 400)
    assert len(x2) <= 400 and (x2[0], y2[0]) == (fpr[0], tpr[0]) and (x2[-1], y2[-1]) == (fpr[-1], tpr[-1])
    assert set(zip(x2, y2)) <= set(zip(fpr, tpr))  # picked from the curve, nothing invented
    assert trapezoid(y2, x2) == pytest.approx(roc_auc_score(y, s), abs=2e-3)
    short = thin_curve([0, 0.5, 1], [0, 1, 1], 400)
    np.testing.assert_array_equal(short[0], [0, 0.5, 1])


def _synthetic_category(n=12, size=48, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.array([0] * (n // 2) + [1] * (n - n // 2))
    masks = np.zeros((n, size, size), dtype=np.uint8)
    for i in np.flatnonzero(labels):
        t, l = rng.integers(0, size - 10, 2)
        masks[i, t : t + 10, l : l + 10] = 1
    maps = (rng.normal(size=masks.shape) + 2.0 * masks).astype(np.float32)
    scores = maps.reshape(n, -1).max(1).astype(np.float64)
    return maps, masks, scores, labels


def _curves(maps, masks, scores, labels, fpr_limit=0.3):
    """The report's curves from the curves the metrics integrate, as the runner passes them."""
    return category_curves(maps, scores, labels, M.pixel_roc(maps, masks), M.pro_to_limit(maps, masks, fpr_limit))


def test_stored_curves_reproduce_the_metrics():
    maps, masks, scores, labels = _synthetic_category()
    c = _curves(maps, masks, scores, labels)
    img, pix, pro = c["image_roc"], c["pixel_roc"], c["pro"]
    assert trapezoid(img["tpr"], img["fpr"]) == pytest.approx(roc_auc_score(labels, scores), abs=1e-6)
    assert img["auc"] == M.image_roc_auc(scores, labels)
    assert pix["points"] > 400 and len(pix["fpr"]) <= 400  # thinned
    assert trapezoid(pix["tpr"], pix["fpr"]) == pytest.approx(roc_auc_score(masks.ravel(), maps.ravel()), abs=2e-3)
    assert pix["auc"] == roc_auc_score(masks.ravel(), maps.ravel())  # the metric itself, exactly
    assert pro["area"] == M.pro_auc(maps, masks, 0.3) and pro["fpr"][-1] == pytest.approx(0.3)
    assert trapezoid(pro["pro"], pro["fpr"]) / 0.3 == pytest.approx(pro["area"], abs=2e-3)
    # the pixel threshold maximises F1 among all thresholds
    t = c["pixel_threshold"]["value"]
    hit, gt = maps >= t, masks.astype(bool)
    f1 = 2 * (hit & gt).sum() / (hit.sum() + gt.sum())
    assert f1 == pytest.approx(c["pixel_threshold"]["f1"])
    for other in np.quantile(maps, [0.5, 0.9, 0.99]):
        h = maps >= other
        assert 2 * (h & gt).sum() / (h.sum() + gt.sum()) <= f1 + 1e-12
    j = c["image_threshold"]
    assert (scores[labels == 1] >= j["value"]).mean() == pytest.approx(j["tpr"])


def test_curves_undefined_with_one_class():
    maps, masks, scores, labels = _synthetic_category()
    good = labels == 0
    c = _curves(maps[good], masks[good], scores[good], labels[good])
    assert c["image_roc"] is c["pixel_roc"] is c["pro"] is c["pixel_threshold"] is None
    assert c["map_range"]["max"] >= c["map_range"]["hi"] >= c["map_range"]["lo"] == c["map_range"]["min"]


def test_select_images_groups():
    scores = np.array([5.0, 1.0, 9.0, 3.0, 7.0, 2.0, 8.0])
    labels = np.array([1, 1, 1, 0, 1, 0, 0])
    sel = select_images(scores, labels, 2)
    assert sel == [(2, "best_defective"), (4, "best_defective"), (1, "worst_defective"), (0, "worst_defective"),
                   (6, "top_good"), (3, "top_good")]
    # fewer defective images than 2 k: the worst never repeat the best
    assert [i for i, g in select_images(scores, labels, 3) if g == "worst_defective"] == [1]
    assert select_images(scores, labels, 0) == []


def test_save_and_load_round_trip(tmp_path):
    maps, masks, scores, labels = _synthetic_category()
    paths = [f"root/cat/test/{'bad' if y else 'good'}/{i:03d}.png" for i, y in enumerate(labels)]
    defects = ["bad" if y else "good" for y in labels]
    json_path, nbytes = save_category(tmp_path, "cat/../x y", maps, masks, scores, labels, paths, defects, k=2,
                                      roc=M.pixel_roc(maps, masks), pro=M.pro_to_limit(maps, masks, 0.3),
                                      run_hash="r1", config_hash="c1")
    assert json_path.parent == tmp_path / "report_data" and json_path.name == "cat_.._x_y.json"
    assert nbytes == sum(p.stat().st_size for p in json_path.parent.iterdir())
    record = {"category": "cat/../x y", "run_hash": "r1"}
    cd = load_category(tmp_path, record)
    assert cd.problems == []
    idx = [s["index"] for s in cd.curves["selected"]]
    assert [s["group"] for s in cd.curves["selected"]] == [g for g in GROUPS for _ in range(2)]
    lo, hi = cd.curves["map_range"]["lo"], cd.curves["map_range"]["hi"]
    assert lo == maps.min() and np.percentile(maps, 99.9) <= hi < maps.max()
    # 8-bit levels of the display range; values above it saturate
    assert np.abs(cd.maps - np.clip(maps[idx], lo, hi)).max() <= (hi - lo) / 510 + 1e-5
    np.testing.assert_array_equal(cd.masks, masks[idx].astype(bool))
    assert [s["score"] for s in cd.curves["selected"]] == [scores[i] for i in idx]
    # another run's data, a torn pair, a missing file: reported, never drawn
    assert "another run" in load_category(tmp_path, {**record, "run_hash": "r2"}).problems[0]
    npz = json_path.with_suffix(".npz")
    npz.write_bytes(npz.read_bytes()[:-10])
    cd = load_category(tmp_path, record)
    assert cd.maps is None and "checksum" in cd.problems[0] and cd.curves is not None
    missing = load_category(tmp_path, {"category": "other", "run_hash": "r1"})
    assert missing.curves is None and "--force" in missing.problems[0]
    data = json.loads(json_path.read_text())
    del data["map_range"]["hi"]
    json_path.write_text(json.dumps(data))
    assert "incomplete" in load_category(tmp_path, record).problems[0]
    json_path.write_text("{not json")
    assert "unreadable" in load_category(tmp_path, record).problems[0]


def test_safe_name():
    assert safe_name("../../etc/passwd") == "etc_passwd"
    assert safe_name("PaDiM-EffL0-Rd100 [random]") == "PaDiM-EffL0-Rd100_random"
    assert safe_name("...") == "unnamed"


def test_output_keys_change_no_hash(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(yaml.safe_dump({"method": {"backbone": "resnet18", "d": 10}}))
    a = load_config(cfg_file)
    b = load_config(cfg_file, ["output.report_images=7", "output.report=true"])
    assert b.output.report_images == 7 and b.output.report is True
    assert (a.config_hash(), a.run_hash()) == (b.config_hash(), b.run_hash())
    with pytest.raises(Exception, match="report_images"):
        load_config(cfg_file, ["output.report_images=-1"])


# ------------------------------------------------------------------------------------ end to end
def _config(path: Path, data: Path, out: Path, d: int) -> Path:
    path.write_text(yaml.safe_dump({
        "dataset": {"root": str(data), "categories": ["brick", "gravel"], "resize": 64, "crop": 56,
                    "texture_categories": ["brick"]},
        "method": {"name": "padim", "backbone": "resnet18", "weights": "random", "d": d},
        "runtime": {"device": "cpu", "batch_size": 4, "workers": 0, "timing_images": 2, "warmup_images": 1},
        "output": {"dir": str(out), "report_images": 2},
    }))
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory, demo_data) -> dict[str, Path]:
    """Two tiny runs: ``a`` through ``padim-bench run --report``, ``b`` through the runner."""
    base = tmp_path_factory.mktemp("report")
    data = demo_data
    a, b = base / "runs" / "a", base / "runs" / "b"
    res = cli.invoke(app, ["run", str(_config(base / "a.yaml", data, a, 10)), "--quiet", "--report"])
    assert res.exit_code == 0, res.output
    runner.run(load_config(_config(base / "b.yaml", data, b, 20)), show_progress=False)
    return {"a": a, "b": b, "base": base}


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_run_keeps_report_data_and_report_flag_writes_the_report(runs):
    a = runs["a"]
    for cat in ("brick", "gravel"):
        data = json.loads((a / "report_data" / f"{cat}.json").read_text())
        record = json.loads((a / "categories" / f"{cat}.json").read_text())
        assert data["run_hash"] == record["run_hash"]
        assert data["pro"]["area"] == record["metrics"]["pro"]  # the same code path as the metric
        assert data["pixel_roc"]["auc"] == pytest.approx(record["metrics"]["pixel_roc_auc"], abs=1e-12)
        assert data["image_roc"]["auc"] == record["metrics"]["image_roc_auc"]
        assert [s["path"] for s in data["selected"]] == [record["image_paths"][s["index"]] for s in data["selected"]]
        assert len(data["selected"]) == 6  # 2 per group: 4 defective and 3 good test images
        assert (a / "report_data" / f"{cat}.npz").stat().st_size < 30_000
    page = (a / "report" / "report.html").read_text()
    assert page.count("data:image/png;base64,") == len(list((a / "report" / "figures").glob("*.png")))


@pytest.mark.slow
def test_report_of_two_runs_writes_every_figure_and_changes_nothing(runs):
    a, b, out = runs["a"], runs["b"], runs["base"] / "rep"
    before = {k: _digests(runs[k]) for k in ("a", "b")}
    res = cli.invoke(app, ["report", str(a), str(b), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "MB on disk" in res.output
    assert {k: _digests(runs[k]) for k in ("a", "b")} == before  # no stored byte (JSON, npz, csv, md) changed
    figs = sorted(p.name for p in (out / "figures").iterdir())
    expected = {"bars.png", "cost.png", "curves_brick.png", "curves_gravel.png", "compare_brick.png",
                "compare_gravel.png"}
    for label in ("PaDiM-R18-Rd10_random_synthetic", "PaDiM-R18-Rd20_random_synthetic"):  # demo data: labelled
        for cat in ("brick", "gravel"):
            expected |= {f"overlay_{cat}_{label}_{g}.png" for g in GROUPS}
    assert set(figs) == expected
    for name in figs:
        assert (out / "figures" / name).read_bytes().startswith(PNG)
    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.count('<img src="data:image/png;base64,') == len(expected)
    assert "<table" in page and "image ROC-AUC %" in page and "Table III" in page and "Table VIII" in page
    assert "pixel F1" in page and "Youden" in page  # the threshold rules are stated
    assert "src=\"http" not in page and "<script" not in page  # readable offline
    # a second report into the same folder replaces the first one's figures
    res = cli.invoke(app, ["report", str(a), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert not any("Rd20" in p.name for p in (out / "figures").iterdir())


@pytest.mark.slow
def test_report_names_categories_without_report_data(runs, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(runs["b"], old)
    (old / "report_data" / "brick.json").unlink()  # as a category finished before report data existed
    summary = build_report([old], tmp_path / "rep", paper_tables=())
    assert any("brick" in p and "--force" in p for p in summary.problems)
    figs = {p.name for p in (tmp_path / "rep" / "figures").iterdir()}
    assert not any(n.startswith("overlay_brick") for n in figs) and any(n.startswith("overlay_gravel") for n in figs)
    assert "curves_gravel.png" in figs
    assert summary.total_bytes == sum(p.stat().st_size for p in summary.files)


@pytest.mark.slow
def test_report_page_is_navigable_and_builds_without_warnings(runs, tmp_path):
    """Warnings as errors while building (matplotlib's "constrained_layout not applied" among
    them); a table of contents whose every link has a target; one heading per run; random-weights
    and synthetic runs tagged; no developer-only section."""
    import re
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        summary = build_report([runs["a"], runs["b"]], tmp_path / "rep", paper_tables=("3",))
    page = summary.html.read_text(encoding="utf-8")
    ids = set(re.findall(r'<section id="([^"]+)"', page))
    links = re.findall(r'<nav class="toc">.*?</nav>', page, re.S)[0]
    targets = re.findall(r'href="#([^"]+)"', links)
    assert len(targets) == len(ids) and set(targets) == ids
    assert {"runs", "methods", "cost", "tables", "category-brick", "brick-compare", "category-gravel"} <= ids
    run_heads = re.findall(r'<h3>Run: ([^<]+)</h3><p class="sub">([^<]+)</p>', page)
    assert [h for h, _ in run_heads] == ["PaDiM-R18-Rd10 [random] [synthetic]", "PaDiM-R18-Rd20 [random] [synthetic]"]
    assert "d 10" in run_heads[0][1] and "d 20" in run_heads[1][1] and "RANDOM WEIGHTS" in run_heads[0][1]
    assert page.count('<span class="tag">random weights</span>') >= 2 and "SYNTHETIC DATA" in page
    assert ">Disk<" not in page and "report_data" not in re.sub(r"<code>[^<]*</code>", "", page.split("<h2>")[1])


@pytest.mark.slow
def test_comparison_shows_the_union_of_the_selections_with_each_runs_rank(runs):
    from padim_bench.report.build import _label_runs
    from padim_bench.report.compare import comparison, union_of_selections
    from padim_bench.report.runs import find_runs

    rs = find_runs([runs["a"], runs["b"]])
    _label_runs(rs)
    for r in rs:
        for c in r.record["categories"]:
            r.data[c["category"]] = load_category(r.folder, c)
    union = union_of_selections("brick", rs)
    kept = [[s["path"] for s in r.data["brick"].curves["selected"]] for r in rs]
    assert set(union) == set(kept[0]) | set(kept[1]) and len(union) == len(set(union))
    images, cruns, cells, left_out = comparison("brick", rs, None, [])
    assert len(images) == len(union) and left_out == 0 and [c.label for c in cruns] == [r.label for r in rs]
    for r, row in zip(rs, cells):
        rec = next(c for c in r.record["categories"] if c["category"] == "brick")
        scores = np.asarray(rec["image_scores"])
        for path, cell in zip(union, row):
            i = rec["image_paths"].index(path)
            # rank by hand: images scored higher, then equal scores earlier in the list
            assert cell.rank == 1 + int((scores > scores[i]).sum() + (scores[:i] == scores[i]).sum())
            assert (cell.amap is not None) == (path in kept[rs.index(r)])
    assert comparison("brick", rs[:1], None, []) is None  # one run: nothing to compare


@pytest.mark.slow
@pytest.mark.skipif(find_chromium() is None, reason="no Chromium on PATH (Debian: apt-get install chromium; "
                                                    "or set $CHROMIUM): the page is not checked in a browser")
def test_report_page_renders_in_chromium_without_sideways_scrolling(runs, tmp_path):
    summary = build_report([runs["a"], runs["b"]], tmp_path / "rep")
    m = probe(summary.html, width=1400)
    assert m["scroll_width"] <= m["client_width"] == 1400 and m["wide"] == []
    assert m["broken_links"] == 0 and m["toc_links"] == len(m["sections"]) >= 8
    assert all(i["shown"] <= 1400 for i in m["images"]) and len(m["images"]) >= 6
    assert len(m["scroll_boxes"]) >= 4  # every table in its box: a wide one scrolls there, not the page
    narrow = probe(summary.html, width=800)  # the contents move above the page; still no sideways scroll
    assert narrow["scroll_width"] <= narrow["client_width"] and narrow["wide"] == []


def test_report_on_a_folder_that_is_not_a_run(tmp_path):
    (tmp_path / "empty").mkdir()
    res = cli.invoke(app, ["report", str(tmp_path / "empty")])
    assert res.exit_code == 2 and "not a padim-bench run folder" in res.output and "empty" in res.output
    res = cli.invoke(app, ["report", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r")])
    assert res.exit_code == 2 and "nowhere" in res.output
    assert not (tmp_path / "r").exists()


def test_input_images_of_a_run_with_a_relative_root_are_found_from_another_folder(demo_data, tmp_path, monkeypatch):
    """A run made with dataset.root "demo" from demo_data's parent, reported from elsewhere: the
    record's resolved root finds the image (without it, only --data-root would)."""
    from padim_bench.report.runs import Run, _input_image

    image = sorted((demo_data / "brick" / "test" / "good").glob("*.png"))[0]
    rel = Path("demo") / image.relative_to(demo_data)
    ds = {"root": "demo", "resize": 64, "crop": 56, "interpolation": "bicubic"}
    run = Run({"config": {"dataset": ds, "method": {"seed": 0}}, "dataset_root_resolved": str(demo_data)}, tmp_path)
    monkeypatch.chdir(tmp_path)  # not demo_data's parent: "demo/..." does not exist from here
    img, why = _input_image(run, str(rel), 0, None)
    assert why == "" and img.shape == (56, 56, 3)
    del run.record["dataset_root_resolved"]
    img, why = _input_image(run, str(rel), 0, None)
    assert img is None and "input not available" in why
