"""ACCESS3 answers from the vfs's own permission checks (nsd.core.permissions), so what a client is
told it may do is what the vfs then lets it do.

As on a local file system, a superuser may do anything but execute a file that has no x bit.
A read-only export strips every modifying right. ACCESS is strict (no owner override): a file
of mode 0444 is not reported writable to its owner, though its owner's WRITE would succeed.
"""

from __future__ import annotations

from nsd.core.permissions import Permissions, R, W, X
from nsd.core.users import Caller
from nsd.namespace import Inode
from nsd.protocols.nfs3.const import (
    ACCESS_DELETE,
    ACCESS_EXECUTE,
    ACCESS_EXTEND,
    ACCESS_LOOKUP,
    ACCESS_MODIFY,
    ACCESS_READ,
)


def access_mask(perms: Permissions, node: Inode, who: Caller, requested: int, writable: bool) -> int:
    """The ACCESS3 bits among `requested` that `who` holds on `node`."""
    granted = 0
    if perms.allowed(node, who, R):
        granted |= ACCESS_READ
    if node.is_dir:
        if perms.allowed(node, who, X):
            granted |= ACCESS_LOOKUP
        if writable and perms.allowed(node, who, W | X):
            granted |= ACCESS_MODIFY | ACCESS_EXTEND | ACCESS_DELETE
    else:
        if writable and perms.allowed(node, who, W):
            granted |= ACCESS_MODIFY | ACCESS_EXTEND
        if perms.allowed(node, who, X) and (node.mode & 0o111 or not perms.is_super(who)):
            granted |= ACCESS_EXECUTE
    return granted & requested
