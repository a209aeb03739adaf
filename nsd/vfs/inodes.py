"""Namespace changes by inode (what NFS handles name): create, mkdir, links, remove, rename, setattr."""

from __future__ import annotations

import contextlib
import stat as st
from collections.abc import Callable, Sequence

from nsd import errors
from nsd.core.locks import content, entry
from nsd.core.permissions import NOW, Now, W, X
from nsd.core.users import Caller
from nsd.journal.ops import Op, Rmdir, Unlink
from nsd.namespace import DirInode, Inode, Namespace
from nsd.namespace.inode import SPECIAL_KINDS
from nsd.namespace.layouts import unpersisted
from nsd.ufs import Syncs, Ufs
from nsd.vfs.content import ContentOps, no_chunks


class InodeOps(ContentOps):
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
            return await self._create_file(dir_ino, name, no_chunks(), caller, mode)

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
                if node.is_file and unpersisted(node):
                    # Its content is in blocks only (under the content lock no persist is under
                    # way), so a crash after the delete leaves it whole: no intent. The delete
                    # takes what its path may still hold in the UFS (an older copy it replaced
                    # under MUST_CACHE); usually nothing is there, and nothing is synced. A file
                    # made here with nothing at its path since needs no look.
                    if not self._path_untouched(node):
                        await _delete_stale_copy(*self.mounts.locate_child(d, name))
                    await self.store.mutate(lambda ns: ns.plan_unlink(dir_ino, name, self.store.now_ns()))
                elif node.is_file:
                    ufs, rel = self.mounts.locate_child(d, name)
                    # The UFS's sync runs alongside the outcome's journal commit (as in create):
                    # a crash between them at worst brings back the unacknowledged file.
                    async with self.reconciler.change("remove", [dir_ino, name]) as intent, Syncs() as syncs:
                        await _delete_if_present(ufs, rel, syncs=syncs)
                        await self.store.mutate(
                            lambda ns: ns.plan_unlink(dir_ino, name, self.store.now_ns()), done=intent
                        )
                else:
                    await self.store.mutate(lambda ns: ns.plan_unlink(dir_ino, name, self.store.now_ns()))
                if node.ino not in self.ns.inodes:
                    self.stager.drop(node.ino)
                    if self.persister is not None:
                        self.persister.forget_created(node.ino)

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
                    # Only in blocks: nothing to move, but an older copy its path may still hold
                    # in the UFS (replaced under MUST_CACHE) must go, or a listing would find it
                    # again; so must what it replaces. A crash after a delete leaves it whole.
                    if not self._path_untouched(node):
                        await _delete_stale_copy(*self.mounts.locate_child(src, src_name))
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


async def _delete_if_present(ufs: Ufs, rel: str, *, recursive: bool = False, syncs: Syncs | None = None) -> None:
    """Delete from the UFS; already gone there is fine (the namespace entry still has to go)."""
    with contextlib.suppress(errors.NotFound):
        await ufs.delete(rel, recursive=recursive, syncs=syncs)


async def _delete_stale_copy(ufs: Ufs, rel: str) -> None:
    """Delete what an unpersisted file's path holds in the UFS, if anything: a stat first, as
    usually nothing is there (a delete that finds nothing may still cost a directory fsync)."""
    try:
        await ufs.stat(rel)
    except errors.NotFound:
        return
    await _delete_if_present(ufs, rel)


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
