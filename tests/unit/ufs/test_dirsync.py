"""DirSyncs: concurrent changes in one directory share its fsyncs; each returns only after an
fsync that started after its change; errors reach the caller."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import pytest

from nsd import errors
from nsd.threads import Workers
from nsd.ufs import Syncs
from nsd.ufs.adapters import dirsync
from nsd.ufs.adapters.dirsync import DirSyncs
from nsd.ufs.adapters.local import LocalUfs


@pytest.fixture
def synced(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[tuple[str, Path]]:
    """A log of ("change", dir) and ("fsync", dir) events in the order they happened, for the
    test's own directories (a fsync an earlier test left running in a thread is not its own)."""
    events: list[tuple[str, Path]] = []
    lock = threading.Lock()
    real = dirsync.fsync_dir

    def fsync_dir(path: str | Path) -> None:
        real(path)
        path = Path(path)
        if path == tmp_path or tmp_path in path.parents:
            with lock:
                events.append(("fsync", path))

    monkeypatch.setattr(dirsync, "fsync_dir", fsync_dir)
    return events


async def test_concurrent_changes_share_fsyncs_and_each_is_covered(tmp_path: Path, synced: list) -> None:
    syncs = DirSyncs(Workers("test", 8))
    lock = threading.Lock()

    def make(i: int) -> int:
        (tmp_path / f"f{i}").write_bytes(b"")
        with lock:
            synced.append(("change", tmp_path / f"f{i}"))
        return i

    got = await asyncio.gather(*(syncs.change(str(tmp_path), lambda i=i: make(i)) for i in range(64)))
    assert got == list(range(64))
    assert syncs.changes == 64
    fsyncs = [i for i, (kind, _) in enumerate(synced) if kind == "fsync"]
    assert len(fsyncs) == syncs.fsyncs
    assert syncs.fsyncs < 64 / 4, f"{syncs.fsyncs} fsyncs for 64 changes: not shared"
    # every change is followed by an fsync of its directory
    last_change = max(i for i, (kind, _) in enumerate(synced) if kind == "change")
    assert fsyncs[-1] > last_change
    assert all(p == tmp_path for kind, p in synced if kind == "fsync")
    assert not syncs._syncing  # nothing left running


async def test_a_lone_change_is_one_thread_call_with_its_fsync(tmp_path: Path, synced: list) -> None:
    syncs = DirSyncs(Workers("test", 8))
    for i in range(3):
        await syncs.change(str(tmp_path), lambda i=i: (tmp_path / f"g{i}").write_bytes(b"x"))
    assert syncs.fsyncs == 3 and [k for k, _ in synced] == ["fsync"] * 3


async def test_separate_directories_do_not_wait_for_each_other(tmp_path: Path, synced: list) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    syncs = DirSyncs(Workers("test", 8))
    await asyncio.gather(syncs.change(str(a), lambda: None), syncs.change(str(b), lambda: None))
    assert sorted(str(p) for _, p in synced) == [str(a), str(b)]


async def test_errors_reach_the_caller_and_the_next_sync_still_runs(tmp_path: Path, synced: list) -> None:
    syncs = DirSyncs(Workers("test", 8))

    def fails() -> None:
        raise FileNotFoundError(2, "No such file or directory")

    results = await asyncio.gather(
        syncs.change(str(tmp_path), lambda: None), syncs.change(str(tmp_path), fails), return_exceptions=True
    )
    assert results[0] is None and isinstance(results[1], FileNotFoundError)
    gone = tmp_path / "gone"
    with pytest.raises(FileNotFoundError):
        await syncs.sync(str(gone))  # fsync of a directory that is not there
    await syncs.change(str(tmp_path), lambda: None)
    assert not syncs._syncing


async def test_local_ufs_changes_share_directory_fsyncs(tmp_path: Path, synced: list) -> None:
    """32 creates and 32 removes at once in one directory of a local mount: fewer fsyncs than
    changes, every file there (then gone), and no temporary file left."""
    ufs = LocalUfs(tmp_path.as_uri())

    async def empty():  # type: ignore[no-untyped-def]
        return
        yield b""

    async def one(i: int) -> None:
        status = await ufs.write(f"part-{i:05d}", empty())
        assert status.size == 0

    await asyncio.gather(*(one(i) for i in range(32)))
    assert sorted(os.listdir(tmp_path)) == [f"part-{i:05d}" for i in range(32)]
    await asyncio.gather(*(ufs.delete(f"part-{i:05d}") for i in range(32)))
    assert os.listdir(tmp_path) == []
    fsyncs = sum(1 for kind, _ in synced if kind == "fsync")
    assert 2 <= fsyncs < 32, fsyncs


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Directory fsyncs wait until the returned event is set."""
    release = threading.Event()
    real = dirsync.fsync_dir

    def fsync_dir(path: Path) -> None:
        assert release.wait(10), "fsync never released"
        real(path)

    monkeypatch.setattr(dirsync, "fsync_dir", fsync_dir)
    return release


async def test_made_answers_before_the_fsync_and_its_future_after(tmp_path: Path, held: threading.Event) -> None:
    syncs = DirSyncs(Workers("test", 8))
    result, synced = await asyncio.wait_for(syncs.made(str(tmp_path), lambda: "made"), 5)
    assert result == "made"
    await asyncio.sleep(0.05)
    assert not synced.done(), "the fsync was held: its future cannot be done yet"
    # a second change meanwhile waits for an fsync that starts after it, not the running one
    second, later = await syncs.made(str(tmp_path), lambda: "second")
    held.set()
    await asyncio.wait_for(asyncio.gather(synced, later), 5)
    assert second == "second" and syncs.fsyncs == 2 and not syncs._syncing


async def test_made_raises_the_operations_error_and_leaves_no_sync_running(tmp_path: Path, synced: list) -> None:
    syncs = DirSyncs(Workers("test", 8))

    def fails() -> None:
        raise PermissionError(13, "Permission denied")

    with pytest.raises(PermissionError):
        await syncs.made(str(tmp_path), fails)
    for _ in range(20):  # the fsync after the failed change ends on its own
        if not syncs._syncing:
            break
        await asyncio.sleep(0.01)
    assert not syncs._syncing
    _, synced_future = await syncs.made(str(tmp_path), lambda: None)
    await synced_future


async def test_a_local_write_with_syncs_returns_made_and_the_block_ends_durable(
    tmp_path: Path, held: threading.Event
) -> None:
    """With `Syncs`, a local create is visible at once and the `async with` waits for its
    directory's fsync; an fsync that fails fails the block with the adapter's error."""
    ufs = LocalUfs(tmp_path.as_uri())

    async def data():  # type: ignore[no-untyped-def]
        yield b"abc"

    async def create() -> None:
        async with Syncs() as syncs:
            status = await ufs.write("f", data(), syncs=syncs)
            assert status.size == 3 and (tmp_path / "f").read_bytes() == b"abc"
            made.set()

    made = asyncio.Event()
    task = asyncio.create_task(create())
    await asyncio.wait_for(made.wait(), 5)
    await asyncio.sleep(0.05)
    assert not task.done(), "the block must wait for the held directory fsync"
    held.set()
    await asyncio.wait_for(task, 5)


async def test_a_failed_directory_fsync_fails_the_syncs_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(path: Path) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(dirsync, "fsync_dir", broken)
    ufs = LocalUfs(tmp_path.as_uri())
    (tmp_path / "f").write_bytes(b"")
    with pytest.raises(errors.NsdError, match="Input/output error"):
        async with Syncs() as syncs:
            await ufs.delete("f", syncs=syncs)
    assert not (tmp_path / "f").exists()


async def test_local_mkdir_and_link_are_durable_on_return(tmp_path: Path, synced: list) -> None:
    """Each directory `mkdir` makes is in an fsynced parent (mkdir -p: every level), and a hard
    link's directory is fsynced, as for every other change of a local mount."""
    ufs = LocalUfs(tmp_path.as_uri())
    await ufs.mkdir("a/b/c")
    assert (tmp_path / "a/b/c").is_dir()
    assert {p for _, p in synced} == {tmp_path, tmp_path / "a", tmp_path / "a/b"}
    synced.clear()
    await ufs.mkdir("a/b/c")  # already there: nothing made, nothing refused
    (tmp_path / "a/f").write_bytes(b"x")
    synced.clear()
    await ufs.link("a/f", "a/b/g")
    assert (tmp_path / "a/b/g").read_bytes() == b"x" and [p for _, p in synced] == [tmp_path / "a/b"]
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(errors.Exists):
        await ufs.mkdir("file")


async def test_local_mkdir_makes_a_missing_root_as_mkdir_p_does(tmp_path: Path, synced: list) -> None:
    ufs = LocalUfs((tmp_path / "ufs").as_uri())  # a data dir's root under-storage, made on first use
    await ufs.mkdir("bench")
    assert (tmp_path / "ufs/bench").is_dir() and {p for _, p in synced} == {tmp_path, tmp_path / "ufs"}
