"""Who is asking, and one mapping of user and group names to ids for every door.

NFS callers arrive as numbers (AUTH_SYS uid, gid, gids); WebHDFS and the admin API arrive as
names. Both meet here, so a file created over NFS by uid 1001 shows its owner under the same
name over WebHDFS, and a file created over WebHDFS by `alice` has alice's uid over NFS.

Lookup order for a name or an id: the configured map (settings `users` and `groups`), then
the machine's passwd and group databases, then the number itself (a user name that is all
digits is a uid; an id without a name shows as its number). Lookups are cached for the life of
the map: passwd rarely changes while a daemon runs, and a restart picks up edits.

A user name none of these know is mapped, as HDFS believes any name (`unknown_users = map`, the
daemon's default): `resolve` gives it the next id of `auto_id_range` through a journaled MapUser
(nsd.namespace.idmap), once; that id is its uid and the gid of its same-named primary group.
Mapped ids are looked up before the caches (the journal is their only source), so an id shows
its name from the moment it is given. With `unknown_users = refuse` such a name is refused.

`users` syntax: `NAME=UID[:GID[:GROUP,GROUP...]]` entries separated by ";" (GID defaults to the
UID; GROUPs are names or numbers). `groups` syntax: `NAME=GID` entries separated by ";".
"""

from __future__ import annotations

import asyncio
import grp
import os
import pwd
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from nsd.errors import Denied, Invalid
from nsd.journal.ops import MapUser
from nsd.namespace import idmap

if TYPE_CHECKING:
    from nsd.core.metastore import MetaStore


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
DEFAULT_AUTO_ID_RANGE = "200000-299999"
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


class UserMap:
    """Names <-> ids: the configured map, then passwd/group (`system`), then numbers, and the
    names mapped to `auto_id_range` once `bind` gave the map its journal."""

    def __init__(
        self,
        users: str = "",
        groups: str = "",
        *,
        system: bool = True,
        unknown_users: str = "refuse",
        auto_id_range: str = DEFAULT_AUTO_ID_RANGE,
    ) -> None:
        if unknown_users not in UNKNOWN_USERS:
            raise Invalid(f"unknown_users must be one of {', '.join(UNKNOWN_USERS)}, got {unknown_users!r}")
        self.system = system
        self.unknown_users = unknown_users
        self.auto_id_range = idmap.parse_range(auto_id_range)
        self._store: MetaStore | None = None
        self._mapping: dict[str, asyncio.Future[None]] = {}  # names being mapped right now
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

    def _cached(self, kind: str, key: object, compute: Callable[[], T]) -> T:
        try:
            return self._cache[kind, key]  # type: ignore[return-value]
        except KeyError:
            pass
        if len(self._cache) >= CACHE_ENTRIES:
            self._cache.clear()
        value = self._cache[kind, key] = compute()
        return value

    def bind(self, store: MetaStore) -> None:
        """Read and journal mapped names in `store`'s namespace from now on."""
        self._store = store

    # ---- names -> ids -----------------------------------------------------------------------

    def user(self, name: str) -> User | None:
        """The user called `name` (or the uid `name` spells), None if nobody knows it."""
        found = self._cached("user", name, lambda: self._user(name))
        if found is None:
            auto = self._auto_id(name)
            if auto is not None:
                return User(name, Caller(auto, auto, (auto,)))
        return found

    async def resolve(self, name: str) -> User:
        """The user called `name`, mapping it to a new id if nobody knows it and `unknown_users`
        is `map`; Denied if it is `refuse`, or the name cannot be a user name. Concurrent first
        calls by one name map it once; each returns once the mapping is durable."""
        found = self.user(name)
        if found is not None:
            return found
        if self.unknown_users == "refuse":
            raise Denied(f"Unknown user: {name} (unknown_users = refuse: add it to `users` or set unknown_users = map)")
        if self._store is None:  # a map without a journal (tools, tests) cannot give ids
            raise Denied(f"Unknown user: {name}")
        try:
            idmap.check_name(name)
        except Invalid as e:
            raise Denied(f"Unknown user: {e.message}") from None
        pending = self._mapping.get(name)
        if pending is None:
            pending = self._mapping[name] = asyncio.ensure_future(self._map(self._store, name))
            pending.add_done_callback(lambda _: self._mapping.pop(name, None))
        await asyncio.shield(pending)  # a caller that goes away does not stop the mapping
        mapped = self.user(name)
        assert mapped is not None
        return mapped

    async def _map(self, store: MetaStore, name: str) -> None:
        def plan(ns: idmap.IdTables) -> list[MapUser]:
            if name in ns.auto_ids:
                return []
            return [idmap.plan_map_user(ns, name, self.auto_id_range, self._taken)]

        await store.mutate(plan)

    def _taken(self, i: int) -> bool:
        """Whether id `i` is someone's here (a configured or passwd uid or gid): not to be mapped."""
        if i in self._user_by_uid or i in self._group_by_gid or any(c.gid == i for c in self._users.values()):
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

    def _auto_id(self, name: str) -> int | None:
        return None if self._store is None else self._store.ns.auto_ids.get(name)

    def _auto_name(self, i: int) -> str | None:
        return None if self._store is None else self._store.ns.auto_names.get(i)

    def mapped(self) -> list[tuple[str, int]]:
        """(name, id) of every mapped name, in id order."""
        if self._store is None:
            return []
        return sorted(self._store.ns.auto_ids.items(), key=lambda item: item[1])

    def configured(self) -> list[User]:
        """The users of the `users` setting, in the order given."""
        return [User(name, caller) for name, caller in self._users.items()]

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
                return User(name, Caller(uid, uid, (uid,)))
            return User(entry.pw_name, Caller(uid, entry.pw_gid, self._system_groups(entry.pw_name, entry.pw_gid)))
        entry = self._pw_by_name(name)
        if entry is None:
            return None
        return User(name, Caller(entry.pw_uid, entry.pw_gid, self._system_groups(name, entry.pw_gid)))

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
        return self._auto_id(name)  # a mapped user's same-named primary group

    # ---- ids -> names -----------------------------------------------------------------------

    def user_name(self, uid: int) -> str:
        return self._auto_name(uid) or self._cached("uid", uid, lambda: self._user_name(uid))

    def _user_name(self, uid: int) -> str:
        if uid in self._user_by_uid:
            return self._user_by_uid[uid]
        entry = self._pw_by_uid(uid)
        return str(uid) if entry is None else entry.pw_name

    def group_name(self, gid: int) -> str:
        return self._auto_name(gid) or self._cached("gid", gid, lambda: self._group_name(gid))

    def _group_name(self, gid: int) -> str:
        if gid in self._group_by_gid:
            return self._group_by_gid[gid]
        if self.system:
            try:
                return grp.getgrgid(gid).gr_name
            except KeyError:
                pass
        return str(gid)

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
