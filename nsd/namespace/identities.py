"""Ids given to names nobody configured and the machine does not know.

HDFS with simple authentication believes any `user.name`: a job running as `etl` on another
cluster owns what it writes although no `etl` account exists on the NameNode host. nsd keeps
uids, so such a name gets an id from `auto_id_range` the first time it is seen, journaled
(AllocateIds) so it is the same after restarts, in checkpoints and backups, and on every node of
a cluster. The name also names the user's primary group, with the same id.

`Namespace.auto_ids` (name -> id) is part of the image (header key "auto_ids", image version 5).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from nsd.errors import Corrupt, Invalid, NoSpace
from nsd.journal.ops import AllocateIds


class IdTables(Protocol):
    """What this module reads and changes of a namespace (tree.Namespace is one)."""

    auto_ids: dict[str, int]


def _check(name: Any, id_: Any) -> None:
    if not isinstance(name, str) or not name or "\0" in name or name.isdigit():
        raise Invalid(f"not a user name: {name!r}")
    if type(id_) is not int or not 0 < id_ <= 0xFFFFFFFF:
        raise Invalid(f"not an id: {id_!r}")


def plan_allocate(ns: IdTables, name: str, low: int, high: int, taken: Callable[[int], bool]) -> list[AllocateIds]:
    """An id for `name` (nothing if it has one): the lowest free one in low..high above those
    given before, skipping ids `taken` by a configured or local user. NoSpace when used up."""
    if name in ns.auto_ids:
        return []
    used = set(ns.auto_ids.values())
    candidate = max((i for i in used if low <= i <= high), default=low - 1) + 1
    while candidate <= high and (candidate in used or taken(candidate)):
        candidate += 1
    if candidate > high:
        raise NoSpace(f"auto_id_range {low}-{high} is used up: no id left for user {name!r}")
    _check(name, candidate)
    return [AllocateIds([[name, candidate]])]


def apply_allocate(ns: IdTables, op: AllocateIds) -> None:
    if not isinstance(op.entries, list) or not op.entries:
        raise Invalid(f"no entries: {op.entries!r}")
    ids = set(ns.auto_ids.values())
    for entry in op.entries:
        name, id_ = entry
        _check(name, id_)
        if name in ns.auto_ids or id_ in ids:
            raise Invalid(f"{name!r} or id {id_} already allocated")
    for name, id_ in op.entries:
        ns.auto_ids[name] = id_


def image_header(ns: IdTables) -> dict[str, Any]:
    if not ns.auto_ids:
        return {}
    return {"auto_ids": [[name, id_] for name, id_ in sorted(ns.auto_ids.items())]}


def load_image_header(ns: IdTables, header: dict[str, Any]) -> None:
    entries = header.get("auto_ids", [])
    if not entries:
        return
    try:
        apply_allocate(ns, AllocateIds(list(entries)))
    except (Invalid, TypeError, ValueError) as e:
        raise Corrupt(f"image: bad auto_ids: {e}") from None


def check_identities(ns: IdTables) -> None:
    assert len(set(ns.auto_ids.values())) == len(ns.auto_ids), "an id given to two names"
    for name, id_ in ns.auto_ids.items():
        _check(name, id_)
