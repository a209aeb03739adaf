"""Mounts, sync with the UFS, xattrs, concat and summaries: the operator's and WebHDFS's extras."""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Sequence

from nsd import errors
from nsd.core.cache.policy import ReadType, WriteType, mount_types
from nsd.core.locks import entry
from nsd.core.mounttable import MOUNT_OPTIONS, MountView, mount_settings
from nsd.core.permissions import R, W, X
from nsd.core.users import Caller
from nsd.namespace import DirInode, Inode
from nsd.namespace.mounts import ROOT_MOUNT, plan_add_mount, plan_remove_mount
from nsd.ufs import check_options, open_ufs
from nsd.ufs.options import mask_uri
from nsd.vfs.paths import PathOps


class AdminOps(PathOps):
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
        check_options(uri, options, also=MOUNT_OPTIONS)
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
                if probe.root_must_exist:
                    raise errors.NotFound(f"{mask_uri(uri)}: no such directory (create it first)", path=path) from None
                await probe.mkdir("")  # an object store's prefix exists once something is under it
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
