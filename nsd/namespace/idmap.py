"""Ids given to user names nobody else knows (`unknown_users = map`), journaled for life.

HDFS with simple authentication believes any `user.name`; nsd keeps uids, so a name that is
neither configured nor in the machine's passwd gets an id from `auto_id_range` the first time
it is seen (op MapUser). The id is that user's uid and the gid of its same-named primary group.
An id is never reused and a name never remapped, so files keep their owner across restarts,
checkpoints, backups and every node that replays the same journal.

They are part of the image (header key "users", image version 5, written only when some name
is mapped).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from nsd.errors import Corrupt, Denied, Invalid
from nsd.journal.ops import MapUser

MAX_ID = 0xFFFFFFFF
NAME_MAX_BYTES = 256
FORBIDDEN = set(":;,=/#") | {chr(c) for c in range(33)} | {"\x7f"}


class IdTables(Protocol):
    """What this module reads and changes of a namespace (tree.Namespace is one)."""

    auto_ids: dict[str, int]  # name -> id
    auto_names: dict[int, str]  # id -> name


def check_name(name: Any) -> None:
    """Invalid unless `name` can be a user name: not empty, not a number (that is a uid), at most
    256 bytes, no blanks, control characters or any of `:;,=/#` (separators of nsd's settings
    and of `owner:group`)."""
    if not isinstance(name, str) or not name:
        raise Invalid("a user name must not be empty")
    if name.isdigit():
        raise Invalid(f"a user name must not be a number: {name!r}")
    if len(name.encode("utf-8", "surrogatepass")) > NAME_MAX_BYTES:
        raise Invalid(f"a user name must be at most {NAME_MAX_BYTES} bytes: {name[:40]!r}...")
    bad = sorted(set(name) & FORBIDDEN)
    if bad:
        raise Invalid(f"a user name must not contain {bad[0]!r}: {name!r}")


def parse_range(text: str) -> tuple[int, int]:
    """`FIRST-LAST` (inclusive) -> (FIRST, LAST); Invalid otherwise."""
    first, sep, last = text.strip().partition("-")
    if not sep or not first.strip().isdigit() or not last.strip().isdigit():
        raise Invalid(f"auto_id_range: expected FIRST-LAST, e.g. 200000-299999, got {text!r}")
    lo, hi = int(first), int(last)
    if not 0 < lo <= hi <= MAX_ID:
        raise Invalid(f"auto_id_range: expected 0 < FIRST <= LAST <= {MAX_ID}, got {text!r}")
    return lo, hi


def plan_map_user(ns: IdTables, name: str, id_range: tuple[int, int], taken: Callable[[int], bool]) -> MapUser:
    """The op giving `name` the next free id of `id_range`: above every id already given in the
    range (ids are never reused), skipping those `taken` says someone else has. Denied (that user
    is refused) when the range is used up.
    Cost: O(mapped names) for the highest id, plus the ids skipped."""
    check_name(name)
    if name in ns.auto_ids:
        raise Invalid(f"user {name!r} already has id {ns.auto_ids[name]}")
    lo, hi = id_range
    candidate = max((i for i in ns.auto_names if lo <= i <= hi), default=lo - 1) + 1
    while candidate <= hi and (candidate in ns.auto_names or taken(candidate)):
        candidate += 1
    if candidate > hi:
        raise Denied(f"cannot map user {name}: auto_id_range {lo}-{hi} is used up; widen it or add the user to `users`")
    return MapUser(name, candidate)


def apply_map_user(ns: IdTables, op: MapUser) -> None:
    check_name(op.name)
    if type(op.id) is not int or not 0 <= op.id <= MAX_ID:
        raise Invalid(f"bad id {op.id!r} for user {op.name!r}")
    if op.name in ns.auto_ids or op.id in ns.auto_names:
        raise Invalid(f"user {op.name!r} or id {op.id} is mapped already")
    ns.auto_ids[op.name] = op.id
    ns.auto_names[op.id] = op.name


def image_header(ns: IdTables) -> dict[str, Any]:
    if not ns.auto_ids:
        return {}
    return {"users": [[name, i] for i, name in sorted(ns.auto_names.items())]}


def load_image_header(ns: IdTables, header: dict[str, Any]) -> None:
    try:
        for name, i in header.get("users", []):
            apply_map_user(ns, MapUser(name, i))
    except (Invalid, TypeError, ValueError) as e:
        raise Corrupt(f"image: bad user map: {e}") from None


def check_ids(ns: IdTables) -> None:
    if {i: n for n, i in ns.auto_ids.items()} != ns.auto_names:
        raise AssertionError("auto_ids and auto_names are not each other's inverse")
    for name, i in ns.auto_ids.items():
        try:
            check_name(name)
        except Invalid as e:
            raise AssertionError(f"mapped user: {e}") from None
        if type(i) is not int or not 0 <= i <= MAX_ID:
            raise AssertionError(f"mapped user {name!r} has a bad id {i!r}")
