"""Who is asking, and one mapping of user and group names to ids for every door.

NFS callers arrive as numbers (AUTH_SYS uid, gid, gids); WebHDFS and the admin API arrive as
names. Both meet here, so a file created over NFS by uid 1001 shows its owner under the same
name over WebHDFS, and a file created over WebHDFS by `alice` has alice's uid over NFS.

Lookup order for a name or an id: the configured map (settings `users` and `groups`), then
the machine's passwd and group databases, then the ids nsd gave to names nobody else knows
(below), then the number itself (a user name that is all digits is a uid; an id without a name
shows as its number). Lookups are cached for the life of the map: passwd rarely changes while a
daemon runs, and a restart picks up edits.

Unknown names (HDFS's simple authentication believes any `user.name`): with `unknown_users =
map` (the default) `resolve()` gives a name nobody knows the lowest free id of `auto_id_range`,
journaled once for good (nsd.namespace.autousers). That id is the user's uid and the gid of its
primary group, which has the user's name. Ids the config or the machine already use are skipped.
`unknown_users = refuse` answers Denied instead (names given ids earlier keep them).

`users` syntax: `NAME=UID[:GID[:GROUP,GROUP...]]` entries separated by ";" (GID defaults to the
UID; GROUPs are names or numbers). `groups` syntax: `NAME=GID` entries separated by ";".
"""

from __future__ import annotations

import grp
import os
import pwd
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from nsd.blockstore.singleflight import SingleFlight
from nsd.errors import Denied, Invalid
from nsd.namespace.autousers import plan_auto_user

if TYPE_CHECKING:
    from nsd.metastore import MetaStore


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking: the identity new objects get and permission checks use."""

    uid: int
    gid: int
    gids: tuple[int, ...] = ()


# The daemon's own work (sealing, sync, shutdown, the admin token holder): always a superuser.
SYSTEM = Caller(os.getuid(), os.getgid())
NOBODY = 65534
CACHE_ENTRIES = 4096
UNKNOWN_USERS = ("map", "refuse")
AUTO_ID_RANGE = "200000-299999"
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class User:
    name: str
    caller: Caller


def _entries(text: str, setting: str) -> list[tuple[str, str]]:
    out = []
    for raw in text.replace("\n", ";").split(";"):
        raw = raw.strip()
        if not raw:
            continue
        name, sep, value = raw.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name or not value:
            raise Invalid(f"{setting}: expected NAME=..., got {raw!r}")
        if name.isdigit():
            raise Invalid(f"{setting}: a name must not be a number: {name!r}")
        out.append((name, value))
    return out


def _id(text: str, what: str, setting: str) -> int:
    if not text.isdigit() or int(text) > 0xFFFFFFFF:
        raise Invalid(f"{setting}: {what} must be a number 0..4294967295, got {text!r}")
    return int(text)


def parse_id_range(text: str) -> tuple[int, int]:
    """`FIRST-LAST` (inclusive) -> (first, last). Invalid for anything else, for ids below 1000
    (system accounts live there) and for 4294967295 ((uid_t)-1 means "no change" to chown)."""
    first, sep, last = text.strip().partition("-")
    a = _id(first.strip(), "the first id", "auto_id_range") if sep else -1
    b = _id(last.strip(), "the last id", "auto_id_range") if sep else -1
    if not sep or not 1000 <= a <= b or b >= 0xFFFFFFFF:
        raise Invalid(f"auto_id_range: expected FIRST-LAST with 1000 <= FIRST <= LAST < 4294967295, got {text!r}")
    return a, b


class UserMap:
    """Names <-> ids: the configured map, then passwd/group (`system`), then numbers."""

    def __init__(
        self,
        users: str = "",
        groups: str = "",
        *,
        system: bool = True,
        unknown_users: str = "map",
        auto_id_range: str = AUTO_ID_RANGE,
        reserved: frozenset[str] = frozenset(),
    ) -> None:
        """`reserved`: names never given an id (the supergroup's: an unknown user called so would
        show its files in that group without being a member)."""
        if unknown_users not in UNKNOWN_USERS:
            raise Invalid(f"unknown_users must be one of {', '.join(UNKNOWN_USERS)}, got {unknown_users!r}")
        self.unknown_users = unknown_users
        self.auto_range = parse_id_range(auto_id_range)
        self.reserved = reserved
        self.system = system
        self._store: MetaStore | None = None  # where auto ids are journaled; none: no new ones
        self._auto_ids: dict[str, int] = {}  # the namespace's auto_users once attached
        self._auto_names: dict[int, str] = {}
        self._allocating = SingleFlight()
        self._gid_by_name: dict[str, int] = {}
        for name, value in _entries(groups, "groups"):
            self._gid_by_name[name] = _id(value, f"gid of group {name}", "groups")
        self._group_by_gid = {gid: name for name, gid in reversed(list(self._gid_by_name.items()))}
        self._users: dict[str, Caller] = {}
        for name, value in _entries(users, "users"):
            fields = value.split(":")
            if len(fields) > 3:
                raise Invalid(f"users: expected NAME=UID[:GID[:GROUP,...]], got {name}={value}")
            uid = _id(fields[0], f"uid of {name}", "users")
            gid = _id(fields[1], f"gid of {name}", "users") if len(fields) > 1 and fields[1] else uid
            extra = []
            for g in filter(None, (x.strip() for x in (fields[2] if len(fields) > 2 else "").split(","))):
                found = self.gid_of(g)
                if found is None:
                    raise Invalid(f"users: {name}'s group {g!r} is neither configured, known here, nor a number")
                extra.append(found)
            self._users[name] = Caller(uid, gid, tuple(dict.fromkeys([gid, *extra])))
        self._user_by_uid = {c.uid: name for name, c in reversed(list(self._users.items()))}
        # Per-map caches of answers (bounded: cleared when full, as clients pick the names).
        self._cache: dict[tuple[str, object], object] = {}

    def attach(self, store: MetaStore) -> None:
        """Use (and add to) the ids journaled in `store` for names nobody else knows."""
        self._store = store
        self._auto_ids = store.ns.auto_users
        self._auto_names = store.ns.auto_user_names
        self._cache.clear()

    def _cached(self, kind: str, key: object, compute: Callable[[], T]) -> T:
        try:
            return self._cache[kind, key]  # type: ignore[return-value]
        except KeyError:
            pass
        if len(self._cache) >= CACHE_ENTRIES:
            self._cache.clear()
        value = self._cache[kind, key] = compute()
        return value

    # ---- names -> ids -----------------------------------------------------------------------

    def user(self, name: str) -> User | None:
        """The user called `name` (or the uid `name` spells), None if nobody knows it."""
        return self._cached("user", name, lambda: self._user(name))

    def _user(self, name: str) -> User | None:
        if name in self._users:
            return User(name, self._users[name])
        if name.isdigit():
            uid = int(name)
            known = self._user_by_uid.get(uid)
            if known is not None:
                return User(known, self._users[known])
            entry = self._pw_by_uid(uid)
            if entry is None:
                return User(self._auto_names.get(uid, name), Caller(uid, uid, (uid,)))
            return User(entry.pw_name, Caller(uid, entry.pw_gid, self._system_groups(entry.pw_name, entry.pw_gid)))
        entry = self._pw_by_name(name)
        if entry is None:
            auto = self._auto_ids.get(name)
            return None if auto is None else User(name, Caller(auto, auto, (auto,)))
        return User(name, Caller(entry.pw_uid, entry.pw_gid, self._system_groups(name, entry.pw_gid)))

    async def resolve(self, name: str) -> User:
        """The user called `name`; a name nobody knows gets its id now (journaled, durable on
        return; concurrent first calls share one id). Denied if unknown_users = refuse, or if no
        id is left; Invalid for a name Hadoop would not take either."""
        found = self.user(name)
        if found is not None:
            return found
        if self.unknown_users == "refuse":
            raise Denied(f"Unknown user: {name} (unknown_users = refuse)")
        if name in self.reserved:
            raise Denied(f"Unknown user: {name} (the supergroup's name is never given an id)")
        if self._store is None:
            raise Denied(f"Unknown user: {name}")
        await self._allocating.run(name, lambda: self._allocate(name))
        found = self.user(name)
        assert found is not None
        return found

    async def resolve_group(self, name: str) -> int:
        """The gid of group `name`. A name no group has is taken as an unknown user's same-named
        primary group, so it gets (or has) that user's id: HDFS takes any group name too."""
        gid = self.gid_of(name)
        return gid if gid is not None else (await self.resolve(name)).caller.gid

    async def _allocate(self, name: str) -> None:
        assert self._store is not None
        first, last = self.auto_range
        await self._store.mutate(lambda ns: plan_auto_user(ns, name, first, last, self._id_in_use))
        self._cache.clear()  # answers given before (None for this name, a bare number for its id) are stale

    def _id_in_use(self, i: int) -> bool:
        """Whether the config or the machine gives `i` to a user or a group already."""
        if i in self._user_by_uid or i in self._group_by_gid or any(i == c.gid for c in self._users.values()):
            return True
        if not self.system:
            return False
        if self._pw_by_uid(i) is not None:
            return True
        try:
            grp.getgrgid(i)
        except KeyError:
            return False
        return True

    def auto_users(self) -> list[dict[str, Any]]:
        """The ids given to names nobody else knows, in id order, as `nsd users ls` shows them."""
        return [{"name": n, "uid": i, "gid": i, "group": n} for i, n in sorted(self._auto_names.items())]

    def uid_of(self, name: str) -> int | None:
        found = self.user(name)
        return None if found is None else found.caller.uid

    def gid_of(self, name: str) -> int | None:
        """The gid of group `name` (or the number it spells), None if unknown."""
        if name in self._gid_by_name:
            return self._gid_by_name[name]
        if name.isdigit():
            return int(name)
        if self.system:
            try:
                return grp.getgrnam(name).gr_gid
            except KeyError:
                pass
        return self._auto_ids.get(name)  # an auto user's primary group has its name and id

    # ---- ids -> names -----------------------------------------------------------------------

    def user_name(self, uid: int) -> str:
        return self._cached("uid", uid, lambda: self._user_name(uid))

    def _user_name(self, uid: int) -> str:
        if uid in self._user_by_uid:
            return self._user_by_uid[uid]
        entry = self._pw_by_uid(uid)
        if entry is not None:
            return entry.pw_name
        return self._auto_names.get(uid, str(uid))

    def group_name(self, gid: int) -> str:
        return self._cached("gid", gid, lambda: self._group_name(gid))

    def _group_name(self, gid: int) -> str:
        if gid in self._group_by_gid:
            return self._group_by_gid[gid]
        if self.system:
            try:
                return grp.getgrgid(gid).gr_name
            except KeyError:
                pass
        return self._auto_names.get(gid, str(gid))

    # ---- the machine's databases ------------------------------------------------------------

    def _pw_by_uid(self, uid: int) -> pwd.struct_passwd | None:
        if not self.system:
            return None
        try:
            return pwd.getpwuid(uid)
        except KeyError:
            return None

    def _pw_by_name(self, name: str) -> pwd.struct_passwd | None:
        if not self.system:
            return None
        try:
            return pwd.getpwnam(name)
        except KeyError:
            return None

    def _system_groups(self, name: str, gid: int) -> tuple[int, ...]:
        try:
            groups = os.getgrouplist(name, gid)
        except OSError:
            groups = [gid]
        return tuple(dict.fromkeys([gid, *groups]))
