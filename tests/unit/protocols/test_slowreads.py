from __future__ import annotations

import asyncio

import pytest

from nsd.protocols.nfs3.slowreads import Jukebox, SlowReads


class Store:
    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.reads = 0

    async def read(self) -> tuple[bytes, bool]:
        self.reads += 1
        await self.gate.wait()
        return b"data", True


async def test_fast_reads_pass_through() -> None:
    slow = SlowReads(patience=5)
    store = Store()
    store.gate.set()
    assert await slow.read((1, 0, 4), store.read) == (b"data", True)
    assert len(slow) == 0


async def test_without_patience_a_slow_read_waits_and_nothing_is_parked() -> None:
    slow = SlowReads()  # the default: never JUKEBOX
    store = Store()
    read = asyncio.ensure_future(slow.read((1, 0, 4), store.read))
    await asyncio.sleep(0.05)
    assert not read.done() and len(slow) == 0
    store.gate.set()
    assert await read == (b"data", True)
    assert store.reads == 1 and len(slow) == 0


async def test_a_read_runs_in_a_task_of_its_own() -> None:
    # the RPC server steps a procedure outside any task; what a read calls may need one
    seen = []

    async def read() -> tuple[bytes, bool]:
        seen.append(asyncio.current_task())
        return b"x", True

    for slow in (SlowReads(), SlowReads(patience=5)):
        assert await slow.read((1, 0, 1), read) == (b"x", True)
    assert len(seen) == 2 and all(t is not None and t is not asyncio.current_task() for t in seen)


async def test_slow_read_answers_jukebox_and_the_retry_collects_it() -> None:
    slow = SlowReads(patience=0.01)
    store = Store()
    with pytest.raises(Jukebox):
        await slow.read((1, 0, 4), store.read)
    with pytest.raises(Jukebox):  # still running: the retry waits on the same read
        await slow.read((1, 0, 4), store.read)
    store.gate.set()
    assert await slow.read((1, 0, 4), store.read) == (b"data", True)
    assert store.reads == 1 and len(slow) == 0


async def test_a_failed_parked_read_fails_the_retry() -> None:
    slow = SlowReads(patience=0.01)
    gate = asyncio.Event()

    async def failing() -> tuple[bytes, bool]:
        await gate.wait()
        raise OSError("gone")

    with pytest.raises(Jukebox):
        await slow.read((2, 0, 1), failing)
    gate.set()
    with pytest.raises(OSError):
        await slow.read((2, 0, 1), failing)


async def test_writes_forget_parked_reads_and_the_table_is_bounded() -> None:
    slow = SlowReads(patience=0.01, max_pending=2)
    stores = [Store() for _ in range(3)]
    for i, store in enumerate(stores):
        with pytest.raises(Jukebox):
            await slow.read((i, 0, 4), store.read)
    assert len(slow) == 2  # the oldest was dropped
    slow.forget(2)
    assert len(slow) == 1
    for store in stores:
        store.gate.set()
    assert await slow.read((2, 0, 4), stores[2].read) == (b"data", True)
    assert stores[2].reads == 2  # forgotten: read again
