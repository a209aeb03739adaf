"""release_free_memory: a daemon that read a checkpoint in a worker thread does not keep the
file's worth of freed memory (glibc keeps a thread arena's free memory otherwise)."""

from __future__ import annotations

import concurrent.futures
import gc

import psutil

from nsd.core.trim import release_free_memory


def _allocate_and_free_in_a_thread() -> None:
    # ~200 MB in 1 MiB pieces from a worker thread's arena (as a checkpoint's chunks are), freed
    # there; one small object kept alive at the end so the arena's top cannot be cut on its own.
    def work() -> bytes:
        pieces = [bytes(1 << 20) + b"x" for _ in range(200)]
        keep = bytes(100) + b"y"
        del pieces
        return keep

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        kept = pool.submit(work).result()
    assert kept


def test_memory_freed_in_a_worker_thread_goes_back_to_the_system() -> None:
    me = psutil.Process()
    gc.collect()
    before = me.memory_info().rss
    _allocate_and_free_in_a_thread()
    assert release_free_memory() is True  # glibc, as on every machine nsd runs on
    grown = me.memory_info().rss - before
    assert grown < 50 << 20, f"{grown >> 20} MiB still held after the trim"
