"""The one facade every protocol calls: resolution, under-storage write-through, staging, durability.

Theory of operation. The core works on inodes (what NFS handles name); path calls (admin
API, WebHDFS) resolve to a directory and a name and call the same core. Each mutation:
validate against the namespace (a doomed call fails before touching the UFS), change the UFS,
then plan again and commit through the MetaStore, which answers only once the journal record
is durable. Mutations of the same directory entry, or of the same file's content, are
serialised by locks so the UFS and the namespace change in the same order.

Permissions: every public operation takes the caller and checks it (nsd.core.permissions) before it
changes or reveals anything: search on each directory a path walks, r/w/x on the target, w+x on
the directory whose entries change, sticky directories, owner-only chmod/chown. Private helpers
(`_lookup`, `_resolve`) do not check; they serve operations that already did. The daemon's own
work (sealing stages, shutdown, the admin token holder) runs as `SYSTEM`, a superuser.

An object's UFS location is its primary link's canonical path (`Namespace.path_of`), never the
path a caller used, so symlinked directories and renamed files are found where they really are.

Writes at offsets go to a stage (nsd.core.staging) and are sealed, i.e. uploaded to the UFS and
journaled, on COMMIT, on a stable write, after `idle_seal_seconds` without writes, and at
shutdown. While staged, the inode's size and mtime in memory run ahead of the journal: like the
unstable data itself, they are lost in a crash.

With a block store (`blocks`), reads go through the cache (nsd.core.cache.reader) and each mount's
write type (nsd.core.cache.policy) says where sealed content goes: the UFS, blocks, or both. Content
in blocks only (MUST_CACHE, ASYNC_THROUGH) is journaled without a fingerprint and a complete
layout; nsd.core.cache.persister puts it in the UFS later.
"""

from __future__ import annotations

from nsd.core.permissions import NOW, Now
from nsd.core.users import SYSTEM, Caller
from nsd.vfs.admin import AdminOps
from nsd.vfs.base import IDLE_SEAL_SECONDS

__all__ = ["IDLE_SEAL_SECONDS", "NOW", "SYSTEM", "Caller", "Now", "Vfs"]


class Vfs(AdminOps):
    """The facade: one class built from its parts by concern, each a module of nsd.vfs
    (base: state and resolution; content; inodes; paths; admin)."""
