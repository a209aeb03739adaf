"""Operator controls in-process: load, free, pin, persist, TTLs; eviction around pins."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest
from cachevfs import BS, ME, chunks, close, new_env, read_all, ttl_of

from nsd import errors
from nsd.core.cache.policy import ReadType, WriteType
from nsd.namespace import FileInode
from nsd.ops.cache import controls
from nsd.vfs import Vfs


def layout(vfs, path: str) -> list:  # type: ignore[no-untyped-def]
    n = vfs.ns.resolve(path)
    assert isinstance(n, FileInode)
    return list(n.layout or [])


async def test_load_free_and_their_summaries(tmp_path: Path) -> None:
    env = new_env(tmp_path)
    a, b = os.urandom(3 * BS), os.urandom(BS + 1)
    env.ufs.put("d/a", a)
    env.ufs.put("d/e/b", b)
    vfs = await env.open()
    try:
        with pytest.raises(errors.IsDir, match="-r"):
            await controls.load_path(vfs, "/d")
        events: list[dict] = []
        summary = await controls.load_path(vfs, "/d", recursive=True, progress=events.append)
        assert events[0] == {"files": 2, "bytes": len(a) + len(b)}
        assert sorted(e["path"] for e in events[1:]) == ["/d/a", "/d/e/b"]
        assert summary["bytes_from_ufs"] == len(a) + len(b) and summary["bytes_already_cached"] == 0
        again = await controls.load_path(vfs, "/d", recursive=True)
        assert again["bytes_from_ufs"] == 0 and again["bytes_already_cached"] == len(a) + len(b)
        calls = env.ufs.calls
        assert await read_all(vfs, "/d/a") == a and env.ufs.calls == calls
        info = controls.cache_info(vfs, vfs.ns.resolve("/d/a"))
        assert info == {"persisted": True, "pinned": False, "cached_bytes": len(a), "persist_pending": False}

        freed = await controls.free_path(vfs, "/d/a")
        assert freed["freed_files"] == 1 and freed["freed_bytes"] == len(a)
        assert layout(vfs, "/d/a") == [] and vfs.cache is not None
        assert vfs.cache.report()["physical_bytes"] == len(b)
        assert await read_all(vfs, "/d/a") == a  # read through again
        vfs.cache.blocks.check()
    finally:
        await close(vfs)


async def test_free_keeps_unpersisted_and_pinned_data(tmp_path: Path) -> None:
    env = new_env(tmp_path, root_options={"write_type": "MUST_CACHE"})
    env.ufs.put("d/ufs", os.urandom(BS))
    vfs = await env.open()
    try:
        await vfs.write_file("/d/mine", chunks(os.urandom(BS)), caller=ME)
        await controls.load_path(vfs, "/d/ufs")
        await controls.pin_path(vfs, "/d/ufs", pinned=True)
        result = await controls.free_path(vfs, "/d", recursive=True)
        assert (result["freed_files"], result["skipped_unpersisted"], result["skipped_pinned"]) == (0, 1, 1)
        assert layout(vfs, "/d/mine") and layout(vfs, "/d/ufs")
        await controls.pin_path(vfs, "/d/ufs", pinned=False)
        assert (await controls.free_path(vfs, "/d", recursive=True))["freed_files"] == 1
    finally:
        await close(vfs)


async def test_eviction_keeps_usage_under_capacity_and_never_drops_pinned_blocks(tmp_path: Path) -> None:
    env = new_env(tmp_path, disk_bytes=10 * BS)
    pinned_data = os.urandom(3 * BS)
    env.ufs.put("pinned", pinned_data)
    for i in range(6):
        env.ufs.put(f"f{i}", os.urandom(3 * BS))
    vfs = await env.open()
    try:
        assert vfs.cache is not None
        await controls.load_path(vfs, "/pinned")
        await controls.pin_path(vfs, "/pinned", pinned=True)
        for i in range(6):
            await read_all(vfs, f"/f{i}")
            assert vfs.cache.report()["tiers"][1]["used"] <= 10 * BS
        await vfs.cache.blocks.evict()
        r = vfs.cache.report()
        assert r["evictions"] > 0 and r["tiers"][1]["used"] <= 0.9 * 10 * BS
        assert all(vfs.cache.blocks.has(e[2]) for e in layout(vfs, "/pinned"))
        calls = env.ufs.calls
        assert await read_all(vfs, "/pinned") == pinned_data and env.ufs.calls == calls
        vfs.cache.blocks.check()
    finally:
        await close(vfs)


async def test_a_pinned_directory_keeps_files_written_into_it_later(tmp_path: Path) -> None:
    env = new_env(tmp_path, disk_bytes=10 * BS, write_type=WriteType.CACHE_THROUGH)
    env.ufs.put("d/old", os.urandom(BS))
    env.ufs.put("d/sub/deep", os.urandom(BS))
    for i in range(6):
        env.ufs.put(f"f{i}", os.urandom(3 * BS))
    vfs = await env.open()
    try:
        assert vfs.cache is not None
        result = await controls.pin_path(vfs, "/d", pinned=True)  # no -r: a directory is taken whole
        assert result == {"files": 2, "directories": 2, "changed": 2, "pinned": True}
        later = os.urandom(3 * BS)
        await vfs.write_file("/d/sub/later", chunks(later), caller=ME)  # in the UFS, and cached
        env.ufs.put("d/found", os.urandom(BS))  # appears in the UFS, found at the next listing
        await vfs.discovery.sync_dir(vfs.ns.resolve("/d"))
        for p in ("/d/sub/later", "/d/found", "/d/sub"):
            assert controls.cache_info(vfs, vfs.ns.resolve(p))["pinned"], p
        for i in range(6):  # fill the cache twice over: the later file's blocks stay
            await read_all(vfs, f"/f{i}")
        await vfs.cache.blocks.evict()
        assert vfs.cache.report()["evictions"] > 0
        assert layout(vfs, "/d/sub/later") and all(vfs.cache.blocks.has(e[2]) for e in layout(vfs, "/d/sub/later"))
        assert vfs.cache.report()["pinned_dirs"] == 2

        undone = await controls.pin_path(vfs, "/d", pinned=False, recursive=True)
        assert undone["changed"] == 4 and undone["directories"] == 2
        await vfs.write_file("/d/after", chunks(b"x"), caller=ME)
        assert vfs.ns.pinned == set()
        with pytest.raises(errors.NotFound):
            await controls.pin_path(vfs, "/nope", pinned=True)
    finally:
        await close(vfs)


async def test_persist_path_and_pin_state_survive_restarts(tmp_path: Path) -> None:
    env = new_env(tmp_path, write_type=WriteType.MUST_CACHE)
    vfs = await env.open()
    await vfs.mkdir("/d", caller=ME)
    await vfs.write_file("/d/a", chunks(b"a" * 10), caller=ME)
    await vfs.write_file("/d/b", chunks(b"b" * 10), caller=ME)
    await controls.pin_path(vfs, "/d", pinned=True, recursive=True)
    await close(vfs, checkpoint=True)
    vfs = await env.open()
    try:
        assert vfs.ns.pinned == {vfs.ns.resolve(p).ino for p in ("/d", "/d/a", "/d/b")}
        result = await controls.persist_path(vfs, "/d", recursive=True)
        assert result == {"files": 2, "persisted": 2, "already_persisted": 0}
        assert env.ufs.files["d/a"].data == b"a" * 10 and env.ufs.files["d/b"].data == b"b" * 10
        assert (await controls.persist_path(vfs, "/d/a"))["already_persisted"] == 1
    finally:
        await close(vfs)


async def test_ttls_free_or_delete_when_they_expire(tmp_path: Path) -> None:
    env = new_env(tmp_path)
    env.ufs.put("d/a", os.urandom(BS))
    env.ufs.put("e/b", os.urandom(BS))
    vfs = await env.open()
    try:
        await controls.load_path(vfs, "/d/a")
        with pytest.raises(errors.Invalid, match="action"):
            await controls.set_ttl(vfs, "/d", 1, "burn")
        with pytest.raises(errors.Invalid, match="negative"):
            await controls.set_ttl(vfs, "/d", -1, "free")
        await controls.set_ttl(vfs, "/d", 3600, "free")
        await controls.set_ttl(vfs, "/e", 3600, "delete")
        assert await ttl_of(vfs).enforce() == 0  # not yet
        later = time.time_ns() + 7200 * 10**9
        assert await ttl_of(vfs).enforce(later) == 2
        assert layout(vfs, "/d/a") == [] and vfs.ns.ttls == {}
        with pytest.raises(errors.NotFound):
            await vfs.stat("/e", caller=ME)
        assert "e/b" not in env.ufs.files
        await controls.set_ttl(vfs, "/d/a", 10, "free")
        await controls.remove_ttl(vfs, "/d/a")
        with pytest.raises(errors.NotFound, match="no TTL"):
            await controls.remove_ttl(vfs, "/d/a")
        await controls.set_ttl(vfs, "/d/a", 0, "delete")  # the background enforcer gets this one
        for _ in range(100):
            if "d/a" not in env.ufs.files:
                break
            await asyncio.sleep(0.05)
        assert "d/a" not in env.ufs.files
    finally:
        await close(vfs)


class SlowBlocks:
    """Stands in for the reader's block(): a round trip first, the most calls at once, and one
    block (path, offset) that fails."""

    def __init__(self, vfs: Vfs, fail: tuple[str, int] | None = None) -> None:
        assert vfs.cache is not None
        self.vfs, self.real, self.fail = vfs, vfs.cache.reader.block, fail
        self.running = self.most = 0

    async def __call__(self, node: FileInode, off: int, read_type: ReadType) -> tuple[int, bytes, bool]:
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await asyncio.sleep(0.005)  # a remote store's round trip
            if (self.vfs.ns.path_of(node.ino), off) == self.fail:
                raise errors.Unavailable("the under-storage timed out")
            return await self.real(node, off, read_type)
        finally:
            self.running -= 1


async def test_load_reads_several_blocks_of_a_file_at_once_and_reports_a_failed_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = new_env(tmp_path)
    good, bad = os.urandom(10 * BS), os.urandom(6 * BS)
    env.ufs.put("d/good", good)
    env.ufs.put("d/bad", bad)
    vfs = await env.open()
    assert vfs.cache is not None
    blocks = SlowBlocks(vfs, fail=("/d/bad", 2 * BS))
    monkeypatch.setattr(vfs.cache.reader, "block", blocks)
    try:
        events: list[dict] = []
        summary = await controls.load_path(vfs, "/d", recursive=True, progress=events.append)
        assert blocks.most == controls.LOADS_IN_FLIGHT > 1
        assert summary["failed"] == 1
        failed = [e for e in events[1:] if "error" in e]
        assert [e["path"] for e in failed] == ["/d/bad"] and "timed out" in failed[0]["error"]
        assert summary["bytes_from_ufs"] < len(good) + len(bad)  # the failed file: what was read before
        assert await read_all(vfs, "/d/good") == good
        assert controls.cache_info(vfs, vfs.ns.resolve("/d/good"))["cached_bytes"] == len(good)
    finally:
        await close(vfs)


async def test_load_reads_several_small_files_at_once_and_reports_each_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = new_env(tmp_path)
    small = {f"d/f{i:02}": os.urandom(BS // 2 + i) for i in range(12)}
    for name, data in small.items():
        env.ufs.put(name, data)
    env.ufs.put("d/empty", b"")
    vfs = await env.open()
    assert vfs.cache is not None
    blocks = SlowBlocks(vfs)
    monkeypatch.setattr(vfs.cache.reader, "block", blocks)
    try:
        events: list[dict] = []
        summary = await controls.load_path(vfs, "/d", recursive=True, progress=events.append)
        assert blocks.most == controls.LOADS_IN_FLIGHT  # one block each: several files at once
        done = {e["path"]: e for e in events[1:]}
        assert len(events) == 1 + 13 and set(done) == {f"/{n}" for n in small} | {"/d/empty"}
        assert all(done[f"/{n}"]["bytes_from_ufs"] == len(data) for n, data in small.items())
        assert done["/d/empty"]["bytes_from_ufs"] == 0
        assert summary["bytes_from_ufs"] == sum(map(len, small.values())) and summary["failed"] == 0
        for name, data in small.items():
            assert controls.cache_info(vfs, vfs.ns.resolve(f"/{name}"))["cached_bytes"] == len(data)
    finally:
        await close(vfs)


async def test_a_file_that_changes_size_while_it_is_loaded_is_reported_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = new_env(tmp_path)
    env.ufs.put("d/a", os.urandom(8 * BS))
    env.ufs.put("d/b", os.urandom(3 * BS))
    vfs = await env.open()
    assert vfs.cache is not None
    blocks = SlowBlocks(vfs)
    real = blocks.real

    async def shrink_then_read(node: FileInode, off: int, read_type: ReadType) -> tuple[int, bytes, bool]:
        if off == 0 and vfs.ns.path_of(node.ino) == "/d/a":  # /d/b shrinks after the plan, before its turn
            await vfs.truncate("/d/b", BS, caller=ME)
        return await real(node, off, read_type)

    blocks.real = shrink_then_read  # type: ignore[assignment]
    monkeypatch.setattr(vfs.cache.reader, "block", blocks)
    try:
        events: list[dict] = []
        summary = await controls.load_path(vfs, "/d", recursive=True, progress=events.append)
        assert sorted(e["path"] for e in events[1:]) == ["/d/a", "/d/b"]  # each once, none missing
        assert [e["bytes"] for e in events[1:] if e["path"] == "/d/b"] == [3 * BS]  # the size planned
        assert summary["failed"] == 0 and summary["bytes_from_ufs"] == 8 * BS + BS  # what /d/b still has
        assert [e[:2] for e in vfs.ns.resolve("/d/b").layout or []] == [[0, BS]]  # nothing past its end
        vfs.ns.check()
    finally:
        await close(vfs)
