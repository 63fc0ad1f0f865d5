"""Datasets behind one contract (:class:`~padim_bench.data.base.Dataset`), each a registration in
:data:`DATASETS`: ``mvtec_ad`` (MVTec AD) and ``mvtec_folder`` (a folder of your own in its
layout; :mod:`.mvtec_ad`, scanning in :mod:`.mvtec`), ``stc`` (ShanghaiTech Campus,
:mod:`.stc`) and ``image_folder`` (plain folders of normal, defective and mask images,
:mod:`.folder`). Shared by all: image decoding (:mod:`.images`), mask pairing and merging
(:mod:`.masks`), resizing and augmentation (:mod:`.transforms`, sizes in :mod:`.shapes`), the
decoding check (:mod:`.verify`), generated data's markers (:mod:`.origin`). The demo generators: :mod:`.demo` (MVTec layout) and :mod:`.stc_synth`.

Importing this package registers every dataset; it imports neither torch nor a video decoder.
"""

from .base import (DATASETS, Dataset, DemoData, NoParams, Prepared, dataset_class, dataset_for, demo_names,
                   record_dataset, register)

from . import mvtec_ad  # noqa: F401,E402  (registers "mvtec_ad", "mvtec_folder")
from . import stc  # noqa: F401,E402  (registers "stc")
from . import folder  # noqa: F401,E402  (registers "image_folder")

#: the dataset whose demo ``padim-bench demo`` runs without ``--dataset``
DEFAULT_DEMO = mvtec_ad.MvtecFolder.name

__all__ = ["DATASETS", "DEFAULT_DEMO", "Dataset", "DemoData", "NoParams", "Prepared", "dataset_class", "dataset_for",
           "demo_names", "record_dataset", "register"]
