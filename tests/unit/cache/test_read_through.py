"""Read-through in-process: blocks fetched once, served from the store, never stale, never corrupt."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cachevfs import BS, ME, Env, close, new_env, read_all

from nsd import errors
from nsd.core.cache.policy import ReadType
from nsd.core.cache.reader import BlockReader
from nsd.namespace import FileInode
from nsd.namespace.layouts import block_at
from nsd.vfs import Vfs


def layout_of(vfs, path: str) -> list:  # type: ignore[no-untyped-def]
    node = vfs.ns.resolve(path)
    assert isinstance(node, FileInode)
    return list(node.layout or [])


async def test_first_read_fills_the_cache_and_the_second_is_served_from_it(tmp_path: Path) -> None:
    env = new_env(tmp_path)
    data = os.urandom(3 * BS + 123)
    env.ufs.put("f", data)
    vfs = await env.open()
    try:
        assert await read_all(vfs, "/f") == data
        assert [e[:2] for e in layout_of(vfs, "/f")] == [[0, BS], [BS, BS], [2 * BS, BS], [3 * BS, 123]]
        assert vfs.cache is not None
        r = vfs.cache.report()
        assert (r["misses"], r["bytes_from_ufs"], r["physical_bytes"]) == (4, len(data), len(data))
        calls = env.ufs.calls
        assert await read_all(vfs, "/f") == data
        assert env.ufs.calls == calls  # not one call to the UFS
        r = vfs.cache.report()
        assert (r["hits"], r["bytes_from_cache"], r["bytes_from_ufs"]) == (4, len(data), len(data))
        # A read inside one block, and one across two.
        node = vfs.ns.resolve("/f")
        assert (await vfs.read_at(node.ino, 10, 20, caller=ME))[0] == data[10:30]
        assert (await vfs.read_at(node.ino, BS - 5, 10, caller=ME))[0] == data[BS - 5 : BS + 5]
        vfs.cache.blocks.check()
        vfs.ns.check()
    finally:
        await close(vfs)


async def test_identical_files_are_stored_once(tmp_path: Path) -> None:
    env = new_env(tmp_path)
    data = os.urandom(5 * BS)
    env.ufs.put("a/f", data)
    env.ufs.put("b/g", data)
    vfs = await env.open()
    try:
        assert await read_all(vfs, "/a/f") == data
        assert await read_all(vfs, "/b/g") == data
        assert vfs.cache is not None
        r = vfs.cache.report()
        assert r["physical_bytes"] == len(data) and r["logical_bytes"] == 2 * len(data)
        assert r["dedup_ratio"] == 2.0
    finally:
        await close(vfs)


async def test_concurrent_readers_of_a_missing_block_share_one_fetch(tmp_path: Path) -> None:
    env = new_env(tmp_path)
    data = os.urandom(BS)
    env.ufs.put("f", data)
    vfs = await env.open()
    try:
        node = await vfs.stat("/f", caller=ME)
        env.ufs.faults.latency = 0.05
        calls = env.ufs.calls
        results = await asyncio.gather(*(vfs.read_at(node.ino, i * 100, 100, caller=ME) for i in range(8)))
        assert [r[0] for r in results] == [data[i * 100 : i * 100 + 100] for i in range(8)]
        assert env.ufs.calls - calls == 1
    finally:
        await close(vfs)


async def test_an_out_of_band_overwrite_is_never_served_stale(tmp_path: Path) -> None:
    env = new_env(tmp_path, root_options={"sync_interval": "0"})
    old, new = os.urandom(2 * BS), os.urandom(2 * BS + 7)
    env.ufs.put("f", old)
    vfs = await env.open()
    try:
        assert await read_all(vfs, "/f") == old
        old_digests = {e[2] for e in layout_of(vfs, "/f")}
        env.ufs.put("f", new)
        assert await read_all(vfs, "/f") == new
        assert not old_digests & {e[2] for e in layout_of(vfs, "/f")}
        env.ufs.put("f", old[:100])  # shorter now
        assert await read_all(vfs, "/f") == old[:100]
    finally:
        await close(vfs)


async def test_a_block_read_under_an_old_fingerprint_never_joins_the_new_version(tmp_path: Path) -> None:
    env = new_env(tmp_path, root_options={"sync_interval": "0"})
    env.ufs.put("f", os.urandom(BS))
    vfs = await env.open()
    try:
        node = await vfs.stat("/f", caller=ME)
        env.ufs.faults.latency = 0.1
        read = asyncio.ensure_future(vfs.read_at(node.ino, 0, 10, caller=ME))  # in flight under the old fingerprint
        await asyncio.sleep(0.02)
        env.ufs.faults.latency = 0
        env.ufs.put("f", os.urandom(BS))
        await vfs.stat("/f", caller=ME)  # the update is noticed while the old read runs
        await read
        assert layout_of(vfs, "/f") == []
    finally:
        await close(vfs)


async def test_a_corrupt_block_file_is_detected_counted_and_fetched_again(tmp_path: Path) -> None:
    env = new_env(tmp_path)
    data = os.urandom(4 * BS)
    env.ufs.put("f", data)
    vfs = await env.open()
    assert await read_all(vfs, "/f") == data
    digest = layout_of(vfs, "/f")[2][2]
    await close(vfs, checkpoint=True)
    block = tmp_path / "blocks" / digest[:2] / digest
    raw = bytearray(block.read_bytes())
    raw[100] ^= 0xFF
    block.write_bytes(raw)
    vfs = await env.open()  # a new start: nothing of the block is in memory
    try:
        assert vfs.cache is not None
        assert await read_all(vfs, "/f") == data
        r = vfs.cache.report()
        assert (r["corrupt_blocks"], r["refetched_blocks"], r["bytes_from_ufs"]) == (1, 1, BS)
        assert block.read_bytes() == data[2 * BS : 3 * BS]  # stored again, whole
        assert layout_of(vfs, "/f")[2][2] == digest
    finally:
        await close(vfs)


async def test_layouts_and_reference_counts_survive_a_restart(tmp_path: Path) -> None:
    env = new_env(tmp_path)
    data = os.urandom(2 * BS)
    env.ufs.put("f", data)
    env.ufs.put("g", data)
    vfs = await env.open()
    await read_all(vfs, "/f")
    await read_all(vfs, "/g")
    await close(vfs)  # no checkpoint: the CacheBlock records are replayed
    vfs = await env.open()
    try:
        assert vfs.cache is not None
        digests = [e[2] for e in layout_of(vfs, "/f")]
        assert [vfs.cache.blocks.refs(d) for d in digests] == [2, 2]
        calls = env.ufs.calls
        assert await read_all(vfs, "/f") == data
        assert env.ufs.calls == calls and vfs.cache.report()["bytes_from_ufs"] == 0
    finally:
        await close(vfs)


@pytest.mark.parametrize("read_type", [ReadType.NO_CACHE, ReadType.CACHE_PROMOTE])
async def test_read_types(tmp_path: Path, read_type: ReadType) -> None:
    env = new_env(tmp_path, memory_bytes=16 * BS)
    data = os.urandom(2 * BS)
    env.ufs.put("f", data)
    vfs = await env.open()
    try:
        assert vfs.cache is not None
        if read_type is ReadType.NO_CACHE:
            assert await read_all(vfs, "/f", read_type) == data
            assert layout_of(vfs, "/f") == [] and vfs.cache.report()["physical_bytes"] == 0
            await read_all(vfs, "/f")  # CACHE fills it; NO_CACHE then serves what is there
            calls = env.ufs.calls
            assert await read_all(vfs, "/f", read_type) == data and env.ufs.calls == calls
        else:
            await read_all(vfs, "/f")
            await close(vfs)
            vfs = await env.open()
            assert vfs.cache is not None
            assert vfs.cache.blocks.stats()["memory"]["used"] == 0  # type: ignore[index]
            assert await read_all(vfs, "/f", read_type) == data
            assert vfs.cache.blocks.stats()["memory"]["used"] == len(data)  # type: ignore[index]
    finally:
        await close(vfs)


async def test_the_mount_option_sets_the_read_type(tmp_path: Path) -> None:
    env = new_env(tmp_path, root_options={"read_type": "no_cache"})
    env.ufs.put("f", b"x" * 10)
    vfs = await env.open()
    try:
        assert await read_all(vfs, "/f") == b"x" * 10
        assert layout_of(vfs, "/f") == []
    finally:
        await close(vfs)


def test_block_at_finds_the_covering_entry() -> None:
    layout = [[0, 4, "a"], [4, 4, "b"], [10, 2, "c"]]
    assert block_at(layout, 0) == (0, 4, "a") and block_at(layout, 7) == (4, 4, "b")
    assert block_at(layout, 8) is None and block_at(layout, 11) == (10, 2, "c") and block_at(layout, 12) is None
    assert block_at(None, 0) is None


async def test_sequential_reads_get_the_next_cached_block_read_ahead(tmp_path: Path) -> None:
    env = new_env(tmp_path)  # no memory tier: every block comes from disk, re-hashed
    data = os.urandom(4 * BS)
    env.ufs.put("f", data)
    vfs = await env.open()
    try:
        assert await read_all(vfs, "/f") == data  # cold: fills the cache, no read-ahead from the UFS
        assert vfs.cache is not None
        reader, store = vfs.cache.reader, vfs.cache.blocks
        node = vfs.ns.resolve("/f")
        assert isinstance(node, FileInode)
        digests = [e[2] for e in node.layout or []]
        reader._recent.clear()
        half = BS // 2
        assert (await vfs.read_at(node.ino, 0, half, caller=ME))[0] == data[:half]
        assert not reader._ahead  # one read is not yet a sequence
        assert (await vfs.read_at(node.ino, half, half, caller=ME))[0] == data[half:BS]
        assert digests[1] in reader._ahead or digests[1] in reader._recent  # the next block is on its way
        await asyncio.gather(*reader._ahead.values())
        disk_hits = store.stats()["hits_disk"]
        assert (await vfs.read_at(node.ino, BS, BS, caller=ME))[0] == data[BS : 2 * BS]
        assert store.stats()["hits_disk"] == disk_hits  # served from what was read ahead
        assert digests[2] in reader._ahead or digests[2] in reader._recent  # and so on
        await asyncio.gather(*reader._ahead.values())
        reader._recent.clear()
        assert (await vfs.read_at(node.ino, 0, half, caller=ME))[0] == data[:half]  # a jump back: not a sequence
        assert not reader._ahead
    finally:
        await close(vfs)


def ahead_offsets(reader: BlockReader) -> list[int]:
    return sorted(key[1] for key in reader._fetching)


@dataclass
class OneFile:
    """/f of `blocks` random blocks in the UFS, read through a fresh vfs."""

    env: Env
    vfs: Vfs
    reader: BlockReader
    ino: int
    data: bytes
    closed: bool = False

    async def read(self, positions: Iterable[int], size: int = BS) -> bytes:
        """The reads one after another, joined."""
        vfs, ino = self.vfs, self.ino
        return b"".join([bytes((await vfs.read_at(ino, pos, size, caller=ME))[0]) for pos in positions])

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            await close(self.vfs)


@contextlib.asynccontextmanager
async def one_file(tmp_path: Path, blocks: int, **env: object) -> AsyncIterator[OneFile]:
    e = new_env(tmp_path, **env)
    data = os.urandom(blocks * BS)
    e.ufs.put("f", data)
    vfs = await e.open()
    assert vfs.cache is not None
    f = OneFile(e, vfs, vfs.cache.reader, (await vfs.stat("/f", caller=ME)).ino, data)
    try:
        yield f
    finally:
        await f.close()


async def test_a_sequential_cold_reader_gets_missing_blocks_fetched_ahead_once(tmp_path: Path) -> None:
    async with one_file(tmp_path, 12) as f:
        reader, data = f.reader, f.data
        f.env.ufs.faults.read_latency = 0.02  # a remote store's first byte
        assert await f.read([0]) == data[:BS]
        assert not reader._fetching  # one read is not yet a sequence
        second = asyncio.ensure_future(f.read([BS]))
        await asyncio.sleep(0)
        # the window starts where this read ends: the next `read_ahead` blocks, all at once
        assert reader.read_ahead == 4 and ahead_offsets(reader) == [b * BS for b in range(2, 6)]
        assert await second == data[BS : 2 * BS]
        got = [data[: 2 * BS]]
        for pos in range(2 * BS, len(data), BS // 2):  # half blocks: the window moves a block at a time
            got.append(await f.read([pos], BS // 2))
            assert len(reader._fetching) + len(reader._fetched) <= reader.read_ahead
        assert b"".join(got) == data
        c = reader.counters
        assert (c.bytes_from_ufs, c.block_misses) == (len(data), 12)  # each block fetched once
        # blocks 2-11 ahead, but one whose task had not started when its read came is that read's
        assert f.vfs.cache is not None
        assert 8 <= c.read_ahead <= 10 and f.vfs.cache.report()["read_ahead_blocks"] == c.read_ahead
        assert not reader._fetching and not reader._fetched
        assert [e[:2] for e in layout_of(f.vfs, "/f")] == [[b * BS, BS] for b in range(12)]
        calls = f.env.ufs.calls
        assert await read_all(f.vfs, "/f") == data and f.env.ufs.calls == calls  # all of it cached


async def test_jumps_and_uncached_reads_fetch_nothing_ahead(tmp_path: Path) -> None:
    async with one_file(tmp_path, 8) as f:
        for pos in (5 * BS, 0, 3 * BS, BS):  # random access
            assert await f.read([pos]) == f.data[pos : pos + BS]
            assert not f.reader._fetching
        for pos in range(4 * BS, 8 * BS, BS):  # sequential, but NO_CACHE keeps nothing to read ahead for
            await f.vfs.read_at(f.ino, pos, BS, caller=ME, read_type=ReadType.NO_CACHE)
            assert not f.reader._fetching
        assert f.reader.counters.read_ahead == 0


async def test_blocks_cached_already_are_not_fetched_ahead(tmp_path: Path) -> None:
    async with one_file(tmp_path, 8) as f:
        await f.read([3 * BS, 5 * BS])
        assert await f.read(range(0, 8 * BS, BS)) == f.data
        assert (f.reader.counters.bytes_from_ufs, f.reader.counters.read_ahead) == (len(f.data), 4)  # 2, 4, 6, 7


async def test_a_block_fetched_ahead_that_the_store_cannot_keep_is_served_not_fetched_again(tmp_path: Path) -> None:
    async with one_file(tmp_path, 6, disk_bytes=BS // 2) as f:  # no block fits: each is served, not cached
        assert await f.read(range(0, 6 * BS, BS)) == f.data
        c = f.reader.counters
        assert (c.bytes_from_ufs, c.not_cached, c.read_ahead) == (len(f.data), 6, 4)
        assert layout_of(f.vfs, "/f") == [] and not f.reader._fetched


async def test_closing_stops_the_fetches_ahead(tmp_path: Path) -> None:
    async with one_file(tmp_path, 8) as f:
        await f.read([0])
        f.env.ufs.faults.read_latency = 30  # fetches that would outlive the test
        second = asyncio.ensure_future(f.read([BS]))
        await asyncio.sleep(0)
        tasks = list(f.reader._fetching.values())
        assert len(tasks) == f.reader.read_ahead
        second.cancel()
        await f.close()
        assert all(t.cancelled() for t in tasks) and not f.reader._fetching
        assert [e[0] for e in layout_of(f.vfs, "/f")] == [0]  # only the block read before


@pytest.mark.parametrize("read_ahead", [0, 2])
async def test_the_setting_sizes_the_window(tmp_path: Path, read_ahead: int) -> None:
    async with one_file(tmp_path, 8, read_ahead_blocks=read_ahead) as f:
        await f.read([0])
        f.env.ufs.faults.read_latency = 0.02
        second = asyncio.ensure_future(f.read([BS]))
        await asyncio.sleep(0)
        assert ahead_offsets(f.reader) == [b * BS for b in range(2, 2 + read_ahead)]
        await second
        assert await f.read(range(2 * BS, 8 * BS, BS)) == f.data[2 * BS :]
        c = f.reader.counters
        assert c.bytes_from_ufs == len(f.data) and (c.read_ahead >= 4 if read_ahead else c.read_ahead == 0)


async def test_a_block_past_the_end_is_refused_and_nothing_is_recorded(tmp_path: Path) -> None:
    async with one_file(tmp_path, 2) as f:
        node = f.vfs.ns.inodes[f.ino]
        assert isinstance(node, FileInode)
        with pytest.raises(errors.Invalid, match="past the end"):
            await f.reader.block(node, 3 * BS)
        assert f.vfs.store.failed is None and layout_of(f.vfs, "/f") == []  # no block of no bytes journaled
        await f.vfs.mkdir("/still-writable", caller=ME)
