"""Sealing stores several blocks at once: the layout stays in file order, holds stay exact."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest
from cachevfs import BS, chunks, close, new_env

from nsd import errors
from nsd.blockstore.digest import hash_block
from nsd.blockstore.disk import DiskTier
from nsd.core.cache.ingest import PUTS_IN_FLIGHT, Sealer
from nsd.core.cache.policy import WriteType
from nsd.core.cache.service import Cache
from nsd.vfs import Vfs


class SlowPuts:
    """Stands in for the store's put: counts the puts running at once and makes the earlier
    blocks of each group of four the slower ones, so later puts finish first."""

    def __init__(self, cache: Cache, fail_at: int | None = None) -> None:
        self.real = cache.blocks.put
        self.running = self.most = self.started = self.stored = 0
        self.fail_at = fail_at

    async def __call__(self, block: bytes) -> str:
        n = self.started
        self.started += 1
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await asyncio.sleep(0.005 * (3 - n % 4))
            if n == self.fail_at:
                raise errors.NoSpace("no room for this block")
            digest = await self.real(block)
            self.stored += 1
            return digest
        finally:
            self.running -= 1


def sealed_data(blocks: int) -> bytes:
    return os.urandom(blocks * BS + 100)


async def slow_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_at: int | None = None
) -> tuple[Vfs, Cache, SlowPuts]:
    """A MUST_CACHE vfs whose block store's puts go through SlowPuts."""
    vfs = await new_env(tmp_path, write_type=WriteType.MUST_CACHE).open()
    cache = vfs.cache
    assert cache is not None
    puts = SlowPuts(cache, fail_at)
    monkeypatch.setattr(cache.blocks, "put", puts)
    return vfs, cache, puts


async def test_blocks_are_stored_several_at_once_and_laid_out_in_file_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vfs, cache, puts = await slow_env(tmp_path, monkeypatch)
    data = sealed_data(10)
    try:
        sealer = Sealer(cache)
        await sealer.feed_all(chunks(data[:1000], data[1000 : 5 * BS], data[5 * BS :]))
        assert sealer.size == len(data)
        layout = await sealer.finish()
        assert puts.most == PUTS_IN_FLIGHT > 1
        assert [(off, length) for off, length, _ in layout] == [(i * BS, BS) for i in range(10)] + [(10 * BS, 100)]
        assert [d for _, _, d in layout] == [hash_block(data[off : off + n]) for off, n, _ in layout]
        assert all(cache.holds[d] == 1 for _, _, d in layout)
        sealer.close()
        assert cache.holds == {}
    finally:
        await close(vfs)


async def test_a_failed_put_fails_the_seal_and_the_puts_in_flight_take_no_hold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vfs, cache, puts = await slow_env(tmp_path, monkeypatch, fail_at=0)
    real_write = DiskTier.write

    def slow_write(tier: DiskTier, digest: str, blob: bytes) -> None:
        time.sleep(0.05)  # the puts after the failed one are still writing when it fails
        real_write(tier, digest, blob)

    monkeypatch.setattr(DiskTier, "write", slow_write)
    try:
        sealer = Sealer(cache)
        with pytest.raises(errors.NoSpace):
            await sealer.feed_all(chunks(sealed_data(12)))
            await sealer.finish()
        await sealer.abort()
        assert puts.running == 0 and puts.stored < 12 and cache.holds == {}  # cancelled and waited for
        cache.blocks.check()  # what they stored is indexed (garbage), no file is left behind
    finally:
        await close(vfs)


async def test_a_cancelled_seal_leaves_no_hold(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    vfs, cache, puts = await slow_env(tmp_path, monkeypatch)
    sealer = Sealer(cache)

    async def seal() -> None:
        async with sealer:
            await sealer.feed_all(chunks(sealed_data(12)))
            await sealer.finish()

    try:
        task = asyncio.create_task(seal())
        while puts.started < 6:
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert puts.running == 0 and cache.holds == {}
        cache.blocks.check()
    finally:
        await close(vfs)
