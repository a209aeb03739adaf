"""Read-through: a file's bytes from its cached blocks, the missing blocks fetched from the UFS.

Blocks of a UFS-backed file are cut on the block-size grid (offset // block_size). A block the
layout names and the store holds is served (re-hashed when it comes from disk, so corrupt bytes
are never served); a block that is absent, or turns out corrupt, is fetched from the UFS, stored,
and recorded in the layout with a CacheBlock carrying the fingerprint it was read under, so a
block read from an older version of the object never joins a newer one. Concurrent readers of
one missing block share one fetch (single flight by inode, offset and fingerprint).

A sequential reader (a read that starts where the file's last one ended) gets blocks ahead of
it: the next cached one read from disk, and the missing ones among the next `read_ahead` (the
`cache_read_ahead_blocks` setting, 4) fetched from the UFS and cached at once, so a first read
of a file is not one UFS round trip and one block put (its fsyncs) after another.

An unpersisted file's blocks are its only copy: one that is missing is an error, never a fetch.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Protocol

from nsd import errors
from nsd.blockstore import SingleFlight
from nsd.blockstore.digest import hash_block
from nsd.core.cache.policy import ReadType
from nsd.journal.ops import CacheBlock, Op
from nsd.namespace import FileInode, Namespace
from nsd.namespace.layouts import block_at, unpersisted

if TYPE_CHECKING:
    from nsd.blockstore import BlockStore
    from nsd.core.metastore import MetaStore
    from nsd.core.mounttable import MountTable

log = logging.getLogger("nsd.cache")

RECENT_BLOCKS = 3  # blocks read from disk kept for the next reads: this one, the one read ahead, one spare
SEQUENTIAL_FILES = 1024  # files whose last read end is remembered (to see sequential reading)
FETCHED_AHEAD_FILES = 2  # sequential readers whose blocks fetched ahead may be held at once (memory)


class BlockPeers(Protocol):
    """Cluster mode: the other nodes' caches (nsd.core.replication.peers)."""

    def remote_owner(self, digest: str) -> bool: ...

    async def fetch(self, digest: str) -> bytes | None: ...

    async def give(self, digest: str, data: bytes) -> None: ...


@dataclass
class ReadCounters:
    """Monotonic since start; never persisted."""

    block_hits: int = 0  # block lookups served from the cache
    block_misses: int = 0  # block lookups that went to the UFS
    bytes_from_cache: int = 0
    bytes_from_ufs: int = 0  # bytes fetched from the UFS (whole blocks)
    refetched: int = 0  # blocks a layout named but the store had lost (evicted or corrupt)
    read_ahead: int = 0  # blocks fetched from the UFS ahead of a sequential reader (also misses, once read)
    not_cached: int = 0  # fetched blocks the store had no room for (served anyway)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _freeze(fingerprint: list[Any] | None) -> tuple[Any, ...] | None:
    return None if fingerprint is None else tuple(fingerprint)


class BlockReader:
    def __init__(
        self, store: MetaStore, mounts: MountTable, blocks: BlockStore, block_size: int, *, read_ahead: int = 4
    ) -> None:
        self.store = store
        self.mounts = mounts
        self.blocks = blocks
        self.block_size = block_size
        self.read_ahead = read_ahead  # missing blocks fetched from the UFS ahead of a sequential reader
        # blocks fetched ahead in flight or waiting for their reader, all files together
        self.fetched_ahead_max = FETCHED_AHEAD_FILES * read_ahead
        self.counters = ReadCounters()
        self._fetches = SingleFlight()
        self._recent: OrderedDict[str, bytes] = OrderedDict()
        # ino -> where its last read ended, and where the blocks looked at for fetching ahead end
        self._last_end: OrderedDict[int, tuple[int, int]] = OrderedDict()
        self._ahead: dict[str, asyncio.Task[bytes | None]] = {}  # digest -> its read ahead
        # a sequential reader's missing blocks, by fetch key: being fetched, and fetched but not yet read
        self._fetching: dict[tuple[Any, ...], asyncio.Task[None]] = {}
        self._fetched: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()
        self.peers: BlockPeers | None = None  # cluster mode: blocks other nodes own

    async def read(
        self, node: FileInode, offset: int, count: int, read_type: ReadType, *, size: int | None = None
    ) -> bytes | memoryview:
        """`count` bytes from `offset`, both inside the file (the caller clips them). `size`: the
        size of the content the layout and fingerprint describe, when the inode's runs ahead of
        it (staged writes: the stage reads what lies under it through here).

        A range inside one block is a view of that (immutable) block, not a copy: a 1 MiB NFS
        READ of a 4 MiB block costs no memcpy here."""
        end = offset + count
        self._sequential(node, offset, end, read_type, size)
        parts: list[bytes | memoryview] = []
        pos = offset
        while pos < end:
            boff, blob, cached = await self._block(node, pos, read_type, size)
            lo, hi = pos - boff, min(end - boff, len(blob))
            if hi <= lo:  # the file shrank under us
                break
            parts.append(blob if lo == 0 and hi == len(blob) else memoryview(blob)[lo:hi])
            if cached:
                self.counters.bytes_from_cache += hi - lo
            pos = boff + hi
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _sequential(self, node: FileInode, offset: int, end: int, read_type: ReadType, size: int | None) -> None:
        """A read that starts where the file's last one ended (seen as it starts, so reads a
        client sends back to back count) gets blocks from `end` on read ahead while it runs:
        the next cached one (disk read and re-hash in a worker thread, or in a cluster the fetch
        from its owner), and the missing ones among the next `read_ahead` from the UFS."""
        last, looked = self._last_end.pop(node.ino, (-1, 0))
        file_size = node.size if size is None else size
        sequential = last == offset and end < file_size
        if sequential and self.read_ahead and read_type is not ReadType.NO_CACHE and not unpersisted(node):
            looked = self._fetch_ahead(node, end, file_size, read_type, looked)
        self._last_end[node.ino] = (end, looked if sequential else 0)
        if len(self._last_end) > SEQUENTIAL_FILES:
            self._last_end.popitem(last=False)
        if not sequential:
            return
        entry = block_at(node.layout, end)
        if entry is None:
            return
        digest = entry[2]
        if digest in self._recent or digest in self._ahead or (self.peers is None and not self.blocks.has(digest)):
            return
        # its own empty context: a call's wcc watch must not follow a background read
        task = asyncio.get_running_loop().create_task(self._get(digest), context=contextvars.Context())
        self._ahead[digest] = task
        task.add_done_callback(lambda t: self._ahead_done(digest, t))

    def _fetch_ahead(self, node: FileInode, end: int, file_size: int, read_type: ReadType, looked: int) -> int:
        """Start fetches of the missing blocks in the window from `end`'s block on, but for those
        looked at already (up to `looked`: each read of a sequence looks at the blocks that entered
        the window since, so 1 MiB reads of a cached 4 MiB block look at none). Returns where the
        blocks looked at now end."""
        bs = self.block_size
        first = end // bs * bs
        stop = min(file_size, first + self.read_ahead * bs)
        for boff in range(max(first, looked), stop, bs):
            if self._cached(node, boff):
                continue  # read from disk when its turn comes (or just ahead, below)
            key = self._fetch_key(node, boff, file_size)
            if key in self._fetching or key in self._fetched or key in self._fetches:
                continue
            if len(self._fetching) + len(self._fetched) >= self.fetched_ahead_max:
                if not self._fetched:
                    return boff  # full: this block is looked at again by the next read
                self._fetched.popitem(last=False)  # the oldest one a reader left behind
            task = asyncio.get_running_loop().create_task(
                self._fetch_one_ahead(key, node, read_type), context=contextvars.Context()
            )
            self._fetching[key] = task
        return stop

    async def _fetch_one_ahead(self, key: tuple[Any, ...], node: FileInode, read_type: ReadType) -> None:
        """Fetch and cache one block (shared with a reader that comes for it meanwhile), and keep
        it for the read to come: a cluster follower does not see its layout entry at once."""
        _, boff, blen, _ = key
        fp = node.fingerprint
        try:
            if key in self._fetches or self._cached(node, boff):
                return  # a read came for it before this task ran: the fetch is that read's
            self._fetched[key] = await self._fetches.run(key, lambda: self._fetch(node, boff, blen, fp, read_type))
            self.counters.read_ahead += 1
        except Exception as e:  # the real read meets it again
            log.debug("fetching a block of inode %d ahead failed: %s", node.ino, e)
        finally:
            del self._fetching[key]

    async def close(self) -> None:
        """Stop what is being read ahead (before the store and the mounts close)."""
        tasks = [*self._fetching.values(), *self._ahead.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._fetching.clear()  # a task cancelled before it ran never removed itself
        self._fetched.clear()

    def _cached(self, node: FileInode, boff: int) -> bool:
        entry = block_at(node.layout, boff)
        return entry is not None and (self.peers is not None or self.blocks.has(entry[2]))

    def _fetch_key(self, node: FileInode, boff: int, file_size: int) -> tuple[Any, ...]:
        return (node.ino, boff, min(self.block_size, file_size - boff), _freeze(node.fingerprint))

    def _ahead_done(self, digest: str, task: asyncio.Task[bytes | None]) -> None:
        self._ahead.pop(digest, None)
        if not task.cancelled() and task.exception() is not None:  # the real read will see it again
            log.debug("reading block %s ahead failed: %s", digest, task.exception())

    async def block(
        self, node: FileInode, offset: int, read_type: ReadType = ReadType.CACHE
    ) -> tuple[int, bytes, bool]:
        """The whole block covering `offset`: its offset, bytes and whether it was cached already."""
        return await self._block(node, offset, read_type)

    async def _block(
        self, node: FileInode, pos: int, read_type: ReadType, size: int | None = None
    ) -> tuple[int, bytes, bool]:
        if self._fetched and not unpersisted(node):  # fetched ahead for this read?
            boff = pos // self.block_size * self.block_size
            blob = self._fetched.pop(self._fetch_key(node, boff, node.size if size is None else size), None)
            if blob is not None:
                self.counters.block_misses += 1
                return boff, blob, False
        entry = block_at(node.layout, pos)
        if entry is not None:
            off, length, digest = entry
            blob = await self.get(digest, promote=read_type is ReadType.CACHE_PROMOTE)
            if blob is not None and len(blob) == length:
                self.counters.block_hits += 1
                return off, blob, True
            if unpersisted(node):
                raise errors.Corrupt(f"block {digest} of inode {node.ino} is lost, and the file was never persisted")
            self.counters.refetched += 1
        elif unpersisted(node):
            raise errors.Corrupt(f"inode {node.ino} has no block at offset {pos}, and was never persisted")
        self.counters.block_misses += 1
        boff = pos // self.block_size * self.block_size
        key = self._fetch_key(node, boff, node.size if size is None else size)
        blen, fp = key[2], node.fingerprint
        if blen <= 0:  # a caller that did not clip (the file shrank under it): never a block of no bytes
            raise errors.Invalid(f"offset {pos} is past the end of inode {node.ino}")
        blob = await self._fetches.run(key, lambda: self._fetch(node, boff, blen, fp, read_type))
        self._fetched.pop(key, None)  # a fetch ahead this read joined leaves nothing behind
        return boff, blob, False

    async def _keep(self, data: bytes) -> str:
        """Cache a block read from the UFS: here, or at its owner when another node owns it."""
        if self.peers is None:
            return await self.blocks.put(data)
        digest = await asyncio.to_thread(hash_block, data)
        if not self.peers.remote_owner(digest):
            return await self.blocks.put(data)
        await self.peers.give(digest, data)
        return digest

    async def get(self, digest: str, *, promote: bool = False) -> bytes | None:
        """A block by digest (verified), or None when the store does not have it (any more)."""
        blob = self._recent.get(digest)
        if blob is not None:
            self._recent.move_to_end(digest)
            return blob
        ahead = self._ahead.get(digest)
        if ahead is not None:  # being read ahead: share that read
            with contextlib.suppress(Exception):
                blob = await asyncio.shield(ahead)
            if blob is not None:
                return blob
        return await self._get(digest, promote=promote)

    async def _get(self, digest: str, *, promote: bool = False) -> bytes | None:
        blob = await self.blocks.get(digest, promote=promote)
        if blob is None and self.peers is not None:
            blob = await self.peers.fetch(digest)  # from its owners (verified), before any UFS read
        if blob is not None:
            self._recent[digest] = blob
            if len(self._recent) > RECENT_BLOCKS:
                self._recent.popitem(last=False)
        return blob

    async def _fetch(self, node: FileInode, boff: int, blen: int, fp: list[Any] | None, read_type: ReadType) -> bytes:
        ufs, rel = self.mounts.locate(node)
        data = await ufs.read(rel, boff, blen)
        if len(data) < blen:
            raise errors.Corrupt(f"under-storage file is shorter than its recorded size: inode {node.ino}")
        data = bytes(data)
        self.counters.bytes_from_ufs += len(data)
        if read_type is ReadType.NO_CACHE:
            return data
        try:
            digest = await self._keep(data)
        except errors.NoSpace as e:
            self.counters.not_cached += 1
            log.debug("block of inode %d not cached: %s", node.ino, e.message)
            return data
        ino = node.ino

        def plan(ns: Namespace) -> list[Op]:
            live = ns.inodes.get(ino)
            if not isinstance(live, FileInode) or not live.has_fingerprint or live.fingerprint != fp:
                return []  # gone or changed meanwhile: the block belongs to no version we know
            return [CacheBlock(ino, boff, blen, digest, fp)]

        self.store.record(plan)
        return data
