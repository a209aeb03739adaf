"""BlockStore against real directories: what a caller (the vfs) and an operator would see."""

from __future__ import annotations

import asyncio
import errno
import os
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from nsd.blockstore import BlockStore, SingleFlight, TierSpec, hash_block, split_blocks
from nsd.blockstore.disk import DiskTier
from nsd.errors import Invalid, NoSpace

MiB = 1 << 20
KiB = 1 << 10

Factory = Callable[..., Awaitable[BlockStore]]


@pytest.fixture
async def make(tmp_path: Path) -> AsyncIterator[Factory]:
    """make(memory, capacities..., **options): an opened store whose tiers are tmp_path/t0, t1, ..."""
    opened: list[BlockStore] = []

    async def factory(memory: int, *capacities: int, **options: Any) -> BlockStore:
        options.setdefault("fsync", False)
        tiers = [TierSpec(tmp_path / f"t{i}", c) for i, c in enumerate(capacities)]
        store = BlockStore(memory_bytes=memory, tiers=tiers, **options)
        await store.open()
        opened.append(store)
        return store

    yield factory
    for store in opened:
        await store.close()


def block_files(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("*/*") if p.is_file())


def blocks(n: int, size: int, seed: int = 0) -> list[bytes]:
    """n distinct blocks of `size` bytes."""
    return [(seed * 1_000_003 + i).to_bytes(8, "little") * (size // 8) for i in range(n)]


def tier_used(store: BlockStore, t: int) -> int:
    tiers: Any = store.stats()["tiers"]
    return int(tiers[t]["used"])


# ---- dedup --------------------------------------------------------------------------------------


async def test_same_64mib_under_two_files_is_stored_once(make: Factory, tmp_path: Path) -> None:
    store = await make(16 * MiB, 1 << 30, fsync=True)
    data = os.urandom(64 * MiB)
    layouts: dict[str, list[str]] = {}
    for name in ("mount-a/file", "mount-b/copy"):
        layouts[name] = []
        for off, n in split_blocks(len(data), 4 * MiB):
            digest = await store.put(memoryview(data)[off : off + n])
            store.ref(digest)
            layouts[name].append(digest)
    assert layouts["mount-a/file"] == layouts["mount-b/copy"]
    s = store.stats()
    assert s["physical_bytes"] == 64 * MiB
    assert s["logical_bytes"] == 128 * MiB
    assert s["physical_bytes"] * 2 == s["logical_bytes"] and s["dedup_ratio"] == 2.0
    assert s["blocks"] == 16 and s["dedup_puts"] == 16 and s["bytes_written"] == 64 * MiB
    assert len(block_files(tmp_path / "t0")) == 16
    assert b"".join([await store.get(d) or b"" for d in layouts["mount-b/copy"]]) == data
    store.check()


async def test_concurrent_puts_of_one_new_block_write_it_once(make: Factory, tmp_path: Path) -> None:
    store = await make(0, 10 * MiB)
    data = os.urandom(MiB)
    digests = await asyncio.gather(*(store.put(data) for _ in range(20)))
    assert set(digests) == {hash_block(data)}
    assert store.stats()["bytes_written"] == MiB
    assert len(block_files(tmp_path / "t0")) == 1
    store.check()


async def test_a_put_cancelled_while_its_block_is_written_leaves_it_indexed(
    make: Factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await make(0, 10 * MiB)
    data = os.urandom(MiB)
    writing, finish = threading.Event(), threading.Event()
    real = DiskTier.write

    def slow(self: DiskTier, digest: str, blob: bytes) -> None:
        writing.set()
        finish.wait(30)
        real(self, digest, blob)

    monkeypatch.setattr(DiskTier, "write", slow)
    put = asyncio.ensure_future(store.put(data))
    await asyncio.to_thread(writing.wait, 30)
    put.cancel()
    await asyncio.sleep(0.05)
    assert not put.done()  # waits for the worker thread, which it cannot stop
    finish.set()
    with pytest.raises(asyncio.CancelledError):
        await put
    assert store.has(hash_block(data)) and len(block_files(tmp_path / "t0")) == 1
    store.check()  # the file is in the index (unreferenced: garbage for eviction), no orphan
    assert store.stats()["bytes_written"] == MiB and store.refs(hash_block(data)) == 0


# ---- reads --------------------------------------------------------------------------------------


async def test_memory_hits_return_the_stored_object_and_disk_hits_the_same_bytes(make: Factory) -> None:
    store = await make(8 * MiB, 64 * MiB)
    data = os.urandom(MiB)
    digest = await store.put(data)
    first = await store.get(digest)
    assert first == data and await store.get(digest) is first  # no copy per hit
    assert store.size_of(digest) == MiB and store.has(digest)
    cold = await make(0, 64 * MiB)  # same dirs, empty memory
    assert await cold.get(digest) == data
    s = cold.stats()
    assert (s["hits"], s["hits_disk"], s["hits_memory"], s["bytes_read_from_cache"]) == (1, 1, 0, MiB)
    assert await store.get("0" * 64) is None and store.stats()["misses"] == 1
    assert store.size_of("0" * 64) is None


async def test_promote_puts_a_disk_hit_in_memory_and_plain_get_does_not(make: Factory, tmp_path: Path) -> None:
    writer = await make(0, 64 * MiB)
    a, b = blocks(2, 64 * KiB)
    da, db = await writer.put(a), await writer.put(b)
    store = await make(MiB, 64 * MiB)
    assert await store.get(da) == a and store.stats()["memory"] == {"capacity": MiB, "used": 0, "blocks": 0}
    assert await store.get(db, promote=True) == b
    assert store.stats()["memory"] == {"capacity": MiB, "used": 64 * KiB, "blocks": 1}
    assert await store.get(db) is await store.get(db)  # now served from memory
    store.check()


async def test_memory_tier_never_exceeds_its_capacity(make: Factory) -> None:
    store = await make(10 * 4 * KiB, 10 * MiB)
    digests = []
    for data in blocks(50, 4 * KiB):
        digests.append(await store.put(data))
        mem: Any = store.stats()["memory"]
        assert mem["used"] <= mem["capacity"]
        assert await store.get(digests[-1]) is not None
        store.check()
    mem = store.stats()["memory"]
    assert 0 < mem["blocks"] <= 10 and store.stats()["memory_evictions"] >= 40
    assert store.stats()["blocks"] == 50  # memory evictions never lose a block


async def test_concurrent_disk_reads_of_one_block_read_it_once(make: Factory, monkeypatch: pytest.MonkeyPatch) -> None:
    store = await make(0, 10 * MiB)
    data = os.urandom(MiB)
    digest = await store.put(data)
    reads = 0
    real = DiskTier.read

    def counting(self: DiskTier, d: str) -> bytes | None:
        nonlocal reads
        reads += 1
        return real(self, d)

    monkeypatch.setattr(DiskTier, "read", counting)
    assert await asyncio.gather(*(store.get(digest) for _ in range(100))) == [data] * 100
    assert reads == 1 and store.stats()["hits"] == 100


async def test_100_concurrent_readers_of_a_missing_block_wait_on_one_fetch(make: Factory) -> None:
    """The caller's read-through pattern: get, else one single-flight fetch from the UFS that puts."""
    store = await make(MiB, 10 * MiB)
    flights = SingleFlight()
    ufs = os.urandom(256 * KiB)
    digest = hash_block(ufs)
    fetches = 0

    async def fetch() -> bytes:
        nonlocal fetches
        fetches += 1
        await asyncio.sleep(0.01)  # a slow under-storage
        await store.put(ufs)
        return ufs

    async def read() -> bytes:
        return await store.get(digest) or await flights.run(digest, fetch)

    assert await asyncio.gather(*(read() for _ in range(100))) == [ufs] * 100
    assert fetches == 1
    assert await read() == ufs and fetches == 1  # now cached


# ---- corruption ---------------------------------------------------------------------------------


async def test_flipped_byte_on_disk_is_detected_dropped_counted_and_never_served(make: Factory, tmp_path: Path) -> None:
    store = await make(0, 10 * MiB)
    data = os.urandom(MiB)
    digest = await store.put(data)
    path = tmp_path / "t0" / digest[:2] / digest
    raw = bytearray(path.read_bytes())
    raw[12345] ^= 0x01
    path.write_bytes(bytes(raw))
    results = await asyncio.gather(*(store.get(digest) for _ in range(10)))
    assert results == [None] * 10
    assert not path.exists() and not store.has(digest)
    s = store.stats()
    assert s["corrupt"] == 1 and s["hits"] == 0 and s["misses"] == 10
    store.check()
    assert await store.put(data) == digest and await store.get(digest) == data  # re-fetched copy is served
    store.check()


async def test_truncated_block_is_caught_by_its_size_even_without_rehashing(make: Factory, tmp_path: Path) -> None:
    store = await make(0, 10 * MiB, verify_reads=False)
    digest = await store.put(os.urandom(64 * KiB))
    path = tmp_path / "t0" / digest[:2] / digest
    os.truncate(path, 1000)
    assert await store.get(digest) is None
    assert store.stats()["corrupt"] == 1 and not path.exists()
    store.check()


async def test_a_settled_block_file_is_hashed_once_and_again_only_after_it_changes(
    make: Factory, tmp_path: Path
) -> None:
    store = await make(0, 10 * MiB, verify_settled_ns=0)
    data = os.urandom(256 * KiB)
    digest = await store.put(data)
    path = tmp_path / "t0" / digest[:2] / digest
    await asyncio.sleep(0.05)  # past the coarse clock tick the file was stamped in
    for _ in range(5):
        assert await store.get(digest) == data
    assert store.stats()["verified_reads"] == 1  # hashed on its first disk read only
    raw = bytearray(data)
    raw[7] ^= 0x80
    path.write_bytes(bytes(raw))  # same size, same inode: only its times say it changed
    assert await store.get(digest) is None
    assert store.stats()["verified_reads"] == 2 and store.stats()["corrupt"] == 1
    store.check()


async def test_a_file_changed_within_the_settling_time_is_hashed_on_every_read(make: Factory) -> None:
    store = await make(0, 10 * MiB, verify_settled_ns=3600 * 10**9)
    data = os.urandom(64 * KiB)
    digest = await store.put(data)
    for _ in range(3):
        assert await store.get(digest) == data
    assert store.stats()["verified_reads"] == 3  # too fresh to trust: a same-tick write would not show


async def test_a_restart_forgets_what_was_verified(make: Factory) -> None:
    first = await make(0, 10 * MiB, verify_settled_ns=0)
    data = os.urandom(64 * KiB)
    digest = await first.put(data)
    await asyncio.sleep(0.05)
    assert await first.get(digest) == data and await first.get(digest) == data
    assert first.stats()["verified_reads"] == 1
    await first.close()
    again = await make(0, 10 * MiB, verify_settled_ns=0)
    assert await again.get(digest) == data and await again.get(digest) == data
    assert again.stats()["verified_reads"] == 1


async def test_without_verification_nothing_is_hashed(make: Factory) -> None:
    store = await make(0, 10 * MiB, verify_reads=False)
    digest = await store.put(b"x" * 4096)
    assert await store.get(digest) == b"x" * 4096
    assert store.stats()["verified_reads"] == 0


async def test_a_block_deleted_behind_our_back_is_a_miss(make: Factory, tmp_path: Path) -> None:
    store = await make(0, 10 * MiB)
    digest = await store.put(b"gone soon")
    (tmp_path / "t0" / digest[:2] / digest).unlink()
    assert await store.get(digest) is None and not store.has(digest)
    assert store.stats()["corrupt"] == 0
    store.check()


# ---- restart ------------------------------------------------------------------------------------


async def test_index_is_rebuilt_from_the_block_files_with_the_same_stats(make: Factory) -> None:
    store = await make(MiB, 40 * KiB, 10 * MiB)  # tier 0 takes 10 of these blocks, the rest spill over
    digests = [await store.put(b) for b in blocks(30, 4 * KiB)]
    for d in digests[::2]:
        store.ref(d, 3)
    before = store.stats()
    tiers: Any = before["tiers"]
    assert tiers[0]["blocks"] == 10 and tiers[1]["blocks"] == 20
    await store.close()

    again = await make(MiB, 40 * KiB, 10 * MiB)
    again.check()
    for d in digests[::2]:  # the namespace re-counts its layouts after open
        again.ref(d, 3)
    after = again.stats()
    for key in ("tiers", "blocks", "physical_bytes", "logical_bytes", "dedup_ratio"):
        assert after[key] == before[key], key
    for d, b in zip(digests, blocks(30, 4 * KiB), strict=True):
        assert await again.get(d) == b


async def test_open_removes_leftover_tmp_files_and_ignores_foreign_ones(make: Factory, tmp_path: Path) -> None:
    store = await make(0, 10 * MiB)
    digest = await store.put(b"kept")
    await store.close()
    fan = tmp_path / "t0" / "ab"
    (fan / ("ab" + "0" * 62 + ".1234abcd.tmp")).write_bytes(b"half a blo")
    (fan / "README").write_text("not a block")
    (fan / ("cd" + "0" * 62)).write_bytes(b"a block in the wrong fanout dir")
    again = await make(0, 10 * MiB)
    assert not list((tmp_path / "t0").glob("*/*.tmp"))
    assert (fan / "README").exists()
    assert again.stats()["blocks"] == 1 and again.has(digest)
    again.check()


async def test_a_block_found_in_two_tiers_keeps_the_faster_copy(make: Factory, tmp_path: Path) -> None:
    store = await make(0, 10 * MiB, 10 * MiB)
    digest = await store.put(b"twice")
    await store.close()
    (tmp_path / "t1" / digest[:2] / digest).write_bytes(b"twice")
    again = await make(0, 10 * MiB, 10 * MiB)
    tiers: Any = again.stats()["tiers"]
    assert [t["blocks"] for t in tiers] == [1, 0]
    assert not (tmp_path / "t1" / digest[:2] / digest).exists()
    again.check()


# ---- eviction -----------------------------------------------------------------------------------


async def test_eviction_keeps_usage_under_capacity_and_never_drops_must_keep(make: Factory) -> None:
    keep: set[str] = set()
    store = await make(0, 20 * 4 * KiB, must_keep=keep.__contains__, high_watermark=0.9, low_watermark=0.5)
    capacity = 20 * 4 * KiB
    for i, data in enumerate(blocks(200, 4 * KiB)):
        digest = hash_block(data)
        if i % 7 == 0 and len(keep) < 8:
            keep.add(digest)
        assert await store.put(data) == digest
        store.ref(digest)
        assert tier_used(store, 0) <= capacity
        if i % 10 == 0:
            await store.evict()
            assert tier_used(store, 0) <= 0.9 * capacity
        store.check()
    assert all(store.has(d) for d in keep)
    await store.evict()
    assert tier_used(store, 0) <= 0.5 * capacity
    assert all(store.has(d) for d in keep) and store.stats()["evictions"] > 0


async def test_unreferenced_blocks_are_evicted_before_referenced_ones(make: Factory) -> None:
    store = await make(0, 10 * 4 * KiB, high_watermark=0.5, low_watermark=0.5, lrfu_lambda=1.0)
    digests = [await store.put(b) for b in blocks(6, 4 * KiB)]
    for d in digests[:3]:
        store.ref(d)
    for d in digests[3:]:
        assert await store.get(d)  # unreferenced, but the most recently used
    freed = await store.evict()
    assert freed == 4 * KiB
    assert [store.has(d) for d in digests] == [True, True, True, False, True, True]
    store.check()


async def test_lru_order_among_referenced_blocks(make: Factory) -> None:
    store = await make(0, 10 * 4 * KiB, high_watermark=0.5, low_watermark=0.3, lrfu_lambda=1.0)
    digests = [await store.put(b) for b in blocks(6, 4 * KiB)]
    for d in digests:
        store.ref(d)
    for d in reversed(digests):
        assert await store.get(d)  # digests[0] is now the most recent
    await store.evict()
    assert [store.has(d) for d in digests] == [True, True, True, False, False, False]


async def test_put_evicts_to_make_room_but_never_must_keep_blocks_and_then_fails(make: Factory) -> None:
    keep: set[str] = set()
    store = await make(MiB, 4 * 4 * KiB, must_keep=keep.__contains__)
    first = [await store.put(b) for b in blocks(4, 4 * KiB)]
    extra = blocks(2, 4 * KiB, seed=9)
    keep.update(first[1:])
    assert await store.put(extra[0])  # evicts first[0], the only block that may go
    assert not store.has(first[0]) and all(store.has(d) for d in first[1:])
    keep.add(hash_block(extra[0]))
    with pytest.raises(NoSpace):
        await store.put(extra[1])
    assert not store.has(hash_block(extra[1])) and all(store.has(d) for d in first[1:])
    assert tier_used(store, 0) == 4 * 4 * KiB
    store.check()


async def test_a_held_block_is_not_evicted_until_its_hold_ends(make: Factory, monkeypatch: pytest.MonkeyPatch) -> None:
    """A block a peer gave this node is held (cluster: before its layout arrives): neither a
    put that needs room nor an eviction pass drops it while the hold runs; then they may."""
    clock = [1000.0]
    monkeypatch.setattr("nsd.blockstore.store.time.monotonic", lambda: clock[0])
    keep: set[str] = set()
    store = await make(MiB, 2 * 4 * KiB, must_keep=keep.__contains__)
    given, other = blocks(2, 4 * KiB)
    store.hold(hash_block(given), 600)
    await store.put(given)
    await store.put(other)
    keep.add(await store.put(blocks(1, 4 * KiB, seed=5)[0]))  # room made by evicting `other`
    assert store.has(hash_block(given)) and not store.has(hash_block(other))
    with pytest.raises(NoSpace):
        await store.put(blocks(1, 4 * KiB, seed=6)[0])  # only the held block could go
    clock[0] += 601
    assert not store.held(hash_block(given))
    assert await store.put(blocks(1, 4 * KiB, seed=6)[0])
    assert not store.has(hash_block(given))
    store.check()


async def test_a_block_larger_than_every_tier_or_the_maximum_is_refused(make: Factory, tmp_path: Path) -> None:
    store = await make(MiB, 8 * KiB, max_block_bytes=MiB)
    with pytest.raises(NoSpace):
        await store.put(b"x" * (16 * KiB))
    with pytest.raises(Invalid):
        await store.put(b"x" * (MiB + 1))
    assert block_files(tmp_path / "t0") == []
    store.check()


async def test_background_eviction_brings_a_tier_under_its_watermark(make: Factory) -> None:
    store = await make(0, 10 * 4 * KiB, high_watermark=0.6, low_watermark=0.3)
    store.start_background_eviction(interval=0.01)
    for data in blocks(10, 4 * KiB):
        await store.put(data)
    for _ in range(500):  # a bounded wait for the task, not a timing assertion
        if tier_used(store, 0) <= 0.6 * 10 * 4 * KiB:
            break
        await asyncio.sleep(0.01)
    # Each pass went down to the low watermark; the puts after the last pass stayed under the high one.
    assert tier_used(store, 0) <= 0.6 * 10 * 4 * KiB
    assert store.stats()["evictions"] > 0
    await store.close()
    store.check()


async def test_memory_tier_is_evicted_by_watermark(make: Factory) -> None:
    store = await make(10 * 4 * KiB, 10 * MiB, high_watermark=0.5, low_watermark=0.2)
    for data in blocks(8, 4 * KiB):
        await store.put(data)
    freed = await store.evict()
    mem: Any = store.stats()["memory"]
    assert mem["used"] <= 8 * KiB and freed == 8 * 4 * KiB - mem["used"]
    assert store.stats()["blocks"] == 8 and store.stats()["evictions"] == 0


# ---- references and removal ---------------------------------------------------------------------


async def test_reference_counts_never_go_negative(make: Factory) -> None:
    store = await make(0, MiB)
    digest = await store.put(b"r")
    store.ref(digest, 2)
    store.unref(digest)
    with pytest.raises(Invalid):
        store.unref(digest, 2)
    assert store.refs(digest) == 1
    store.unref(digest)
    assert store.refs(digest) == 0 and store.stats()["logical_bytes"] == 0
    with pytest.raises(Invalid):
        store.ref(digest, -1)
    with pytest.raises(Invalid):
        store.ref("not-a-digest")
    store.check()


async def test_remove_drops_a_block_everywhere_and_a_racing_put_survives(make: Factory, tmp_path: Path) -> None:
    store = await make(MiB, 10 * MiB)
    data = os.urandom(256 * KiB)
    digest = await store.put(data)
    store.ref(digest)
    await store.remove(digest)
    assert not store.has(digest) and await store.get(digest) is None
    assert block_files(tmp_path / "t0") == [] and store.refs(digest) == 1
    await store.put(data)
    await asyncio.gather(store.remove(digest), store.put(data))
    assert store.has(digest) and await store.get(digest) == data
    store.check()


# ---- full disks ---------------------------------------------------------------------------------


@pytest.mark.parametrize("syscall", ["write", "pwrite"])
async def test_enospc_gives_nospace_and_leaves_no_partial_block(
    make: Factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, syscall: str
) -> None:
    store = await make(0, 10 * MiB)
    real_write, real_pwrite = os.write, os.pwrite
    written = 0

    def full_write(fd: int, data: Any) -> int:
        nonlocal written
        if written:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written = real_write(fd, memoryview(data)[: 100 * KiB])  # a short first write, then the disk is full
        return written

    def full_pwrite(fd: int, data: Any, offset: int) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", full_write)
    monkeypatch.setattr(os, "pwrite", full_pwrite)
    data = os.urandom(MiB)
    with pytest.raises(NoSpace):
        await store.put(data)
    assert written == 100 * KiB  # the write really started
    assert list((tmp_path / "t0").glob("*/*")) == []
    assert not store.has(hash_block(data))
    store.check()
    monkeypatch.setattr(os, "write", real_write)
    monkeypatch.setattr(os, "pwrite", real_pwrite)
    assert await store.put(data) == hash_block(data) and await store.get(hash_block(data)) == data


async def test_enospc_in_one_tier_spills_to_the_next(
    make: Factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await make(0, 10 * MiB, 10 * MiB)
    real_write = os.write
    calls = 0

    def first_fails(fd: int, data: Any) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", first_fails)
    digest = await store.put(b"spilled")
    tiers: Any = store.stats()["tiers"]
    assert [t["blocks"] for t in tiers] == [0, 1]
    assert (tmp_path / "t1" / digest[:2] / digest).read_bytes() == b"spilled"
    store.check()
