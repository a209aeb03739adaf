"""The one facade every protocol calls: path resolution, under-storage write-through, durability.

Each mutation follows one pattern: validate against the namespace (so a doomed call fails
before touching the UFS), change the UFS, then plan again and commit through the MetaStore,
which answers only once the journal record is durable. Mutations that touch the same paths
are serialised by per-path locks so the UFS and the namespace change in the same order.

The UFS location of an entry is derived from its parent directory's canonical path, never
from the path the caller used, so symlinked directories write to the right place.
"""

from __future__ import annotations

import asyncio
import stat as st
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from nsd import errors
from nsd.journal.ops import Op, Rmdir, SetContent, Unlink
from nsd.metastore import MetaStore
from nsd.namespace import DirInode, Inode, Namespace
from nsd.namespace.names import split_path
from nsd.ufs import Ufs

READ_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking: the identity new files get and (later) permission checks use."""

    uid: int
    gid: int
    gids: tuple[int, ...] = ()


class PathLocks:
    """asyncio locks by path, created on demand and dropped when nobody holds or waits."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, *paths: str) -> AsyncIterator[None]:
        ordered = sorted(set(paths))  # one global order: no deadlock between two callers
        locks = []
        for p in ordered:
            lock, users = self._locks.get(p, (asyncio.Lock(), 0))
            self._locks[p] = (lock, users + 1)
            locks.append((p, lock))
        acquired = []
        try:
            for _, lock in locks:
                await lock.acquire()
                acquired.append(lock)
            yield
        finally:
            for lock in acquired:
                lock.release()
            for p, _ in locks:
                lock, users = self._locks[p]
                if users == 1:
                    del self._locks[p]
                else:
                    self._locks[p] = (lock, users - 1)


def _parent_and_name(path: str) -> tuple[str, str]:
    parts = split_path(path)
    if not parts:
        raise errors.Invalid("the root has no parent", path="/")
    return "/" + "/".join(parts[:-1]), parts[-1]


class Vfs:
    def __init__(self, store: MetaStore, ufs: Ufs) -> None:
        self.store = store
        self.ufs = ufs
        self.locks = PathLocks()

    @property
    def ns(self) -> Namespace:
        return self.store.ns

    # ---- reads ---------------------------------------------------------------------------

    def stat(self, path: str, *, follow: bool = True) -> Inode:
        return self.ns.resolve(path, follow=follow)

    def list(self, path: str, *, start_after: str | None = None, limit: int | None = None) -> list[tuple[str, Inode]]:
        """Entries of a directory in name order; a file lists as itself under the name ""."""
        node = self.ns.resolve(path)
        if not isinstance(node, DirInode):
            return [("", node)]
        return self.ns.list_names(node.ino, start_after, limit)

    def readlink(self, path: str) -> str:
        node = self.ns.resolve(path, follow=False)
        target = getattr(node, "target", None)
        if target is None:
            raise errors.Invalid(f"not a symbolic link: {path}", path=path)
        return target

    async def read(self, path: str, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        """Stream a file's bytes from `offset`, `length` bytes at most (None: to the end)."""
        node, ufs_path = self._file_for_read(path)
        end = node.size if length is None else min(node.size, offset + length)
        pos = max(0, offset)
        while pos < end:
            chunk = await self.ufs.read(ufs_path, pos, min(READ_CHUNK, end - pos))
            if not chunk:
                raise errors.Corrupt(f"under-storage file is shorter than its recorded size: {path}", path=path)
            pos += len(chunk)
            yield chunk

    def _file_for_read(self, path: str) -> tuple[Inode, str]:
        node = self.ns.resolve(path)
        if node.is_dir:
            raise errors.IsDir(f"is a directory: {path}", path=path)
        return node, self._ufs_location(node)

    def _ufs_location(self, node: Inode) -> str:
        """Where an existing object lives in the UFS: its primary link's canonical path."""
        return self.ns.path_of(node.ino).lstrip("/")

    def _ufs_path(self, parent: Inode, name: str) -> str:
        return (self.ns.path_of(parent.ino).rstrip("/") + "/" + name).lstrip("/")

    def _parent(self, path: str) -> tuple[DirInode, str]:
        return self.ns.resolve_parent(path)

    # ---- mutations -----------------------------------------------------------------------

    async def mkdir(self, path: str, *, caller: Caller, mode: int = 0o755, parents: bool = False) -> Inode:
        async with self.locks.hold(path):
            now = self.store.now_ns()
            if parents:
                self.ns.plan_mkdirs(path, mode, caller.uid, caller.gid, now)
                await self.ufs.mkdir(self._ufs_path_for_mkdirs(path))
                await self.store.mutate(
                    lambda ns: ns.plan_mkdirs(path, mode, caller.uid, caller.gid, self.store.now_ns())
                )
                return self.ns.resolve(path)
            parent, name = self._parent(path)
            self.ns.plan_mknod(parent.ino, name, st.S_IFDIR | mode, caller.uid, caller.gid, now)
            await self.ufs.mkdir(self._ufs_path(parent, name))
            ops = await self.store.mutate(
                lambda ns: ns.plan_mknod(
                    parent.ino, name, st.S_IFDIR | mode, caller.uid, caller.gid, self.store.now_ns()
                )
            )
            return self.ns.get(ops[0].ino)  # type: ignore[attr-defined]

    def _ufs_path_for_mkdirs(self, path: str) -> str:
        """UFS path for `mkdir -p path`: the deepest existing directory's real path + the rest."""
        parts = split_path(path)
        for i in range(len(parts), -1, -1):
            try:
                node = self.ns.resolve("/" + "/".join(parts[:i]))
            except errors.NotFound:
                continue
            return "/".join([self._ufs_location(node), *parts[i:]]).strip("/")
        raise AssertionError("the root always resolves")

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
        async with self.locks.hold(path):
            parent, name = self._parent(path)
            self._check_writable_target(parent, name, path, overwrite)
            status = await self.ufs.write(self._ufs_path(parent, name), chunks)

            def plan(ns: Namespace) -> list[Op]:
                now = self.store.now_ns()
                existing = self._check_writable_target(parent, name, path, overwrite)
                if existing is not None:
                    return [ns.plan_set_content(existing.ino, status.size, now, status.fingerprint())]
                created = ns.plan_mknod(parent.ino, name, st.S_IFREG | mode, caller.uid, caller.gid, now)
                # The inode exists only once the MkNode applies, so its content op is built directly.
                return [created, SetContent(created.ino, status.size, now, status.fingerprint())]

            ops = await self.store.mutate(plan)
            return self.ns.get(ops[-1].ino)  # type: ignore[attr-defined]

    def _check_writable_target(self, parent: DirInode, name: str, path: str, overwrite: bool) -> Inode | None:
        if parent.ino not in self.ns.inodes:
            raise errors.NotFound(f"parent directory was removed: {path}", path=path)
        existing = parent.children.get(name)
        if existing is None:
            return None
        if existing.is_dir:
            raise errors.IsDir(f"is a directory: {path}", path=path)
        if not overwrite:
            raise errors.Exists(f"file exists: {path}", path=path)
        if not existing.is_file:
            raise errors.Invalid(f"not a regular file: {path}", path=path)
        return existing

    async def truncate(self, path: str, size: int) -> Inode:
        async with self.locks.hold(path):
            node, ufs_path = self._file_for_read(path)
            if size < 0:
                raise errors.Invalid(f"negative size {size}", path=path)
            status = await self.ufs.truncate(ufs_path, size)
            await self.store.mutate(
                lambda ns: ns.plan_set_content(node.ino, status.size, self.store.now_ns(), status.fingerprint())
            )
            return node

    async def setattr(
        self,
        path: str,
        *,
        mode: int | None = None,
        uid: int | None = None,
        gid: int | None = None,
        atime: int | None = None,
        mtime: int | None = None,
    ) -> Inode:
        async with self.locks.hold(path):
            node = self.ns.resolve(path)
            await self.store.mutate(
                lambda ns: ns.plan_setattr(
                    node.ino, mode=mode, uid=uid, gid=gid, atime=atime, mtime=mtime, time_ns=self.store.now_ns()
                )
            )
            return node

    async def symlink(self, target: str, path: str, *, caller: Caller) -> Inode:
        if not target or "\0" in target or len(target.encode()) > 4096:
            raise errors.Invalid(f"bad symlink target {target!r}", path=path)
        async with self.locks.hold(path):
            parent, name = self._parent(path)
            ops = await self.store.mutate(
                lambda ns: ns.plan_mknod(
                    parent.ino, name, st.S_IFLNK | 0o777, caller.uid, caller.gid, self.store.now_ns(), target
                )
            )
            return self.ns.get(ops[0].ino)  # type: ignore[attr-defined]

    async def link(self, existing: str, path: str) -> Inode:
        async with self.locks.hold(existing, path):
            node = self.ns.resolve(existing, follow=False)
            parent, name = self._parent(path)
            self.ns.plan_link(node.ino, parent.ino, name, self.store.now_ns())
            if node.is_file:
                await self.ufs.link(self._ufs_location(node), self._ufs_path(parent, name))
            await self.store.mutate(lambda ns: ns.plan_link(node.ino, parent.ino, name, self.store.now_ns()))
            return node

    async def remove(self, path: str, *, recursive: bool = False) -> None:
        async with self.locks.hold(path):
            parent, name = self._parent(path)
            node = self.ns.lookup(parent.ino, name)
            ufs_path = self._ufs_path(parent, name)
            if isinstance(node, DirInode):
                if node.children and not recursive:
                    raise errors.NotEmpty(f"directory not empty: {path}", path=path)
                await self.ufs.delete(ufs_path, recursive=recursive)
                await self.store.mutate(lambda ns: _plan_remove_tree(ns, parent.ino, name, self.store.now_ns()))
                return
            self.ns.plan_unlink(parent.ino, name, self.store.now_ns())
            if node.is_file:
                await self.ufs.delete(ufs_path)
            await self.store.mutate(lambda ns: ns.plan_unlink(parent.ino, name, self.store.now_ns()))

    async def rename(self, src: str, dst: str) -> None:
        """POSIX rename: atomic, replaces a file or an empty directory at `dst`."""
        async with self.locks.hold(src, dst):
            sp, sn = self._parent(src)
            dp, dn = self._parent(dst)
            self.ns.plan_rename(sp.ino, sn, dp.ino, dn, self.store.now_ns())
            node = self.ns.lookup(sp.ino, sn)
            if not getattr(node, "target", None):
                await self.ufs.rename(self._ufs_path(sp, sn), self._ufs_path(dp, dn))
            await self.store.mutate(lambda ns: ns.plan_rename(sp.ino, sn, dp.ino, dn, self.store.now_ns()))


def _plan_remove_tree(ns: Namespace, parent_ino: int, name: str, now: int) -> Sequence[Op]:
    """Ops that remove `name` and everything below it, children before their directory."""
    ops: list[Op] = []

    def walk(dir_ino: int, entry: str) -> None:
        node = ns.lookup(dir_ino, entry)
        if isinstance(node, DirInode):
            for child_name, _ in list(node.children.items()):
                walk(node.ino, child_name)
            ops.append(Rmdir(dir_ino, entry, now))
        else:
            ops.append(Unlink(dir_ino, entry, now))

    ns.lookup(parent_ino, name)
    walk(parent_ino, name)
    return ops


__all__ = ["Caller", "Vfs"]
