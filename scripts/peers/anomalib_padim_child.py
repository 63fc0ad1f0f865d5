#!/usr/bin/env python
"""One measurement of anomalib's PaDiM, run by ``scripts/bench_peers.py`` inside the peer's own
virtual environment (anomalib is never a dependency of padim-bench; this file imports neither
padim_bench nor anything of this repository).

What it does, in one fresh process, printing one JSON line on stdout:

1. imports torch, torchvision and anomalib; builds ``anomalib.models.image.padim.torch_model.PadimModel``
   (the model inside anomalib's Lightning module ``Padim``) with ``pre_trained=False`` (random
   timm weights: no download), the given backbone, layer1..layer3 and ``n_features`` = d, after
   ``torch.manual_seed(seed)`` (its random channel draw uses the global generator);
2. fit span: decode + resize 256 (bicubic, antialias) + centre crop 224 + ImageNet normalisation of
   the training images in batches (``torch.utils.data.DataLoader``, workers 0), ``model(images)`` in
   training mode (anomalib keeps every embedding in its memory bank), then ``model.fit()`` (its
   Gaussian: mean, covariance, inverse);
3. batch-1 span: the same pre-processing and ``model(image)`` in eval mode (anomaly map upsampled to
   the input and Gaussian-blurred with sigma 4 by anomalib's ``AnomalyMapGenerator``, score = max)
   for each of the timed test images, after ``warmup`` images;
4. batched span: the whole test set in batches of ``--batch-size`` through the same path.

Each span: ``time.perf_counter`` seconds and the whole-process resident-set high-water mark over the
span (Linux ``VmHWM``, reset at the span start through ``/proc/self/clear_refs``).
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import sys
import time
from pathlib import Path


def _hwm() -> int:
    return int(re.search(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1)) * 1024


def _rss() -> int:
    return int(re.search(r"VmRSS:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1)) * 1024


class Span:
    """perf_counter seconds and VmHWM peak of a code block (VmHWM reset at entry)."""

    def __enter__(self):
        self.start_rss = _rss()
        Path("/proc/self/clear_refs").write_text("5")
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0
        self.peak = _hwm()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--category", default="bottle")
    ap.add_argument("--backbone", required=True)
    ap.add_argument("--d", type=int, required=True)
    ap.add_argument("--n-train", type=int, default=0, help="0 = all")
    ap.add_argument("--b1-images", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    t_import = time.perf_counter()
    import torch
    import torchvision
    from PIL import Image
    from torchvision.transforms import v2

    import anomalib
    from anomalib.models.image.padim.torch_model import PadimModel

    import_s = time.perf_counter() - t_import
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    root = Path(args.data_root) / args.category
    train = sorted((root / "train" / "good").glob("*.png"))
    if args.n_train:
        train = train[: args.n_train]
    test = sorted(p for p in (root / "test").glob("*/*.png"))
    tf = v2.Compose([
        v2.ToImage(), v2.ToDtype(torch.float32, scale=True),
        v2.Resize(256, interpolation=v2.InterpolationMode.BICUBIC, antialias=True), v2.CenterCrop(224),
        v2.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
    ])

    def load(p: Path) -> torch.Tensor:
        with Image.open(p) as im:
            return tf(im.convert("RGB"))

    class Files(torch.utils.data.Dataset):
        def __init__(self, paths):
            self.paths = paths

        def __len__(self):
            return len(self.paths)

        def __getitem__(self, i):
            return load(self.paths[i])

    def loader(paths):
        return torch.utils.data.DataLoader(Files(paths), batch_size=args.batch_size, shuffle=False, num_workers=0)

    model = PadimModel(backbone=args.backbone, layers=["layer1", "layer2", "layer3"], pre_trained=False,
                       n_features=args.d)
    rss_before_fit = _rss()

    model.train()
    with Span() as fit:
        for images in loader(train):
            model(images)
        model.fit()
    model.eval()

    n_warm = min(args.warmup, len(test) - 1)
    chosen = test[: n_warm + args.b1_images]
    times = []
    with torch.no_grad(), Span() as b1:
        for i, p in enumerate(chosen):
            t0 = time.perf_counter()
            out = model(load(p)[None])
            float(out.pred_score[0])
            if i >= n_warm:
                times.append(time.perf_counter() - t0)
    with torch.no_grad(), Span() as batched:
        for images in loader(test):
            out = model(images)
            out.anomaly_map.numpy()

    times.sort()
    median = times[len(times) // 2] if len(times) % 2 else sum(times[len(times) // 2 - 1 : len(times) // 2 + 1]) / 2
    print(json.dumps({
        "tool": "anomalib", "backbone": args.backbone, "d": args.d, "n_train": len(train), "n_test": len(test),
        "import_s": import_s, "rss_before_fit_bytes": rss_before_fit,
        "fit_s": fit.seconds, "fit_peak_bytes": fit.peak,
        "infer_b1_s_per_image": sum(times) / len(times), "infer_b1_median_s": median, "b1_images": len(times),
        "infer_b1_peak_bytes": b1.peak,
        "infer_batched_s_per_image": batched.seconds / len(test), "infer_batched_peak_bytes": batched.peak,
        "batch_size": args.batch_size, "process_peak_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "threads": torch.get_num_threads(),
        "versions": {"anomalib": anomalib.__version__, "torch": torch.__version__,
                     "torchvision": torchvision.__version__, "python": sys.version.split()[0]},
    }))


if __name__ == "__main__":
    main()
