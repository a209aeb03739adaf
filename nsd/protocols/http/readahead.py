"""Streaming a file's bytes to an HTTP client: large pieces, the next one read while the
current one is sent, so the store (or disk) and the socket work at once."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator

from nsd import errors
from nsd.cache.policy import ReadType
from nsd.vfs import Caller, Vfs

CHUNK = 4 << 20  # fewer, larger reads: each one is a worker-thread or store round trip


async def read_ahead(
    vfs: Vfs,
    ino: int,
    start: int,
    end: int,
    path: str,
    *,
    caller: Caller,
    read_type: ReadType | None = None,
    chunk: int = CHUNK,
) -> AsyncGenerator[bytes | memoryview, None]:
    """The bytes [start, end) of inode `ino` in `chunk` pieces, one piece read ahead, as
    `vfs.read_at` gives them to `caller`. Memory: two pieces per open stream. Corrupt if the
    file ends before `end`."""

    def fetch(pos: int) -> asyncio.Future[tuple[bytes | memoryview, bool]] | None:
        if pos >= end:
            return None
        piece = vfs.read_at(ino, pos, min(chunk, end - pos), caller=caller, read_type=read_type)
        return asyncio.ensure_future(piece)

    pos = start
    pending = fetch(pos)
    try:
        while pending is not None:
            data, _ = await pending
            if not data:
                raise errors.Corrupt(f"file ended early at {pos} of {end}: {path}", path=path)
            pos += len(data)
            pending = fetch(pos)
            yield data
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
