"""Mounts, lazy discovery and sync intervals through the facade, against real local directories."""

from __future__ import annotations

import asyncio
import os
import secrets
import stat
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import vfsenv
from vfsenv import chunks

from nsd import errors
from nsd.journal.ops import UfsSync
from nsd.journal.recovery import recover
from nsd.ufs.adapters.memory import drop_store, store
from nsd.vfs import IDLE_SEAL_SECONDS, Caller, Vfs

ME = Caller(os.getuid(), os.getgid())


async def open_vfs(tmp_path: Path) -> Vfs:
    return await vfsenv.open_vfs(tmp_path, owner=ME, idle_seal_seconds=IDLE_SEAL_SECONDS)


async def read_all(vfs: Vfs, path: str) -> bytes:
    return b"".join([c async for c in vfs.read(path, caller=ME)])


@pytest.fixture
async def vfs(tmp_path: Path) -> AsyncIterator[Vfs]:
    v = await open_vfs(tmp_path)
    yield v
    await vfsenv.close_vfs(v)


def ufs_syncs(tmp_path: Path) -> list[UfsSync]:
    return [op for _, op in recover(tmp_path / "journal", cut_torn_tail=False).ops if isinstance(op, UfsSync)]


async def test_existing_ufs_files_appear_lazily(vfs: Vfs, tmp_path: Path) -> None:
    data = tmp_path / "ufs" / "data"
    data.mkdir()
    for i in range(3):
        (data / f"f{i}").write_bytes(b"x" * (i + 1))
    os.chmod(data / "f2", 0o600)

    f2 = await vfs.stat("/data/f2", caller=ME)  # one lookup: one UFS stat per component, no listing
    assert (f2.size, f2.mode & 0o777, f2.uid) == (3, 0o600, ME.uid)
    assert f2.mtime == (data / "f2").stat().st_mtime_ns
    assert vfs.discovery.listings == 0 and list(vfs.ns.resolve("/data").children) == ["f2"]
    assert await read_all(vfs, "/data/f2") == b"xxx"

    names = [n for n, _ in await vfs.list("/data", caller=ME)]
    assert names == ["f0", "f1", "f2"] and vfs.discovery.listings == 1
    assert [n for n, _ in await vfs.list("/", caller=ME)] == ["data"]
    with pytest.raises(errors.NotFound):
        await vfs.stat("/data/missing", caller=ME)
    vfs.ns.check()


async def test_a_big_directory_is_journaled_page_by_page(vfs: Vfs, tmp_path: Path) -> None:
    big = tmp_path / "ufs" / "big"
    big.mkdir()
    for i in range(2500):
        (big / f"part-{i:05d}").touch()
    assert len(await vfs.list("/big", caller=ME)) == 2500
    pages = [op for op in ufs_syncs(tmp_path) if op.add and op.dir_ino == vfs.ns.resolve("/big").ino]
    assert [len(op.add) for op in pages] == [1000, 1000, 500]


async def test_sync_interval_zero_sees_every_out_of_band_change(vfs: Vfs, tmp_path: Path) -> None:
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "a").write_bytes(b"old")
    await vfs.mount("/m", (tmp_path / "outside").as_uri(), caller=ME, options={"sync_interval": "0"})
    assert await read_all(vfs, "/m/a") == b"old"

    (tmp_path / "outside" / "a").write_bytes(b"new and longer")
    assert (await vfs.stat("/m/a", caller=ME)).size == 14
    assert await read_all(vfs, "/m/a") == b"new and longer"
    (tmp_path / "outside" / "b").write_bytes(b"b")
    (tmp_path / "outside" / "a").unlink()
    assert [n for n, _ in await vfs.list("/m", caller=ME)] == ["b"]
    with pytest.raises(errors.NotFound):
        await vfs.stat("/m/a", caller=ME)
    vfs.ns.check()


async def test_a_name_whose_type_changed_in_the_store_comes_back_as_it_is_now(vfs: Vfs, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    for name in ("f", "g", "d"):
        (outside / name).write_bytes(b"x")
    await vfs.mount("/m", outside.as_uri(), caller=ME, options={"sync_interval": "0"})
    before = {n: node.ino for n, node in await vfs.list("/m", caller=ME)}
    (outside / "f").unlink()
    (outside / "f").mkdir()  # a file that became a directory
    (outside / "f" / "inner").write_bytes(b"i")
    (outside / "g").write_bytes(b"changed")  # a file changed in place
    (outside / "new").write_bytes(b"n")
    after = {n: node for n, node in await vfs.list("/m", caller=ME)}
    assert sorted(after) == ["d", "f", "g", "new"]
    assert after["f"].is_dir and after["f"].ino != before["f"]  # another object: another inode
    assert after["g"].ino == before["g"] and after["g"].size == 7 and after["d"].ino == before["d"]
    assert [n for n, _ in await vfs.list("/m/f", caller=ME)] == ["inner"]
    vfs.ns.check()


async def test_an_unchanged_file_is_never_seen_as_changed(vfs: Vfs, tmp_path: Path) -> None:
    """Found in the UFS or written through nsd, a file checked again and again (sync interval 0)
    matches its fingerprint (kept compact in memory, rebuilt for each comparison): no update."""
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "found").write_bytes(b"found")
    await vfs.mount("/m", (tmp_path / "outside").as_uri(), caller=ME, options={"sync_interval": "0"})
    await vfs.write_file("/m/written", chunks(b"written"), caller=ME)
    for _ in range(3):
        assert [n for n, _ in await vfs.list("/m", caller=ME)] == ["found", "written"]
        assert await read_all(vfs, "/m/found") == b"found" and await read_all(vfs, "/m/written") == b"written"
        assert (await vfs.stat("/m/found", caller=ME)).size == 5
    assert [op.update for op in ufs_syncs(tmp_path) if op.update] == []
    (tmp_path / "outside" / "found").write_bytes(b"FOUND")  # same size: the mtime tells
    os.utime(tmp_path / "outside" / "found", ns=(1, 1))
    assert await read_all(vfs, "/m/found") == b"FOUND"
    assert [[u[0] for u in op.update] for op in ufs_syncs(tmp_path) if op.update] == [["found"]]


async def test_a_resync_keeps_what_lives_in_the_namespace_only(vfs: Vfs, tmp_path: Path) -> None:
    """Symlinks, FIFOs and sockets have no object in the store: a listing without them keeps them,
    and renaming or removing them never touches the store."""
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "a").write_bytes(b"a")
    await vfs.mount("/m", (tmp_path / "outside").as_uri(), caller=ME, options={"sync_interval": "0"})
    m = await vfs.stat("/m", caller=ME)
    await vfs.mknod_at(m.ino, "pipe", stat.S_IFIFO, caller=ME)
    await vfs.mknod_at(m.ino, "sock", stat.S_IFSOCK, caller=ME, mode=0o600)
    await vfs.symlink("a", "/m/link", caller=ME)
    with pytest.raises(errors.NotSupported):
        await vfs.mknod_at(m.ino, "tty", stat.S_IFCHR, caller=ME)
    (tmp_path / "outside" / "b").write_bytes(b"b")
    assert [n for n, _ in await vfs.list("/m", caller=ME)] == ["a", "b", "link", "pipe", "sock"]
    await vfs.rename("/m/sock", "/m/sock2", caller=ME)
    await vfs.remove("/m/pipe", caller=ME)
    assert sorted(os.listdir(tmp_path / "outside")) == ["a", "b"]
    assert [n for n, _ in await vfs.list("/m", caller=ME)] == ["a", "b", "link", "sock2"]
    assert (await vfs.stat("/m/sock2", caller=ME)).mode == stat.S_IFSOCK | 0o600
    vfs.ns.check()


async def test_sync_interval_never_waits_for_an_explicit_sync(vfs: Vfs, tmp_path: Path) -> None:
    (tmp_path / "ufs" / "f").write_bytes(b"one")
    assert [n for n, _ in await vfs.list("/", caller=ME)] == ["f"]
    assert await read_all(vfs, "/f") == b"one"
    (tmp_path / "ufs" / "f").write_bytes(b"three")
    (tmp_path / "ufs" / "g").write_bytes(b"g")
    assert (await vfs.stat("/f", caller=ME)).size == 3  # the root mount never re-checks by itself
    assert [n for n, _ in await vfs.list("/", caller=ME)] == ["f"]
    await vfs.sync("/", recursive=True, caller=ME)
    assert (await vfs.stat("/f", caller=ME)).size == 5 and await read_all(vfs, "/f") == b"three"
    assert [n for n, _ in await vfs.list("/", caller=ME)] == ["f", "g"]


async def test_sync_interval_seconds(vfs: Vfs, tmp_path: Path) -> None:
    (tmp_path / "o").mkdir()
    await vfs.mount("/m", (tmp_path / "o").as_uri(), caller=ME, options={"sync_interval": "0.3"})
    assert await vfs.list("/m", caller=ME) == []
    (tmp_path / "o" / "late").write_bytes(b"1")
    assert await vfs.list("/m", caller=ME) == []  # within the interval
    await asyncio.sleep(0.4)
    assert [n for n, _ in await vfs.list("/m", caller=ME)] == ["late"]


async def test_writes_reach_the_mounted_store_and_rules_hold(vfs: Vfs, tmp_path: Path) -> None:
    (tmp_path / "s3ish").mkdir()
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro" / "keep").write_bytes(b"k")
    await vfs.mount("/rw", (tmp_path / "s3ish").as_uri(), caller=ME)
    await vfs.mount("/ro", (tmp_path / "ro").as_uri(), caller=ME, readonly=True)
    await vfs.mkdir("/rw/d", caller=ME)
    await vfs.write_file("/rw/d/f", chunks(b"through"), caller=ME)
    assert (tmp_path / "s3ish" / "d" / "f").read_bytes() == b"through"
    assert not (tmp_path / "ufs" / "rw").exists()  # nothing leaks into the root mount's store

    for attempt in (
        vfs.write_file("/ro/new", chunks(b"x"), caller=ME),
        vfs.remove("/ro/keep", caller=ME),
        vfs.mkdir("/ro/d", caller=ME),
        vfs.setattr("/ro/keep", mode=0o600, caller=ME),
    ):
        with pytest.raises(errors.ReadOnly):
            await attempt
    assert await read_all(vfs, "/ro/keep") == b"k"
    with pytest.raises(errors.CrossDevice):
        await vfs.rename("/rw/d/f", "/f-in-root-mount", caller=ME)
    with pytest.raises(errors.Exists, match="already mounted"):
        await vfs.mount("/rw", (tmp_path / "ro").as_uri(), caller=ME)
    with pytest.raises(errors.Invalid, match="root"):
        await vfs.unmount("/", caller=ME)
    await vfs.write_file("/plain", chunks(b"file"), caller=ME)
    with pytest.raises(errors.NotDir, match="existing file"):
        await vfs.mount("/plain", (tmp_path / "ro").as_uri(), caller=ME)

    await vfs.unmount("/rw", caller=ME)
    with pytest.raises(errors.NotFound):
        await vfs.stat("/rw/d/f", caller=ME)
    assert (tmp_path / "s3ish" / "d" / "f").read_bytes() == b"through"  # the store is untouched
    vfs.ns.check()


async def test_mounts_survive_a_restart_and_options_a_store_does_not_read_are_refused(tmp_path: Path) -> None:
    (tmp_path / "o").mkdir()
    vfs = await open_vfs(tmp_path)
    with pytest.raises(errors.Invalid, match="unknown option 'secret_key' for a file:// mount") as refused:
        await vfs.mount("/m", (tmp_path / "o").as_uri(), caller=ME, options={"secret_key": "hunter2"})
    assert "hunter2" not in str(refused.value)  # the value of a refused secret is never echoed
    with pytest.raises(errors.Invalid, match="did you mean 'sync_interval'"):
        await vfs.mount("/m", (tmp_path / "o").as_uri(), caller=ME, options={"sync_intervall": "5"})
    with pytest.raises(errors.NotFound, match="no such directory"):
        await vfs.mount("/m", (tmp_path / "typo").as_uri(), caller=ME)
    assert not (tmp_path / "typo").exists()
    view = await vfs.mount("/m", (tmp_path / "o").as_uri(), caller=ME, options={"sync_interval": "-1"})
    assert view.options == {"sync_interval": "-1"}
    await vfs.write_file("/m/f", chunks(b"m"), caller=ME)
    await vfs.close()
    await vfs.store.close(checkpoint=False)

    again = await open_vfs(tmp_path)
    try:
        views = again.mount_table()
        assert [(v.path, v.readonly) for v in views] == [("/", False), ("/m", False)]
        assert "hunter2" not in repr(views)
        assert await read_all(again, "/m/f") == b"m"
    finally:
        await again.close()
        await again.store.close()


# ---- listings from a store that lists in name order (memory://), and a store that is down ----


@pytest.fixture
def mem() -> Iterator[str]:
    name = "disc-" + secrets.token_hex(4)
    yield name
    drop_store(name)


async def test_a_sorted_listing_is_served_while_it_runs(vfs: Vfs, tmp_path: Path, mem: str) -> None:
    s = store(mem)
    names = [f"obj-{i:05d}" for i in range(1200)]
    for n in names:
        s.put(f"big/{n}", b"x")
    s.put("big/obj", b"")  # a name that sorts before every other
    await vfs.mount("/m", f"memory://{mem}", caller=ME, options={"tmp_sweep_s": "-1"})
    vfs.discovery.page = 100
    s.faults.latency = 0.05  # one call per 256 entries (memory's page): the listing takes a while

    first = await vfs.list("/m/big", limit=10, caller=ME)
    big = vfs.ns.resolve("/m/big")
    assert [n for n, _ in first] == ["obj", *names[:9]]
    assert len(big.children) < 1201  # answered before the listing ended
    seen = [n for n, _ in first]
    while page := await vfs.list("/m/big", start_after=seen[-1], limit=250, caller=ME):
        seen += [n for n, _ in page]
    assert seen == ["obj", *names]  # every entry once, in order
    records = [op for op in ufs_syncs(tmp_path) if op.dir_ino == big.ino]
    assert [len(op.add) for op in records] == [100] * 12 + [1]
    vfs.ns.check()


async def test_a_resync_merges_each_page_in_one_record(vfs: Vfs, tmp_path: Path, mem: str) -> None:
    s = store(mem)
    for i in range(0, 30, 2):
        s.put(f"d/f{i:02d}", b"x")
    await vfs.mount("/m", f"memory://{mem}", caller=ME, options={"sync_interval": "0"})
    vfs.discovery.page = 5
    assert len(await vfs.list("/m/d", caller=ME)) == 15
    kept = vfs.ns.resolve("/m/d/f10").ino
    for i in range(0, 30, 4):
        del s.files[f"d/f{i:02d}"]
    for i in range(1, 30, 4):
        s.put(f"d/f{i:02d}", b"new")
    s.put("d/f10", b"changed")
    before = len(ufs_syncs(tmp_path))
    expected = sorted([f"f{i:02d}" for i in range(2, 30, 4)] + [f"f{i:02d}" for i in range(1, 30, 4)])
    assert [n for n, _ in await vfs.list("/m/d", caller=ME)] == expected
    records = ufs_syncs(tmp_path)[before:]
    assert len(records) == 3  # 15 entries in pages of 5: adds, removals and updates together
    assert sum(len(op.remove) for op in records) == 8 and sum(len(op.add) for op in records) == 8
    assert any(op.add and op.remove for op in records)
    node = vfs.ns.resolve("/m/d/f10")
    assert node.ino == kept and node.size == 7  # updated in place, same inode
    vfs.ns.check()


async def test_a_store_that_is_down_still_answers_what_is_known(vfs: Vfs, mem: str) -> None:
    s = store(mem)
    s.put("d/known", b"12345")
    s.put("d/other", b"1")
    opts = {"sync_interval": "0", "retries": "1", "down_probe_s": "0", "tmp_sweep_s": "-1"}
    await vfs.mount("/m", f"memory://{mem}", caller=ME, options=opts)
    assert [n for n, _ in await vfs.list("/m/d", caller=ME)] == ["known", "other"]
    s.set_down(True)
    assert [n for n, _ in await vfs.list("/m/d", caller=ME)] == ["known", "other"]  # the last listing
    assert (await vfs.stat("/m/d/known", caller=ME)).size == 5  # the last metadata
    with pytest.raises(errors.UfsUnavailable, match="down"):
        await read_all(vfs, "/m/d/known")
    with pytest.raises(errors.UfsUnavailable):
        await vfs.stat("/m/d/never-seen", caller=ME)  # unknown names need the store
    with pytest.raises(errors.UfsUnavailable):
        await vfs.list("/m", caller=ME)  # never listed: nothing to fall back on
    assert vfs.mount_table()[1].state == "unreachable"
    for forced in (vfs.sync("/m/d", caller=ME), vfs.sync("/m/d/known", caller=ME)):  # asked for explicitly: the error
        with pytest.raises(errors.UfsUnavailable):
            await forced
    s.set_down(False)
    s.put("d/later", b"")
    assert [n for n, _ in await vfs.list("/m/d", caller=ME)] == ["known", "later", "other"]
    assert await read_all(vfs, "/m/d/known") == b"12345"
    assert vfs.mount_table()[1].state == "connected"


async def test_temporary_names_are_reserved_and_never_discovered(vfs: Vfs, mem: str) -> None:
    s = store(mem)
    s.put(".nsd-tmp.0001.f", b"half")
    await vfs.mount("/m", f"memory://{mem}", caller=ME)
    with pytest.raises(errors.NotFound):
        await vfs.stat("/m/.nsd-tmp.0001.f", caller=ME)
    assert await vfs.list("/m", caller=ME) == []
    with pytest.raises(errors.Invalid, match="reserved"):
        await vfs.write_file("/m/.nsd-tmp.mine", chunks(b"x"), caller=ME)
    with pytest.raises(errors.Invalid, match="reserved"):
        await vfs.mkdir("/.nsd-tmp.d", caller=ME)
    await vfs.write_file("/m/f", chunks(b"x"), caller=ME)
    with pytest.raises(errors.Invalid, match="reserved"):
        await vfs.rename("/m/f", "/m/.nsd-tmp.f", caller=ME)
    assert [n for n, _ in await vfs.list("/m", caller=ME)] == ["f"]


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"sync_interval": "soon"}, "sync_interval must be seconds"),
        ({"sync_interval": "-2"}, "sync_interval must be -1, 0 or positive"),
        ({"down_probe_s": "x"}, "option down_probe_s of .* must be a number"),
        ({"tmp_max_age_s": "-1"}, "must not be negative"),
        ({"tmp_sweep_s": "0"}, "tmp_sweep_s must be positive seconds or -1"),
    ],
)
async def test_bad_mount_options_are_refused_at_mount_time(
    vfs: Vfs, tmp_path: Path, option: dict[str, str], message: str
) -> None:
    (tmp_path / "o").mkdir(exist_ok=True)
    with pytest.raises(errors.Invalid, match=message):
        await vfs.mount("/m", (tmp_path / "o").as_uri(), caller=ME, options=option)
    assert len(vfs.mount_table()) == 1


async def test_closing_wakes_whoever_waits_on_a_listing(vfs: Vfs, mem: str) -> None:
    """A listing task cancelled before its first step never runs its own cleanup; its
    waiters must still be woken (with an error), or a shutdown waits for ever."""
    store(mem).put("d/f", b"x")
    await vfs.mount("/m", f"memory://{mem}", caller=ME, options={"tmp_sweep_s": "-1"})
    await vfs.stat("/m/d", caller=ME)
    waiter = asyncio.create_task(vfs.list("/m/d", caller=ME))
    await asyncio.sleep(0)  # the waiter has started the listing task, which has not run yet
    assert vfs.discovery.pending_above(vfs.ns.resolve("/m/d")) == ""
    await vfs.discovery.close()
    with pytest.raises(errors.NsdError, match="stopping"):
        await asyncio.wait_for(waiter, 5)


async def test_what_is_remembered_of_removed_objects_goes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Directories and files made and removed by the thousand (a job's temporary ones) leave
    nothing behind in discovery's tables: they stay near what the live namespace needs."""
    monkeypatch.setattr("nsd.core.discovery.PRUNE_MIN", 32)
    vfs = await open_vfs(tmp_path)
    try:
        await vfs.mkdir("/keep", caller=ME)
        tmp = (await vfs.mkdir("/tmp", caller=ME)).ino
        for i in range(80):
            await vfs.mkdir_at(tmp, f"attempt-{i}", caller=ME)  # made by nsd: remembered as listed
            await vfs.rmdir_at(tmp, f"attempt-{i}", caller=ME)
            await vfs.create(tmp, f"part-{i}", caller=ME)  # written by nsd: remembered as checked
            await vfs.remove_at(tmp, f"part-{i}", caller=ME)
        assert vfs.discovery.remembered() <= 2 * 32 + 1
        assert vfs.ns.resolve("/keep").ino in vfs.discovery._listed  # what is alive stays
    finally:
        await vfsenv.close_vfs(vfs)
