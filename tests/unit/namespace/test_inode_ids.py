"""ReserveInodes in the namespace: ids are given only below the reserved limit, the limit never
goes back, and checkpoints carry it."""

from __future__ import annotations

import stat
from typing import Any

import pytest

from nsd.errors import Corrupt, Invalid
from nsd.journal.ops import AddMount, MkNode, ReserveInodes, UfsSync
from nsd.namespace import Namespace, inode_ids
from nsd.namespace.image import IMAGE_VERSION, IMAGE_VERSION_INO_LIMIT

FILE, DIR = stat.S_IFREG | 0o644, stat.S_IFDIR | 0o755


def reserved(first: int, limit: int) -> Namespace:
    ns = Namespace()
    ns.apply(ReserveInodes(first, limit))
    return ns


def test_a_reservation_moves_the_next_id_to_its_first_and_limits_what_is_given() -> None:
    ns = reserved(100, 103)
    assert (ns.next_ino, ns.ino_limit) == (100, 103)
    for i, name in enumerate(("a", "b", "c")):
        ns.apply(MkNode(1, name, 100 + i, FILE, 0, 0, 1))
    with pytest.raises(Corrupt, match="inode id 103 was never reserved"):
        ns.apply(MkNode(1, "d", 103, FILE, 0, 0, 1))
    assert "d" not in ns.root.children and ns.next_ino == 103
    ns.check()


@pytest.mark.parametrize(
    ("first", "limit", "why"),
    [
        (5, 10, "next id 100"),  # would give ids again
        (100, 100, "cannot reserve"),  # nothing
        (120, 110, "cannot reserve"),  # backwards
        (100, 150, "take back ids up to 200"),  # the limit shrinks
        (100, 1 << 64, "cannot reserve"),  # no 64-bit id
        ("100", 300, "cannot reserve"),
        (100, 300.0, "cannot reserve"),
    ],
)
def test_a_reservation_that_would_give_an_id_twice_or_none_is_refused(first: Any, limit: Any, why: str) -> None:
    ns = reserved(100, 200)
    with pytest.raises(Corrupt, match=why):
        ns.apply(ReserveInodes(first, limit))
    assert (ns.next_ino, ns.ino_limit) == (100, 200)


def test_plan_reserve_stops_at_the_last_64_bit_id() -> None:
    ns = reserved(2, 10)
    op = inode_ids.plan_reserve(ns, inode_ids.INO_MAX - 5, 100)
    assert op == ReserveInodes(inode_ids.INO_MAX - 5, inode_ids.INO_MAX)
    with pytest.raises(Invalid):
        inode_ids.plan_reserve(ns, 1, 10)


def test_discovered_entries_and_mount_points_take_only_reserved_ids() -> None:
    ns = reserved(2, 5)
    ns.apply(AddMount(2, 1, "data", 2, "file:///srv", False, {}, 0, 0, 1))
    page = [["a", 3, FILE, 0, 0, 1, 1, None], ["b", 4, FILE, 0, 0, 1, 1, None], ["c", 5, FILE, 0, 0, 1, 1, None]]
    with pytest.raises(Corrupt, match="inode id 5 was never reserved"):
        ns.apply(UfsSync(2, page, [], [], 2))
    assert not ns.resolve("/data").children
    ns.apply(UfsSync(2, page[:2], [], [], 2))
    with pytest.raises(Corrupt, match="inode id 5 was never reserved"):
        ns.apply(AddMount(3, 1, "more", 5, "file:///srv2", False, {}, 0, 0, 3))
    ns.apply(ReserveInodes(5, 6))
    ns.apply(AddMount(3, 1, "more", 5, "file:///srv2", False, {}, 0, 0, 3))
    ns.check()


def test_without_a_reservation_ids_are_not_limited() -> None:
    ns = Namespace()  # a journal written before reservations
    ns.apply(MkNode(1, "a", 1000, FILE, 0, 0, 1))
    assert ns.ino_limit == 0
    ns.check()


def test_the_image_carries_the_limit_in_version_6_and_only_then() -> None:
    assert next(Namespace().to_image())["version"] == IMAGE_VERSION
    ns = reserved(7, 1 << 40)
    chunks = list(ns.to_image())
    assert chunks[0]["version"] == IMAGE_VERSION_INO_LIMIT and chunks[0]["ino_limit"] == 1 << 40
    loaded = Namespace.from_image(chunks)
    assert (loaded.next_ino, loaded.ino_limit) == (7, 1 << 40)
    loaded.check()


@pytest.mark.parametrize(
    ("header", "why"),
    [
        ({"version": IMAGE_VERSION, "ino_limit": 10}, "ino_limit in a version 1 image"),
        ({"ino_limit": 3}, "below next_ino 7"),
        ({"ino_limit": "10"}, "ino_limit '10'"),
        ({"ino_limit": 1 << 64}, "ino_limit"),
    ],
)
def test_an_image_with_a_bad_limit_is_refused(header: dict[str, Any], why: str) -> None:
    chunks = list(reserved(7, 100).to_image())
    chunks[0] = {**chunks[0], **header}
    with pytest.raises(Corrupt, match=why):
        Namespace.from_image(chunks)


def test_check_finds_a_next_id_beyond_the_limit() -> None:
    ns = reserved(2, 10)
    ns.next_ino = 11
    with pytest.raises(AssertionError, match="next_ino 11 beyond 10"):
        ns.check()
