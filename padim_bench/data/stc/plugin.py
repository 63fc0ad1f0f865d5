"""The ShanghaiTech Campus registration (``dataset.name: stc``): its keys, its checks and its
answers to the dataset contract (:class:`~padim_bench.data.base.Dataset`).

STC's own keys (:class:`StcParams`) sit flat in the ``dataset:`` section beside the shared ones
and are recorded there (``train_stride``, ``train_frames_total``, ``test_stride``); other datasets
have none of them, so those datasets' recorded configs and hashes never held them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence, Union

from ...errors import ConfigError
from ..base import Dataset, DemoData, Prepared, register
from . import summary
from .records import STC_TEST_SCENES


@dataclass(frozen=True)
class StcParams:
    """STC's keys of the ``dataset:`` section (paper Sec. IV-A and Table IV, after SPADE).

    Attributes:
        train_stride: keep frames 0, s, 2s, ... of every training video; ``None`` derives ``s``
            from ``train_frames_total`` (the stride used is recorded).
        train_frames_total: with ``train_stride: null``, the smallest stride keeping at most this
            many training frames over all the dataset's videos (SPADE's protocol: about 5,000).
        test_stride: keep frames 0, s, 2s, ... of every test clip (SPADE's protocol: 5).
    """

    train_stride: Union[int, None] = None
    train_frames_total: int = 5000
    test_stride: int = 5

    def check(self) -> None:
        """Ranges of the three keys.

        Raises:
            ConfigError: naming the key.
        """
        if self.train_stride is not None and self.train_stride < 1:
            raise ConfigError(f"dataset.train_stride: must be >= 1, or null to derive it from train_frames_total, "
                              f"got {self.train_stride}")
        if self.train_frames_total < 1:
            raise ConfigError(f"dataset.train_frames_total: must be >= 1, got {self.train_frames_total}")
        if self.test_stride < 1:
            raise ConfigError(f"dataset.test_stride: must be >= 1, got {self.test_stride}")


@register
class Stc(Dataset):
    """ShanghaiTech Campus: one model per scene, the paper's Table IV."""

    name = "stc"
    display_name = "STC"
    params_class = StcParams
    paper_tables = "stc"
    group_sizes = {"all": STC_TEST_SCENES}
    column_aliases = {summary.SCENE_MEAN: "all"}
    own_metrics = ("frame_roc_auc",)
    record_key = summary.RECORD_KEY
    keeps_histograms = True
    thinning_keys = "dataset.train_frames_total or dataset.train_stride"

    @classmethod
    def check_config(cls, ds: Any) -> None:
        """STC frames are never cropped (paper Sec. IV-A: 256 x 256) nor augmented; then the
        ranges of :class:`StcParams`.

        Raises:
            ConfigError: naming the key.
        """
        if ds.crop is not None:
            raise ConfigError(f"dataset.crop: STC frames are resized to dataset.resize without a crop (paper Sec. "
                              f"IV-A: 256x256, a 64x64 grid); set dataset.crop: null (got {ds.crop})")
        if ds.augment != "none":
            raise ConfigError("dataset.augment: nonaligned is MVTec AD's Table VI protocol; STC takes none")
        super().check_config(ds)

    # ------------------------------------------------------------------------------ data
    def prepare(self, threads: int = 2) -> Prepared:
        from .plan import prepare

        plan, skipped = prepare(self.config, threads)
        return Prepared(plan.splits, skipped, plan.info)

    def loader(self, samples: Sequence[Any], prep: Any, augment: Any, batch_size: int, workers: int,
               which: str):
        from .loading import make_stc_loader

        return make_stc_loader(samples, prep, batch_size, workers)

    def kind(self, category: str) -> str:
        return "scene"

    def protocol_lines(self, info: dict[str, Any] | None) -> list[str]:
        from .plan import protocol_text

        return [protocol_text(info, self.config.resize)] if info else []

    def split_summary(self, split: Any) -> str:
        n_bad = sum(x.label for x in split.test)
        return (f"scene {split.name}: {len(split.videos)} videos, {len(split.train)} training frames; "
                f"{len(split.clips)} test clips, {len(split.test) - n_bad} normal and {n_bad} anomalous test frames")

    def categories(self) -> list[str]:
        """The scenes with test clips (those a run fits), from the layout."""
        from .plan import resolve_scenes
        from .scan import scan_stc

        return resolve_scenes(scan_stc(self.config.root, self.config.on_unreadable), "all")[0]

    def plan_splits(self, categories: Sequence[str]) -> dict[str, Any]:
        """The listed scenes' splits from one layout scan (the test frames' decoding check is the
        run's)."""
        from dataclasses import replace

        from .plan import plan_for
        from .scan import scan_stc

        try:
            layout = scan_stc(self.config.root, self.config.on_unreadable)
            plan = plan_for(layout, replace(self.config, categories=list(categories)))
        except Exception as e:  # noqa: BLE001 - recorded per job, raised again when the job runs
            return {c: e for c in categories}
        found = {s.name: s for s in plan.splits}
        return {c: found.get(c, KeyError(f"scene {c}: no test clips")) for c in categories}

    # --------------------------------------------------------------------------- records
    def category_extras(self, split: Any, maps: Any, masks: Any, labels: Any) -> dict[str, Any]:
        return summary.scene_extras(split, maps, labels)

    def run_summary(self, info: dict[str, Any] | None, records: list[dict[str, Any]],
                    histograms: list[Any] | None) -> dict[str, Any]:
        return summary.run_summary(info or {}, records, histograms, self.config.resize)

    @classmethod
    def measured(cls, record: dict[str, Any], column: str, metric: str) -> tuple[float | None, int] | None:
        """``all`` of the pixel, image and frame ROC-AUC: pooled over every scene's test pixels /
        frames (``results.json: stc.pooled``)."""
        if column != "all" or metric not in ("pixel_roc_auc", "image_roc_auc", "frame_roc_auc"):
            return None
        pooled = summary.pooled(record)
        v = pooled.get(metric)
        return (None, 0) if v is None else (100.0 * v, int(pooled.get("scenes", 0)))

    @classmethod
    def category_metric(cls, category: dict[str, Any], metric: str) -> float | None:
        return summary.frame_roc_auc(category) if metric == "frame_roc_auc" else None

    @classmethod
    def pooled_row(cls, record: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
        """``all (pooled)``: every test pixel / frame of every scene as one set."""
        if not record.get(cls.record_key):
            return None
        return "all (pooled)", summary.pooled(record)

    @classmethod
    def captions(cls, record: dict[str, Any]) -> list[str]:
        return summary.captions(record)

    @classmethod
    def table_notes(cls, records: list[dict[str, Any]]) -> list[str]:
        return summary.table_notes(records)

    @classmethod
    def demo(cls, data_dir: Path) -> DemoData:
        """The synthetic STC (:mod:`padim_bench.data.stc_synth`) under ``data_dir/stc`` and
        ``demo_stc.yaml``, PaDiM with EfficientNet-Lite0 under the paper's protocol."""
        from ..stc_synth import generate_stc

        root = generate_stc(Path(data_dir) / "stc").root
        return DemoData(root, Path(__file__).parents[1] / "demo_stc.yaml", "run_stc")
