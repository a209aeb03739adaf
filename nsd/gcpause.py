"""Short pauses of CPython's cyclic garbage collector with a big namespace.

A full collection walks every object the collector tracks: about 180 ms per million inodes
on the 2-core VM (3.5 s at 20M), during which the event loop answers nobody. CPython runs one
each time the objects that survived younger collections since the last full one pass a
quarter of those that survived it, so a grown namespace brings it back, and right after a
checkpoint load the first one walks everything loaded.

Namespace objects live until they are removed, and a removal frees them by reference counting
(no cycle is left behind: a removed entry's only reference is its directory's, and a removed
directory is empty). So walking them finds nothing. `freeze()` moves every object alive now to
the collector's permanent generation, which it never walks:
- after the checkpoint load (the daemon calls `freeze` once the namespace is in memory);
- after a full collection that took longer than `slow` seconds: what survived it (mostly the
  inodes made since the last freeze) is long-lived too, and the next full walk is short again.

The price: a cycle of objects alive at a freeze and dropped later is never collected. Freezes
are rare (a load, or a quarter more objects than at the last full collection), and what is in
flight at one (a few calls' state) is small: a bounded cost, not a steady leak.

A young collection runs each time the tracked objects allocated and not yet freed pass a
threshold, 700 by default: a listing page of 1,000 entries in flight (statuses, tuples, the
record's lists) passes it several times, and every collection walks and promotes those
short-lived objects, which then count towards the next full collection. At YOUNG_THRESHOLD the
page is freed before the collector sees it: discovering a directory of 10,000 entries spends
~7 ms in the collector, not ~23, and no full collection runs where the default ran about one per
directory. A call's own garbage is freed by reference counting and never counts; a young
collection of 10,000 objects takes about 1 ms.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import time
from collections.abc import Iterator
from typing import Any

log = logging.getLogger("nsd.gc")

SLOW_FULL_COLLECTION = 0.05  # seconds: a full collection this long freezes what survived it
YOUNG_THRESHOLD = 10_000  # tracked objects allocated and not freed that start a young collection


@contextlib.contextmanager
def collector_off() -> Iterator[None]:
    """No cyclic collection inside: for loops that allocate millions of objects and free none
    (a checkpoint's unpacking and load), which the collector would walk again and again as they
    grow (about three times the load's time)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class GcPauses:
    """Watches the collector's full collections (a gc callback) and freezes after slow ones."""

    def __init__(self, slow: float = SLOW_FULL_COLLECTION) -> None:
        self.slow = slow
        self.full_collections = 0
        self.longest = 0.0  # seconds, the longest full collection seen
        self.freezes = 0
        self._started = 0.0
        self._thresholds: tuple[int, int, int] | None = None  # the collector's, before install

    def install(self) -> None:
        """Watch full collections, and collect the young generation at YOUNG_THRESHOLD."""
        if self._on_gc not in gc.callbacks:
            gc.callbacks.append(self._on_gc)
        if self._thresholds is None:
            self._thresholds = gc.get_threshold()
            gc.set_threshold(YOUNG_THRESHOLD, *self._thresholds[1:])

    def uninstall(self) -> None:
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
        if self._thresholds is not None:
            gc.set_threshold(*self._thresholds)
            self._thresholds = None

    def freeze(self, why: str) -> None:
        before = gc.get_freeze_count()
        gc.freeze()
        self.freezes += 1
        frozen = gc.get_freeze_count()
        log.info("%s: %d more objects left out of garbage collection (%d in all)", why, frozen - before, frozen)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
            return
        took = time.perf_counter() - self._started
        self.full_collections += 1
        self.longest = max(self.longest, took)
        if took > self.slow:
            self.freeze(f"a full garbage collection took {took * 1000:.0f} ms")


PAUSES = GcPauses()  # the collector is per process: so is its watcher
