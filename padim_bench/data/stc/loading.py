"""Loading STC: training frames decoded video by video as they stream, test frames with their
pixel-mask slices."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch

from ...errors import DataError
from ..images import load_image
from ..prefetch import ThreadPrefetcher
from .records import TestFrame, TrainFrame
from .scan import _av


class VideoFrames(torch.utils.data.IterableDataset):
    """Training frames decoded video by video: yields ``(image, 0)`` per selected frame, image
    float32 ``(3, S, S)`` in [0, 1] (the runner's :class:`~padim_bench.data.transforms.Preprocess`).

    Each video is opened, decoded sequentially up to its last selected frame (inter-coded video
    cannot skip decoding) and closed; only the selected frames are converted to RGB. Memory holds
    one decoded frame plus the DataLoader's batches, never the video. With DataLoader workers,
    worker ``k`` of ``W`` decodes videos ``k, k + W, ...`` (deterministic order).

    Raises (while iterating):
        DataError: a video that fails to decode, or ends before a selected frame (naming the video,
            the frames decoded and the count its header gave).
    """

    def __init__(self, samples: Sequence[TrainFrame], prep: Any):
        plan: dict[Path, list[int]] = {}
        total: dict[Path, int] = {}
        for s in samples:
            plan.setdefault(s.path, []).append(s.frame)
            total[s.path] = s.n_frames
        self.plan = [(p, sorted(f), total[p]) for p, f in plan.items()]
        self.prep = prep
        self.n = len(samples)

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[tuple[torch.Tensor, int]]:
        info = torch.utils.data.get_worker_info()
        plan = self.plan if info is None else self.plan[info.id :: info.num_workers]
        for path, frames, n in plan:
            yield from self._decode(path, frames, n)

    def _decode(self, path: Path, frames: list[int], n: int) -> Iterator[tuple[torch.Tensor, int]]:
        av = _av()
        wanted, last, i = set(frames), frames[-1], -1
        try:
            with av.open(str(path)) as c:
                stream = c.streams.video[0]
                stream.thread_type = "AUTO"
                for i, frame in enumerate(c.decode(stream)):
                    if i in wanted:
                        arr = frame.to_ndarray(format="rgb24").astype(np.float32) / 255.0
                        yield self.prep.image(arr), 0
                    if i >= last:
                        break
        except (av.FFmpegError, OSError) as e:
            raise DataError(f"{path}: decoding failed at frame {i + 1} ({type(e).__name__}: {e})") from None
        if i < last:
            raise DataError(f"{path}: only {i + 1} frames decode, its header says {n}; selected frame {last} is missing "
                            "(re-encode the video or remove it; the layout check reads only its header and first frame)")


class ClipFrames(torch.utils.data.Dataset):
    """Selected test frames: ``(image (3,S,S) float32 in [0, 1], mask (S,S) uint8 in {0, 1}, label,
    index)``. The image is the JPEG, the mask ``np.load(pixel_mask, mmap_mode='r')[frame] != 0``
    resized with nearest-neighbour (so only that frame's mask is read)."""

    def __init__(self, samples: Sequence[TestFrame], prep: Any):
        self.samples = list(samples)
        self.prep = prep
        self._masks: dict[Path, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.samples)

    def mask(self, s: TestFrame) -> np.ndarray:
        """bool ``(H, W)`` pixel mask of test frame ``s`` at the frame's own size."""
        m = self._masks.get(s.mask_path)
        if m is None:
            m = self._masks[s.mask_path] = np.load(s.mask_path, mmap_mode="r", allow_pickle=False)
        return np.asarray(m[s.frame]) != 0

    def __getitem__(self, i: int):
        s = self.samples[i]
        img = self.prep.image(load_image(s.path))
        return img, self.prep.mask(self.mask(s)), s.label, i


def make_stc_loader(samples: Sequence[TrainFrame] | Sequence[TestFrame], prep: Any, batch_size: int,
                    workers: int) -> Iterable:
    """A DataLoader over training frames (:class:`VideoFrames`) or test frames (:class:`ClipFrames`),
    in order, ``workers`` decoding processes; with 0, decoded by a thread of this process one batch
    ahead (:class:`~padim_bench.data.prefetch.ThreadPrefetcher`)."""
    if samples and isinstance(samples[0], TrainFrame):
        ds: torch.utils.data.Dataset = VideoFrames(samples, prep)
        workers = min(workers, len(ds.plan))  # an idle worker would only cost a process
    else:
        ds = ClipFrames(samples, prep)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=workers,
                                         persistent_workers=False)
    return loader if workers else ThreadPrefetcher(loader)
