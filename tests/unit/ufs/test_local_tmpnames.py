"""The local adapter's writes go through temporary files whose names never meet: writes at once
through one mount, and through two mounts of one directory (two daemons' stores, or a daemon
and its restart while an old write's file is still there)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

from nsd.ufs.adapters.local import LocalUfs
from nsd.ufs.base import TMP_PREFIX


async def chunks(i: int, gate: asyncio.Event) -> AsyncIterator[bytes]:
    yield f"{i}:".encode()
    yield b"-"  # two chunks in hand: the write streams into its temporary file
    await gate.wait()  # every write's temporary file exists before any ends
    yield b"x" * i


async def test_writes_at_once_through_two_mounts_of_one_directory_keep_apart(tmp_path: Path) -> None:
    mounts = [LocalUfs(tmp_path.as_uri()), LocalUfs(tmp_path.as_uri())]
    gate = asyncio.Event()
    try:
        writes = [asyncio.ensure_future(mounts[i % 2].write(f"part-{i:03d}", chunks(i, gate))) for i in range(1, 41)]
        for _ in range(500):
            if sum(name.startswith(TMP_PREFIX) for name in os.listdir(tmp_path)) == 40:
                break
            await asyncio.sleep(0.01)
        assert sum(name.startswith(TMP_PREFIX) for name in os.listdir(tmp_path)) == 40  # 40 names
        gate.set()
        await asyncio.gather(*writes)
        assert sorted(os.listdir(tmp_path)) == [f"part-{i:03d}" for i in range(1, 41)]  # none left over
        assert all((tmp_path / f"part-{i:03d}").read_bytes() == f"{i}:-".encode() + b"x" * i for i in range(1, 41))
    finally:
        for m in mounts:
            await m.close()
