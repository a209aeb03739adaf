"""The facade's state and what every part of it uses: resolution by inode and by path.

No permission checks in the private helpers (`_lookup`, `_resolve`): they serve operations that
already checked.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from nsd import errors
from nsd.core.cache.persister import Persister
from nsd.core.core import Core
from nsd.core.permissions import R, X
from nsd.core.reconcile import Reconciler
from nsd.core.users import Caller, User
from nsd.namespace import DirInode, Inode, Namespace, identities
from nsd.namespace.names import split_path

log = logging.getLogger("nsd.vfs")

READ_CHUNK = 1 << 20
IDLE_SEAL_SECONDS = 5.0
SEAL_RETRY_MAX = 60.0  # backoff between attempts to seal a stage whose UFS keeps refusing


@dataclass(frozen=True, slots=True)
class FsStats:
    """The namespace's size and the journal's position (FSSTAT, `/api/v1/status`)."""

    inodes: int
    mounts: int  # the root mount included
    last_txid: int
    durable_txid: int
    checkpoint_txid: int
    writes_refused: str | None  # why changes are refused now (journal disk full), else None


class VfsBase:
    def __init__(
        self,
        core: Core,
        *,
        reconciler: Reconciler,
        persister: Persister | None = None,
        idle_seal_seconds: float = IDLE_SEAL_SECONDS,
    ):
        self.core = core
        self.store = core.store
        self.perms = core.perms
        self.mounts = core.mounts
        self.locks = core.locks
        self.stager = core.stager
        self.discovery = core.discovery
        self.cache = core.cache
        self.reconciler = reconciler
        self.persister = persister
        self.idle_seal_seconds = idle_seal_seconds
        self.write_verifier = os.urandom(8)  # new each start: clients resend unstable writes
        self.started = time.monotonic()
        self._sealer: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the background persister (needs the running loop)."""
        if self.persister is not None:
            self.persister.start()

    @property
    def ns(self) -> Namespace:
        return self.store.ns

    @property
    def version(self) -> int:
        """Moves with every change of the namespace (the tree or an attribute) and never comes
        back to a value: what a cache of answers built from the namespace compares."""
        return self.store.ns.version

    def _path_untouched(self, node: Inode) -> bool:
        """Whether nothing can be at `node`'s path in the UFS (see Persister.untouched)."""
        return self.persister is not None and self.persister.untouched(node)

    # ---- reads by inode ------------------------------------------------------------------

    async def getattr(self, ino: int) -> Inode:
        """The inode, re-checked against the UFS when its mount's sync interval says so.

        No permission check: holding an inode id (an NFS handle) is the right to see attributes."""
        node = self.ns.get(ino)
        if self.discovery.due(node):
            await self.discovery.refresh(node)
        return node

    async def lookup(self, dir_ino: int, name: str, *, caller: Caller) -> Inode:
        """Entry `name` of `dir_ino` (search permission there), discovered in the UFS if need be."""
        d = self.ns.get_dir(dir_ino)
        self.perms.require(d, caller, X)
        node = d.children.get(name)
        if node is not None and not self.discovery.due(node):
            return node  # known and fresh: the common case, without another coroutine
        return await self._lookup(dir_ino, name)

    async def _lookup(self, dir_ino: int, name: str) -> Inode:
        try:
            node = self.ns.lookup(dir_ino, name)
        except errors.NotFound:
            if not await self.discovery.discover(dir_ino, name):
                raise
            node = self.ns.lookup(dir_ino, name)
        if self.discovery.due(node):
            await self.discovery.refresh(node)
        return node

    async def readdir(
        self, dir_ino: int, cookie: int = 0, limit: int = 1024, *, caller: Caller
    ) -> tuple[list[tuple[int, str, Inode]], bool]:
        """A page of entries in cookie order (read permission); a listing that starts (cookie 0)
        syncs with the UFS."""
        self.perms.require(self.ns.get_dir(dir_ino), caller, R)
        if cookie == 0:
            await self.discovery.ensure_listed(self.ns.get_dir(dir_ino))
        return self.ns.readdir(dir_ino, cookie, limit)

    async def _lookup_or_none(self, dir_ino: int, name: str) -> Inode | None:
        try:
            return await self._lookup(dir_ino, name)
        except errors.NotFound:
            return None

    async def resolve(self, path: str, *, caller: Caller, follow: bool = True) -> Inode:
        """Path resolution (search permission on every directory walked through) that discovers
        missing components in the UFS as it goes."""
        return await self._resolve(path, follow, self.perms.searcher(caller))

    async def _resolve(self, path: str, follow: bool, search: Callable[[DirInode], None] | None) -> Inode:
        for _ in range(len(path) + 64):
            try:
                node = self.ns.resolve(path, follow=follow, search=search)
            except errors.NotFound as e:
                if e.missing is None or not await self.discovery.discover(*e.missing):
                    raise
                continue
            await self.discovery.refresh(node)
            return node
        raise errors.Loop(f"cannot resolve {path}", path=path)

    async def _resolve_parent(self, path: str, caller: Caller) -> tuple[DirInode, str]:
        parts = split_path(path)
        if not parts:
            raise errors.Invalid("the root has no parent", path="/")
        parent = await self.resolve("/" + "/".join(parts[:-1]), caller=caller)
        if not isinstance(parent, DirInode):
            raise errors.NotDir(f"not a directory: parent of {path}", path=path)
        return parent, parts[-1]

    # ---- names -----------------------------------------------------------------------------

    async def identity(self, name: str) -> User:
        """The user `name` stands for. A name nobody knows is given an id (journaled, so it is
        the same after a restart and on every node), as HDFS believes any user name; with
        `unknown_users = refuse` it is Denied."""
        users = self.perms.users
        found = users.user(name)
        if found is not None:
            return found
        if not users.map_unknown:
            raise errors.Denied(f"Unknown user: {name} (unknown_users = refuse)")
        low, high = users.auto_range
        await self.store.mutate(lambda ns: identities.plan_allocate(ns, name, low, high, users.taken))
        found = users.user(name)
        assert found is not None, f"{name} was given no id"
        return found

    # ---- narrow reads for the protocols: what is known now, never a UFS call ----------------

    def peek(self, ino: int) -> Inode:
        """The inode as the namespace knows it now (no UFS re-check); Stale if it is gone."""
        return self.ns.get(ino)

    def peek_fresh(self, ino: int) -> Inode | None:
        """The inode when its attributes need no re-check against the UFS now, else None (then
        `await getattr(ino)`): the hot path of NFS calls, without making a coroutine."""
        node = self.ns.get(ino)
        return None if self.discovery.due(node) else node

    def rechecks(self, node: Inode) -> bool:
        """Whether what is known of `node` is re-checked against its UFS on a clock (its mount's
        sync interval): then an answer about it may go stale with no change in the namespace."""
        return self.discovery.periodic(node)

    def peek_child(self, d: DirInode, name: str, caller: Caller) -> Inode | None:
        """Entry `name` of directory `d` (search permission checked) when it is known and needs no
        re-check against the UFS now, else None (then `await lookup(d.ino, name)`, which also
        handles "." and ".."): LOOKUP's hot path, without making a coroutine."""
        self.perms.require(d, caller, X)
        node = d.children.get(name)
        return None if node is None or self.discovery.due(node) else node

    def peek_path(self, path: str) -> Inode:
        """The object at `path` as the namespace knows it (no discovery, no permission check:
        for the doors' own configuration, such as an export's root)."""
        return self.ns.resolve(path)

    def fs_stats(self) -> FsStats:
        store = self.store
        return FsStats(
            inodes=len(store.ns.inodes),
            mounts=len(store.ns.mounts) + 1,
            last_txid=store.writer.last_txid,
            durable_txid=store.writer.durable_txid,
            checkpoint_txid=store.checkpoint_txid,
            writes_refused=store.refusal(),
        )

    def _file(self, ino: int) -> Inode:
        node = self.ns.get(ino)
        if node.is_dir:
            raise errors.IsDir(f"is a directory: {self.ns.path_of(ino)}")
        if not node.is_file:
            raise errors.Invalid(f"not a regular file: {self.ns.path_of(ino)}")
        return node

    def _writable_dir(self, dir_ino: int) -> DirInode:
        d = self.ns.get_dir(dir_ino)
        self.mounts.check_writable(d)
        return d

    def _path(self, dir_ino: int, name: str) -> str:
        return self.ns.path_of(dir_ino).rstrip("/") + "/" + name
