"""The local adapter's listing helper: a directory larger than a page is listed by a process of
its own, with the same entries the worker threads give, and whatever happens to that process
costs at most the listing it was giving."""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import sys
import time
from pathlib import Path

import pytest
from daemon import listing_helpers

from nsd import errors
from nsd.ufs import open_ufs
from nsd.ufs.adapters.lister import Lister, OutsideRoot
from nsd.ufs.adapters.local import LocalUfs
from nsd.ufs.adapters.local_scan import PAGE, answer
from nsd.ufs.base import TMP_PREFIX, UfsStatus

FILES = PAGE * 2 + 300  # three pages


def large_dir(root: Path, name: str = "big") -> Path:
    """FILES files of different sizes and modes, a few directories, a temporary file of a write
    in progress, and symlinks inside and outside the root."""
    d = root / name
    d.mkdir(parents=True)
    for i in range(FILES):
        (d / f"f{i:05d}").write_bytes(b"x" * (i % 7))
        if i % 5 == 0:
            os.chmod(d / f"f{i:05d}", 0o600)
    for i in range(3):
        (d / f"sub{i}").mkdir()
    (d / f"{TMP_PREFIX}0123").write_bytes(b"half")
    os.symlink("f00001", d / "inner")
    os.symlink("/etc", d / "escape")
    return d


def as_rows(pages: list[list[UfsStatus]]) -> list[tuple[object, ...]]:
    return sorted((s.name, s.is_dir, s.size, s.mtime_ns, s.etag, s.mode) for page in pages for s in page)


async def pages(ufs: LocalUfs, path: str) -> list[list[UfsStatus]]:
    return [page async for page in ufs.list_pages(path)]


async def started(ufs: LocalUfs) -> Lister:
    lister = ufs._lister
    assert lister is not None
    for _ in range(500):
        if lister._proc is not None:
            return lister
        await asyncio.sleep(0.01)
    raise AssertionError("the listing helper did not start")


def expected(d: Path) -> list[tuple[object, ...]]:
    rows = []
    for name in os.listdir(d):
        if name.startswith(TMP_PREFIX) or name == "escape":
            continue
        st = os.lstat(d / name)
        is_dir = os.path.isdir(d / name) and not os.path.islink(d / name)
        rows.append((name, is_dir, 0 if is_dir else st.st_size, st.st_mtime_ns, None, st.st_mode & 0o7777))
    return sorted(rows)


async def test_a_large_directory_lists_the_same_through_the_helper(tmp_path: Path) -> None:
    d = large_dir(tmp_path)
    ufs, threads_only = LocalUfs(tmp_path.as_uri()), LocalUfs(tmp_path.as_uri(), list_helper=False)
    try:
        by_threads = await pages(threads_only, "big")
        assert len(await pages(ufs, "")) == 1  # a mount's first listing starts its helper
        lister = await started(ufs)
        assert lister.listings == 0
        by_helper = await pages(ufs, "big")
        assert lister.listings == 1
        assert as_rows(by_threads) == as_rows(by_helper) == expected(d)
        assert len(by_helper[0]) == PAGE  # the first page from the threads, the rest from the helper
        assert [s.mode for page in by_helper for s in page if s.name == "f00005"] == [0o600]
        again = await pages(ufs, "big")  # free again once a listing ends
        assert lister.listings == 2 and as_rows(again) == expected(d)
    finally:
        await ufs.close()
        await threads_only.close()


async def test_a_directory_within_one_page_is_listed_by_the_threads_alone(tmp_path: Path) -> None:
    (tmp_path / "small").mkdir()
    for i in range(PAGE - 1):
        (tmp_path / "small" / f"f{i}").touch()
    ufs = LocalUfs(tmp_path.as_uri())
    try:
        assert sum(len(p) for p in await pages(ufs, "small")) == PAGE - 1
        lister = await started(ufs)
        assert sum(len(p) for p in await pages(ufs, "small")) == PAGE - 1
        assert lister.listings == 0
    finally:
        await ufs.close()


async def test_the_mount_option_list_helper_false_lists_with_threads_only(tmp_path: Path) -> None:
    d = large_dir(tmp_path)
    before = set(listing_helpers(os.getpid()))  # those of other tests' mounts, not closed yet
    ufs = open_ufs(tmp_path.as_uri(), {"list_helper": "false"})
    try:
        for _ in range(2):
            assert as_rows([[s async for s in ufs.list("big")]]) == expected(d)
        await asyncio.sleep(0.2)  # time for a helper to start, were one started
        assert set(listing_helpers(os.getpid())) <= before
    finally:
        await ufs.close()
    with pytest.raises(errors.Invalid, match="list_helper"):
        open_ufs(tmp_path.as_uri(), {"list_helper": "sometimes"})


async def test_a_listing_left_before_its_end_kills_the_helper(tmp_path: Path) -> None:
    d = large_dir(tmp_path)
    ufs = LocalUfs(tmp_path.as_uri())
    try:
        await pages(ufs, "big")
        lister = await started(ufs)
        proc = lister._proc
        assert proc is not None
        it = ufs.list_pages("big")
        assert len(await anext(it)) == PAGE
        await it.aclose()  # its answer is still coming: it could be taken for the next one's
        assert await asyncio.wait_for(proc.wait(), 5) == -signal.SIGKILL
        assert as_rows(await pages(ufs, "big")) == expected(d)  # threads; a new helper starts
        assert (await started(ufs))._proc is not proc
        assert as_rows(await pages(ufs, "big")) == expected(d)
    finally:
        await ufs.close()


async def test_a_helper_that_dies_mid_listing_fails_that_listing_only(tmp_path: Path) -> None:
    d = large_dir(tmp_path)
    ufs = LocalUfs(tmp_path.as_uri())
    try:
        await pages(ufs, "big")
        proc = (await started(ufs))._proc
        assert proc is not None
        os.kill(proc.pid, signal.SIGSTOP)  # it cannot answer before it is killed
        it = ufs.list_pages("big")
        assert len(await anext(it)) == PAGE
        os.kill(proc.pid, signal.SIGKILL)
        with pytest.raises(errors.UfsUnavailable, match="listing helper"):
            await anext(it)
        await it.aclose()
        assert as_rows(await pages(ufs, "big")) == expected(d)
    finally:
        await ufs.close()


async def test_a_hung_helper_costs_one_listing_its_timeout(tmp_path: Path) -> None:
    # Through the mount's wrappers, as the daemon lists: a page that does not come within the
    # per-try timeout ends the listing; the helper is killed and the next listing goes on.
    d = large_dir(tmp_path)
    ufs = open_ufs(tmp_path.as_uri(), {"timeout_s": "0.5", "retries": "1"})
    local = ufs.inner
    assert isinstance(local, LocalUfs)
    try:
        await pages(local, "")
        proc = (await started(local))._proc
        assert proc is not None
        os.kill(proc.pid, signal.SIGSTOP)  # as a helper stuck in an lstat on a hung file server
        got: list[str] = []
        with pytest.raises(errors.UfsUnavailable):
            async for page in ufs.list_pages("big"):
                got += [s.name for s in page]
        assert len(got) == PAGE  # the first page, from the threads
        assert await asyncio.wait_for(proc.wait(), 5) == -signal.SIGKILL
        assert as_rows([[s async for s in ufs.list("big")]]) == expected(d)
    finally:
        await ufs.close()


async def test_two_large_listings_at_once_one_through_the_threads(tmp_path: Path) -> None:
    one, two = large_dir(tmp_path, "one"), large_dir(tmp_path, "two")
    ufs = LocalUfs(tmp_path.as_uri())
    try:
        await pages(ufs, "one")
        lister = await started(ufs)
        asked = lister.listings
        it = ufs.list_pages("one")
        a = [await anext(it)]  # the helper is asked for the rest
        b = await pages(ufs, "two")  # meanwhile: through the threads
        a += [page async for page in it]
        assert lister.listings == asked + 1
        assert as_rows(a) == expected(one) and as_rows(b) == expected(two)
    finally:
        await ufs.close()


async def test_close_ends_the_helper(tmp_path: Path) -> None:
    large_dir(tmp_path)
    ufs = LocalUfs(tmp_path.as_uri())
    await pages(ufs, "big")
    proc = (await started(ufs))._proc
    assert proc is not None
    await ufs.close()
    assert proc.returncode == 0  # its stdin ended: it exited on its own


def test_a_helper_started_on_an_event_loop_that_has_ended_is_replaced(tmp_path: Path) -> None:
    # A mount's adapter outlives the loop it was first used on (tests, offline tools then a daemon).
    big = large_dir(tmp_path)
    ufs = LocalUfs(tmp_path.as_uri())

    async def listed() -> tuple[list[tuple[object, ...]], int]:
        lister = await started(ufs)
        for _ in range(500):
            if lister.free():
                break
            await asyncio.sleep(0.01)
        rows = as_rows(await pages(ufs, "big"))
        assert lister._proc is not None
        return rows, lister._proc.pid

    async def first() -> tuple[list[tuple[object, ...]], int]:
        assert ufs._lister is not None
        ufs._lister.start()
        return await listed()

    rows, pid = asyncio.run(first())
    assert rows == expected(big)

    async def second() -> tuple[list[tuple[object, ...]], int]:
        try:
            await pages(ufs, "big")  # starts the new helper: the old one's loop is gone
            return await listed()
        finally:
            await ufs.close()

    rows, second_pid = asyncio.run(second())
    assert rows == expected(big) and second_pid != pid
    for _ in range(500):  # the first is killed, and reaped
        if not os.path.exists(f"/proc/{pid}"):
            break
        time.sleep(0.01)
    assert not os.path.exists(f"/proc/{pid}"), "the first helper was left running or unreaped"


async def test_the_helper_answers_errors_and_paths_outside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "d").mkdir(parents=True)
    (root / "d" / "f").write_bytes(b"abc")
    (root / "file").touch()
    os.symlink(tmp_path, root / "out")
    lister = Lister(str(root), TMP_PREFIX)
    try:
        assert not lister.free()  # starts it
        for _ in range(500):
            if lister.free():
                break
            await asyncio.sleep(0.01)
        for parts, error in ((["missing"], errno.ENOENT), (["file"], errno.ENOTDIR)):
            listing = lister.listing(parts)
            with pytest.raises(OSError) as e:
                await listing.next()
            assert e.value.errno == error
            listing.close()
        listing = lister.listing(["out"])
        with pytest.raises(OutsideRoot):
            await listing.next()
        listing.close()
        listing = lister.listing(["d"])
        page = await listing.next()
        assert page is not None and [(n, size) for n, _, size, *_ in page] == [("f", 3)]
        assert await listing.next() is None
        listing.close()
        assert lister.listings == 4 and lister.free()  # answers that ended leave it running
    finally:
        await lister.close()


def test_answer_ends_every_request_with_one_closing_message(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    for i in range(PAGE + 1):
        (tmp_path / "d" / str(i)).touch()
    kinds = [m[0] for m in answer(str(tmp_path), TMP_PREFIX, ["d"])]
    assert kinds == ["page", "page", "end"]
    assert [m[0] for m in answer(str(tmp_path), TMP_PREFIX, ["nope"])] == ["error"]


async def test_a_helper_that_cannot_start_leaves_the_listings_to_the_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    d = large_dir(tmp_path)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-python"))
    ufs = LocalUfs(tmp_path.as_uri())
    try:
        for _ in range(3):
            assert as_rows(await pages(ufs, "big")) == expected(d)
            await asyncio.sleep(0.05)  # the start, tried in the background
        starts = [r for r in caplog.records if "cannot start the listing helper" in r.getMessage()]
        assert len(starts) == 1  # tried once, not at every listing
    finally:
        await ufs.close()
