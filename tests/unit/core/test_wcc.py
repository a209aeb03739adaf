"""wcc watches through the vfs: pairs taken at the change, per call, and nothing after the watch ends."""

from __future__ import annotations

import asyncio

from vfsenv import ME

from nsd.core import wcc
from nsd.vfs import Vfs


async def test_pair_frames_only_this_calls_changes(vfs: Vfs) -> None:
    d = await vfs.mkdir("/d", caller=ME)
    before = wcc.Attrs(d)
    w = wcc.Watch()
    with w.on(d.ino):
        await vfs.mkdir_at(d.ino, "a", caller=ME)
        mid = wcc.Attrs(d)
        await vfs.mkdir_at(d.ino, "b", caller=ME)
    pair = w.pair(d.ino)
    assert pair is not None
    first, last = pair
    assert (first.mtime, first.ctime) == (before.mtime, before.ctime)  # before the first change
    assert last is not None and last.ctime == d.ctime and last.ctime > mid.ctime  # after the last
    await vfs.mkdir_at(d.ino, "c", caller=ME)  # outside the watch
    assert w.pair(d.ino) == pair


async def test_concurrent_calls_keep_their_own_pairs(vfs: Vfs) -> None:
    d = await vfs.mkdir("/d", caller=ME)

    async def make(name: str) -> tuple[wcc.Attrs, wcc.Attrs | None]:
        w = wcc.Watch()
        with w.on(d.ino):
            await vfs.create(d.ino, name, caller=ME)
        pair = w.pair(d.ino)
        assert pair is not None
        return pair

    pairs = await asyncio.gather(*(make(f"f{i}") for i in range(5)))
    ctimes = {(pre.ctime, post.ctime if post else None) for pre, post in pairs}
    starts = {pre for pre, _ in ctimes}
    assert len(starts) == 5  # every call saw its own "before"
    assert sum(1 for _, post in ctimes if post not in starts) == 1  # and they chain to one end


async def test_no_change_no_pair_and_stale_watches_stay_quiet(vfs: Vfs) -> None:
    d = await vfs.mkdir("/d", caller=ME)
    w = wcc.Watch()
    with w.on(d.ino):
        await vfs.lookup(1, "d", caller=ME)
        late = asyncio.create_task(asyncio.sleep(0.01))  # copies the context, watch included
    await late
    assert w.pair(d.ino) is None
    assert wcc.current() is None

    async def change_later() -> None:
        await asyncio.sleep(0.01)
        await vfs.mkdir_at(d.ino, "later", caller=ME)

    w2 = wcc.Watch()
    with w2.on(d.ino):
        task = asyncio.create_task(change_later())
    await task
    assert w2.pair(d.ino) is None  # the watch had ended: the task's change is not this call's
