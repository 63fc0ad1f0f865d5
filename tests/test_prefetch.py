"""Tests of padim_bench.data.prefetch.ThreadPrefetcher: order, errors, early stop, re-iteration."""

from __future__ import annotations

import threading
import time

import pytest

from padim_bench.data.prefetch import ThreadPrefetcher
from padim_bench.errors import DataError


class _Source:
    """Yields 0..n-1, raising DataError at ``fail_at``; counts the items produced."""

    def __init__(self, n: int, fail_at: int | None = None) -> None:
        self.n, self.fail_at, self.produced = n, fail_at, 0

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        for i in range(self.n):
            if i == self.fail_at:
                raise DataError(f"img_{i}.png: cannot decode image")
            self.produced += 1
            yield i


def _prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "padim-bench-prefetch"]


def test_same_items_same_order_and_re_iterable():
    src = _Source(25)
    p = ThreadPrefetcher(src, depth=2)
    assert list(p) == list(range(25)) and list(p) == list(range(25))
    assert len(p) == 25 and p.fail_at is None  # attributes of the source pass through


def test_source_error_is_raised_in_the_consumer_at_its_position():
    got = []
    with pytest.raises(DataError, match="img_7.png: cannot decode"):
        for x in ThreadPrefetcher(_Source(20, fail_at=7)):
            got.append(x)
    assert got == list(range(7))


def test_early_stop_ends_the_thread_without_draining_the_source():
    src = _Source(10_000)
    it = iter(ThreadPrefetcher(src, depth=1))
    assert [next(it), next(it)] == [0, 1]
    it.close()  # what a `break` or an exception in the consumer does
    deadline = time.monotonic() + 5
    while _prefetch_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not _prefetch_threads()
    assert src.produced <= 5  # two consumed, at most depth + 1 more made ahead


def test_depth_must_be_positive():
    with pytest.raises(ValueError, match="depth"):
        ThreadPrefetcher([1], depth=0)
