from __future__ import annotations

import asyncio

import blake3
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nsd.blockstore import SingleFlight, hash_block, is_digest, split_blocks
from nsd.blockstore.policy import Lrfu


@given(st.integers(0, 10_000), st.integers(1, 3000))
def test_split_blocks_tiles_the_file_with_full_blocks_but_the_last(length: int, size: int) -> None:
    plan = split_blocks(length, size)
    assert sum(n for _, n in plan) == length
    pos = 0
    for off, n in plan:
        assert off == pos and 0 < n <= size
        pos += n
    assert all(n == size for _, n in plan[:-1])


def test_split_blocks_refuses_nonsense() -> None:
    assert split_blocks(0, 4) == []
    with pytest.raises(ValueError):
        split_blocks(10, 0)
    with pytest.raises(ValueError):
        split_blocks(-1, 4)


@pytest.mark.parametrize("size", [0, 1, 1 << 20, (1 << 20) + 7])
def test_hash_block_is_blake3_hex_single_or_multithreaded(size: int) -> None:
    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    want = blake3.blake3(data).hexdigest()
    assert hash_block(data) == want
    assert hash_block(memoryview(data), multithread_bytes=1) == want
    assert is_digest(want)
    assert not is_digest(want.upper()) and not is_digest(want[:-1]) and not is_digest("../" + want[3:])


def test_lrfu_lambda_one_is_lru_and_zero_is_lfu() -> None:
    lru = Lrfu(lam=1.0)
    for d in ["a", "a", "a", "b"]:
        lru.touch(d)
    assert lru.order(["a", "b"]) == ["a", "b"]  # b is more recent
    lfu = Lrfu(lam=0.0)
    for d in ["a", "a", "a", "b"]:
        lfu.touch(d)
    assert lfu.order(["a", "b"]) == ["b", "a"]  # a is more frequent
    assert lfu.order(["unknown", "b"]) == ["unknown", "b"]


def test_lrfu_between_weighs_recency_and_frequency() -> None:
    p = Lrfu(lam=0.1)
    for d in ["hot"] * 10 + ["once"]:
        p.touch(d)
    assert p.order(["hot", "once"]) == ["once", "hot"]  # frequent beats slightly more recent
    for i in range(200):
        p.touch(f"x{i}")
    p.touch("once")
    assert p.order(["hot", "once"]) == ["hot", "once"]  # long unused frequency decays away


async def test_single_flight_runs_one_load_for_concurrent_callers() -> None:
    sf = SingleFlight()
    calls = 0
    gate = asyncio.Event()

    async def loader() -> bytes:
        nonlocal calls
        calls += 1
        await gate.wait()
        return b"block"

    tasks = [asyncio.create_task(sf.run("k", loader)) for _ in range(100)]
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(*tasks) == [b"block"] * 100
    assert calls == 1 and len(sf) == 0
    assert await sf.run("k", loader) == b"block" and calls == 2  # coalesces, does not cache


async def test_single_flight_shares_failures_and_forgets_them() -> None:
    sf = SingleFlight()
    calls = 0

    async def failing() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        raise OSError("ufs down")

    results = await asyncio.gather(*(sf.run(1, failing) for _ in range(10)), return_exceptions=True)
    assert calls == 1 and all(isinstance(r, OSError) for r in results)

    async def ok() -> int:
        return 7

    assert await sf.run(1, ok) == 7


async def test_single_flight_waiter_cancel_does_not_cancel_the_load() -> None:
    sf = SingleFlight()
    gate = asyncio.Event()

    async def loader() -> str:
        await gate.wait()
        return "v"

    first = asyncio.create_task(sf.run("k", loader))
    await asyncio.sleep(0)
    waiter = asyncio.create_task(sf.run("k", loader))
    await asyncio.sleep(0)
    waiter.cancel()
    gate.set()
    assert await first == "v"
    with pytest.raises(asyncio.CancelledError):
        await waiter
