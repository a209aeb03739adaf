"""Inode ids are reserved ahead of use, in the journal, so none is ever given twice.

A change is applied in memory before its group commit returns, so a concurrent LOOKUP or
listing can show a client the new inode's id for a moment before the id's record is durable.
If a crash then loses that record, the id must still not go to the next object made: the
client's handle would name a stranger. So ids are handed out only below `ino_limit`, which a
journaled ReserveInodes moves, and a daemon that starts (or a node that becomes leader) first
skips to the last limit: whatever lay below it may have been seen.

`Namespace.ino_limit` is part of the image (header key "ino_limit", image version 6); 0 means
no reservation was ever made (a journal from before reservations), and then nothing is checked.
"""

from __future__ import annotations

from typing import Any, Protocol

from nsd.errors import Corrupt, Invalid
from nsd.journal.ops import ReserveInodes

INO_MAX = (1 << 64) - 1  # ids travel in 64-bit handle and attribute fields


class InoCounters(Protocol):
    """What this module reads and changes of a namespace (tree.Namespace is one)."""

    next_ino: int
    ino_limit: int


def plan_reserve(ns: InoCounters, first: int, count: int) -> ReserveInodes:
    """Reserve `count` ids from `first` (at least the next id)."""
    op = ReserveInodes(first, min(first + count, INO_MAX))
    _check(ns, op)
    return op


def _check(ns: InoCounters, op: ReserveInodes) -> None:
    first, limit = op.first, op.limit
    if type(first) is not int or type(limit) is not int or not ns.next_ino <= first < limit <= INO_MAX:
        raise Invalid(f"cannot reserve inode ids {first!r}..{limit!r} (next id {ns.next_ino})")
    if limit < ns.ino_limit:
        raise Invalid(f"a reservation up to {limit} would take back ids up to {ns.ino_limit}")


def apply_reserve(ns: InoCounters, op: ReserveInodes) -> None:
    _check(ns, op)
    ns.next_ino, ns.ino_limit = op.first, op.limit


def check_new_ids(ns: InoCounters, last: int) -> None:
    """Raise Corrupt unless ids up to `last` (about to be given) are reserved."""
    if ns.ino_limit and last >= ns.ino_limit:
        raise Corrupt(f"inode id {last} was never reserved (reserved below {ns.ino_limit})")


def image_header(ns: InoCounters) -> dict[str, Any]:
    return {"ino_limit": ns.ino_limit} if ns.ino_limit else {}


def load_image_header(ns: InoCounters, header: dict[str, Any]) -> None:
    limit = header.get("ino_limit", 0)
    if type(limit) is not int or not (limit == 0 or ns.next_ino <= limit <= INO_MAX):
        raise Corrupt(f"image: ino_limit {limit!r} is below next_ino {ns.next_ino} or no id")
    ns.ino_limit = limit


def check_inode_ids(ns: InoCounters) -> None:
    assert ns.ino_limit == 0 or ns.next_ino <= ns.ino_limit, f"next_ino {ns.next_ino} beyond {ns.ino_limit}"
