"""Decode the next batch in a background thread while the backbone runs on the current one.

With ``runtime.workers: 0`` the images are decoded in the main process. Decoding a 900 x 900 PNG
and resizing it takes about 24 ms on this project's reference machine (2 cores), more than R18's
forward pass per image (15 ms), and PNG inflation (Pillow), numpy's conversion and torch's resize
all release the GIL; so a thread one batch ahead overlaps them with the backbone without the extra
processes (and their memory) of DataLoader workers (measured there: decoding the 209 bottle
training images in turn takes 5.5 s; the whole R18-Rd100 fit with this thread 7.6 s,
results/bench/padim_cpu.md).
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Generic, Iterable, Iterator, TypeVar

T = TypeVar("T")

_END = object()


class ThreadPrefetcher(Generic[T]):
    """Iterate ``source`` in a daemon thread, at most ``depth`` items ahead of the consumer.

    Behaves like iterating ``source``: the same items in the same order; an exception raised by
    ``source`` (e.g. :class:`~padim_bench.errors.DataError` naming a file) is re-raised in the
    consumer, at the position where it occurred. Each ``iter()`` starts a fresh pass (a fresh
    thread), so the object is re-iterable whenever ``source`` is. When the consumer stops early
    (``break``, an exception, garbage collection of the iterator), the thread is told to stop
    and finishes after the item it is producing.

    Attributes:
        source: the wrapped iterable (e.g. a ``torch.utils.data.DataLoader``).
        depth: items produced ahead (>= 1); memory held is ``depth`` + 1 items.
    """

    def __init__(self, source: Iterable[T], depth: int = 1) -> None:
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.source, self.depth = source, depth

    def __len__(self) -> int:
        return len(self.source)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> Any:  # e.g. DataLoader.dataset, .batch_size
        if name == "source":
            raise AttributeError(name)
        return getattr(self.source, name)

    def __iter__(self) -> Iterator[T]:
        q: queue.Queue = queue.Queue(self.depth)
        stop = threading.Event()

        def put(item: Any) -> bool:
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def produce() -> None:
            try:
                for item in self.source:
                    if not put((item, None)):
                        return
            except BaseException as e:  # handed to the consumer, raised there
                put((_END, e))
                return
            put((_END, None))

        thread = threading.Thread(target=produce, name="padim-bench-prefetch", daemon=True)
        thread.start()
        try:
            while True:
                item, err = q.get()
                if item is _END:
                    if err is not None:
                        raise err
                    return
                yield item
        finally:
            stop.set()
            thread.join(timeout=30)
