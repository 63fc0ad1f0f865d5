"""The Method contract: what tables and reports ask a method (labels, facts). That no module
outside methods/ (and data/) names a method in its logic is tests/test_architecture.py's check."""

from __future__ import annotations

from padim_bench.methods import METHODS, Method, method_class
from padim_bench.methods.padim import PadimParams


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
