"""Write types in-process: where sealed content goes, persisting, and re-sealing only what changed."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from cachevfs import BS, ME, Env, chunks, close, crash, new_env, read_all

from nsd import errors
from nsd.core.cache.persister import PERSISTS_IN_FLIGHT
from nsd.core.cache.policy import WriteType
from nsd.namespace import FileInode
from nsd.namespace.layouts import unpersisted
from nsd.ops.cache.controls import persist_path
from nsd.ufs.wrap.health import HealthUfs
from nsd.vfs import Vfs


def node(vfs: Vfs, path: str) -> FileInode:
    n = vfs.ns.resolve(path)
    assert isinstance(n, FileInode)
    return n


async def wait_for(cond, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_must_cache_stays_out_of_the_ufs_until_persisted(tmp_path: Path) -> None:
    env = new_env(tmp_path, write_type=WriteType.MUST_CACHE)
    vfs = await env.open()
    data = os.urandom(2 * BS + 5)
    try:
        await vfs.mkdir("/d", caller=ME)
        await vfs.write_file("/d/f", chunks(data[:1000], data[1000:]), caller=ME)
        f = node(vfs, "/d/f")
        assert unpersisted(f) and f.size == len(data) and "d/f" not in env.ufs.files
        assert await read_all(vfs, "/d/f") == data
        assert vfs.ns.kept and vfs.ns.persist_pending == set()
        await asyncio.sleep(0.3)
        assert "d/f" not in env.ufs.files  # MUST_CACHE: nobody persists it behind our back
        assert (await persist_path(vfs, "/d/f"))["persisted"] == 1
        assert env.ufs.files["d/f"].data == data and not unpersisted(f) and vfs.ns.kept == {}
        assert f.fingerprint is not None and f.fingerprint[0] == len(data)
        vfs.ns.check()
    finally:
        await close(vfs)


async def test_cache_through_writes_both_before_the_reply(tmp_path: Path) -> None:
    env = new_env(tmp_path, write_type=WriteType.CACHE_THROUGH)
    vfs = await env.open()
    data = os.urandom(3 * BS)
    try:
        await vfs.write_file("/f", chunks(data), caller=ME)
        f = node(vfs, "/f")
        assert env.ufs.files["f"].data == data and f.fingerprint is not None
        assert [e[:2] for e in f.layout or []] == [[0, BS], [BS, BS], [2 * BS, BS]]
        calls = env.ufs.calls
        assert await read_all(vfs, "/f") == data and env.ufs.calls == calls
        assert vfs.ns.kept == {}  # persisted: ordinary cache, evictable
    finally:
        await close(vfs)


async def test_through_writes_the_ufs_only(tmp_path: Path) -> None:
    env = new_env(tmp_path, write_type=WriteType.THROUGH)
    vfs = await env.open()
    try:
        await vfs.write_file("/f", chunks(b"abc"), caller=ME)
        assert env.ufs.files["f"].data == b"abc" and node(vfs, "/f").layout is None
        assert vfs.cache is not None and vfs.cache.report()["physical_bytes"] == 0
    finally:
        await close(vfs)


async def test_the_mount_option_wins_over_the_default(tmp_path: Path) -> None:
    env = new_env(tmp_path, write_type=WriteType.THROUGH, root_options={"write_type": "must_cache"})
    vfs = await env.open()
    try:
        await vfs.write_file("/f", chunks(b"abc"), caller=ME)
        assert "f" not in env.ufs.files and unpersisted(node(vfs, "/f"))
        with pytest.raises(errors.Invalid, match="write_type"):
            await vfs.mount("/m", f"memory://{env.store_name}/m", caller=ME, options={"write_type": "SOMETIMES"})
    finally:
        await close(vfs)


async def test_async_through_persists_in_the_background_and_retries_while_the_ufs_is_down(tmp_path: Path) -> None:
    env = new_env(tmp_path, write_type=WriteType.ASYNC_THROUGH)
    vfs = await env.open()
    data = os.urandom(BS + 9)
    try:
        await vfs.mkdir("/d", caller=ME)  # made by nsd: known to be empty, no UFS lookup needed
        env.ufs.set_down(True)
        await vfs.write_file("/d/f", chunks(data), caller=ME)  # acknowledged with the UFS down
        f = node(vfs, "/d/f")
        assert unpersisted(f) and vfs.ns.persist_pending == {f.ino}
        assert await read_all(vfs, "/d/f") == data
        assert vfs.persister is not None
        await wait_for(lambda: vfs.persister is not None and vfs.persister.failures >= 2)
        assert "d/f" not in env.ufs.files
        env.ufs.set_down(False)
        await wait_for(lambda: not vfs.ns.persist_pending)
        assert env.ufs.files["d/f"].data == data and not unpersisted(f) and vfs.ns.kept == {}
    finally:
        await close(vfs)


async def test_a_file_removed_while_its_persist_keeps_failing_is_no_longer_reported(tmp_path: Path) -> None:
    """What `nsd doctor` and the status show follows the queue: the failing file's retries are
    counted while it is pending, and not once it is removed (its next try just drops it)."""
    env = new_env(tmp_path, write_type=WriteType.ASYNC_THROUGH)
    vfs = await env.open()
    p = vfs.persister
    assert p is not None
    try:
        await vfs.mkdir("/d", caller=ME)
        env.ufs.faults.capacity = 0  # every upload fails (NoSpace); the store answers the rest
        await vfs.write_file("/d/f", chunks(b"data"), caller=ME)
        ino = node(vfs, "/d/f").ino
        await wait_for(lambda: p.failures >= 2)
        assert [i for i, _, _ in p.failing(min_tries=2)] == [ino] and p.status()["retrying"] == 1
        await vfs.remove("/d/f", caller=ME)
        assert p.failing(min_tries=1) == [] and p.status()["retrying"] == 0 and p.status()["pending"] == 0
        await vfs.write_file("/d/g", chunks(b"more"), caller=ME)  # the queue goes on
        env.ufs.faults.capacity = None
        await wait_for(lambda: not vfs.ns.persist_pending)
        assert set(env.ufs.files) == {"d/g"}
    finally:
        await close(vfs)


async def test_async_through_persist_resumes_after_a_crash(tmp_path: Path) -> None:
    env = new_env(tmp_path, write_type=WriteType.ASYNC_THROUGH)
    vfs = await env.open()
    data = os.urandom(3 * BS)
    await vfs.mkdir("/d", caller=ME)
    env.ufs.set_down(True)
    await vfs.write_file("/d/f", chunks(data), caller=ME)
    await crash(vfs)
    env.ufs.set_down(False)
    vfs = await env.open()
    try:
        await wait_for(lambda: not vfs.ns.persist_pending)
        assert env.ufs.files["d/f"].data == data and not unpersisted(node(vfs, "/d/f"))
    finally:
        await close(vfs)


async def test_a_persist_that_raced_a_newer_write_persists_the_newer_content(tmp_path: Path) -> None:
    env = new_env(tmp_path, write_type=WriteType.ASYNC_THROUGH)
    vfs = await env.open()
    try:
        env.ufs.faults.latency = 0.05
        await vfs.write_file("/f", chunks(b"one"), caller=ME)
        await vfs.write_file("/f", chunks(b"two!"), caller=ME)
        await wait_for(lambda: not vfs.ns.persist_pending)
        assert env.ufs.files["f"].data == b"two!"
    finally:
        await close(vfs)


async def test_a_persist_delay_uploads_rewritten_files_once_and_removed_ones_never(tmp_path: Path) -> None:
    env = new_env(tmp_path, write_type=WriteType.ASYNC_THROUGH, persist_delay=2.0)
    vfs = await env.open()
    assert vfs.persister is not None
    try:
        loop = asyncio.get_running_loop()
        first = loop.time()
        await vfs.write_file("/kept", chunks(b"one"), caller=ME)
        await vfs.write_file("/tmp", chunks(b"scratch"), caller=ME)
        await asyncio.sleep(1.5)
        await vfs.write_file("/kept", chunks(b"two!"), caller=ME)  # newer content: not put off
        assert env.ufs.files == {} and vfs.ns.persist_pending == {node(vfs, "/kept").ino, node(vfs, "/tmp").ino}
        await vfs.remove("/tmp", caller=ME)  # never uploaded
        # the counter moves after Persisted is durable; the pending set empties when it is applied
        await wait_for(lambda: vfs.persister is not None and vfs.persister.persisted >= 1)
        waited = loop.time() - first
        assert 2.0 <= waited < 3.3, waited  # due 2 s after the first write, not 3.5 s (the second)
        assert not vfs.ns.persist_pending and set(env.ufs.files) == {"kept"}
        assert env.ufs.files["kept"].data == b"two!"
        assert vfs.persister.persisted == 1 and vfs.persister.failures == 0
    finally:
        await close(vfs)


async def test_removing_an_unpersisted_file_is_one_journal_record_and_takes_an_older_ufs_copy(
    tmp_path: Path,
) -> None:
    """No intent: the content is in blocks only. What the path still holds in the UFS (the copy an
    append under MUST_CACHE replaced) goes too, so a restart does not find it again."""
    env = new_env(tmp_path, write_type=WriteType.MUST_CACHE)
    env.ufs.put("old", b"ufs copy")
    vfs = await env.open()
    await vfs.append("/old", chunks(b"+tail"), caller=ME)
    await vfs.write_file("/new", chunks(b"data"), caller=ME)
    assert unpersisted(node(vfs, "/old")) and unpersisted(node(vfs, "/new")) and set(env.ufs.files) == {"old"}
    for name in ("/old", "/new"):
        before = vfs.store.writer.last_txid
        await vfs.remove(name, caller=ME)
        assert vfs.store.writer.last_txid == before + 1 and not vfs.ns.intents
    assert env.ufs.files == {} and vfs.ns.kept == {}
    await crash(vfs)
    vfs = await env.open()
    try:
        assert await vfs.list("/", caller=ME) == []  # the first listing after a start asks the UFS
        vfs.ns.check()
    finally:
        await close(vfs)


async def test_renaming_an_unpersisted_file_takes_its_older_ufs_copy(tmp_path: Path) -> None:
    env = new_env(tmp_path, write_type=WriteType.MUST_CACHE)
    env.ufs.put("a", b"ufs copy")
    vfs = await env.open()
    await vfs.append("/a", chunks(b"+tail"), caller=ME)
    await vfs.rename("/a", "/b", caller=ME)
    assert env.ufs.files == {} and await read_all(vfs, "/b") == b"ufs copy+tail"
    await crash(vfs)
    vfs = await env.open()
    try:
        assert [name for name, _ in await vfs.list("/", caller=ME)] == ["b"]
        assert await read_all(vfs, "/b") == b"ufs copy+tail"
    finally:
        await close(vfs)


async def test_a_new_file_unchanged_since_its_create_is_removed_or_renamed_without_asking_the_ufs(
    tmp_path: Path,
) -> None:
    """Made here with nothing written to the UFS: its path holds nothing of it, so no stat for an
    older copy. Renamed, or persisted and then rewritten, it is looked for again (and found)."""
    env = new_env(tmp_path, write_type=WriteType.MUST_CACHE)
    vfs = await env.open()
    try:
        await vfs.list("/", caller=ME)
        for name in ("/a", "/b", "/d"):
            await vfs.write_file(name, chunks(b"data"), caller=ME)
        calls = env.ufs.calls
        await vfs.rename("/a", "/c", caller=ME)
        await vfs.remove("/b", caller=ME)
        assert env.ufs.calls == calls
        await vfs.remove("/c", caller=ME)  # renamed since its create: its path is looked at
        assert env.ufs.calls == calls + 1
        assert (await persist_path(vfs, "/d"))["persisted"] == 1
        await vfs.append("/d", chunks(b"+more"), caller=ME)
        assert unpersisted(node(vfs, "/d")) and env.ufs.files["d"].data == b"data"
        await vfs.remove("/d", caller=ME)
        assert env.ufs.files == {}
        # Renamed by a change this vfs never ran (as another node's, applied from the journal)
        # onto a path that still holds an object: the ctime says so, and the object goes.
        await vfs.write_file("/e", chunks(b"data"), caller=ME)
        env.ufs.put("f", b"older copy")
        root = vfs.ns.resolve("/").ino
        await vfs.store.mutate(lambda ns: ns.plan_rename(root, "e", root, "f", vfs.store.now_ns()))
        await vfs.remove("/f", caller=ME)
        assert env.ufs.files == {}
    finally:
        await close(vfs)


async def test_a_persist_that_failed_after_its_upload_leaves_no_copy_behind_a_remove(tmp_path: Path) -> None:
    """The upload arrived but its answer was lost (the try failed): the path holds a copy that
    no journal record speaks of, so the remove must look, and delete it."""
    env = new_env(tmp_path, write_type=WriteType.MUST_CACHE)
    vfs = await env.open()
    try:
        health = vfs.mounts.ufs(0)
        assert isinstance(health, HealthUfs)
        health.probe_after = 0  # the store answers again at once after the lost answer
        await vfs.list("/", caller=ME)
        await vfs.write_file("/x", chunks(b"data"), caller=ME)
        env.ufs.faults.lose_answers = frozenset({env.ufs.calls + 1, env.ufs.calls + 2})  # the upload's calls
        with pytest.raises(errors.UfsUnavailable):
            await persist_path(vfs, "/x")
        assert unpersisted(node(vfs, "/x")) and env.ufs.files["x"].data == b"data"
        await vfs.remove("/x", caller=ME)
        assert env.ufs.files == {}
    finally:
        await close(vfs)


async def test_appends_reseal_only_the_last_block(tmp_path: Path) -> None:
    env = new_env(tmp_path, write_type=WriteType.MUST_CACHE)
    vfs = await env.open()
    data = os.urandom(4 * BS + 10)
    try:
        await vfs.write_file("/f", chunks(data), caller=ME)
        before = [list(e) for e in node(vfs, "/f").layout or []]
        assert vfs.cache is not None
        puts = vfs.cache.blocks.stats()["puts"]
        more = b""
        for i in range(5):
            piece = os.urandom(100 + i)
            more += piece
            await vfs.append("/f", chunks(piece), caller=ME)
        after = node(vfs, "/f").layout or []
        assert after[:4] == before[:4]  # the full blocks were never read or hashed again
        assert vfs.cache.blocks.stats()["puts"] - puts == 5  # one (last) block per append
        assert await read_all(vfs, "/f") == data + more
        # An append that crosses block boundaries.
        big = os.urandom(2 * BS)
        await vfs.append("/f", chunks(big), caller=ME)
        assert await read_all(vfs, "/f") == data + more + big
        vfs.ns.check()
    finally:
        await close(vfs)


async def test_appending_to_a_ufs_file_under_must_cache_caches_it_whole(tmp_path: Path) -> None:
    env = new_env(tmp_path, write_type=WriteType.MUST_CACHE)
    base = os.urandom(2 * BS + 3)
    env.ufs.put("f", base)
    vfs = await env.open()
    try:
        await vfs.append("/f", chunks(b"tail"), caller=ME)
        f = node(vfs, "/f")
        assert unpersisted(f) and env.ufs.files["f"].data == base
        assert await read_all(vfs, "/f") == base + b"tail"
    finally:
        await close(vfs)


async def test_cache_through_append_keeps_unchanged_blocks(tmp_path: Path) -> None:
    env = new_env(tmp_path, write_type=WriteType.CACHE_THROUGH)
    vfs = await env.open()
    data = os.urandom(2 * BS + 3)
    try:
        await vfs.write_file("/f", chunks(data), caller=ME)
        first = (node(vfs, "/f").layout or [])[0]
        await vfs.append("/f", chunks(b"more"), caller=ME)
        assert env.ufs.files["f"].data == data + b"more"
        assert (node(vfs, "/f").layout or [])[0] == first
        assert await read_all(vfs, "/f") == data + b"more"
    finally:
        await close(vfs)


async def test_staged_writes_seal_into_blocks_from_the_first_change(tmp_path: Path) -> None:
    env = new_env(tmp_path, write_type=WriteType.MUST_CACHE)
    vfs = await env.open()
    data = bytearray(os.urandom(6 * BS))
    try:
        f = await vfs.write_file("/f", chunks(bytes(data)), caller=ME)
        before = [list(e) for e in node(vfs, "/f").layout or []]
        assert vfs.cache is not None
        puts = vfs.cache.blocks.stats()["puts"]
        await vfs.write_at(f.ino, 4 * BS + 10, b"XYZ", stable=False, caller=ME)  # NFS UNSTABLE
        data[4 * BS + 10 : 4 * BS + 13] = b"XYZ"
        staged, _ = await vfs.read_at(f.ino, 4 * BS, 20, caller=ME)  # from the stage
        assert staged == bytes(data[4 * BS : 4 * BS + 20])
        await vfs.commit(f.ino, caller=ME)
        after = node(vfs, "/f").layout or []
        assert after[:4] == before[:4] and after[4] != before[4] and after[5] == before[5]
        assert vfs.cache.blocks.stats()["puts"] - puts == 2  # blocks 4 and 5 sealed again (5 deduplicated)
        assert await read_all(vfs, "/f") == bytes(data)
        assert unpersisted(node(vfs, "/f")) and "f" not in env.ufs.files
        await vfs.setattr_at(f.ino, size=BS + 1, caller=ME)  # truncation of blocks-only content
        assert await read_all(vfs, "/f") == bytes(data[: BS + 1])
        vfs.ns.check()
    finally:
        await close(vfs)


async def test_an_unpersisted_file_can_be_renamed_linked_and_removed(tmp_path: Path) -> None:
    env = new_env(tmp_path, write_type=WriteType.MUST_CACHE)
    vfs = await env.open()
    try:
        env.ufs.put("old", b"ufs copy")
        await vfs.stat("/old", caller=ME)
        await vfs.mkdir("/d", caller=ME)
        await vfs.write_file("/d/f", chunks(b"data"), caller=ME)
        await vfs.rename("/d/f", "/old", caller=ME)  # replaces a UFS file: that copy must go too
        assert "old" not in env.ufs.files
        await vfs.link("/old", "/d/again", caller=ME)
        assert (await persist_path(vfs, "/old"))["persisted"] == 1
        assert env.ufs.files["old"].data == b"data"
        await vfs.write_file("/d/g", chunks(b"gone soon"), caller=ME)
        await vfs.remove("/d/g", caller=ME)
        assert vfs.cache is not None and vfs.ns.kept == {}
        vfs.ns.check()
    finally:
        await close(vfs)


async def test_unpersisted_blocks_are_never_evicted(tmp_path: Path) -> None:
    env = new_env(tmp_path, write_type=WriteType.MUST_CACHE, disk_bytes=8 * BS)
    vfs = await env.open()
    try:
        await vfs.write_file("/a", chunks(os.urandom(6 * BS)), caller=ME)
        with pytest.raises(errors.NoSpace):
            await vfs.write_file("/b", chunks(os.urandom(4 * BS)), caller=ME)
        assert vfs.cache is not None
        await vfs.cache.blocks.evict()  # the failed write's blocks are garbage: they go; /a's stay
        assert all(vfs.cache.blocks.has(e[2]) for e in node(vfs, "/a").layout or [])
        assert vfs.cache.report()["tiers"][1]["used"] == 6 * BS
        assert len(await read_all(vfs, "/a")) == 6 * BS
        vfs.cache.blocks.check()
    finally:
        await close(vfs)


class CountingPersists:
    """Wraps Persister.persist: the most files persisted at once, and whether one file was ever
    persisted twice at once."""

    def __init__(self, vfs: Vfs) -> None:
        assert vfs.persister is not None
        self.real = vfs.persister.persist
        self.running: set[int] = set()
        self.most = 0
        self.overlapped = False
        self.fail_next = False  # the next call fails at once
        self.gate: asyncio.Event | None = None  # calls wait for it (instead of a round trip)

    async def __call__(self, ino: int) -> bool:
        self.overlapped |= ino in self.running
        self.running.add(ino)
        self.most = max(self.most, len(self.running))
        try:
            if self.fail_next:
                self.fail_next = False
                raise errors.UfsUnavailable("injected: the under-storage did not answer")
            if self.gate is not None:
                await self.gate.wait()
            else:
                await asyncio.sleep(0.02)  # an object store's round trip
            return await self.real(ino)
        finally:
            self.running.discard(ino)


async def counting_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write_type: WriteType
) -> tuple[Env, Vfs, CountingPersists]:
    """A vfs whose persister's persist() goes through CountingPersists."""
    env = new_env(tmp_path, write_type=write_type)
    vfs = await env.open()
    assert vfs.persister is not None
    persists = CountingPersists(vfs)
    monkeypatch.setattr(vfs.persister, "persist", persists)
    return env, vfs, persists


async def test_the_persister_uploads_several_files_at_once_each_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env, vfs, persists = await counting_env(tmp_path, monkeypatch, WriteType.ASYNC_THROUGH)
    try:
        await vfs.mkdir("/d", caller=ME)
        files = {f"d/f{i:02}": os.urandom(100 + i) for i in range(3 * PERSISTS_IN_FLIGHT)}
        for name, data in files.items():
            await vfs.write_file(f"/{name}", chunks(data), caller=ME)
        await wait_for(lambda: not vfs.ns.persist_pending)
        assert persists.most == PERSISTS_IN_FLIGHT > 1 and not persists.overlapped
        assert {k: v.data for k, v in env.ufs.files.items()} == files
    finally:
        await close(vfs)


async def test_new_content_while_a_retry_runs_makes_no_second_try_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env, vfs, persists = await counting_env(tmp_path, monkeypatch, WriteType.ASYNC_THROUGH)
    try:
        persists.fail_next, persists.gate = True, asyncio.Event()
        await vfs.write_file("/f", chunks(b"one"), caller=ME)  # its first try fails
        ino = node(vfs, "/f").ino
        await wait_for(lambda: vfs.persister is not None and vfs.persister.failures == 1 and ino in persists.running)
        await vfs.write_file("/f", chunks(b"two!"), caller=ME)  # a kick, due now, while the retry waits
        await asyncio.sleep(0.1)
        persists.gate.set()
        await wait_for(lambda: not vfs.ns.persist_pending)
        assert not persists.overlapped and env.ufs.files["f"].data == b"two!"
    finally:
        await close(vfs)


async def test_nsd_persist_uploads_several_files_at_once_and_reports_the_first_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env, vfs, persists = await counting_env(tmp_path, monkeypatch, WriteType.MUST_CACHE)
    try:
        await vfs.mkdir("/d", caller=ME)
        for i in range(2 * PERSISTS_IN_FLIGHT):
            await vfs.write_file(f"/d/f{i:02}", chunks(b"x" * i), caller=ME)
        summary = await persist_path(vfs, "/d", recursive=True)
        assert summary == {"files": 2 * PERSISTS_IN_FLIGHT, "persisted": 2 * PERSISTS_IN_FLIGHT, "already_persisted": 0}
        assert persists.most == PERSISTS_IN_FLIGHT > 1 and len(env.ufs.files) == 2 * PERSISTS_IN_FLIGHT
        await vfs.mkdir("/e", caller=ME)
        for i in range(3):
            await vfs.write_file(f"/e/g{i}", chunks(b"y"), caller=ME)
        env.ufs.set_down(True)
        with pytest.raises(errors.NsdError):
            await persist_path(vfs, "/e", recursive=True)
        assert not persists.running  # none left under way
    finally:
        env.ufs.set_down(False)
        await close(vfs)


async def test_a_persist_that_raises_unexpectedly_is_logged_and_tried_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    env = new_env(tmp_path, write_type=WriteType.ASYNC_THROUGH)
    vfs = await env.open()
    assert vfs.persister is not None
    real = vfs.persister.persist
    calls = 0

    async def buggy(ino: int) -> bool:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a bug in an adapter")
        return await real(ino)

    monkeypatch.setattr(vfs.persister, "persist", buggy)
    try:
        await vfs.write_file("/f", chunks(b"data"), caller=ME)
        await wait_for(lambda: not vfs.ns.persist_pending)  # retried after persist_retry_max (0.2 s)
        assert calls == 2 and env.ufs.files["f"].data == b"data"
        assert "a bug in an adapter" in caplog.text
    finally:
        await close(vfs)
