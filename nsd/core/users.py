"""Who is asking, and one mapping of user and group names to ids for every door.

NFS callers arrive as numbers (AUTH_SYS uid, gid, gids); WebHDFS and the admin API arrive as
names. Both meet here, so a file created over NFS by uid 1001 shows its owner under the same
name over WebHDFS, and a file created over WebHDFS by `alice` has alice's uid over NFS.

Lookup order for a name or an id: the configured map (settings `users` and `groups`), then the
ids given to unknown names (`auto_ids`, journaled: nsd.namespace.identities), then the machine's
passwd and group databases, then the number itself (a user name that is all digits is a uid; an
id without a name shows as its number). A name none of these knows is `unknown`: the facade
gives it an id from `auto_range` (`unknown_users = map`, HDFS's habit) or refuses it. Lookups
of passwd are cached for the life of the map: it rarely changes while a daemon runs.

`users` syntax: `NAME=UID[:GID[:GROUP,GROUP...]]` entries separated by ";" (GID defaults to the
UID; GROUPs are names or numbers). `groups` syntax: `NAME=GID` entries separated by ";".
"""

from __future__ import annotations

import grp
import os
import pwd
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from nsd.errors import Invalid


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
DEFAULT_AUTO_RANGE = (200000, 299999)
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


def parse_range(text: str) -> tuple[int, int]:
    """`auto_id_range`: "LOW-HIGH", both ids, LOW <= HIGH."""
    low, sep, high = text.partition("-")
    if not sep:
        raise Invalid(f"auto_id_range: expected LOW-HIGH, got {text!r}")
    first, last = _id(low.strip(), "LOW", "auto_id_range"), _id(high.strip(), "HIGH", "auto_id_range")
    if not 0 < first <= last:
        raise Invalid(f"auto_id_range: expected 0 < LOW <= HIGH, got {text!r}")
    return first, last


def _id(text: str, what: str, setting: str) -> int:
    if not text.isdigit() or int(text) > 0xFFFFFFFF:
        raise Invalid(f"{setting}: {what} must be a number 0..4294967295, got {text!r}")
    return int(text)


class UserMap:
    """Names <-> ids: the configured map, then passwd/group (`system`), then numbers."""

    def __init__(
        self,
        users: str = "",
        groups: str = "",
        *,
        system: bool = True,
        auto_range: tuple[int, int] = DEFAULT_AUTO_RANGE,
        map_unknown: bool = True,
    ) -> None:
        self.system = system
        self.auto_range = auto_range
        self.map_unknown = map_unknown  # give unknown names an id (else they are refused)
        # name -> id given to a name nobody knew; the namespace's own table once attached
        self.auto_ids: Mapping[str, int] = {}
        self._auto_names: dict[int, str] = {}
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

    # ---- names -> ids -----------------------------------------------------------------------

    def user(self, name: str) -> User | None:
        """The user called `name` (or the uid `name` spells), None if nobody knows it."""
        if name not in self._users and (auto := self.auto_ids.get(name)) is not None:
            return User(name, Caller(auto, auto, (auto,)))  # its group: the same name and id
        return self._cached("user", name, lambda: self._user(name))

    def taken(self, id_: int) -> bool:
        """Whether a configured or local user or group already has this id (not to be given)."""
        return (
            id_ in self._user_by_uid
            or id_ in self._group_by_gid
            or self._pw_by_uid(id_) is not None
            or self._group_name(id_) != str(id_)
        )

    def auto_name(self, id_: int) -> str | None:
        """The name an id was given to, if it was given to one."""
        if len(self._auto_names) != len(self.auto_ids):
            self._auto_names = {i: n for n, i in self.auto_ids.items()}
        return self._auto_names.get(id_)

    def entries(self) -> list[dict[str, object]]:
        """Every configured user and every name given an id here (`nsd users ls`)."""
        out: list[dict[str, object]] = [
            {"name": n, "uid": c.uid, "gid": c.gid, "groups": [self.group_name(g) for g in c.gids], "source": "config"}
            for n, c in self._users.items()
        ]
        out += [
            {"name": n, "uid": i, "gid": i, "groups": [n], "source": "auto"} for n, i in sorted(self.auto_ids.items())
        ]
        return out

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
        if (auto := self.auto_ids.get(name)) is not None:
            return auto
        if name.isdigit():
            return int(name)
        if self.system:
            try:
                return grp.getgrnam(name).gr_gid
            except KeyError:
                pass
        return None

    # ---- ids -> names -----------------------------------------------------------------------

    def user_name(self, uid: int) -> str:
        if uid not in self._user_by_uid and (auto := self.auto_name(uid)) is not None:
            return auto
        return self._cached("uid", uid, lambda: self._user_name(uid))

    def _user_name(self, uid: int) -> str:
        if uid in self._user_by_uid:
            return self._user_by_uid[uid]
        entry = self._pw_by_uid(uid)
        return str(uid) if entry is None else entry.pw_name

    def group_name(self, gid: int) -> str:
        if gid not in self._group_by_gid and (auto := self.auto_name(gid)) is not None:
            return auto
        return self._cached("gid", gid, lambda: self._group_name(gid))

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
