"""Mutable stages for files being written at arbitrary offsets (NFS WRITE, WebHDFS APPEND).

Blocks and under-storage objects are written whole, but NFS writes arrive at any offset,
unstable, with no close. A file being written therefore gets a stage, sealed (uploaded and/or
stored as blocks, and journaled) at a defined moment by the vfs. Until then the data is
unstable: a crash may lose it, and start-up deletes leftover stages (NFS clients learn it from
the changed write verifier and resend).

A stage is sparse: the file `<data-dir>/staging/{ino:016x}` holds only the bytes written since
it opened, at their own offsets, and `written` lists those ranges. Every other byte is the
file's content as it was when the stage opened (its *base*, read on demand through `base`:
the cache or the UFS) below `base_size`, and zero above it; truncation lowers `base_size`.
So opening a stage costs nothing whatever the file's size, and a 4 KiB write into a 10 GiB
file stages 4 KiB. The base must not change while the stage is open: the vfs holds the file's
content lock for every content change, and re-checks against the UFS skip staged files.

An UNSTABLE NFS WRITE may be left to finish behind its reply (`write(..., behind=True)`): one
such write per stage, which every later call waits for; a failure is raised by the next change
or seal, once. See docs/architecture.md, Writes.

Sealing streams the merged content (`chunks`), or hands the stage file itself to the UFS
(`upload`): a store that can take a local file as it is (`Ufs.adopt`: a local directory on
the same file system) gets the stage, completed with the unwritten base ranges and fsynced, by
rename: what was written is never copied again.
"""

from __future__ import annotations

import asyncio
import bisect
import os
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from nsd import errors
from nsd.threads import Workers
from nsd.ufs import Ufs, UfsStatus
from nsd.ufs.adapters.local import classify

CHUNK = 1 << 20
FILL_CHUNK = 4 << 20
WORKERS = 4  # threads for the stage files' reads and writes, shared by all stages
BEHIND_MAX_BYTES = 64 << 20  # bytes of all stages' writes behind, held in memory until written
BEHIND_MIN_FREE_BYTES = 256 << 20  # free space below which writes are not left behind
T = TypeVar("T")
Base = Callable[[int, int], Awaitable[bytes | memoryview]]  # (offset, length) in [0, base_size) -> bytes


class Extents:
    """Sorted, disjoint, non-adjacent [start, end) ranges. Cost: O(log n) to find, O(n) to insert."""

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []

    def __len__(self) -> int:
        return len(self.starts)

    def add(self, start: int, end: int) -> None:
        if end <= start:
            return
        # ranges that touch or overlap [start, end) merge with it
        i = bisect.bisect_left(self.ends, start)
        j = bisect.bisect_right(self.starts, end)
        if i < j:
            start = min(start, self.starts[i])
            end = max(end, self.ends[j - 1])
        self.starts[i:j] = [start]
        self.ends[i:j] = [end]

    def clip(self, size: int) -> None:
        """Forget everything at or after `size`."""
        j = bisect.bisect_left(self.starts, size)
        del self.starts[j:], self.ends[j:]
        if self.ends and self.ends[-1] > size:
            self.ends[-1] = size

    def pieces(self, start: int, end: int) -> list[tuple[int, int, bool]]:
        """[start, end) cut into (start, end, covered) pieces, in order."""
        out: list[tuple[int, int, bool]] = []
        i = bisect.bisect_right(self.ends, start)
        pos = start
        while pos < end:
            if i < len(self.starts) and self.starts[i] <= pos:
                stop = min(end, self.ends[i])
                out.append((pos, stop, True))
                i += 1
            else:
                stop = min(end, self.starts[i]) if i < len(self.starts) else end
                out.append((pos, stop, False))
            pos = stop
        return out

    def covers(self, start: int, end: int) -> bool:
        return end <= start or all(covered for _, _, covered in self.pieces(start, end))

    def check(self) -> None:
        """Assert the ranges are non-empty, sorted, disjoint and not touching. Cost: O(n)."""
        if len(self.starts) != len(self.ends):
            raise AssertionError(f"extents: {len(self.starts)} starts but {len(self.ends)} ends")
        prev_end = -1
        for start, end in zip(self.starts, self.ends, strict=True):
            if not prev_end < start < end:
                raise AssertionError(f"extents: [{start}, {end}) is empty, or overlaps or touches the one before")
            prev_end = end


class StageIo:
    """What all stages share: their worker threads and the budget of writes behind."""

    def __init__(self, directory: Path) -> None:
        self.workers = Workers("nsd-stage", WORKERS)
        self.directory = str(directory)
        self.bytes_behind = 0

    def may_write_behind(self, length: int) -> bool:
        """Within the memory budget, and on a disk with room to spare: a full disk fails the
        write that meets it, not a later call."""
        if self.bytes_behind + length > BEHIND_MAX_BYTES:
            return False
        st = os.statvfs(self.directory)
        return st.f_bavail * st.f_frsize >= length + BEHIND_MIN_FREE_BYTES


class Stage:
    """The stage of one inode. `size` is the file's size including staged writes."""

    def __init__(self, ino: int, path: Path, fd: int, base: Base | None, base_size: int, shared: StageIo) -> None:
        self.ino = ino
        self.path = path
        self.fd = fd
        self.base = base
        self.base_size = base_size if base is not None else 0
        self.size = base_size
        self.written = Extents()
        self.last_write = time.monotonic()
        # Lowest offset changed since the stage opened: bytes below it are the base's, so
        # blocks there need not be sealed again.
        self.dirty_from = base_size
        self.handed_over = False  # the file now belongs to the UFS (adopted)
        self._shared = shared
        self._lock = threading.Lock()
        self._users = 0  # worker-thread calls using the fd: it is closed only once they are done
        self._closed = False
        # The write still going into the stage file after its caller was answered (`write`'s
        # `behind`), and what such a write failed with, until the next change or seal raises it.
        self._behind: asyncio.Future[None] | None = None
        self.failed: errors.NsdError | None = None

    def _submit(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        with self._lock:
            if self._closed:
                raise errors.Stale(f"the stage of inode {self.ino} is gone")
            self._users += 1
        return self._shared.workers.run(self._using_fd, fn, *args)

    async def _io(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return await self._submit(fn, *args)
        except OSError as e:
            raise classify(e, str(self.path)) from None

    async def settled(self, *, report: bool = True) -> None:
        """Wait for the write behind (not cancelling it if this wait is). `report`: raise what a
        write behind failed with, once (as a file system reports a failed write-back once)."""
        if self._behind is not None:
            await asyncio.wait([self._behind])
        if report and self.failed is not None:
            failed, self.failed = self.failed, None
            raise failed

    def _using_fd(self, fn: Callable[..., T], *args: Any) -> T:
        # In the worker thread: the fd stays open until this returns, even if the awaiting
        # call was cancelled meanwhile (a closed and reused fd number would be another file).
        try:
            return fn(*args)
        finally:
            with self._lock:
                self._users -= 1
                last = self._closed and not self._users
            if last:
                os.close(self.fd)

    def close(self) -> None:
        """Close the fd now, or when the last call using it returns."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            now = not self._users
        if now:
            os.close(self.fd)

    def check(self) -> None:
        """Assert the invariants; AssertionError says which. Written ranges lie inside the size,
        the base inside the size, and the stage file, while open, is no longer than the size and
        holds every written byte. Cost: O(written ranges) and one fstat."""
        self.written.check()
        if not 0 <= self.base_size <= self.size or not 0 <= self.dirty_from <= self.size:
            raise AssertionError(
                f"stage {self.ino}: base {self.base_size} or dirty_from {self.dirty_from} not in [0, {self.size}]"
            )
        if self.written.ends and self.written.ends[-1] > self.size:
            raise AssertionError(f"stage {self.ino}: written up to {self.written.ends[-1]}, size {self.size}")
        if self._users < 0:
            raise AssertionError(f"stage {self.ino}: {self._users} calls using the fd")
        if not self._closed and not self.handed_over:
            length = os.fstat(self.fd).st_size
            if length > self.size or (self.written.ends and length < self.written.ends[-1]):
                raise AssertionError(f"stage {self.ino}: file of {length} bytes, size {self.size}")

    async def write(self, offset: int, data: bytes | memoryview, *, behind: bool = False) -> None:
        """Write `data` at `offset`. Returns once the bytes are in the stage file, or with
        `behind`, where the shared budget allows, once the write before it is done and this one
        has started: the size and every later call count it (reads wait for it), a failure is
        raised by the next change or seal, and `data` must not change until it is written."""
        await self.settled()
        self._check_open()
        if behind and self._shared.may_write_behind(len(data)):
            self._write_behind(offset, data)
            return
        await self._io(_pwrite_all, self.fd, data, offset)
        self._wrote(offset, len(data))

    def _write_behind(self, offset: int, data: bytes | memoryview) -> None:
        shared, length = self._shared, len(data)
        future = self._submit(_pwrite_all, self.fd, data, offset)
        self._behind = future
        shared.bytes_behind += length
        self.size = max(self.size, offset + length)  # what the caller's reply says
        self.dirty_from = min(self.dirty_from, offset)
        self.last_write = time.monotonic()

        def done(f: asyncio.Future[None]) -> None:
            shared.bytes_behind -= length
            if self._behind is f:
                self._behind = None
            error = None if f.cancelled() else f.exception()
            if error is None:
                self._wrote(offset, length)
            elif isinstance(error, OSError):
                self.failed = classify(error, str(self.path))
            else:
                self.failed = errors.NsdError(f"writing the stage of inode {self.ino}: {error}")

        future.add_done_callback(done)

    def _check_open(self) -> None:
        if self.handed_over:  # the fd is the UFS object's now: never write through it
            raise errors.Stale(f"the stage of inode {self.ino} was sealed")

    def _wrote(self, offset: int, length: int) -> None:
        end = offset + length
        self.written.add(offset, end)
        self.size = max(self.size, end)
        self.dirty_from = min(self.dirty_from, offset)
        self.last_write = time.monotonic()

    async def read(self, offset: int, count: int) -> bytes | memoryview:
        """The content in [offset, offset + count), clipped to the size: written bytes, else the
        base, else zeros."""
        await self.settled(report=False)
        end = min(offset + count, self.size)
        if end <= offset:
            return b""
        pieces = self.written.pieces(offset, end)
        if len(pieces) == 1 and pieces[0][2]:
            return await self._io(os.pread, self.fd, end - offset, offset)
        parts = [await self._piece(start, stop, covered) for start, stop, covered in pieces]
        return b"".join(parts)

    async def _piece(self, start: int, stop: int, covered: bool) -> bytes | memoryview:
        if covered:
            return await self._io(os.pread, self.fd, stop - start, start)
        from_base = max(0, min(stop, self.base_size) - start)
        if not from_base:
            return bytes(stop - start)
        assert self.base is not None
        data = await self.base(start, from_base)
        if len(data) != from_base:
            raise errors.Corrupt(f"inode {self.ino}: the content under the stage is shorter than recorded")
        return data if from_base == stop - start else b"".join((data, bytes(stop - start - from_base)))

    async def truncate(self, size: int) -> None:
        await self.settled()
        self._check_open()
        await self._io(os.ftruncate, self.fd, size)
        self.written.clip(size)
        self.base_size = min(self.base_size, size)
        self.dirty_from = min(self.dirty_from, size, self.size)
        self.size = size
        self.last_write = time.monotonic()

    async def sync(self) -> None:
        await self.settled()
        await self._io(os.fdatasync, self.fd)

    async def chunks(self, start: int = 0, size: int = CHUNK) -> AsyncIterator[bytes]:
        """The staged content from `start` to the end, streamed in pieces of `size` bytes (the
        last may be shorter)."""
        await self.settled()
        pos = start
        while pos < self.size:
            chunk = await self.read(pos, size)
            if not chunk:
                return
            pos += len(chunk)
            yield bytes(chunk)  # no copy when it is bytes already

    async def fill(self) -> None:
        """Copy the base's bytes that were not overwritten into the stage file, which then holds
        the whole content by itself (never-written ranges above the base are holes: zeros)."""
        await self.settled()
        for start, stop, covered in self.written.pieces(0, self.base_size):
            pos = start
            while not covered and pos < stop:
                n = min(FILL_CHUNK, stop - pos)
                data = await self._piece(pos, pos + n, False)
                await self._io(_pwrite_all, self.fd, data, pos)
                self.written.add(pos, pos + n)
                pos += n
        self.base_size = 0
        await self._io(os.ftruncate, self.fd, self.size)  # the length, even past the last write

    async def upload(self, ufs: Ufs, rel: str) -> UfsStatus:
        """Make the UFS object `rel` hold the staged content, durably: by handing the stage file
        over when the UFS can adopt it (then the stage is spent), else by streaming it."""
        if ufs.can_adopt(self.path):
            await self.fill()
            await self._io(os.fsync, self.fd)
            try:
                status = await ufs.adopt(rel, self.path)
            except BaseException:
                self.handed_over = not self.path.exists()  # moved, then failed: spent all the same
                raise
            if status is not None:
                self.handed_over = True
                return status
        return await ufs.write(rel, self.chunks())


def _pwrite_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n


class Stager:
    """All open stages, by inode id. Leftovers of an earlier life are deleted on start."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        for leftover in directory.iterdir():
            leftover.unlink()
        self.stages: dict[int, Stage] = {}
        self.io = StageIo(directory)

    def get(self, ino: int) -> Stage | None:
        return self.stages.get(ino)

    def open(self, ino: int, base: Base | None, base_size: int) -> Stage:
        """A new, empty stage for `ino` over its current content (`base`, `base_size` bytes)."""
        if ino in self.stages:
            raise AssertionError(f"inode {ino} is already staged")
        path = self.directory / f"{ino:016x}"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        except OSError as e:
            raise classify(e, str(path)) from None
        stage = self.stages[ino] = Stage(ino, path, fd, base, base_size, self.io)
        return stage

    def drop(self, ino: int) -> None:
        stage = self.stages.pop(ino, None)
        if stage is not None:
            stage.close()
            if not stage.handed_over:
                stage.path.unlink(missing_ok=True)

    def check(self) -> None:
        """Assert each stage is filed under its inode and sound, and the directory holds exactly
        the files of the stages not handed over (none leaked). Cost: O(stages) and a listing."""
        for ino, stage in self.stages.items():
            if stage.ino != ino or stage.path != self.directory / f"{ino:016x}":
                raise AssertionError(f"stage of inode {stage.ino} at {stage.path} is filed under {ino}")
            stage.check()
        files = {p.name for p in self.directory.iterdir()}
        staged = {s.path.name for s in self.stages.values() if not s.handed_over}
        if files != staged:
            raise AssertionError(f"staging directory holds {sorted(files)}, stages {sorted(staged)}")

    def idle(self, seconds: float) -> list[int]:
        """Stages unchanged for `seconds`, but for those whose write behind failed: that is for
        the file's writer to learn, at its next change or commit."""
        now = time.monotonic()
        return [ino for ino, s in self.stages.items() if now - s.last_write >= seconds and s.failed is None]
