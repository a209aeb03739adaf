"""POSIX permission bits against an AUTH_SYS identity: ACCESS replies and the checks before changes.

Root (uid 0, unless squashed by the export) may do anything but execute a file with no x bit,
as on a local file system. A read-only export strips every modifying right.
"""

from __future__ import annotations

from nsd import errors
from nsd.namespace import Inode
from nsd.protocols.nfs3.const import (
    ACCESS_DELETE,
    ACCESS_EXECUTE,
    ACCESS_EXTEND,
    ACCESS_LOOKUP,
    ACCESS_MODIFY,
    ACCESS_READ,
)
from nsd.vfs import Caller

R, W, X = 4, 2, 1


def _bits(node: Inode, who: Caller) -> int:
    """The rwx bits of `node` that apply to `who` (owner, else group, else other)."""
    mode = node.mode
    if who.uid == node.uid:
        return (mode >> 6) & 7
    if who.gid == node.gid or node.gid in who.gids:
        return (mode >> 3) & 7
    return mode & 7


def allowed(node: Inode, who: Caller, want: int) -> bool:
    """Whether `who` holds all of the rwx bits in `want` on `node`."""
    if who.uid == 0:
        return not (want & X) or node.is_dir or bool(node.mode & 0o111)
    return _bits(node, who) & want == want


def require(node: Inode, who: Caller, want: int) -> None:
    """Raise Denied unless allowed."""
    if not allowed(node, who, want):
        raise errors.Denied(f"permission denied on inode {node.ino}")


def require_owner(node: Inode, who: Caller) -> None:
    """chmod/utimes to a given time: only the owner (or root). EPERM as chmod(2)."""
    if who.uid != 0 and who.uid != node.uid:
        raise errors.NotPermitted(f"not the owner of inode {node.ino}")


def access_mask(node: Inode, who: Caller, requested: int, writable: bool) -> int:
    """The ACCESS3 bits among `requested` that `who` holds on `node`."""
    granted = 0
    if allowed(node, who, R):
        granted |= ACCESS_READ
    if node.is_dir:
        if allowed(node, who, X):
            granted |= ACCESS_LOOKUP
        if writable and allowed(node, who, W | X):
            granted |= ACCESS_MODIFY | ACCESS_EXTEND | ACCESS_DELETE
    else:
        if writable and allowed(node, who, W):
            granted |= ACCESS_MODIFY | ACCESS_EXTEND
        if allowed(node, who, X):
            granted |= ACCESS_EXECUTE
    return granted & requested
