"""BlockStore: content-addressed blocks in a memory tier above disk tiers, deduplicated, verified,
reference counted and evicted by value.

Theory of operation. Every block lives in exactly one disk tier (the index says which); the memory
tier holds copies of some of them (memory is a subset of disk, so dropping a memory copy never loses
data). The index, the memory tier, the LRFU state and the reference counts are plain dicts changed
only on the event loop, each change made in one synchronous stretch; file I/O and hashing of large
blocks run in worker threads between those stretches. To keep that safe:

- a new block enters the index only after its file is renamed into place and synced;
- a block leaves the index before its file is unlinked, and a put of the same digest waits until
  the unlink is done (`_deleting`), so it can never be undone by a late unlink;
- bytes being written are reserved against their tier's capacity from the moment a tier is chosen;
- a reader that finds its file gone, or its bytes wrong, drops the block only if the index still
  names the same entry it read.

Reference counts belong to the namespace (file layouts): they are kept whether or not the block is
present, start empty on every open (the namespace re-counts its layouts), and only steer eviction:
unreferenced blocks go first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable

from nsd.blockstore.digest import hash_block, is_digest
from nsd.blockstore.disk import SETTLED_NS, DiskTier, TierSpec, settled
from nsd.blockstore.index import Entry, Index
from nsd.blockstore.memory import MemoryTier
from nsd.blockstore.policy import Lrfu
from nsd.blockstore.singleflight import SingleFlight
from nsd.blockstore.stats import Counters
from nsd.errors import Invalid, NoSpace

log = logging.getLogger(__name__)

MiB = 1 << 20
HELD_SWEEP_AT = 4096  # hold() drops the expired holds when it has this many


class BlockStore:
    """See the module docstring. All thresholds are constructor parameters:

    - `memory_bytes`: capacity of the memory tier (0 disables it);
    - `tiers`: disk tiers, fastest first; new blocks go to the first one with room;
    - `must_keep(digest)`: the namespace's answer to "is this digest referenced by an unpersisted or
      pinned file?"; such blocks are never evicted from disk (called on the loop; keep it cheap);
    - `high_watermark`/`low_watermark`: fractions of a tier's capacity; eviction starts above the
      high one and stops at the low one;
    - `fsync`: sync block files and their directories (tests may turn it off);
    - `verify_reads`: hash a block read from disk whose file is not known to match its name (a
      mismatch is dropped and never served); each file is hashed once per open of the store and
      again whenever it changes; `verify_settled_ns`: how old a file's ctime must be before a hash
      of it is trusted until the file changes (disk.SETTLED_NS);
    - `max_block_bytes`: the largest block put() accepts;
    - `lrfu_lambda`: 0 = LFU .. 1 = LRU (see policy.py);
    - `offload_bytes`: blocks at least this large are hashed in a worker thread;
    - `multithread_hash_bytes`: blocks at least this large are hashed by blake3's thread pool.
    """

    def __init__(
        self,
        *,
        memory_bytes: int,
        tiers: list[TierSpec],
        must_keep: Callable[[str], bool] = lambda d: False,
        high_watermark: float = 0.95,
        low_watermark: float = 0.85,
        fsync: bool = True,
        verify_reads: bool = True,
        verify_settled_ns: int = SETTLED_NS,
        max_block_bytes: int = 64 * MiB,
        lrfu_lambda: float = 0.001,
        offload_bytes: int = 64 * 1024,
        multithread_hash_bytes: int = 1 * MiB,
    ) -> None:
        if not tiers:
            raise ValueError("a block store needs at least one disk tier")
        if not 0.0 < low_watermark <= high_watermark <= 1.0:
            raise ValueError(f"watermarks must satisfy 0 < low <= high <= 1, not {low_watermark}, {high_watermark}")
        self.must_keep = must_keep
        self._held_until: dict[str, float] = {}  # digest -> monotonic deadline (hold())
        self.high_watermark = high_watermark
        self.low_watermark = low_watermark
        self.verify_reads = verify_reads
        self.verify_settled_ns = verify_settled_ns
        self.max_block_bytes = max_block_bytes
        self.offload_bytes = offload_bytes
        self.multithread_hash_bytes = multithread_hash_bytes
        self._tiers = [DiskTier(spec, fsync=fsync) for spec in tiers]
        self._memory = MemoryTier(memory_bytes)
        self._index = Index(len(tiers))
        self._policy = Lrfu(lrfu_lambda)
        self._refs: dict[str, int] = {}
        self._counters = Counters()
        self._writes = SingleFlight()  # one writer per new digest
        self._reads = SingleFlight()  # one disk read per digest at a time
        self._deleting: dict[str, asyncio.Event] = {}
        self._over_at_open = [0] * len(tiers)  # a tier may hold more than a (reduced) capacity allows
        self._evictor: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stopping = False

    # ---- life -----------------------------------------------------------------------------------

    async def open(self) -> None:
        """(Re)build the index from the block files: one stat per file, no reads (blocks are verified
        when read). Deletes leftover tmp files, and the slower copy of a block found in two tiers.
        LRFU state is seeded from file mtimes, oldest least valuable. Keeps reference counts."""

        def scan() -> list[dict[str, tuple[int, int]]]:
            found = []
            for tier in self._tiers:
                tier.prepare()
                found.append(tier.scan(remove_tmp=True))
            return found

        found = await asyncio.to_thread(scan)
        self._index = Index(len(self._tiers))
        self._memory = MemoryTier(self._memory.capacity)
        self._policy = Lrfu(self._policy.lam)
        duplicates: list[tuple[int, str]] = []
        seen: list[tuple[int, str]] = []
        for t, blocks in enumerate(found):
            for digest, (size, mtime_ns) in blocks.items():
                if digest in self._index:
                    duplicates.append((t, digest))
                    continue
                self._index.add(digest, size, t)
                seen.append((mtime_ns, digest))
        for _, digest in sorted(seen):
            self._policy.touch(digest)
        if duplicates:
            await asyncio.to_thread(self._unlink_files, duplicates)
        self._over_at_open = [max(0, self._index.used[t] - tier.capacity) for t, tier in enumerate(self._tiers)]
        log.info("block store open: %d blocks, %d bytes", len(self._index), self._index.physical())

    async def close(self) -> None:
        """Stop background eviction. Blocks are durable as soon as put() returns, so nothing to flush."""
        if self._evictor is not None:
            # Not cancel(): a pass cancelled while its unlink thread runs would leave files being
            # deleted after close returns. Ask the loop to stop and let the current pass finish.
            self._stopping = True
            self._wake.set()
            await self._evictor
            self._evictor = None
            self._stopping = False

    # ---- blocks ---------------------------------------------------------------------------------

    async def put(self, data: bytes | memoryview) -> str:
        """Store a block and return its blake3 hex digest. A block already stored is not written
        again. A new block is durable (tmp -> fsync -> rename -> fsync(dir)) in the first disk tier
        with room, evicting what may be evicted if none has room, and is kept in the memory tier.
        Raises NoSpace when no tier can take it, Invalid when larger than `max_block_bytes`.
        A bytes object is kept as is; anything else is copied once (the store keeps no view of
        a caller's buffer). Cancelled while its block is written, it raises once the block is
        written and indexed."""
        blob = data if isinstance(data, bytes) else bytes(data)
        if len(blob) > self.max_block_bytes:
            raise Invalid(f"block of {len(blob)} bytes is over the maximum of {self.max_block_bytes}")
        digest = await self._hash(blob)
        self._counters.puts += 1
        if digest in self._index:
            self._counters.dedup_puts += 1
            self._policy.touch(digest)
            return digest
        write = asyncio.ensure_future(self._writes.run(digest, lambda: self._write_new(digest, blob)))
        try:
            await asyncio.shield(write)
        except asyncio.CancelledError:
            # A write runs to its end: its worker thread cannot be stopped, and the file it
            # leaves must be in the index (garbage to evict), not an orphan on disk.
            await asyncio.wait([write])
            if not write.cancelled():
                write.exception()  # retrieved: the caller has gone
            raise
        return digest

    async def get(self, digest: str, *, promote: bool = False, count: bool = True) -> bytes | None:
        """The block's bytes, or None when it is not stored (or was found corrupt: then it is
        deleted, counted in stats()["corrupt"], and never served). A memory hit returns the stored
        bytes object without a copy or an await; a disk hit reads the file in a thread and, with
        `verify_reads`, re-hashes it unless its file is the one already verified (same inode, size,
        mtime and ctime as when it was written or last hashed: bytes cannot change without moving
        ctime); `promote` also keeps it in the memory tier. `count=False` (a backup
        reading blocks) leaves hit counters and eviction order as they were."""
        blob = self._memory.get(digest)
        if blob is not None:
            if count:
                self._hit(digest, blob, memory=True)
            return blob
        if digest not in self._index:
            self._counters.misses += count
            return None
        blob = await self._reads.run(digest, lambda: self._read_disk(digest))
        if blob is None:
            self._counters.misses += count
            return None
        if count:
            self._hit(digest, blob, memory=False)
        entry = self._index.get(digest)
        if promote and entry is not None and entry.size == len(blob):
            self._cache_in_memory(digest, blob)
        return blob

    def has(self, digest: str) -> bool:
        return digest in self._index

    def digests(self) -> list[str]:
        """Every stored block's digest (a snapshot). Cost: O(blocks)."""
        return list(self._index.entries)

    def referenced(self) -> dict[str, int]:
        """digest -> reference count, for every digest with references (a copy)."""
        return dict(self._refs)

    def size_of(self, digest: str) -> int | None:
        entry = self._index.get(digest)
        return None if entry is None else entry.size

    async def remove(self, digest: str) -> None:
        """Drop a block from every tier (whatever its references or must_keep say: the caller
        decides). Its reference count, if any, is kept: references are layout facts."""
        entry = self._forget(digest)
        if entry is not None:
            await self._unlink([(entry.tier, digest)])

    # ---- references -----------------------------------------------------------------------------

    def ref(self, digest: str, n: int = 1) -> None:
        """Count `n` more layout references to `digest` (present or not)."""
        if not is_digest(digest):
            raise Invalid(f"not a block digest: {digest!r}")
        if n < 0:
            raise Invalid(f"reference count step must not be negative, not {n}")
        if n:
            self._refs[digest] = self._refs.get(digest, 0) + n

    def unref(self, digest: str, n: int = 1) -> None:
        """Count `n` fewer references. A block left with none is garbage: eviction takes it before
        any referenced block. Raises Invalid (changing nothing) if that would go below zero."""
        have = self._refs.get(digest, 0)
        if n < 0 or n > have:
            raise Invalid(f"cannot drop {n} references of {digest}: it has {have}")
        if n == have:
            self._refs.pop(digest, None)
        else:
            self._refs[digest] = have - n

    def refs(self, digest: str) -> int:
        return self._refs.get(digest, 0)

    def hold(self, digest: str, seconds: float) -> None:
        """Keep `digest` from eviction for `seconds` (cluster: a writer's copy of data in no
        under-storage, until the layout that makes must_keep() true for it arrives here)."""
        now = time.monotonic()
        if len(self._held_until) >= HELD_SWEEP_AT:
            self._held_until = {d: t for d, t in self._held_until.items() if t > now}
        self._held_until[digest] = max(self._held_until.get(digest, 0.0), now + seconds)

    def held(self, digest: str) -> bool:
        """Whether a hold() on `digest` is still running. Cost: one dict lookup when none is."""
        until = self._held_until.get(digest)
        if until is None:
            return False
        if until > time.monotonic():
            return True
        del self._held_until[digest]
        return False

    # ---- eviction -------------------------------------------------------------------------------

    async def evict(self) -> int:
        """One pass: every tier above its high watermark drops its least valuable blocks (garbage
        first, then LRFU order) until it is at or below its low watermark. A disk block for which
        must_keep() is true is never dropped, so a tier full of them stays above its watermark.
        Returns the bytes freed (disk and memory). Cost: a sort of each over-full tier's blocks."""
        freed = 0
        if self._memory.used > self.high_watermark * self._memory.capacity:
            freed += self._shrink_memory(self.low_watermark * self._memory.capacity)
        doomed: list[tuple[int, str]] = []
        for t, tier in enumerate(self._tiers):
            if self._index.committed(t) <= self.high_watermark * tier.capacity:
                continue
            target = self.low_watermark * tier.capacity
            for digest in self._victims(t):
                if self._index.committed(t) <= target:
                    break
                if self.must_keep(digest) or self.held(digest):
                    continue
                entry = self._forget(digest)
                assert entry is not None
                doomed.append((t, digest))
                freed += entry.size
                self._counters.evictions += 1
                self._counters.evicted_bytes += entry.size
        await self._unlink(doomed)
        return freed

    def start_background_eviction(self, interval: float = 1.0) -> None:
        """Run evict() whenever a tier is above its high watermark: checked every `interval`
        seconds, and at once after a put that crossed it. Stopped by close()."""
        if self._evictor is None:
            self._evictor = asyncio.get_running_loop().create_task(self._evict_loop(interval))

    async def _evict_loop(self, interval: float) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), interval)
            self._wake.clear()
            if self._stopping:
                return
            if self._over_high():
                try:
                    await self.evict()
                except Exception:
                    log.exception("background eviction failed; retrying in %.1f s", interval)

    def _over_high(self) -> bool:
        if self._memory.used > self.high_watermark * self._memory.capacity:
            return True
        return any(self._index.committed(t) > self.high_watermark * tier.capacity for t, tier in enumerate(self._tiers))

    def _victims(self, tier: int) -> list[str]:
        """The blocks of a disk tier, least valuable first: unreferenced ones, then referenced."""
        members = self._index.members[tier]
        garbage = [d for d in members if d not in self._refs]
        held = [d for d in members if d in self._refs]
        return self._policy.order(garbage) + self._policy.order(held)

    # ---- reporting ------------------------------------------------------------------------------

    def stats(self) -> dict[str, object]:
        """Per tier: capacity, used bytes, blocks. Totals: physical bytes (each stored block once),
        logical bytes (sum over references of the sizes of stored blocks), their ratio, and the
        counters of stats.Counters. Cost: O(referenced digests)."""
        physical = self._index.physical()
        logical = 0
        for digest, n in self._refs.items():
            entry = self._index.get(digest)
            if entry is not None:
                logical += n * entry.size
        return {
            "memory": {"capacity": self._memory.capacity, "used": self._memory.used, "blocks": len(self._memory)},
            "tiers": [
                {
                    "path": str(tier.path),
                    "capacity": tier.capacity,
                    "used": self._index.used[t],
                    "blocks": len(self._index.members[t]),
                }
                for t, tier in enumerate(self._tiers)
            ],
            "blocks": len(self._index),
            "physical_bytes": physical,
            "logical_bytes": logical,
            "dedup_ratio": logical / physical if physical else 0.0,
            **self._counters.as_dict(),
        }

    def check(self) -> None:
        """Assert every invariant, including index == block files on disk (reads directories:
        for tests and `nsd` debugging, not for a hot path)."""
        self._index.check()
        self._memory.check()
        self._policy.check()
        for digest in self._memory.digests():
            entry = self._index.get(digest)
            assert entry is not None, f"memory copy of {digest} has no disk block"
            blob = self._memory.get(digest)
            assert blob is not None and len(blob) == entry.size, f"memory copy of {digest} has the wrong size"
            assert hash_block(blob) == digest, f"memory copy of {digest} does not match its name"
        assert all(n > 0 for n in self._refs.values()), "a reference count is not positive"
        assert self._policy.digests() == set(self._index.entries), "LRFU state and index disagree"
        for t, tier in enumerate(self._tiers):
            on_disk = {d: size for d, (size, _) in tier.scan(remove_tmp=False).items() if d not in self._deleting}
            indexed = {d: self._index.entries[d].size for d in self._index.members[t]}
            assert on_disk == indexed, f"tier {tier.path}: index and block files differ"
            limit = tier.capacity + self._over_at_open[t]
            assert self._index.used[t] <= limit, f"tier {tier.path} over capacity: {self._index.used[t]} > {limit}"
            if not len(self._writes):
                assert not tier.tmp_files(), f"tier {tier.path} has tmp files with no write in flight"

    # ---- internals ------------------------------------------------------------------------------

    async def _hash(self, blob: bytes) -> str:
        if len(blob) >= self.offload_bytes:
            return await asyncio.to_thread(hash_block, blob, multithread_bytes=self.multithread_hash_bytes)
        return hash_block(blob)

    async def _write_new(self, digest: str, blob: bytes) -> None:
        while (deleting := self._deleting.get(digest)) is not None:
            await deleting.wait()
        if digest in self._index:
            return
        size = len(blob)
        failed: set[int] = set()
        while True:
            t, doomed = self._place(size, failed)
            self._index.reserved[t] += size  # same synchronous stretch as the decision
            try:
                await self._unlink(doomed)
                await asyncio.to_thread(self._tiers[t].write, digest, blob)
            except NoSpace:
                # The file system is fuller than our accounting (shared disk): try the other tiers.
                failed.add(t)
                continue
            finally:
                self._index.reserved[t] -= size
            break
        self._index.add(digest, size, t)
        self._policy.touch(digest)
        self._counters.bytes_written += size
        self._cache_in_memory(digest, blob)
        if self._index.committed(t) > self.high_watermark * self._tiers[t].capacity:
            self._wake.set()

    def _place(self, size: int, failed: set[int]) -> tuple[int, list[tuple[int, str]]]:
        """The first tier with room for `size` bytes; failing that, the first tier where evicting
        (garbage first, LRFU order, never must_keep) makes room, with the blocks to unlink, already
        dropped from the index. Evicts nothing if no tier can make room."""
        candidates = [t for t in range(len(self._tiers)) if t not in failed]
        for t in candidates:
            if self._index.committed(t) + size <= self._tiers[t].capacity:
                return t, []
        for t in candidates:
            need = self._index.committed(t) + size - self._tiers[t].capacity
            if need > self._index.used[t]:
                continue
            chosen: list[str] = []
            for digest in self._victims(t):
                if need <= 0:
                    break
                if self.must_keep(digest) or self.held(digest):
                    continue
                chosen.append(digest)
                need -= self._index.entries[digest].size
            if need <= 0:
                for digest in chosen:
                    entry = self._forget(digest)
                    assert entry is not None
                    self._counters.evictions += 1
                    self._counters.evicted_bytes += entry.size
                return t, [(t, d) for d in chosen]
        raise NoSpace(f"no disk tier can take a block of {size} bytes, even after eviction")

    async def _read_disk(self, digest: str) -> bytes | None:
        entry = self._index.get(digest)
        if entry is None:
            return None
        tier = self._tiers[entry.tier]
        found = await asyncio.to_thread(tier.read, digest)
        data, ident = found if found is not None else (None, None)
        good = data is not None and len(data) == entry.size
        if good and self.verify_reads and ident != entry.verified:
            assert data is not None and ident is not None
            self._counters.verified_reads += 1
            good = await asyncio.to_thread(hash_block, data, multithread_bytes=self.multithread_hash_bytes) == digest
            if good and settled(ident, time.time_ns(), self.verify_settled_ns):
                entry.verified = ident  # until the file changes, its bytes are known to match
        if good:
            return data
        if self._index.get(digest) is entry:
            self._forget(digest)
            if data is not None:
                self._counters.corrupt += 1
                log.warning("block %s in %s does not match its name: dropped", digest, tier.path)
                await self._unlink([(entry.tier, digest)])
            else:
                log.warning("block %s vanished from %s: dropped from the index", digest, tier.path)
        return None

    def _hit(self, digest: str, blob: bytes, *, memory: bool) -> None:
        c = self._counters
        c.hits += 1
        if memory:
            c.hits_memory += 1
        else:
            c.hits_disk += 1
        c.bytes_read_from_cache += len(blob)
        if digest in self._index:
            self._policy.touch(digest)

    def _cache_in_memory(self, digest: str, blob: bytes) -> None:
        """Keep a copy in memory. Over capacity, copies are dropped (LRFU order, never this one)
        down to the low watermark, so the tier never exceeds its capacity."""
        if len(blob) > self._memory.capacity:
            return
        self._memory.add(digest, blob)
        if self._memory.used > self._memory.capacity:
            self._shrink_memory(self.low_watermark * self._memory.capacity, keep=digest)

    def _shrink_memory(self, target: float, keep: str | None = None) -> int:
        freed = 0
        for digest in self._policy.order(self._memory.digests()):
            if self._memory.used <= target:
                break
            if digest != keep:
                freed += self._memory.drop(digest)
                self._counters.memory_evictions += 1
        return freed

    def _forget(self, digest: str) -> Entry | None:
        """Drop a block from the index, the memory tier and the policy (not from disk: see _unlink)."""
        self._memory.drop(digest)
        self._policy.forget(digest)
        entry = self._index.drop(digest)
        if entry is not None:
            self._deleting.setdefault(digest, asyncio.Event())
        return entry

    def _unlink_files(self, doomed: list[tuple[int, str]]) -> None:
        for t, digest in doomed:
            self._tiers[t].unlink(digest)

    async def _unlink(self, doomed: Iterable[tuple[int, str]]) -> None:
        """Delete block files already dropped from the index; then let waiting puts proceed."""
        doomed = list(doomed)
        if not doomed:
            return
        try:
            await asyncio.to_thread(self._unlink_files, doomed)
        finally:
            for _, digest in doomed:
                event = self._deleting.pop(digest, None)
                if event is not None:
                    event.set()
