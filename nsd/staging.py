"""Mutable stages for files being written at arbitrary offsets (NFS WRITE, WebHDFS APPEND).

Blocks and under-storage objects are written whole, but NFS writes arrive at any offset,
unstable, with no close. A file being written therefore gets a stage: a plain file
`<data-dir>/staging/{ino:016x}` holding the file's whole current content plus the writes,
sealed (uploaded and journaled) at a defined moment by the vfs. Until then the data is
unstable: a crash may lose it, and start-up deletes leftover stages (NFS clients learn it
from the changed write verifier and resend).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

from nsd.ufs.local import classify

CHUNK = 1 << 20
T = TypeVar("T")


class Stage:
    """The stage of one inode. `size` is the file's size including staged writes."""

    def __init__(self, ino: int, path: Path, fd: int, size: int) -> None:
        self.ino = ino
        self.path = path
        self.fd = fd
        self.size = size
        self.last_write = time.monotonic()
        # Lowest offset changed since the stage was filled: bytes below it are as they were,
        # so blocks there need not be sealed again.
        self.dirty_from = size

    async def _io(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return await asyncio.to_thread(fn, *args)
        except OSError as e:
            raise classify(e, str(self.path)) from None

    async def write(self, offset: int, data: bytes | memoryview) -> None:
        view = memoryview(data)
        pos = offset
        while view:
            n = await self._io(os.pwrite, self.fd, view, pos)
            view, pos = view[n:], pos + n
        self.size = max(self.size, offset + len(data))
        self.dirty_from = min(self.dirty_from, offset)
        self.last_write = time.monotonic()

    async def read(self, offset: int, count: int) -> bytes:
        count = max(0, min(count, self.size - offset))
        return await self._io(os.pread, self.fd, count, offset) if count else b""

    async def truncate(self, size: int) -> None:
        await self._io(os.ftruncate, self.fd, size)
        self.dirty_from = min(self.dirty_from, size, self.size)
        self.size = size
        self.last_write = time.monotonic()

    async def sync(self) -> None:
        await self._io(os.fdatasync, self.fd)

    async def chunks(self, start: int = 0) -> AsyncIterator[bytes]:
        """The staged content from `start` to the end, streamed."""
        pos = start
        while pos < self.size:
            chunk = await self.read(pos, CHUNK)
            if not chunk:
                return
            pos += len(chunk)
            yield chunk


class Stager:
    """All open stages, by inode id. Leftovers of an earlier life are deleted on start."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        for leftover in directory.iterdir():
            leftover.unlink()
        self.stages: dict[int, Stage] = {}

    def get(self, ino: int) -> Stage | None:
        return self.stages.get(ino)

    async def open(self, ino: int, base: AsyncIterable[bytes] | None) -> Stage:
        """A new stage for `ino`, holding `base` (the current content) to start with."""
        if ino in self.stages:
            raise AssertionError(f"inode {ino} is already staged")
        path = self.directory / f"{ino:016x}"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        except OSError as e:
            raise classify(e, str(path)) from None
        stage = Stage(ino, path, fd, 0)
        try:
            if base is not None:
                async for chunk in base:
                    await stage.write(stage.size, chunk)
            stage.dirty_from = stage.size
        except BaseException:
            self._discard(stage)
            raise
        self.stages[ino] = stage
        return stage

    def drop(self, ino: int) -> None:
        stage = self.stages.pop(ino, None)
        if stage is not None:
            self._discard(stage)

    def idle(self, seconds: float) -> list[int]:
        now = time.monotonic()
        return [ino for ino, s in self.stages.items() if now - s.last_write >= seconds]

    @staticmethod
    def _discard(stage: Stage) -> None:
        os.close(stage.fd)
        stage.path.unlink(missing_ok=True)
