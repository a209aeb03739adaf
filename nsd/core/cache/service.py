"""The cache as the vfs sees it: a BlockStore tied to the namespace.

Theory of operation. The namespace reports every layout change (`layout_changed`), live and during
nothing else: recovery replays with no listener, and `attach()` then counts every layout once, so
the store's reference counts always equal the layouts' references. The store asks one narrow
question before evicting a block, `must_keep(digest)`: is it held by an unpersisted or pinned
file (the namespace's `kept` index, one dict lookup), or by a write being sealed right now
(`holds`: blocks stored but not yet journaled in a layout)?

A backup needs the blocks of files that were unpersisted at the txid of its checkpoint, which
it learns only once the checkpoint is written; by then such a file may have been persisted
and its blocks evicted. `with capture():` holds, from before the checkpoint is asked for until
the block ends, every block an unpersisted file has or is given meanwhile.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nsd import errors
from nsd.blockstore import BlockStore
from nsd.core.cache.policy import ReadType, WriteType, mount_types
from nsd.core.cache.reader import BlockReader
from nsd.namespace import FileInode, Namespace
from nsd.namespace.layouts import unpersisted

if TYPE_CHECKING:
    from nsd.core.metastore import MetaStore
    from nsd.core.mounttable import MountTable

log = logging.getLogger("nsd.cache")

MiB = 1 << 20


@dataclass(frozen=True)
class CacheSettings:
    """Defaults a mount's `read_type=`/`write_type=` options override; thresholds for tests."""

    block_size: int = 4 * MiB
    read_type: ReadType = ReadType.CACHE
    write_type: WriteType = WriteType.THROUGH
    persist_delay: float = 0.0  # how long a new ASYNC_THROUGH file waits before its upload (s)
    persist_retry_max: float = 60.0  # longest wait between tries of a background persist (s)
    ttl_interval: float = 10.0  # how often expired TTLs are looked for (s)
    read_ahead_blocks: int = 4  # missing blocks a sequential reader has fetched ahead of it


class Cache:
    def __init__(self, store: MetaStore, mounts: MountTable, blocks: BlockStore, settings: CacheSettings) -> None:
        if settings.block_size <= 0 or settings.block_size > blocks.max_block_bytes:
            raise errors.Invalid(f"block size must be 1..{blocks.max_block_bytes} bytes, not {settings.block_size}")
        self.store = store
        self.mounts = mounts
        self.blocks = blocks
        self.settings = settings
        self.block_size = settings.block_size
        self.holds: dict[str, int] = {}
        self._types: dict[int, tuple[ReadType, WriteType]] = {}  # mount ids are never reused
        self._captures: list[set[str]] = []
        blocks.must_keep = self.must_keep
        self.reader = BlockReader(store, mounts, blocks, self.block_size, read_ahead=settings.read_ahead_blocks)
        # cluster mode: put a block of data no under-storage has on its owners before the write
        # is acknowledged (nsd.core.replication.peers); None: one node, one copy
        self.copies: Callable[[str, bytes], Awaitable[None]] | None = None
        self.copies_held: Callable[[str], Awaitable[int]] | None = None  # of a block, on its owners
        self.drop_elsewhere: Callable[[list[str]], Awaitable[int]] | None = None  # `free` on the others
        self.copies_wanted = 1

    @property
    def ns(self) -> Namespace:
        return self.store.ns

    # ---- the namespace's side ------------------------------------------------------------------

    def attach(self) -> None:
        """Count every layout's references (after recovery) and follow changes from now on."""
        for node in self.ns.inodes.values():
            if isinstance(node, FileInode) and node.layout:
                for entry in node.layout:
                    self.blocks.ref(entry[2])
        self.ns.layout_listener = self

    def detach(self) -> None:
        if self.ns.layout_listener is self:
            self.ns.layout_listener = None

    def layout_changed(self, ino: int, removed: list[str], added: list[str]) -> None:
        for digest in removed:
            try:
                self.blocks.unref(digest)
            except errors.Invalid as e:  # counts only steer eviction; never fail an apply over them
                log.warning("reference count of %s: %s", digest, e.message)
        for digest in added:
            self.blocks.ref(digest)
        node = self.ns.inodes.get(ino) if self._captures and added else None
        if node is not None and unpersisted(node):
            for captured in self._captures:
                new = set(added) - captured
                captured |= new
                self.hold(new)

    async def secure(self, layout: list[Any] | None) -> None:
        """Cluster mode: every block of content that exists in no under-storage goes to its owners
        (two nodes) before the content is journaled; Unavailable when that cannot be done now.
        One block in memory at a time; a block an owner has already is not sent again."""
        if self.copies is None:
            return
        for _, _, digest in layout or ():
            data = await self.reader.get(digest)
            if data is None:
                raise errors.Corrupt(f"block {digest} of new content is missing: cannot copy it to its owners")
            await self.copies(digest, data)

    def must_keep(self, digest: str) -> bool:
        return digest in self.ns.kept or digest in self.holds or self.blocks.held(digest)

    def hold(self, digests: Iterable[str]) -> None:
        for d in digests:
            self.holds[d] = self.holds.get(d, 0) + 1

    def release(self, digests: Iterable[str]) -> None:
        for d in digests:
            n = self.holds.get(d, 0) - 1
            if n > 0:
                self.holds[d] = n
            else:
                self.holds.pop(d, None)

    @contextmanager
    def capture(self) -> Iterator[set[str]]:
        """Hold every block of every unpersisted file: those it has now, and those given to one
        until the `with` block ends. Yields the growing set of held digests (see the module
        docstring). Cost: O(held blocks) to enter, a set difference per layout change of an
        unpersisted file while it lasts."""
        captured = set(self.ns.kept)  # unpersisted files' blocks (and pinned ones': harmless)
        self.hold(captured)
        self._captures.append(captured)
        try:
            yield captured
        finally:
            self._captures.remove(captured)
            self.release(captured)

    def check(self) -> None:
        """Assert the invariants of the holds and the reference counts; AssertionError says which.
        Every hold count is positive; a digest is held at least once per capture holding it;
        while attached, the block store's reference counts are the layouts' references.
        Cost: O(held blocks + layout entries)."""
        if any(type(n) is not int or n < 1 for n in self.holds.values()):
            raise AssertionError(f"a hold count is not a positive int: {self.holds}")
        for digest, n in Counter(d for captured in self._captures for d in captured).items():
            if self.holds.get(digest, 0) < n:
                raise AssertionError(f"{digest} is in {n} captures but held {self.holds.get(digest, 0)} times")
        if self.ns.layout_listener is self:
            refs = Counter(
                entry[2]
                for node in self.ns.inodes.values()
                if isinstance(node, FileInode)
                for entry in node.layout or ()
            )
            if dict(refs) != self.blocks.referenced():
                raise AssertionError("the block store's reference counts differ from the layouts' references")

    def types(self, mount_id: int) -> tuple[ReadType, WriteType]:
        """The mount's read and write types (asked on every read: remembered per mount)."""
        found = self._types.get(mount_id)
        if found is None:
            options = self.mounts.options(mount_id)
            found = self._types[mount_id] = mount_types(options, self.settings.read_type, self.settings.write_type)
        return found

    # ---- reporting -------------------------------------------------------------------------------

    def report(self) -> dict[str, Any]:
        """What `nsd report cache`, /metrics and the status page show. Cost: O(referenced blocks
        + pins)."""
        s: dict[str, Any] = self.blocks.stats()
        r = self.reader.counters
        tiers = [{"tier": "memory", "path": "", **s["memory"]}]
        for i, t in enumerate(s["tiers"]):
            tiers.append({"tier": f"disk{i}", **t})
        lookups = r.block_hits + r.block_misses
        return {
            "block_size": self.block_size,
            "read_type": self.settings.read_type.value,
            "write_type": self.settings.write_type.value,
            "tiers": tiers,
            "blocks": s["blocks"],
            "logical_bytes": s["logical_bytes"],
            "physical_bytes": s["physical_bytes"],
            "dedup_ratio": s["dedup_ratio"],
            "hits": r.block_hits,
            "misses": r.block_misses,
            "hit_ratio": r.block_hits / lookups if lookups else 0.0,
            "hits_memory": s["hits_memory"],
            "hits_disk": s["hits_disk"],
            "evictions": s["evictions"],
            "evicted_bytes": s["evicted_bytes"],
            "memory_evictions": s["memory_evictions"],
            "bytes_from_cache": r.bytes_from_cache,
            "bytes_from_ufs": r.bytes_from_ufs,
            "refetched_blocks": r.refetched,
            "read_ahead_blocks": r.read_ahead,
            "corrupt_blocks": s["corrupt"],
            "pending_persists": len(self.ns.persist_pending),
            "pinned_files": sum(1 for ino in self.ns.pinned if isinstance(self.ns.inodes.get(ino), FileInode)),
            "pinned_dirs": sum(1 for ino in self.ns.pinned if not isinstance(self.ns.inodes.get(ino), FileInode)),
            "ttls": len(self.ns.ttls),
        }
