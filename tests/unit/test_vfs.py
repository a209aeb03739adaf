"""The facade in-process: namespace, journal and a local under-storage kept in step."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from vfsenv import ME, chunks, open_vfs, read_all

from nsd import errors
from nsd.ufs.adapters import dirsync
from nsd.vfs import SYSTEM, Vfs


async def test_write_read_and_write_through(vfs: Vfs, tmp_path: Path) -> None:
    await vfs.mkdir("/a/b", caller=ME, parents=True)
    node = await vfs.write_file("/a/b/f", chunks(b"hello ", b"world"), caller=ME)
    assert (node.size, node.uid, node.gid, node.nlink) == (11, 1000, 1000, 1)
    assert await read_all(vfs, "/a/b/f") == b"hello world"
    assert await read_all(vfs, "/a/b/f", 6, 3) == b"wor"
    assert (tmp_path / "ufs/a/b/f").read_bytes() == b"hello world"
    assert node.fingerprint is not None and node.fingerprint[0] == 11


async def test_overwrite_only_when_asked(vfs: Vfs) -> None:
    await vfs.write_file("/f", chunks(b"one"), caller=ME)
    with pytest.raises(errors.Exists):
        await vfs.write_file("/f", chunks(b"two"), caller=ME, overwrite=False)
    assert await read_all(vfs, "/f") == b"one"
    await vfs.write_file("/f", chunks(b"three"), caller=ME, overwrite=True)
    assert await read_all(vfs, "/f") == b"three"
    await vfs.mkdir("/d", caller=ME)
    with pytest.raises(errors.IsDir):
        await vfs.write_file("/d", chunks(b"x"), caller=ME)


async def test_symlinked_directories_write_to_the_real_place(vfs: Vfs, tmp_path: Path) -> None:
    await vfs.mkdir("/real", caller=ME)
    await vfs.symlink("/real", "/alias", caller=ME)
    await vfs.write_file("/alias/f", chunks(b"via link"), caller=ME)
    assert (tmp_path / "ufs/real/f").read_bytes() == b"via link"
    assert await read_all(vfs, "/real/f") == b"via link"
    await vfs.symlink("f", "/real/lnk", caller=ME)
    assert await read_all(vfs, "/alias/lnk") == b"via link"
    assert (await vfs.readlink("/real/lnk", caller=ME)) == "f"


async def test_rename_replaces_and_moves_the_ufs_file(vfs: Vfs, tmp_path: Path) -> None:
    await vfs.write_file("/x", chunks(b"x"), caller=ME)
    await vfs.write_file("/y", chunks(b"y"), caller=ME)
    await vfs.rename("/x", "/y", caller=ME)
    assert await read_all(vfs, "/y") == b"x"
    with pytest.raises(errors.NotFound):
        (await vfs.stat("/x", caller=ME))
    assert not (tmp_path / "ufs/x").exists() and (tmp_path / "ufs/y").read_bytes() == b"x"
    await vfs.mkdir("/d", caller=ME)
    with pytest.raises(errors.Invalid):
        await vfs.rename("/d", "/d/inside", caller=ME)


async def test_remove_tree_and_its_limits(vfs: Vfs, tmp_path: Path) -> None:
    await vfs.mkdir("/t/u/v", caller=ME, parents=True)
    await vfs.write_file("/t/u/f", chunks(b"1"), caller=ME)
    with pytest.raises(errors.NotEmpty):
        await vfs.remove("/t", caller=ME)
    await vfs.remove("/t", recursive=True, caller=ME)
    assert not (tmp_path / "ufs/t").exists()
    assert [name for name, _ in (await vfs.list("/", caller=ME))] == []
    with pytest.raises(errors.Invalid):
        await vfs.remove("/", caller=ME)
    vfs.store.ns.check()


async def test_hard_links_share_the_inode(vfs: Vfs, tmp_path: Path) -> None:
    a = await vfs.write_file("/a", chunks(b"data"), caller=ME)
    await vfs.link("/a", "/b", caller=ME)
    assert (await vfs.stat("/b", caller=ME)) is a and a.nlink == 2
    await vfs.remove("/a", caller=ME)
    assert await read_all(vfs, "/b") == b"data"
    assert (await vfs.stat("/b", caller=ME)).nlink == 1


async def test_truncate_and_setattr(vfs: Vfs, tmp_path: Path) -> None:
    await vfs.write_file("/f", chunks(b"0123456789"), caller=ME)
    await vfs.truncate("/f", 4, caller=ME)
    assert await read_all(vfs, "/f") == b"0123"
    await vfs.truncate("/f", 6, caller=ME)
    assert await read_all(vfs, "/f") == b"0123\0\0"
    node = await vfs.setattr("/f", mode=0o600, uid=7, mtime=123, caller=SYSTEM)  # chown: superusers only
    assert (node.mode & 0o7777, node.uid, node.mtime) == (0o600, 7, 123)


async def test_everything_survives_reopen(tmp_path: Path) -> None:
    vfs = await open_vfs(tmp_path)
    await vfs.mkdir("/keep", caller=ME)
    await vfs.write_file("/keep/f", chunks(b"kept"), caller=ME)
    await vfs.symlink("/keep/f", "/l", caller=ME)
    before = {name: (n.ino, n.mode, n.size, n.mtime, n.ctime) for name, n in (await vfs.list("/", caller=ME))}
    await vfs.store.close(checkpoint=False)  # replay from the log alone

    again = await open_vfs(tmp_path)
    try:
        after = {name: (n.ino, n.mode, n.size, n.mtime, n.ctime) for name, n in (await again.list("/", caller=ME))}
        assert after == before
        assert await read_all(again, "/l") == b"kept"
        again.store.ns.check()
    finally:
        await again.store.close()


async def test_staged_writes_are_visible_then_sealed_on_commit(vfs: Vfs, tmp_path: Path) -> None:
    node = await vfs.write_file("/s", chunks(b"0123456789"), caller=ME)
    await vfs.write_at(node.ino, 8, b"ABCD", stable=False, caller=ME)
    assert node.size == 12
    assert await vfs.read_at(node.ino, 6, 100, caller=ME) == (b"67ABCD", True)
    assert (tmp_path / "ufs/s").read_bytes() == b"0123456789"  # not sealed yet
    assert list((tmp_path / "staging").iterdir())
    await vfs.commit(node.ino, caller=ME)
    assert (tmp_path / "ufs/s").read_bytes() == b"01234567ABCD"
    assert not list((tmp_path / "staging").iterdir())
    assert node.fingerprint is not None and node.fingerprint[0] == 12


async def test_a_staged_write_leaves_a_discovered_files_fingerprint_as_the_ufs_showed_it(
    vfs: Vfs, tmp_path: Path
) -> None:
    found = tmp_path / "ufs/found"
    found.write_bytes(b"0123456789")
    node = await vfs.stat("/found", caller=ME)  # discovered: its size and mtime are the UFS's
    ufs_fingerprint = [10, found.stat().st_mtime_ns, None]
    assert node.fingerprint == ufs_fingerprint
    await vfs.write_at(node.ino, 10, b"more", stable=False, caller=ME)
    assert node.size == 14 and node.fingerprint == ufs_fingerprint  # the UFS still holds the old bytes
    await vfs.commit(node.ino, caller=ME)
    assert node.fingerprint == [14, found.stat().st_mtime_ns, None]
    assert type(node._fp) is int  # written through nsd: only the UFS's mtime is kept, not a list


async def test_a_small_write_into_a_big_file_stages_only_itself(vfs: Vfs, tmp_path: Path) -> None:
    import os

    big = os.urandom(8 << 20)
    node = await vfs.write_file("/big", chunks(big), caller=ME)
    await vfs.write_at(node.ino, 5 << 20, b"patch", stable=False, caller=ME)
    [stage_file] = (tmp_path / "staging").iterdir()
    assert stage_file.stat().st_blocks * 512 <= 64 << 10  # the 5 bytes, not a copy of 8 MiB
    want = big[: 5 << 20] + b"patch" + big[(5 << 20) + 5 :]
    assert (await vfs.read_at(node.ino, (5 << 20) - 3, 11, caller=ME))[0] == want[(5 << 20) - 3 : (5 << 20) + 8]
    staged_inode = stage_file.stat().st_ino
    await vfs.commit(node.ino, caller=ME)
    ufs_file = tmp_path / "ufs/big"
    assert ufs_file.read_bytes() == want
    assert ufs_file.stat().st_ino == staged_inode  # handed over by rename: same file system, no copy
    assert node.fingerprint is not None and node.fingerprint[:2] == [len(want), ufs_file.stat().st_mtime_ns]
    await vfs.write_at(node.ino, len(want), b"!", stable=True, caller=ME)  # a new stage over the sealed file
    assert ufs_file.read_bytes() == want + b"!"


async def test_a_write_that_failed_after_its_answer_fails_the_commit_once(vfs: Vfs, tmp_path: Path) -> None:
    import os

    node = await vfs.create(1, "w", caller=ME)
    await vfs.write_at(node.ino, 0, b"first", stable=False, caller=ME)
    stage = vfs.stager.stages[node.ino]
    await stage.settled()
    writable = os.dup(stage.fd)
    readonly = os.open(stage.path, os.O_RDONLY)
    try:
        os.dup2(readonly, stage.fd)  # the stage file's next write fails in the kernel
        await vfs.write_at(node.ino, 5, b"-lost", stable=False, caller=ME)  # answered: left behind
        await stage.settled(report=False)  # it has failed (on the read-only fd) by now
        assert stage.failed is not None
        os.dup2(writable, stage.fd)
        with pytest.raises(errors.NsdError):
            await vfs.commit(node.ino, caller=ME)  # the writer learns of it at its commit
        assert not (tmp_path / "ufs/w").read_bytes()  # nothing sealed
        await vfs.commit(node.ino, caller=ME)  # reported once, as a file system does
    finally:
        os.close(readonly)
        os.close(writable)
    assert (tmp_path / "ufs/w").read_bytes() == b"first" + bytes(5)  # the lost range is a hole


async def test_stable_write_is_durable_on_return(tmp_path: Path) -> None:
    vfs = await open_vfs(tmp_path)
    node = await vfs.create(1, "f", caller=ME)
    await vfs.write_at(node.ino, 0, b"stable", stable=True, caller=ME)
    await vfs.write_at(node.ino, 6, b" but lost", stable=False, caller=ME)
    await vfs.store.close(checkpoint=False)  # a crash: the stage is never sealed

    again = await open_vfs(tmp_path)
    try:
        assert await read_all(again, "/f") == b"stable"
        assert not list((tmp_path / "staging").iterdir())  # leftovers of the last life are gone
    finally:
        await again.store.close()


async def test_idle_stages_are_sealed(vfs: Vfs, tmp_path: Path) -> None:
    import asyncio

    node = await vfs.create(1, "idle", caller=ME)
    await vfs.write_at(node.ino, 0, b"x" * 10, stable=False, caller=ME)
    for _ in range(50):
        if not vfs.stager.stages:
            break
        await asyncio.sleep(0.1)
    assert (tmp_path / "ufs/idle").read_bytes() == b"x" * 10


async def test_create_modes(vfs: Vfs) -> None:
    a = await vfs.create(1, "c", caller=ME)
    assert await vfs.create(1, "c", caller=ME) is a
    with pytest.raises(errors.Exists):
        await vfs.create(1, "c", caller=ME, exclusive=True)


async def test_append_writes_after_the_known_size(vfs: Vfs, tmp_path: Path) -> None:
    await vfs.write_file("/log", chunks(b"one\n"), caller=ME)
    with open(tmp_path / "ufs/log", "ab") as f:
        f.write(b"junk an interrupted append left")
    await vfs.append("/log", chunks(b"two\n", b"three\n"), caller=ME)
    assert await read_all(vfs, "/log") == b"one\ntwo\nthree\n"
    assert (tmp_path / "ufs/log").read_bytes() == b"one\ntwo\nthree\n"


async def test_removing_a_staged_file_drops_its_stage(vfs: Vfs, tmp_path: Path) -> None:
    node = await vfs.create(1, "gone", caller=ME)
    await vfs.write_at(node.ino, 0, b"data", stable=False, caller=ME)
    await vfs.remove("/gone", caller=ME)
    assert not vfs.stager.stages and not list((tmp_path / "staging").iterdir())
    with pytest.raises(errors.Stale):
        await vfs.commit(node.ino, caller=ME)


async def test_a_seal_that_fails_after_the_hand_over_settles_on_what_the_ufs_has(
    vfs: Vfs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = await vfs.write_file("/h", chunks(b"old"), caller=ME)
    await vfs.write_at(node.ino, 0, b"NEW!", stable=False, caller=ME)

    async def journal_refuses(*args: object, **kwargs: object) -> None:
        raise errors.UfsUnavailable("refused after the rename")

    monkeypatch.setattr(vfs, "_content_changed", journal_refuses)
    with pytest.raises(errors.UfsUnavailable):
        await vfs.commit(node.ino, caller=ME)
    monkeypatch.undo()
    assert (tmp_path / "ufs/h").read_bytes() == b"NEW!"  # the stage was renamed into place
    assert node.ino not in vfs.stager.stages and not list((tmp_path / "staging").iterdir())
    assert not vfs.ns.intents  # settled at once on what the UFS has
    assert vfs.ns.get(node.ino).size == 4
    assert (await vfs.read_at(node.ino, 0, 10, caller=ME))[0] == b"NEW!"


async def test_create_and_remove_commit_the_journal_while_the_directory_syncs(
    vfs: Vfs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A create or remove in a local mount journals its record while the directory's fsync is
    still running (the two overlap), and returns only once both are done."""
    release = threading.Event()
    real = dirsync.fsync_dir

    def held(path: Path) -> None:
        assert release.wait(10), "fsync never released"
        real(path)

    await vfs.mkdir("/d", caller=ME)
    d = vfs.peek_path("/d").ino
    monkeypatch.setattr(dirsync, "fsync_dir", held)
    for step, change in (("create", vfs.create(d, "f", caller=ME)), ("remove", vfs.remove_at(d, "f", caller=ME))):
        batches = vfs.store.writer.stats.batches
        task = asyncio.ensure_future(change)
        for _ in range(200):  # the record is flushed while the fsync is held
            if vfs.store.writer.stats.batches > batches and ("f" in vfs.peek_path("/d").children) == (step == "create"):
                break
            await asyncio.sleep(0.01)
        else:
            pytest.fail(f"{step}: no journal commit while the directory fsync was held")
        await asyncio.sleep(0.05)
        assert not task.done(), f"{step} answered before its directory was synced"
        release.set()
        await asyncio.wait_for(task, 5)
        release.clear()
    assert not (tmp_path / "ufs/d/f").exists() and "f" not in vfs.peek_path("/d").children


async def test_a_directory_fsync_that_fails_fails_the_create_or_remove_and_leaves_a_sound_namespace(
    vfs: Vfs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The change is made and journaled alongside the fsync, so when the fsync fails the caller
    gets an error and the namespace agrees with the under-storage: the new file is there in both
    (nothing lost), the removed one gone from both, no intent left open."""
    await vfs.mkdir("/d", caller=ME)
    d = vfs.peek_path("/d").ino

    def broken(path: Path) -> None:
        raise OSError(5, "Input/output error")

    real = dirsync.fsync_dir
    monkeypatch.setattr(dirsync, "fsync_dir", broken)
    with pytest.raises(errors.NsdError, match="Input/output error"):
        await vfs.create(d, "f", caller=ME)
    assert "f" in vfs.peek_path("/d").children and (tmp_path / "ufs/d/f").exists()
    with pytest.raises(errors.NsdError, match="Input/output error"):
        await vfs.remove_at(d, "f", caller=ME)
    assert "f" not in vfs.peek_path("/d").children and not (tmp_path / "ufs/d/f").exists()
    assert not vfs.ns.intents
    vfs.ns.check()
    monkeypatch.setattr(dirsync, "fsync_dir", real)
    await vfs.create(d, "g", caller=ME)  # the directory's syncs go on once the disk does
    assert (tmp_path / "ufs/d/g").exists()
