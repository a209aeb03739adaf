"""Who a WebHDFS caller is: `user.name` / `doas` -> uid, gid, groups; uid/gid -> names.

One mapping for every door: the machine's passwd and group databases (pwd/grp), as NFS sees
uids. A name that is all digits is taken as a numeric id, so ids without an account still work.
Simple auth has no secret: `user.name` is believed, exactly as Hadoop's pseudo authentication.

Lookups are cached (passwd rarely changes while a daemon runs; a restart picks up edits).
"""

from __future__ import annotations

import grp
import os
import pwd
from dataclasses import dataclass
from functools import lru_cache

from nsd import errors
from nsd.vfs import Caller

# Hadoop's name for a caller that sent no user.name.
ANONYMOUS = "dr.who"
NOBODY = 65534


@dataclass(frozen=True, slots=True)
class Identity:
    name: str
    caller: Caller


@lru_cache(maxsize=4096)
def user_to_identity(name: str) -> Identity:
    """The identity of user `name`; Denied for a name that is neither an account nor a number."""
    if name.isdigit():
        uid = int(name)
        try:
            entry = pwd.getpwuid(uid)
        except KeyError:
            return Identity(name, Caller(uid, uid))
        return Identity(entry.pw_name, Caller(uid, entry.pw_gid, _groups(entry.pw_name, entry.pw_gid)))
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise errors.Denied(f"Unknown user: {name}") from None
    return Identity(name, Caller(entry.pw_uid, entry.pw_gid, _groups(name, entry.pw_gid)))


def _groups(name: str, gid: int) -> tuple[int, ...]:
    try:
        return tuple(os.getgrouplist(name, gid))
    except OSError:
        return (gid,)


def anonymous() -> Identity:
    """A caller without user.name: Hadoop's dr.who, as the machine's nobody."""
    try:
        entry = pwd.getpwnam("nobody")
        return Identity(ANONYMOUS, Caller(entry.pw_uid, entry.pw_gid))
    except KeyError:
        return Identity(ANONYMOUS, Caller(NOBODY, NOBODY))


def superuser() -> str:
    """The user running the daemon: HDFS's superuser (it formatted the namespace)."""
    return user_name(os.getuid())


def resolve(user: str | None, doas: str | None) -> Identity:
    """The identity a request acts as. `doas` is honoured only for the superuser (or root).

    nsd has no proxy-user table: the daemon's own user is the one trusted proxy, as the HDFS
    superuser that services like Oozie or Hue run as. Anyone else asking to act as another
    user gets Denied (Hadoop: "User: x is not allowed to impersonate y").
    """
    real = user_to_identity(user) if user else anonymous()
    if not doas or doas == real.name:
        return real
    if real.caller.uid not in (0, os.getuid()):
        raise errors.Denied(f"User: {real.name} is not allowed to impersonate {doas}")
    return user_to_identity(doas)


@lru_cache(maxsize=4096)
def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


@lru_cache(maxsize=4096)
def group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def uid_of(name: str) -> int:
    """SETOWNER's owner: an account name or a number; Invalid otherwise."""
    if name.isdigit():
        return int(name)
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        raise errors.Invalid(f"Unknown user: {name}") from None


def gid_of(name: str) -> int:
    """SETOWNER's group: a group name or a number; Invalid otherwise."""
    if name.isdigit():
        return int(name)
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise errors.Invalid(f"Unknown group: {name}") from None
