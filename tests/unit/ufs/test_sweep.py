"""Sweeping leftover temporary objects (`.nsd-tmp.*`): old ones go, fresh ones and those of
writes in progress stay, and none is ever listed. S3's sweep is in test_s3.py."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path

from webhdfs_fake import serve_fake

from nsd.ufs import open_ufs
from nsd.ufs.adapters.memory import drop_store, store
from nsd.ufs.base import TMP_PREFIX


async def test_local_sweep_spares_fresh_files_and_writes_in_progress(tmp_path: Path) -> None:
    root = tmp_path / "ufs"
    (root / "sub").mkdir(parents=True)
    old = [root / f"{TMP_PREFIX}dead1", root / "sub" / f"{TMP_PREFIX}dead2"]
    for p in old:
        p.write_bytes(b"half a file")
        os.utime(p, (time.time() - 7200, time.time() - 7200))
    fresh = root / f"{TMP_PREFIX}recent"
    fresh.write_bytes(b"x")
    (root / "keep").write_bytes(b"k")
    ufs = open_ufs(root.as_uri())

    release = asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        yield b"first "
        yield b"half, "  # two chunks: one alone is held back and written with its file in one go
        await release.wait()
        yield b"second half"

    writing = asyncio.create_task(ufs.write("sub/new", slow_body()))
    while not any(p.name.startswith(TMP_PREFIX) for p in (root / "sub").iterdir() if p not in old):
        await asyncio.sleep(0.01)
    assert await ufs.sweep_tmp(3600) == 2
    assert not any(p.exists() for p in old) and fresh.exists()
    assert await ufs.sweep_tmp(0) == 1  # the fresh one now; never the one being written
    release.set()
    await writing
    assert (root / "sub" / "new").read_bytes() == b"first half, second half"
    assert sorted(os.listdir(root)) == ["keep", "sub"]
    assert sorted([s.name async for s in ufs.list("")]) == ["keep", "sub"]


async def test_memory_sweep() -> None:
    name = "sweep-" + secrets.token_hex(4)
    try:
        s = store(name)
        s.put(f"p/{TMP_PREFIX}a", b"1")
        s.files[f"p/{TMP_PREFIX}a"].mtime_ns -= 10 * 10**9
        s.put(f"p/{TMP_PREFIX}b", b"2")
        s.put(f"q/{TMP_PREFIX}c", b"3")  # outside the mount's prefix
        s.files[f"q/{TMP_PREFIX}c"].mtime_ns -= 10 * 10**9
        ufs = open_ufs(f"memory://{name}/p")
        assert [e.name async for e in ufs.list("")] == []
        assert await ufs.sweep_tmp(5) == 1
        assert sorted(s.files) == [f"p/{TMP_PREFIX}b", f"q/{TMP_PREFIX}c"]
    finally:
        drop_store(name)


async def test_webhdfs_sweep_walks_the_tree(tmp_path: Path) -> None:
    server = await serve_fake(tmp_path / "hdfs")
    root = tmp_path / "hdfs" / "base"
    (root / "a" / "b").mkdir(parents=True)
    old = [root / f"{TMP_PREFIX}1.x", root / "a" / "b" / f"{TMP_PREFIX}2.y"]
    for p in old:
        p.write_bytes(b"half")
        os.utime(p, (time.time() - 7200, time.time() - 7200))
    (root / "a" / f"{TMP_PREFIX}3.fresh").write_bytes(b"new")
    (root / "a" / "keep").write_bytes(b"k")
    ufs = open_ufs(f"webhdfs://127.0.0.1:{server.port}/base", {"token": "t0ken-secret-123"})
    try:
        assert [s.name async for s in ufs.list("a")] == ["b", "keep"]
        assert await ufs.sweep_tmp(3600) == 2
        assert not any(p.exists() for p in old)
        assert sorted(os.listdir(root / "a")) == [f"{TMP_PREFIX}3.fresh", "b", "keep"]
    finally:
        await ufs.close()
        await server.close()
