"""File content: reads through the cache, stages for writes at offsets and their sealing
(COMMIT, stable writes, idle, shutdown), appends and whole-content replacement, per write type.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import stat as st
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import Any

from nsd import errors
from nsd.core import wcc
from nsd.core.cache import writes
from nsd.core.cache.ingest import Sealer
from nsd.core.cache.policy import ReadType, WriteType
from nsd.core.locks import content
from nsd.core.permissions import R, W
from nsd.core.staging import Stage
from nsd.core.users import SYSTEM, Caller
from nsd.journal.ops import Op, RequestPersist, SetContent
from nsd.namespace import FileInode, Inode, Namespace
from nsd.namespace.layouts import unpersisted
from nsd.ufs import Syncs, Ufs, UfsStatus
from nsd.vfs.base import SEAL_RETRY_MAX, VfsBase, log


async def no_chunks() -> AsyncIterator[bytes]:
    return
    yield b""


class ContentOps(VfsBase):
    async def close(self) -> None:
        """Seal every stage (nothing acknowledged as stable depends on this; it saves resends)."""
        await self.reconciler.close()
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
        if self.cache is not None:
            await self.cache.reader.close()  # reads ahead stop before the mounts and the store close

    # ---- reads by inode -------------------------------------------------------------------

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
        # The UFS's own sync (a local directory's fsync) runs alongside the journal's: either
        # order recovers (an object with no record is undiscovered; a record with no object goes at
        # its re-check), and the reply waits for both.
        async with self._sealing() as sealer, Syncs() as syncs:
            content = await self._whole_content(sealer, wt, chunks, ufs, rel, syncs)
            await self._secure(content)

            def plan(ns: Namespace) -> list[Op]:
                made = ns.plan_mknod(dir_ino, name, st.S_IFREG | mode, caller.uid, caller.gid, self.store.now_ns())
                # The inode exists only once the MkNode applies, so its content ops are built directly.
                return [made, *content_ops(made.ino, made.time_ns, content, wt)]

            ops = await self.store.mutate(plan)
        ino: int = ops[0].ino  # type: ignore[attr-defined]
        node = self.ns.get(ino)
        if content.fingerprint is None and self.persister is not None:
            self.persister.created(node)
        self._content_written(ino, wt)
        return node

    # ---- write types (nsd.cache) ---------------------------------------------------------

    def _write_type(self, mount_id: int) -> WriteType:
        return self.cache.types(mount_id)[1] if self.cache is not None else WriteType.THROUGH

    def _sealing(self) -> Sealer | contextlib.nullcontext[None]:
        return Sealer(self.cache) if self.cache is not None else contextlib.nullcontext()

    async def _whole_content(
        self,
        sealer: Sealer | None,
        wt: WriteType,
        chunks: AsyncIterable[bytes],
        ufs: Ufs,
        rel: str,
        syncs: Syncs | None = None,
    ) -> writes.Content:
        if sealer is None or not wt.caches:
            status = await ufs.write(rel, chunks, syncs=syncs)
            return writes.Content(status.size, status.fingerprint(), None)
        return await writes.whole(sealer, wt, chunks, ufs, rel)

    def _content_written(self, ino: int, wt: WriteType) -> None:
        node = self.ns.inodes.get(ino)
        if node is not None and not unpersisted(node):
            self.discovery.mark_checked(ino)
        if wt is WriteType.ASYNC_THROUGH and self.persister is not None:
            self.persister.kick(ino)

    async def _secure(self, content: writes.Content) -> None:
        """Content in no under-storage: in a cluster, its blocks on two nodes before it is journaled."""
        if content.fingerprint is None and self.cache is not None:
            await self.cache.secure(content.layout)

    async def _commit_content(
        self, ino: int, content: writes.Content, wt: WriteType, *, done: int | None = None
    ) -> None:
        await self._secure(content)
        await self.store.mutate(lambda ns: content_ops(ino, self.store.now_ns(), content, wt, ns), done=done)
        self._content_written(ino, wt)

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
            # unstable: answered while the bytes go to the stage file (the next call waits for them)
            await stage.write(offset, data, behind=not stable)
            with wcc.changing(self.ns.inodes.get):  # not journaled: reported for wcc_data here
                node.detach_fingerprint()
                node.size = stage.size
                node.mtime = node.ctime = self.store.now_ns()
                self.ns.changed()
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
        await stage.settled()  # the last write behind is in the stage file, and did not fail
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


def content_ops(ino: int, now: int, content: writes.Content, wt: WriteType, ns: Namespace | None = None) -> list[Op]:
    """SetContent for new content, and a persist request when it is to reach the UFS later."""
    size, fp, layout = content
    op = ns.plan_set_content(ino, size, now, fp, layout) if ns is not None else SetContent(ino, size, now, fp, layout)
    if fp is None and wt is WriteType.ASYNC_THROUGH:
        return [op, RequestPersist(ino)]
    return [op]
