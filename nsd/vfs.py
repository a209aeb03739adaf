"""The one facade every protocol calls: resolution, under-storage write-through, staging, durability.

Theory of operation. The core works on inodes (what NFS handles name); path calls (admin
API, WebHDFS) resolve to a directory and a name and call the same core. Each mutation:
validate against the namespace (a doomed call fails before touching the UFS), change the UFS,
then plan again and commit through the MetaStore, which answers only once the journal record
is durable. Mutations of the same directory entry, or of the same file's content, are
serialised by locks so the UFS and the namespace change in the same order.

Permissions: every public operation takes the caller and checks it (nsd.permissions) before it
changes or reveals anything: search on each directory a path walks, r/w/x on the target, w+x on
the directory whose entries change, sticky directories, owner-only chmod/chown. Private helpers
(`_lookup`, `_resolve`) do not check; they serve operations that already did. The daemon's own
work (sealing stages, shutdown, the admin token holder) runs as `SYSTEM`, a superuser.

An object's UFS location is its primary link's canonical path (`Namespace.path_of`), never the
path a caller used, so symlinked directories and renamed files are found where they really are.

Writes at offsets go to a stage (nsd.staging) and are sealed, i.e. uploaded to the UFS and
journaled, on COMMIT, on a stable write, after `idle_seal_seconds` without writes, and at
shutdown. While staged, the inode's size and mtime in memory run ahead of the journal: like the
unstable data itself, they are lost in a crash.

With a block store (`blocks`), reads go through the cache (nsd.cache.reader) and each mount's
write type (nsd.cache.policy) says where sealed content goes: the UFS, blocks, or both. Content
in blocks only (MUST_CACHE, ASYNC_THROUGH) is journaled without a fingerprint and a complete
layout; nsd.cache.persister puts it in the UFS later.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import contextvars
import logging
import os
import stat as st
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Hashable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from nsd import errors, wcc
from nsd.blockstore import BlockStore
from nsd.cache import writes
from nsd.cache.ingest import Sealer
from nsd.cache.persister import Persister
from nsd.cache.policy import ReadType, WriteType, mount_types
from nsd.cache.service import Cache, CacheSettings
from nsd.cache.ttl import TtlEnforcer
from nsd.discovery import Discovery
from nsd.journal.ops import Op, RequestPersist, Rmdir, SetContent, Unlink
from nsd.metastore import MetaStore
from nsd.mounttable import MountTable, MountView, mount_settings
from nsd.namespace import DirInode, FileInode, Inode, Namespace
from nsd.namespace.inode import SPECIAL_KINDS
from nsd.namespace.layouts import unpersisted
from nsd.namespace.mounts import ROOT_MOUNT, plan_add_mount, plan_remove_mount
from nsd.namespace.names import split_path
from nsd.permissions import NOW, Now, Permissions, R, W, X
from nsd.reconcile import Reconciler
from nsd.staging import Stage, Stager
from nsd.ufs import Ufs, UfsStatus, open_ufs
from nsd.users import SYSTEM, Caller

__all__ = ["NOW", "SYSTEM", "Caller", "Now", "Vfs"]

log = logging.getLogger("nsd.vfs")

READ_CHUNK = 1 << 20
IDLE_SEAL_SECONDS = 5.0
SEAL_RETRY_MAX = 60.0  # backoff between attempts to seal a stage whose UFS keeps refusing


class KeyLocks:
    """asyncio locks by key, created on demand and dropped when nobody holds or waits."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, *keys: Hashable) -> AsyncIterator[None]:
        ordered = sorted(set(keys), key=repr)  # one global order: no deadlock between two callers
        for k in ordered:
            lock, users = self._locks.get(k, (asyncio.Lock(), 0))
            self._locks[k] = (lock, users + 1)
        acquired: list[asyncio.Lock] = []
        try:
            for k in ordered:
                lock = self._locks[k][0]
                await lock.acquire()
                acquired.append(lock)
            yield
        finally:
            for lock in acquired:
                lock.release()
            for k in ordered:
                lock, users = self._locks[k]
                if users == 1:
                    del self._locks[k]
                else:
                    self._locks[k] = (lock, users - 1)


def entry(dir_ino: int, name: str) -> tuple[str, int, str]:
    return ("entry", dir_ino, name)


def content(ino: int) -> tuple[str, int]:
    return ("content", ino)


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield b""


class Vfs:
    def __init__(
        self,
        store: MetaStore,
        mounts: MountTable,
        stage_dir: Path,
        *,
        idle_seal_seconds: float = IDLE_SEAL_SECONDS,
        perms: Permissions | None = None,
        blocks: BlockStore | None = None,
        cache_settings: CacheSettings | None = None,
    ):
        self.store = store
        self.perms = perms or Permissions()
        self.perms.users.attach(store)  # names nobody knows get ids journaled in this store
        self.mounts = mounts
        self.locks = KeyLocks()
        self.stager = Stager(stage_dir)
        self.discovery = Discovery(store, mounts, lambda ino: ino in self.stager.stages)
        self.idle_seal_seconds = idle_seal_seconds
        self.write_verifier = os.urandom(8)  # new each start: clients resend unstable writes
        self.started = time.monotonic()
        self._sealer: asyncio.Task[None] | None = None
        self.reconciler = Reconciler(self)
        self.cache: Cache | None = None
        self.persister: Persister | None = None
        self.ttl: TtlEnforcer | None = None
        if blocks is not None:
            settings = cache_settings or CacheSettings()
            self.cache = Cache(store, mounts, blocks, settings)
            self.cache.attach()
            self.persister = Persister(self, retry_max=settings.persist_retry_max)
            self.ttl = TtlEnforcer(self, interval=settings.ttl_interval)

    def start(self) -> None:
        """Start the background persister and TTL enforcer (needs the running loop)."""
        if self.persister is not None:
            self.persister.start()
        if self.ttl is not None:
            self.ttl.start()

    @property
    def ns(self) -> Namespace:
        return self.store.ns

    async def close(self) -> None:
        """Seal every stage (nothing acknowledged as stable depends on this; it saves resends)."""
        await self.reconciler.close()
        if self.ttl is not None:
            await self.ttl.close()
        if self.persister is not None:
            await self.persister.close()  # an interrupted upload is all or nothing; resumed next start
        await self.discovery.close()  # after the background tasks that may wait on a listing
        if self._sealer is not None:
            self._sealer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sealer
        for ino in list(self.stager.stages):
            try:
                await self.commit(ino, caller=SYSTEM)
            except errors.NsdError as e:
                log.warning("could not seal staged writes of inode %d at shutdown: %s", ino, e)

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

    async def read_at(
        self, ino: int, offset: int, count: int, *, caller: Caller, read_type: ReadType | None = None
    ) -> tuple[bytes | memoryview, bool]:
        """Up to `count` bytes from `offset` and whether they reach the end of the file.
        `read_type` overrides the mount's for this call. The bytes may be a view of a cached
        block (read-only, not a copy)."""
        node = self._file(ino)
        self.perms.require_data(node, caller, R)
        stage = self.stager.get(ino)
        if stage is not None:
            data = await stage.read(offset, count)
        elif offset >= node.size or count <= 0:
            data = b""
        elif self.cache is not None:
            assert isinstance(node, FileInode)
            rt = read_type or self.cache.types(node.mount)[0]
            data = await self.cache.reader.read(node, offset, min(count, node.size - offset), rt)
        else:
            want = min(count, node.size - offset)
            ufs, rel = self.mounts.locate(node)
            data = await ufs.read(rel, offset, want)
            if len(data) < want:
                raise errors.Corrupt(f"under-storage file is shorter than its recorded size: inode {ino}")
        return data, offset + len(data) >= node.size

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

    # ---- namespace mutations by inode ------------------------------------------------------

    async def create(
        self, dir_ino: int, name: str, *, caller: Caller, mode: int = 0o644, exclusive: bool = False
    ) -> Inode:
        """An empty file (UNCHECKED: an existing file is returned as it is; exclusive: Exists)."""
        self.store.admit()
        async with self.locks.hold(entry(dir_ino, name)):
            d = self._writable_dir(dir_ino)
            self.perms.require(d, caller, X)
            existing = await self._lookup_or_none(dir_ino, name)
            if existing is not None:
                if exclusive:
                    raise errors.Exists(f"file exists: {self._path(dir_ino, name)}")
                if not existing.is_file:
                    raise errors.IsDir(f"is a directory: {self._path(dir_ino, name)}")
                return existing
            self.perms.require(d, caller, W | X)
            return await self._create_file(dir_ino, name, _nothing(), caller, mode)

    def _path(self, dir_ino: int, name: str) -> str:
        return self.ns.path_of(dir_ino).rstrip("/") + "/" + name

    async def _create_file(
        self, dir_ino: int, name: str, chunks: AsyncIterable[bytes], caller: Caller, mode: int
    ) -> Inode:
        """Write the content (UFS and/or blocks, per write type), then journal the inode and its
        content in one group."""
        self.store.admit()
        now = self.store.now_ns()
        self.ns.plan_mknod(dir_ino, name, st.S_IFREG | mode, caller.uid, caller.gid, now)
        d = self._writable_dir(dir_ino)
        ufs, rel = self.mounts.locate_child(d, name)
        wt = self._write_type(d.mount)
        async with self._sealing() as sealer:
            content = await self._whole_content(sealer, wt, chunks, ufs, rel)

            def plan(ns: Namespace) -> list[Op]:
                made = ns.plan_mknod(dir_ino, name, st.S_IFREG | mode, caller.uid, caller.gid, self.store.now_ns())
                # The inode exists only once the MkNode applies, so its content ops are built directly.
                return [made, *_content_ops(made.ino, made.time_ns, content, wt)]

            ops = await self.store.mutate(plan)
        ino: int = ops[0].ino  # type: ignore[attr-defined]
        self._content_written(ino, wt)
        return self.ns.get(ino)

    # ---- write types (nsd.cache) ---------------------------------------------------------

    def _write_type(self, mount_id: int) -> WriteType:
        return self.cache.types(mount_id)[1] if self.cache is not None else WriteType.THROUGH

    def _sealing(self) -> Sealer | contextlib.nullcontext[None]:
        return Sealer(self.cache) if self.cache is not None else contextlib.nullcontext()

    async def _whole_content(
        self, sealer: Sealer | None, wt: WriteType, chunks: AsyncIterable[bytes], ufs: Ufs, rel: str
    ) -> writes.Content:
        if sealer is None or not wt.caches:
            status = await ufs.write(rel, chunks)
            return writes.Content(status.size, status.fingerprint(), None)
        return await writes.whole(sealer, wt, chunks, ufs, rel)

    def _content_written(self, ino: int, wt: WriteType) -> None:
        node = self.ns.inodes.get(ino)
        if node is not None and not unpersisted(node):
            self.discovery.mark_checked(ino)
        if wt is WriteType.ASYNC_THROUGH and self.persister is not None:
            self.persister.kick(ino)

    async def _commit_content(
        self, ino: int, content: writes.Content, wt: WriteType, *, done: int | None = None
    ) -> None:
        await self.store.mutate(lambda ns: _content_ops(ino, self.store.now_ns(), content, wt, ns), done=done)
        self._content_written(ino, wt)

    async def mkdir_at(self, dir_ino: int, name: str, *, caller: Caller, mode: int = 0o755) -> Inode:
        self.store.admit()
        async with self.locks.hold(entry(dir_ino, name)):
            d = self._writable_dir(dir_ino)
            self.perms.require(d, caller, W | X)
            if await self._lookup_or_none(dir_ino, name) is not None:
                raise errors.Exists(f"file exists: {self._path(dir_ino, name)}")
            mk = self.ns.plan_mknod(dir_ino, name, st.S_IFDIR | mode, caller.uid, caller.gid, self.store.now_ns())
            ufs, rel = self.mounts.locate_child(d, name)
            await ufs.mkdir(rel)
            ops = await self.store.mutate(
                lambda ns: ns.plan_mknod(mk.parent, name, mk.mode, mk.uid, mk.gid, self.store.now_ns())
            )
            self.discovery.mark_listed(ops[0].ino)  # type: ignore[attr-defined]
            return self.ns.get(ops[0].ino)  # type: ignore[attr-defined]

    async def symlink_at(self, dir_ino: int, name: str, target: str, *, caller: Caller) -> Inode:
        """Symlinks live in the namespace only: object stores have none."""
        self.store.admit()
        async with self.locks.hold(entry(dir_ino, name)):
            self.perms.require(self._writable_dir(dir_ino), caller, W | X)
            if await self._lookup_or_none(dir_ino, name) is not None:
                raise errors.Exists(f"file exists: {self._path(dir_ino, name)}")
            ops = await self.store.mutate(
                lambda ns: ns.plan_mknod(
                    dir_ino, name, st.S_IFLNK | 0o777, caller.uid, caller.gid, self.store.now_ns(), target
                )
            )
            return self.ns.get(ops[0].ino)  # type: ignore[attr-defined]

    async def mknod_at(self, dir_ino: int, name: str, kind: int, *, caller: Caller, mode: int = 0o644) -> Inode:
        """Make a FIFO or socket (`kind` S_IFIFO or S_IFSOCK); namespace only, as symlinks are.
        Other kinds (devices) raise NotSupported."""
        if kind not in SPECIAL_KINDS:
            raise errors.NotSupported(f"cannot make file type {kind:o}: {self._path(dir_ino, name)}")
        self.store.admit()
        async with self.locks.hold(entry(dir_ino, name)):
            self.perms.require(self._writable_dir(dir_ino), caller, W | X)
            if await self._lookup_or_none(dir_ino, name) is not None:
                raise errors.Exists(f"file exists: {self._path(dir_ino, name)}")
            mode = kind | (mode & 0o7777)
            ops = await self.store.mutate(
                lambda ns: ns.plan_mknod(dir_ino, name, mode, caller.uid, caller.gid, self.store.now_ns())
            )
            return self.ns.get(ops[0].ino)  # type: ignore[attr-defined]

    async def link_at(self, ino: int, dir_ino: int, name: str, *, caller: Caller) -> Inode:
        self.store.admit()
        async with self.locks.hold(entry(dir_ino, name)):
            node = self.ns.get(ino)
            d = self._writable_dir(dir_ino)
            self.perms.require(d, caller, W | X)
            if await self._lookup_or_none(dir_ino, name) is not None:
                raise errors.Exists(f"file exists: {self._path(dir_ino, name)}")
            self.ns.plan_link(ino, dir_ino, name, self.store.now_ns())
            if node.is_file and not unpersisted(node):  # no UFS copy yet: the persist writes one
                ufs, src = self.mounts.locate(node)
                await ufs.link(src, self.mounts.locate_child(d, name)[1])
            await self.store.mutate(lambda ns: ns.plan_link(ino, dir_ino, name, self.store.now_ns()))
            return node

    async def remove_at(self, dir_ino: int, name: str, *, caller: Caller) -> None:
        """Remove a file or symlink entry (its staged writes go with its last link)."""
        self.store.admit()
        async with self.locks.hold(entry(dir_ino, name)):
            d = self._writable_dir(dir_ino)
            node = await self.lookup(dir_ino, name, caller=caller)
            self.perms.require_delete(d, node, caller)
            self.ns.plan_unlink(dir_ino, name, self.store.now_ns())
            async with self.locks.hold(content(node.ino)):
                if node.is_file:
                    ufs, rel = self.mounts.locate_child(d, name)
                    async with self.reconciler.change("remove", [dir_ino, name]) as intent:
                        await _delete_if_present(ufs, rel)
                        await self.store.mutate(
                            lambda ns: ns.plan_unlink(dir_ino, name, self.store.now_ns()), done=intent
                        )
                else:
                    await self.store.mutate(lambda ns: ns.plan_unlink(dir_ino, name, self.store.now_ns()))
                if node.ino not in self.ns.inodes:
                    self.stager.drop(node.ino)

    async def rmdir_at(self, dir_ino: int, name: str, *, caller: Caller) -> None:
        self.store.admit()
        async with self.locks.hold(entry(dir_ino, name)):
            d = self._writable_dir(dir_ino)
            node = await self.lookup(dir_ino, name, caller=caller)
            self.perms.require_delete(d, node, caller)
            if isinstance(node, DirInode):
                await self.discovery.ensure_listed(node)  # empty here only if empty in the UFS too
            self.ns.plan_rmdir(dir_ino, name, self.store.now_ns())
            ufs, rel = self.mounts.locate_child(d, name)
            async with self.reconciler.change("remove", [dir_ino, name]) as intent:
                await _delete_if_present(ufs, rel)
                await self.store.mutate(lambda ns: ns.plan_rmdir(dir_ino, name, self.store.now_ns()), done=intent)

    async def remove_tree_at(self, dir_ino: int, name: str, *, caller: Caller) -> None:
        """Remove a directory and everything below it (files' stages too)."""
        self.store.admit()
        async with self.locks.hold(entry(dir_ino, name)):
            d = self._writable_dir(dir_ino)
            node = await self.lookup(dir_ino, name, caller=caller)
            if not isinstance(node, DirInode):
                raise errors.NotDir(f"not a directory: {self._path(dir_ino, name)}")
            self.perms.require_delete_tree(d, node, caller)
            if any(m.point is node or _below(m.point, node) for m in self.ns.mounts.values()):
                raise errors.Invalid(f"a mount point is at or below {self._path(dir_ino, name)}: unmount it first")
            ufs, rel = self.mounts.locate_child(d, name)
            before = set(self.stager.stages)
            async with self.reconciler.change("remove", [dir_ino, name]) as intent:
                await _delete_if_present(ufs, rel, recursive=True)
                await self.store.mutate(
                    lambda ns: _plan_remove_tree(ns, dir_ino, name, self.store.now_ns()), done=intent
                )
            for ino in before - self.ns.inodes.keys():
                self.stager.drop(ino)

    async def rename_at(self, src_dir: int, src_name: str, dst_dir: int, dst_name: str, *, caller: Caller) -> None:
        """POSIX rename: atomic, replaces a file or an empty directory at the destination."""
        self.store.admit()
        async with self.locks.hold(entry(src_dir, src_name), entry(dst_dir, dst_name)):
            src, dst = self._writable_dir(src_dir), self._writable_dir(dst_dir)
            node = await self.lookup(src_dir, src_name, caller=caller)
            self.perms.require_delete(src, node, caller)
            self.perms.require(dst, caller, W | X)
            replaced = await self._lookup_or_none(dst_dir, dst_name)
            if replaced is not None and replaced is not node:
                self.perms.require_delete(dst, replaced, caller)
            if node.is_dir and src is not dst:
                self.perms.require(node, caller, W)  # its ".." changes, as Linux requires
            self.ns.plan_rename(src_dir, src_name, dst_dir, dst_name, self.store.now_ns())
            # A file's content lock keeps a persist from uploading to the old path meanwhile.
            async with self.locks.hold(*([content(node.ino)] if node.is_file else [])):

                def plan(ns: Namespace) -> Op:
                    return ns.plan_rename(src_dir, src_name, dst_dir, dst_name, self.store.now_ns())

                if node is not replaced and unpersisted(node):
                    # Only in blocks: nothing to move; what it replaces must go from the UFS too.
                    if replaced is not None and replaced.is_file and not unpersisted(replaced):
                        ufs, dst_rel = self.mounts.locate_child(dst, dst_name)
                        async with self.reconciler.change("rename", [src_dir, src_name, dst_dir, dst_name]) as i:
                            await _delete_if_present(ufs, dst_rel)
                            await self.store.mutate(plan, done=i)
                    else:
                        await self.store.mutate(plan)
                elif not node.namespace_only and node is not replaced:
                    ufs, src_rel = self.mounts.locate_child(src, src_name)
                    async with self.reconciler.change("rename", [src_dir, src_name, dst_dir, dst_name]) as i:
                        await ufs.rename(src_rel, self.mounts.locate_child(dst, dst_name)[1])
                        await self.store.mutate(plan, done=i)
                else:
                    await self.store.mutate(plan)
            if replaced is not None and replaced.ino not in self.ns.inodes:
                self.stager.drop(replaced.ino)

    async def setattr_at(
        self,
        ino: int,
        *,
        caller: Caller,
        mode: int | None = None,
        uid: int | None = None,
        gid: int | None = None,
        size: int | None = None,
        atime: int | Now | None = None,
        mtime: int | Now | None = None,
        precondition: Callable[[Inode], None] | None = None,
    ) -> Inode:
        """Change attributes; a size change truncates or zero-extends the content, durably.

        A time of NOW is the server's clock (allowed to writers; other times to the owner).
        `precondition(node)` (NFS's ctime guard) runs under the content lock right before the
        first change, in the same step for attribute-only changes; what it raises stops the call.
        """
        node = self.ns.get(ino)
        self.mounts.check_writable(node)
        self.perms.require_setattr(node, caller, mode=mode, uid=uid, gid=gid, size=size, atime=atime, mtime=mtime)
        self.store.admit()
        if size is None and precondition is None:
            await self._set_meta(ino, mode, uid, gid, atime, mtime)
            return self.ns.get(ino)
        async with self.locks.hold(content(ino)):
            if precondition is not None:
                precondition(self.ns.get(ino))
            if size is not None:
                await self._resize_locked(ino, size)
            await self._set_meta(ino, mode, uid, gid, atime, mtime)
        return self.ns.get(ino)

    async def _set_meta(
        self,
        ino: int,
        mode: int | None,
        uid: int | None,
        gid: int | None,
        atime: int | Now | None,
        mtime: int | Now | None,
    ) -> None:
        if (mode, uid, gid, atime, mtime) == (None, None, None, None, None):
            return
        now = self.store.now_ns()
        at = now if atime is NOW else atime
        mt = now if mtime is NOW else mtime
        assert not isinstance(at, Now) and not isinstance(mt, Now)
        await self.store.mutate(
            lambda ns: ns.plan_setattr(
                ino, mode=mode, uid=uid, gid=gid, atime=at, mtime=mt, time_ns=self.store.now_ns()
            )
        )

    async def _resize_locked(self, ino: int, size: int) -> None:
        """Truncate or zero-extend `ino` to `size`; the caller holds its content lock."""
        if size < 0:
            raise errors.Invalid(f"negative size {size}")
        node = self._file(ino)
        stage = self.stager.get(ino)
        if stage is None and (self._write_type(node.mount).caches or unpersisted(node)):
            stage = await self._stage(node)  # blocks are immutable: re-sealed from a stage
        if stage is not None:
            await stage.truncate(size)
            await self._seal(node, stage)
            return
        ufs, rel = self.mounts.locate(node)
        async with self.reconciler.change("content", [ino]) as intent:
            status = await ufs.truncate(rel, size)
            upto = min(size, node.size)  # blocks before the cut are unchanged
            kept = [e for e in getattr(node, "layout", None) or () if e[0] + e[1] <= upto]
            await self._content_changed(ino, status, kept, done=intent)

    # ---- content by inode ----------------------------------------------------------------

    async def write_at(self, ino: int, offset: int, data: bytes | memoryview, *, stable: bool, caller: Caller) -> Inode:
        """Write at `offset`. Unstable: staged (lost in a crash); stable: sealed before return."""
        self.store.admit()
        if offset < 0:
            raise errors.Invalid(f"negative offset {offset}")
        async with self.locks.hold(content(ino)):
            node = self._file(ino)
            self.perms.require_data(node, caller, W)
            self.mounts.check_writable(node)
            stage = await self._stage(node)
            await stage.write(offset, data)
            with wcc.changing(self.ns.inodes.get):  # not journaled: reported for wcc_data here
                node.size = stage.size
                node.mtime = node.ctime = self.store.now_ns()
            if stable:
                await self._seal(node, stage)
            return node

    async def commit(self, ino: int, *, caller: Caller) -> Inode:
        """Make every staged write of `ino` durable (UFS and journal). A no-op when none is staged."""
        async with self.locks.hold(content(ino)):
            node = self.ns.get(ino)
            self.perms.require_data(node, caller, W)
            stage = self.stager.get(ino)
            if stage is not None:
                self.store.admit()
                await self._seal(node, stage)
            return node

    async def _stage(self, node: Inode) -> Stage:
        stage = self.stager.get(node.ino)
        if stage is None:
            stage = self.stager.open(node.ino, self._base_reader(node) if node.size else None, node.size)
            if self._sealer is None:
                # its own empty context: this call's wcc watch must not follow the sealer around
                self._sealer = asyncio.get_running_loop().create_task(
                    self._seal_idle_stages(), context=contextvars.Context()
                )
        return stage

    def _base_reader(self, node: Inode) -> Callable[[int, int], Awaitable[bytes | memoryview]]:
        """How a stage reads the content under it: the file as journaled (`size` bytes, while the
        inode's size runs ahead with the staged writes), through the cache, else the UFS."""
        size = node.size
        cache = self.cache
        if cache is not None and isinstance(node, FileInode):
            file = node

            async def cached(offset: int, length: int) -> bytes | memoryview:
                return await cache.reader.read(file, offset, length, ReadType.CACHE, size=size)

            return cached

        async def direct(offset: int, length: int) -> bytes:
            ufs, rel = self.mounts.locate(node)  # where it is now: a rename may have moved it
            data = await ufs.read(rel, offset, length)
            if len(data) < length:
                raise errors.Corrupt(f"under-storage file is shorter than its recorded size: {ufs.uri} {rel}")
            return data

        return direct

    async def _seal(self, node: Inode, stage: Stage) -> None:
        """Seal the stage per the write type (upload, and/or blocks), journal the new content,
        drop the stage. Caller holds content lock."""
        ufs, rel = self.mounts.locate(node)
        assert isinstance(node, FileInode)
        wt = writes.effective(node, self._write_type(node.mount))
        async with self.reconciler.change("content", [node.ino]) as intent:
            try:
                if self.cache is None or wt is WriteType.THROUGH:
                    status = await stage.upload(ufs, rel)
                    # Cached blocks below the first staged write still hold the same bytes.
                    keep = min(stage.dirty_from, stage.size)
                    layout = [e for e in node.layout or () if e[0] + e[1] <= keep]
                    await self._content_changed(node.ino, status, layout, done=intent)
                else:
                    sealer, new = await writes.from_stage(self.cache, wt, stage, node.layout, ufs, rel)
                    with contextlib.closing(sealer):
                        await self._commit_content(node.ino, new, wt, done=intent)
            except BaseException:
                # Handed over, then something failed: the UFS has the file now. The stage is
                # spent (never written through again) and the intent settles on what the UFS has.
                if stage.handed_over:
                    self.stager.drop(node.ino)
                raise
        self.stager.drop(node.ino)

    async def _content_changed(
        self, ino: int, status: UfsStatus, layout: list[Any] | None = None, *, done: int | None = None
    ) -> None:
        """Journal new content whose UFS copy has `status`; its fingerprint is fresh as of now.
        `layout`: cached blocks whose bytes the change left as they were. `done`: the UFS intent
        this resolves."""
        await self.store.mutate(
            lambda ns: ns.plan_set_content(ino, status.size, self.store.now_ns(), status.fingerprint(), layout or None),
            done=done,
        )
        self.discovery.mark_checked(ino)

    async def _seal_idle_stages(self) -> None:
        retry: dict[int, tuple[float, float]] = {}  # ino -> (not before, next delay) after a failure
        while True:
            await asyncio.sleep(min(1.0, self.idle_seal_seconds))
            if self.store.refusal() is not None:
                continue  # the journal has no room: staged data waits (it was never acknowledged)
            now = time.monotonic()
            for ino in self.stager.idle(self.idle_seal_seconds):
                not_before, delay = retry.get(ino, (0.0, 1.0))
                if now < not_before:
                    continue
                try:
                    await self.commit(ino, caller=SYSTEM)
                    retry.pop(ino, None)
                except errors.NsdError as e:
                    retry[ino] = (now + delay, min(delay * 2, SEAL_RETRY_MAX))
                    log.warning("sealing idle writes of inode %d failed (retry in %.0f s): %s", ino, delay, e)
            for ino in [i for i in retry if i not in self.stager.stages]:
                del retry[ino]

    async def append_at(self, ino: int, chunks: AsyncIterable[bytes], *, caller: Caller) -> Inode:
        """Append durably. Without a stage the UFS appends natively where it can (no rewrite)."""
        self.store.admit()
        async with self.locks.hold(content(ino)):
            node = self._file(ino)
            self.perms.require(node, caller, W)
            self.mounts.check_writable(node)
            stage = self.stager.get(ino)
            if stage is not None:
                async for chunk in chunks:
                    await stage.write(stage.size, chunk)
                await self._seal(node, stage)
                return node
            ufs, rel = self.mounts.locate(node)
            assert isinstance(node, FileInode)
            wt = writes.effective(node, self._write_type(node.mount))
            async with self.reconciler.change("append", [ino, node.size]) as intent:
                if self.cache is not None and wt.caches:
                    sealer, new = await writes.append(self.cache, wt, node, chunks, ufs, rel)
                    with contextlib.closing(sealer):
                        await self._commit_content(ino, new, wt, done=intent)
                    return node
                old_size = node.size
                status = await ufs.append(rel, chunks, at=old_size)
                # Blocks before the old end are unchanged by an append: they stay cached.
                layout = [e for e in node.layout or () if e[0] + e[1] <= old_size]
                await self._content_changed(ino, status, layout, done=intent)
            return node

    async def replace_content(self, ino: int, chunks: AsyncIterable[bytes], *, caller: Caller) -> Inode:
        """Replace a file's whole content, durably; staged writes are superseded."""
        self.store.admit()
        async with self.locks.hold(content(ino)):
            node = self._file(ino)
            self.perms.require(node, caller, W)
            self.mounts.check_writable(node)
            self.stager.drop(ino)
            ufs, rel = self.mounts.locate(node)
            wt = self._write_type(node.mount)
            async with self.reconciler.change("content", [ino]) as intent, self._sealing() as sealer:
                new = await self._whole_content(sealer, wt, chunks, ufs, rel)
                await self._commit_content(ino, new, wt, done=intent)
            return node

    # ---- by path (admin API, WebHDFS) ----------------------------------------------------

    async def stat(self, path: str, *, caller: Caller, follow: bool = True) -> Inode:
        return await self.resolve(path, caller=caller, follow=follow)

    async def access(self, path: str, want: int, *, caller: Caller) -> Inode:
        """Raise Denied unless `caller` holds the rwx bits `want` on `path` (WebHDFS CHECKACCESS)."""
        node = await self.resolve(path, caller=caller)
        self.perms.require(node, caller, want)
        return node

    async def list(
        self, path: str, *, caller: Caller, start_after: str | None = None, limit: int | None = None
    ) -> list[tuple[str, Inode]]:
        """Entries of a directory in name order (read and search permission, as HDFS); a file
        lists as itself under the name "".

        A listing that starts (no `start_after`) syncs the directory with the UFS; while that
        runs, a page is answered as soon as its names are final (see Discovery.window).
        """
        node = await self.resolve(path, caller=caller)
        if not isinstance(node, DirInode):
            return [("", node)]
        self.perms.require(node, caller, R | X)
        await self.discovery.window(node, start_after, limit)
        entries = self.ns.list_names(node.ino, start_after, limit)
        bound = self.discovery.pending_above(node)
        return entries if bound is None else [e for e in entries if e[0] <= bound]

    async def readlink(self, path: str, *, caller: Caller) -> str:
        node = await self.resolve(path, caller=caller, follow=False)
        target = getattr(node, "target", None)
        if target is None:
            raise errors.Invalid(f"not a symbolic link: {path}", path=path)
        return target

    async def open_read(self, path: str, *, caller: Caller) -> Inode:
        """The regular file at `path`, which `caller` may read (r bit, as open(2) checks)."""
        node = await self.resolve(path, caller=caller)
        if node.is_dir:
            raise errors.IsDir(f"is a directory: {path}", path=path)
        self.perms.require(node, caller, R)
        return node

    async def read(
        self,
        path: str,
        offset: int = 0,
        length: int | None = None,
        *,
        caller: Caller,
        read_type: ReadType | None = None,
    ) -> AsyncIterator[bytes]:
        """Stream a file's bytes from `offset`, `length` bytes at most (None: to the end)."""
        node = await self.open_read(path, caller=caller)
        end = node.size if length is None else min(node.size, offset + length)
        pos = max(0, offset)
        while pos < end:
            chunk, _ = await self.read_at(node.ino, pos, min(READ_CHUNK, end - pos), caller=caller, read_type=read_type)
            if not chunk:
                return
            pos += len(chunk)
            yield bytes(chunk)  # a copy if it is a view: streams go on to writers that want bytes

    async def mkdir(self, path: str, *, caller: Caller, mode: int = 0o755, parents: bool = False) -> Inode:
        if not parents:
            parent, name = await self._resolve_parent(path, caller)
            return await self.mkdir_at(parent.ino, name, caller=caller, mode=mode)
        parts = split_path(path)
        node: Inode = self.ns.root
        for name in parts:
            if not isinstance(node, DirInode):
                raise errors.NotDir(f"not a directory: a component of {path}", path=path)
            self.perms.require(node, caller, X)
            found = await self._lookup_or_none(node.ino, name)
            if found is None:
                try:
                    found = await self.mkdir_at(node.ino, name, caller=caller, mode=mode)
                except errors.Exists:  # made meanwhile by someone else: fine for mkdir -p
                    found = await self._lookup(node.ino, name)
            elif found.is_symlink:
                found = await self.resolve(self.ns.path_of(found.ino), caller=caller)
            node = found
        if not isinstance(node, DirInode):
            raise errors.Exists(f"file exists: {path}", path=path)
        return node

    async def write_file(
        self,
        path: str,
        chunks: AsyncIterable[bytes],
        *,
        caller: Caller,
        mode: int = 0o644,
        overwrite: bool = True,
    ) -> Inode:
        """Create or replace a file with the streamed bytes; durable in the UFS and journal on return."""
        self.store.admit()
        parent, name = await self._resolve_parent(path, caller)
        async with self.locks.hold(entry(parent.ino, name)):
            self.perms.require(self._writable_dir(parent.ino), caller, X)
            existing = await self._lookup_or_none(parent.ino, name)
            if existing is None:
                self.perms.require(parent, caller, W | X)
                return await self._create_file(parent.ino, name, chunks, caller, mode)
            if existing.is_dir:
                raise errors.IsDir(f"is a directory: {path}", path=path)
            if not overwrite:
                raise errors.Exists(f"file exists: {path}", path=path)
            return await self.replace_content(existing.ino, chunks, caller=caller)

    async def append(self, path: str, chunks: AsyncIterable[bytes], *, caller: Caller) -> Inode:
        return await self.append_at((await self.resolve(path, caller=caller)).ino, chunks, caller=caller)

    async def truncate(self, path: str, size: int, *, caller: Caller) -> Inode:
        node = await self.resolve(path, caller=caller)
        self.perms.require(node, caller, W)  # strictly the w bit, as truncate(2) and HDFS
        return await self.setattr_at(node.ino, caller=caller, size=size)

    async def setattr(
        self,
        path: str,
        *,
        caller: Caller,
        mode: int | None = None,
        uid: int | None = None,
        gid: int | None = None,
        atime: int | Now | None = None,
        mtime: int | Now | None = None,
    ) -> Inode:
        node = await self.resolve(path, caller=caller)
        return await self.setattr_at(node.ino, caller=caller, mode=mode, uid=uid, gid=gid, atime=atime, mtime=mtime)

    async def symlink(self, target: str, path: str, *, caller: Caller) -> Inode:
        parent, name = await self._resolve_parent(path, caller)
        return await self.symlink_at(parent.ino, name, target, caller=caller)

    async def link(self, existing: str, path: str, *, caller: Caller) -> Inode:
        node = await self.resolve(existing, caller=caller, follow=False)
        parent, name = await self._resolve_parent(path, caller)
        return await self.link_at(node.ino, parent.ino, name, caller=caller)

    async def remove(self, path: str, *, caller: Caller, recursive: bool = False) -> None:
        parent, name = await self._resolve_parent(path, caller)
        node = await self.lookup(parent.ino, name, caller=caller)
        if not isinstance(node, DirInode):
            await self.remove_at(parent.ino, name, caller=caller)
        elif recursive:
            await self.remove_tree_at(parent.ino, name, caller=caller)
        else:
            await self.discovery.ensure_listed(node)
            if node.children:
                raise errors.NotEmpty(f"directory not empty: {path}", path=path)
            await self.rmdir_at(parent.ino, name, caller=caller)

    async def rename(self, src: str, dst: str, *, caller: Caller) -> None:
        sp, sn = await self._resolve_parent(src, caller)
        dp, dn = await self._resolve_parent(dst, caller)
        await self.rename_at(sp.ino, sn, dp.ino, dn, caller=caller)

    # ---- mounts and sync -----------------------------------------------------------------

    def mount_table(self) -> builtins.list[MountView]:
        return self.mounts.views()

    async def mount(
        self, path: str, uri: str, *, caller: Caller, readonly: bool = False, options: dict[str, str] | None = None
    ) -> MountView:
        """Mount `uri` at `path` once the store answers; journaled, so it survives restarts.
        Superusers only: a mount decides what every user sees below it."""
        self.perms.require_super(caller)
        self.store.admit()
        options = dict(options or {})
        mount_settings(uri, options)
        mount_types(options, ReadType.CACHE, WriteType.THROUGH)  # a bad read_type/write_type fails here
        parent, name = await self._resolve_parent(path, caller)
        await self._lookup_or_none(parent.ino, name)  # an existing UFS directory there must be seen
        probe = open_ufs(uri, options)
        try:
            try:
                root = await probe.stat("")
                if not root.is_dir:
                    raise errors.NotDir(f"{uri} is not a directory", path=path)
            except errors.NotFound:
                await probe.mkdir("")
        finally:
            await probe.close()
        async with self.locks.hold(entry(parent.ino, name)):
            ops = await self.store.mutate(
                lambda ns: plan_add_mount(
                    ns,
                    path,
                    uri,
                    readonly=readonly,
                    options=options,
                    uid=caller.uid,
                    gid=caller.gid,
                    time_ns=self.store.now_ns(),
                )
            )
        mount_id = ops[0].mount_id  # type: ignore[attr-defined]
        return next(v for v in self.mounts.views() if v.mount_id == mount_id)

    async def unmount(self, path: str, *, caller: Caller) -> None:
        """Drop the mount and everything below it from the namespace; the UFS is never touched."""
        self.store.admit()
        self.perms.require_super(caller)
        node = await self.resolve(path, caller=caller, follow=False)
        parent = node.parent
        async with self.locks.hold(entry(parent.ino, node.name)):
            ops = await self.store.mutate(lambda ns: plan_remove_mount(ns, path, self.store.now_ns()))
        for ino in list(self.stager.stages):
            if ino not in self.ns.inodes:
                self.stager.drop(ino)
        await self.mounts.forget(ops[0].mount_id)  # type: ignore[attr-defined]

    async def sync(self, path: str, *, caller: Caller, recursive: bool = False) -> int:
        """Re-check `path` against the UFS now, whatever the interval; directories listed."""
        return await self.discovery.sync_tree(await self.resolve(path, caller=caller), recursive)

    # ==== Added for WebHDFS (issue 7): xattrs, concat, content summary, capacity ===============

    async def get_xattrs(self, path: str, *, caller: Caller) -> dict[str, bytes]:
        """Extended attributes of the object at `path` (symlinks followed; read permission, as
        HDFS), name -> value."""
        return self.ns.get_xattrs((await self.access(path, R, caller=caller)).ino)

    async def set_xattr(
        self, path: str, name: str, value: bytes, *, caller: Caller, create: bool = True, replace: bool = True
    ) -> Inode:
        """Set xattr `name`, durably (write permission). Without `create` it must exist already
        (else NotFound); without `replace` it must not (else Exists)."""
        self.store.admit()
        node = await self.access(path, W, caller=caller)
        async with self.locks.hold(("xattr", node.ino)):
            exists = name in self.ns.xattrs.get(node.ino, ())
            if exists and not replace:
                raise errors.Exists(f"xattr {name} already exists on {path}", path=path)
            if not exists and not create:
                raise errors.NotFound(f"xattr {name} does not exist on {path}", path=path)
            await self.store.mutate(lambda ns: ns.plan_setxattr(node.ino, name, value, self.store.now_ns()))
            return node

    async def remove_xattr(self, path: str, name: str, *, caller: Caller) -> Inode:
        """Remove xattr `name`, durably (write permission); NotFound if the object has none."""
        self.store.admit()
        node = await self.access(path, W, caller=caller)
        async with self.locks.hold(("xattr", node.ino)):
            await self.store.mutate(lambda ns: ns.plan_removexattr(node.ino, name, self.store.now_ns()))
            return node

    async def concat(self, target: str, sources: Sequence[str], *, caller: Caller) -> Inode:
        """Append the sources' bytes to `target` in order, then remove the sources.

        Needs write on the target, read on each source and the right to remove it, all checked
        before anything moves. Two durable steps, not one: a crash between them leaves the data
        in both places (never lost). Cost: the sources' bytes are copied once, through one
        append to the target.
        """
        self.store.admit()
        node = self._file((await self.resolve(target, caller=caller)).ino)
        self.perms.require(node, caller, W)
        files = []
        for src in sources:
            s = await self.open_read(src, caller=caller)
            if s.ino == node.ino:
                raise errors.Invalid(f"concat: target {target} is among the sources", path=target)
            parent, _ = await self._resolve_parent(src, caller)
            self.perms.require_delete(parent, s, caller)
            files.append((src, self._file(s.ino)))

        async def joined() -> AsyncIterator[bytes]:
            for src, f in files:
                async for chunk in self.read(src, 0, f.size, caller=caller):
                    yield chunk

        await self.append_at(node.ino, joined(), caller=caller)
        for src, _ in files:
            await self.remove(src, caller=caller)
        return node

    async def content_summary(self, path: str, *, caller: Caller) -> tuple[int, int, int]:
        """(bytes, files, directories) at and below `path`; a directory counts itself.

        Every directory counted must grant read and search (HDFS's subtree check). Symlinks
        count as files of length 0. Directories not yet listed from their UFS are listed first.
        Cost: O(objects below path).
        """
        node = await self.resolve(path, caller=caller)
        length = files = dirs = 0
        todo = [node]
        while todo:
            n = todo.pop()
            if isinstance(n, DirInode):
                self.perms.require(n, caller, R | X)
                dirs += 1
                await self.discovery.ensure_listed(n)
                todo.extend(n.children.values())
            else:
                files += 1
                length += n.size if n.is_file else 0
        return length, files, dirs

    async def capacity(self) -> tuple[int, int, int]:
        """(capacity, used, remaining) bytes of the root under-storage; zeros when it cannot tell."""
        return await self.mounts.ufs(ROOT_MOUNT).usage() or (0, 0, 0)


async def _delete_if_present(ufs: Ufs, rel: str, *, recursive: bool = False) -> None:
    """Delete from the UFS; already gone there is fine (the namespace entry still has to go)."""
    with contextlib.suppress(errors.NotFound):
        await ufs.delete(rel, recursive=recursive)


def _below(node: Inode, ancestor: DirInode) -> bool:
    d = node.parent
    while d is not d.parent:
        if d is ancestor:
            return True
        d = d.parent
    return d is ancestor


def _plan_remove_tree(ns: Namespace, parent_ino: int, name: str, now: int) -> Sequence[Op]:
    """Ops that remove `name` and everything below it, children before their directory."""
    ops: list[Op] = []

    def walk(dir_ino: int, entry_name: str) -> None:
        node = ns.lookup(dir_ino, entry_name)
        if isinstance(node, DirInode):
            for child_name in list(node.children):
                walk(node.ino, child_name)
            ops.append(Rmdir(dir_ino, entry_name, now))
        else:
            ops.append(Unlink(dir_ino, entry_name, now))

    walk(parent_ino, name)
    return ops


def _content_ops(ino: int, now: int, content: writes.Content, wt: WriteType, ns: Namespace | None = None) -> list[Op]:
    """SetContent for new content, and a persist request when it is to reach the UFS later."""
    size, fp, layout = content
    op = ns.plan_set_content(ino, size, now, fp, layout) if ns is not None else SetContent(ino, size, now, fp, layout)
    if fp is None and wt is WriteType.ASYNC_THROUGH:
        return [op, RequestPersist(ino)]
    return [op]
