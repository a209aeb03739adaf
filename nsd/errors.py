"""One error tree for the core. Protocols map it at the edge (errno -> nfsstat3 -> HTTP).

Every error carries an errno so each protocol needs one table keyed by errno only.
"""

from __future__ import annotations

import errno as _errno


class NsdError(Exception):
    """Base of every error nsd raises on purpose."""

    errno: int = _errno.EIO

    def __init__(self, message: str = "", *, path: str | None = None) -> None:
        super().__init__(message or self.__class__.__name__)
        self.message = message or self.__class__.__name__
        self.path = path


class NotFound(NsdError):
    errno = _errno.ENOENT
    missing: tuple[int, str] | None = None  # (directory inode, name) when a path walk stopped there


class Exists(NsdError):
    errno = _errno.EEXIST


class NotDir(NsdError):
    errno = _errno.ENOTDIR


class IsDir(NsdError):
    errno = _errno.EISDIR


class NotEmpty(NsdError):
    errno = _errno.ENOTEMPTY


class Stale(NsdError):
    errno = _errno.ESTALE


class NoSpace(NsdError):
    errno = _errno.ENOSPC


class ReadOnly(NsdError):
    errno = _errno.EROFS


class Denied(NsdError):
    errno = _errno.EACCES


class NotPermitted(NsdError):
    """The operation is not allowed for this caller (owner-only changes): EPERM."""

    errno = _errno.EPERM


class Invalid(NsdError):
    errno = _errno.EINVAL


class NameTooLong(Invalid):
    errno = _errno.ENAMETOOLONG


class CrossDevice(NsdError):
    errno = _errno.EXDEV


class Loop(NsdError):
    errno = _errno.ELOOP


class NotSupported(NsdError):
    errno = _errno.EOPNOTSUPP


class TimedOut(NsdError):
    """A peer stopped sending (a stalled upload): ETIMEDOUT."""

    errno = _errno.ETIMEDOUT


class UfsUnavailable(NsdError):
    errno = _errno.EIO


class Corrupt(NsdError):
    errno = _errno.EIO


class JournalCorrupt(Corrupt):
    """A record in the middle of the log (or a sealed segment) fails its checks."""

    def __init__(self, message: str, *, file: str, offset: int) -> None:
        super().__init__(f"{message} in {file} at offset {offset}")
        self.file = file
        self.offset = offset


class Unavailable(NsdError):
    """A change cannot be taken right now but will be later (cluster: no leader, etcd down): retry."""

    errno = _errno.EAGAIN


class NotLeader(NsdError):
    """A change reached a cluster follower, which cannot journal it: the leader must make it."""

    errno = _errno.EROFS


class JournalFailed(NsdError):
    """Writing or syncing the journal failed: nothing more may be acknowledged."""


class DataDirLocked(NsdError):
    """Another process holds the data dir."""


class NotFormatted(NsdError):
    """The data dir has no VERSION file, or one of a format this build cannot read."""
