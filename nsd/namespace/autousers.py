"""Ids for user names nobody configured: HDFS's simple authentication believes any `user.name`.

A name that is neither in the `users` setting nor in the machine's passwd gets one id from
`auto_id_range` the first time it is seen (nsd.users plans it). The id is its uid and also the gid
of its primary group, a group of the same name, as Hadoop shows it. It is journaled (`AutoUser`)
and lives in the image (header key "auto_users", image version 5), so it survives restarts,
checkpoints and backups, and is never changed or given to another name.

`Namespace.auto_users` maps name -> id and `Namespace.auto_user_names` id -> name.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nsd.errors import Corrupt, Denied, Invalid
from nsd.journal.ops import AutoUser

if TYPE_CHECKING:
    from nsd.namespace.tree import Namespace

# Hadoop's default dfs.webhdfs.user.provider.user.pattern, and a bound on what the journal keeps.
NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9._-]*[$]?")
NAME_MAX = 255
ID_MAX = 0xFFFFFFFF


def check_name(name: object) -> None:
    """Invalid unless `name` may become a user: Hadoop's default user name pattern, 1..255 chars."""
    if not isinstance(name, str) or len(name) > NAME_MAX or not NAME_PATTERN.fullmatch(name):
        raise Invalid(f"invalid user name {name!r}: expected {NAME_PATTERN.pattern}, at most {NAME_MAX} characters")


def plan_auto_user(ns: Namespace, name: str, first: int, last: int, taken: Callable[[int], bool]) -> list[AutoUser]:
    """The op giving `name` the lowest id in [first, last] that no name has (here or per `taken`);
    none if `name` has one already. Denied when the range is used up. Cost: O(ids in use)."""
    check_name(name)
    if name in ns.auto_users:
        return []
    for candidate in range(first, last + 1):
        if candidate not in ns.auto_user_names and not taken(candidate):
            return [AutoUser(name, candidate)]
    raise Denied(f"Unknown user {name}: every id in auto_id_range {first}-{last} is taken; widen auto_id_range")


def apply_auto_user(ns: Namespace, op: AutoUser) -> None:
    check_name(op.name)
    if type(op.id) is not int or not 0 <= op.id <= ID_MAX:
        raise Invalid(f"invalid id {op.id!r} for user {op.name}")
    if op.name in ns.auto_users or op.id in ns.auto_user_names:
        raise Invalid(f"user {op.name} or id {op.id} has an id already")
    ns.auto_users[op.name] = op.id
    ns.auto_user_names[op.id] = op.name


def image_header(ns: Namespace) -> dict[str, Any]:
    if not ns.auto_users:
        return {}
    return {"auto_users": [[name, i] for i, name in sorted(ns.auto_user_names.items())]}


def load_image_header(ns: Namespace, header: dict[str, Any]) -> None:
    try:
        for name, i in header.get("auto_users", []):
            apply_auto_user(ns, AutoUser(name, i))
    except (Invalid, TypeError, ValueError) as e:
        raise Corrupt(f"image: bad auto_users: {e}") from None


def check_auto_users(ns: Namespace) -> None:
    if {i: n for n, i in ns.auto_users.items()} != ns.auto_user_names:
        raise AssertionError("auto_users and auto_user_names disagree")
    for name in ns.auto_users:
        check_name(name)
