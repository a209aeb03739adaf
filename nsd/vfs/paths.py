"""Calls by path (admin API, WebHDFS): resolve to a directory and a name, then the inode core."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator

from nsd import errors
from nsd.core.cache.policy import ReadType
from nsd.core.locks import entry
from nsd.core.permissions import Now, R, W, X
from nsd.core.users import Caller
from nsd.namespace import DirInode, Inode
from nsd.namespace.names import split_path
from nsd.vfs.base import READ_CHUNK
from nsd.vfs.inodes import InodeOps


class PathOps(InodeOps):
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
