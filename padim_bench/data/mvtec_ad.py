"""Two registrations of the MVTec AD folder layout (:mod:`padim_bench.data.mvtec`):

* ``mvtec_ad``: MVTec AD itself (Bergmann et al., CVPR 2019), the dataset of the paper's Tables
  I-III and V-VII: its 15 categories, five of them textures, and the paper's means over them;
* ``mvtec_folder``: a folder of the user's own in the same layout, scanned and loaded the same
  way; its categories are the user's, never counted into MVTec AD's means (its runs are rows of
  their own in those tables): a category is a texture where ``dataset.texture_categories`` lists
  it, an object where that list is given and does not, and ``custom`` without a list.

Both read the shared keys only; the training and test images are decoded as
:mod:`padim_bench.data.images` describes, optionally with the non-aligned augmentation (Table VI).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Sequence

from ..errors import DataError, PadimBenchError
from .base import Dataset, DemoData, Prepared, register
from .mvtec import MVTEC_CATEGORIES, MVTEC_TEXTURES, category_kind, list_categories, resolve_categories, \
    scan_category

#: MVTec AD images per category (Bergmann et al., "MVTec AD -- A Comprehensive Real-World Dataset
#: for Unsupervised Anomaly Detection", CVPR 2019, Table 1): (train, test good + defective).
#: Totals 3,629 train and 1,725 test. Used when a category's folder is not on this machine (a dry
#: run of the full dataset), so memory can still be predicted.
MVTEC_COUNTS: dict[str, tuple[int, int]] = {
    "bottle": (209, 83), "cable": (224, 150), "capsule": (219, 132), "carpet": (280, 117),
    "grid": (264, 78), "hazelnut": (391, 110), "leather": (245, 124), "metal_nut": (220, 115),
    "pill": (267, 167), "screw": (320, 160), "tile": (230, 117), "toothbrush": (60, 42),
    "transistor": (213, 100), "wood": (247, 79), "zipper": (240, 151),
}  # fmt: skip


class MvtecLayout(Dataset):
    """What both registrations share: the layout's scanner, its checks and its loader."""

    group_sizes = {"textures": None, "objects": None, "all": None}

    def _categories(self) -> list[str]:
        return resolve_categories(self.config.root, self.config.categories)

    def prepare(self, threads: int = 2) -> Prepared:
        from .verify import check_split, warn_aspect

        ds = self.config
        splits, skipped = [], {}
        for c in self._categories():
            split, skipped[c] = check_split(scan_category(ds.root, c), ds.on_unreadable, threads)
            splits.append(split)
        warn_aspect(splits, ds.resize)
        return Prepared(tuple(splits), skipped)

    def loader(self, samples: Sequence[Any], prep: Any, augment: Any, batch_size: int, workers: int,
               which: str):
        from .transforms import make_loader

        return make_loader(samples, prep, batch_size, workers, augment, which, self.config.bit_depth)

    def categories(self) -> list[str]:
        return list_categories(self.config.root)

    def plan_splits(self, categories: Sequence[str]) -> dict[str, Any]:
        """Each listed category scanned (layout only; the decoding check is the run's)."""
        root = Path(self.config.root)
        out: dict[str, Any] = {}
        for c in categories:
            if not (root / c).is_dir():
                found = ", ".join(list_categories(root)) if root.is_dir() else "none"
                out[c] = DataError(f"dataset.categories: {c} not found under {root}. Available: {found}")
                continue
            try:
                out[c] = scan_category(root, c)
            except (PadimBenchError, OSError) as e:
                out[c] = e
        return out


@register
class MvtecAD(MvtecLayout):
    """MVTec AD: the paper's categories, kinds and group means."""

    name = "mvtec_ad"
    display_name = "MVTec AD"
    paper_tables = "mvtec_ad"
    paper_categories = MVTEC_CATEGORIES
    group_sizes = {"textures": len(MVTEC_TEXTURES), "objects": len(MVTEC_CATEGORIES) - len(MVTEC_TEXTURES),
                   "all": len(MVTEC_CATEGORIES)}

    def _categories(self) -> list[str]:
        cats = super()._categories()
        others = [c for c in cats if c not in MVTEC_CATEGORIES]
        if others:  # kept (its means then cover other categories than the paper's), said once
            warnings.warn(f"{self.config.root}: {', '.join(others)} {'is' if len(others) == 1 else 'are'} not among "
                          f"MVTec AD's {len(MVTEC_CATEGORIES)} categories; for a folder of your own in its layout set "
                          f"dataset.name: {MvtecFolder.name} (its categories are never counted as MVTec AD's)",
                          UserWarning, stacklevel=2)
        return cats

    def kind(self, category: str) -> str:
        """``texture`` / ``object`` for MVTec AD's categories; for any other, ``custom`` (its own
        group) unless ``dataset.texture_categories`` groups the categories. Either way the paper
        tables never average it into the paper's means (:attr:`paper_categories`)."""
        if category not in MVTEC_CATEGORIES and self.config.texture_categories is None:
            return "custom"
        return category_kind(category, self.config.texture_categories)

    @classmethod
    def table_notes(cls, records: list[dict[str, Any]]) -> list[str]:
        """One note per run on ``mvtec_ad`` with categories outside MVTec AD's 15: named, and
        kept out of the paper's means."""
        notes = []
        for r in records:
            if (r.get("config") or {}).get("dataset", {}).get("name") != cls.name:
                continue
            others = [c["category"] for c in r.get("categories", []) if c["category"] not in MVTEC_CATEGORIES]
            if others:
                notes.append(f"{', '.join(others)} ({r.get('_path', r.get('name', 'run'))}, dataset {cls.name}): not "
                             f"among MVTec AD's {len(MVTEC_CATEGORIES)} categories, kept out of the paper's means")
        return notes

    def assumed_categories(self) -> list[str] | None:
        return list(MVTEC_CATEGORIES)

    def assumed_counts(self, category: str) -> tuple[int, int, str]:
        known = MVTEC_COUNTS.get(category)
        return (*known, "MVTec AD paper") if known else super().assumed_counts(category)


@register
class MvtecFolder(MvtecLayout):
    """A user folder in the MVTec AD layout: its own categories, kinds from
    ``dataset.texture_categories`` (``custom`` without it)."""

    name = "mvtec_folder"
    display_name = "folder in the MVTec AD layout"
    paper_tables = "mvtec_ad"

    def kind(self, category: str) -> str:
        textures = self.config.texture_categories
        if textures is None:
            return "custom"
        return category_kind(category, textures)

    @classmethod
    def demo(cls, data_dir: Path) -> DemoData:
        """The embedded demo (:mod:`padim_bench.data.demo`: three textures cut from scikit-image's
        photographs, synthetic defects) and ``demo.yaml``, PaDiM with EfficientNet-Lite0."""
        from .demo import make_demo_dataset

        return DemoData(make_demo_dataset(data_dir), Path(__file__).with_name("demo.yaml"), "run")
