#!/usr/bin/env python
"""Write the synthetic ShanghaiTech Campus dataset (exact STC layout) used by the tests and by
``padim-bench demo --dataset stc``; see ``padim_bench/data/stc_synth.py`` for what the frames show.

    .venv/bin/python scripts/make_synthetic_stc.py /tmp/stc_synthetic [--scenes 3] [--seed 0]
    .venv/bin/padim-bench run configs/stc_effl0.yaml --data-root /tmp/stc_synthetic

Deterministic for given arguments; the default dataset (3 scenes, the last without test clips;
2 videos x 40 frames and 2 clips x 30 frames per scene, 160x96 pixels) takes about a second.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from padim_bench.data.stc_synth import generate_stc  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("root", help="folder to write (training/ and testing/ go inside)")
    p.add_argument("--scenes", type=int, default=3)
    p.add_argument("--scenes-without-test", type=int, default=1)
    p.add_argument("--train-videos", type=int, default=2)
    p.add_argument("--train-frames", type=int, default=40)
    p.add_argument("--test-clips", type=int, default=2)
    p.add_argument("--test-frames", type=int, default=30)
    p.add_argument("--width", type=int, default=160)
    p.add_argument("--height", type=int, default=96)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    d = generate_stc(a.root, scenes=a.scenes, scenes_without_test=a.scenes_without_test, train_videos=a.train_videos,
                     train_frames=a.train_frames, test_clips=a.test_clips, test_frames=a.test_frames,
                     size=(a.width, a.height), seed=a.seed)
    n_videos = sum(len(v) for v in d.train_videos.values())
    print(f"{d.root}: {n_videos} training videos x {d.train_frames} frames, {len(d.test_clips)} test clips "
          f"({sum(d.test_clips.values())} frames, {sum(d.anomalous_frames.values())} anomalous); "
          f"scenes without test clips: {', '.join(d.scenes_without_test) or 'none'}")


if __name__ == "__main__":
    main()
