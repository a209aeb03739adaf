"""nsd.gcpause: slow full garbage collections freeze what survived them; quick ones do not."""

from __future__ import annotations

import gc
import itertools
import stat
import time
from collections.abc import Iterator
from typing import Any

import pytest

from nsd.gcpause import YOUNG_THRESHOLD, GcPauses, collector_off
from nsd.journal.ops import UfsSync
from nsd.namespace import Namespace
from nsd.namespace.inode import ROOT_INO

DIR = stat.S_IFDIR | 0o755
FILE = stat.S_IFREG | 0o644


class Node:
    """Shaped like an inode: slots, a reference to its parent (tracked by the collector)."""

    __slots__ = ("name", "parent")

    def __init__(self, parent: Node | None, name: str) -> None:
        self.parent, self.name = parent, name


@pytest.fixture
def clean_gc() -> Iterator[None]:
    gc.collect()
    gc.unfreeze()
    yield
    gc.unfreeze()  # the rest of the session collects as usual


def tree(n: int) -> list[Node]:
    root = Node(None, "")
    return [Node(root, f"part-{i:05d}") for i in range(n)]


def walked(obj: object) -> bool:
    """Whether the next full collection walks `obj` (it is in generation 2, not frozen)."""
    return any(o is obj for o in gc.get_objects(generation=2))


def watched(slow: float) -> GcPauses:
    pauses = GcPauses(slow=slow)
    pauses.install()
    pauses.install()  # twice: still one callback
    assert gc.callbacks.count(pauses._on_gc) == 1
    return pauses


def test_a_slow_full_collection_freezes_what_survived_it(clean_gc: None) -> None:
    nodes = tree(200_000)
    pauses = watched(slow=0.0)  # every full collection counts as slow
    try:
        gc.collect(0)  # a young collection is not watched
        assert pauses.full_collections == 0 and gc.get_freeze_count() == 0
        gc.collect()
    finally:
        pauses.uninstall()
    assert pauses.full_collections == 1 and pauses.freezes == 1 and pauses.longest > 0
    assert gc.get_freeze_count() >= len(nodes)
    # frozen: the next full walk does not see them (it walks the generations, not the permanent one)
    assert not any(walked(n) for n in nodes[:3])


def test_a_quick_full_collection_freezes_nothing(clean_gc: None) -> None:
    nodes = tree(1000)
    pauses = watched(slow=60.0)
    try:
        gc.collect()
        gc.collect()
    finally:
        pauses.uninstall()
    assert pauses.full_collections == 2 and pauses.freezes == 0 and gc.get_freeze_count() == 0
    assert walked(nodes[0])


def test_uninstalled_it_sees_nothing(clean_gc: None) -> None:
    pauses = watched(slow=0.0)
    pauses.uninstall()
    pauses.uninstall()  # twice: harmless
    gc.collect()
    assert pauses.full_collections == 0 and gc.get_freeze_count() == 0


def young_collections_during(work: Any) -> int:
    """How many young collections run while `work()` runs."""
    counted = []

    def count(phase: str, info: dict[str, Any]) -> None:
        if phase == "start" and info["generation"] == 0:
            counted.append(1)

    gc.callbacks.append(count)
    try:
        work()
    finally:
        gc.callbacks.remove(count)
    return len(counted)


def test_installed_a_page_in_flight_is_freed_before_a_young_collection_sees_it(clean_gc: None) -> None:
    """A listing page's worth of short-lived objects (several thousand, all alive at once) starts
    young collections at CPython's default threshold, and none once the watcher is installed; the
    collector's thresholds come back as they were when it is uninstalled."""
    before = gc.get_threshold()
    default = (700, *before[1:])
    gc.set_threshold(*default)  # whatever ran before in this process

    def page() -> None:
        gc.collect()  # the young generation starts empty
        alive = tree(YOUNG_THRESHOLD // 2)  # a root and its children, alive at once
        del alive

    try:
        assert young_collections_during(page) > 0
        pauses = watched(slow=60.0)
        try:
            assert gc.get_threshold() == (YOUNG_THRESHOLD, *before[1:])
            assert young_collections_during(page) == 0
        finally:
            pauses.uninstall()
        assert gc.get_threshold() == default
        pauses.uninstall()  # twice: still as they were
        assert gc.get_threshold() == default
    finally:
        gc.set_threshold(*before)


def test_namespace_removals_leave_no_cycle_behind(clean_gc: None) -> None:
    """What freezing the namespace relies on: whatever a change drops (files, directories, a
    rename's victim, a hard link's last name, a subtree found gone from the UFS) is freed by
    reference counting, so a frozen inode removed later is not kept as uncollectable garbage."""
    ns = Namespace()
    clock = itertools.count(time.time_ns())

    def do(op: Any) -> Any:
        ns.apply(op)
        return op

    d = do(ns.plan_mknod(ROOT_INO, "d", DIR, 0, 0, next(clock)))
    sub = do(ns.plan_mknod(d.ino, "sub", DIR, 0, 0, next(clock)))
    for i in range(50):
        do(ns.plan_mknod(d.ino, f"f{i}", FILE, 0, 0, next(clock)))
    do(ns.plan_mknod(sub.ino, "inner", FILE, 0, 0, next(clock)))
    do(ns.plan_link(ns.resolve("/d/f0").ino, sub.ino, "f0-link", next(clock)))
    gone = do(ns.plan_mknod(d.ino, "gone", DIR, 0, 0, next(clock)))
    deep = do(ns.plan_mknod(gone.ino, "deep", DIR, 0, 0, next(clock)))
    do(ns.plan_mknod(deep.ino, "x", FILE, 0, 0, next(clock)))
    gc.collect()
    gc.disable()
    try:
        for i in range(1, 40):
            do(ns.plan_unlink(d.ino, f"f{i}", next(clock)))
        do(ns.plan_rename(d.ino, "f40", d.ino, "f41", next(clock)))  # f41 goes
        do(ns.plan_unlink(d.ino, "f0", next(clock)))
        do(ns.plan_unlink(sub.ino, "f0-link", next(clock)))  # its last name
        do(ns.plan_unlink(sub.ino, "inner", next(clock)))
        do(ns.plan_rmdir(d.ino, "sub", next(clock)))
        do(UfsSync(d.ino, [], [], ["gone"], next(clock)))  # found gone from the UFS: its subtree goes
        ns.check()
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_collector_off_stops_collections_inside_and_restores_the_state_after() -> None:
    assert gc.isenabled()
    with collector_off():
        assert not gc.isenabled()
        with collector_off():  # nested: the inner one leaves it off
            pass
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_off():
            pass
        assert not gc.isenabled()  # it was off before: it stays off
    finally:
        gc.enable()
    with pytest.raises(ValueError), collector_off():
        raise ValueError("the collector comes back on an error too")
    assert gc.isenabled()
