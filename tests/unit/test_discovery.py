"""Mounts, lazy discovery and sync intervals through the facade, against real local directories."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from nsd import errors
from nsd.journal.ops import UfsSync
from nsd.journal.recovery import recover
from nsd.metastore import MetaStore, initial_checkpoint
from nsd.mounttable import MountTable
from nsd.vfs import Caller, Vfs

ME = Caller(os.getuid(), os.getgid())


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for p in parts:
        yield p


async def read_all(vfs: Vfs, path: str) -> bytes:
    return b"".join([c async for c in vfs.read(path, caller=ME)])


async def open_vfs(tmp_path: Path) -> Vfs:
    journal = tmp_path / "journal"
    if not journal.exists():
        journal.mkdir()
        initial_checkpoint(journal, root_uid=ME.uid, root_gid=ME.gid)
    (tmp_path / "ufs").mkdir(exist_ok=True)
    store = await MetaStore.open(journal, fsync=False)
    return Vfs(store, MountTable(store.ns, (tmp_path / "ufs").as_uri()), tmp_path / "staging")


@pytest.fixture
async def vfs(tmp_path: Path) -> AsyncIterator[Vfs]:
    v = await open_vfs(tmp_path)
    yield v
    await v.close()
    await v.store.close(checkpoint=False)


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


async def test_mounts_survive_a_restart_and_secrets_stay_hidden(tmp_path: Path) -> None:
    (tmp_path / "o").mkdir()
    vfs = await open_vfs(tmp_path)
    view = await vfs.mount(
        "/m", (tmp_path / "o").as_uri(), caller=ME, options={"secret_key": "hunter2", "region": "r1"}
    )
    assert view.options == {"secret_key": "****", "region": "r1"}
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
