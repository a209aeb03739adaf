"""Retries with backoff and timeouts, as a wrapper that implements the same interface.

Only UfsUnavailable (transient) is retried; every other error (NotFound, Denied, Invalid, ...)
goes straight to the caller. Each try gets `timeout` seconds, so a store that hangs turns into
UfsUnavailable after at most attempts x timeout plus the backoff sleeps; a store that refuses
connections fails after the backoff sleeps alone. Backoff is exponential with full jitter:
try n sleeps uniform(0, min(max_delay, base_delay * 2**n)).

Streams are the hard part:
- `write`/`append` bodies are recorded while the first try reads them, up to `replay_bytes`; a
  failed try is repeated by replaying the record and then reading on from the source. A body
  larger than that is not retried (the caller gets the error). A body wrapped in `Replayable`
  (a factory of fresh streams) is always retried, and not recorded. For writes the timeout is
  an idle timeout: it restarts whenever the adapter takes the next chunk, so a long upload that
  makes progress is never cut.
- `list` is retried until its first entry arrives; after that a failure ends the listing with
  the error (restarting would repeat entries), and each page has its own timeout.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from nsd import errors
from nsd.ufs.base import Syncs, Ufs, UfsStatus

T = TypeVar("T")


async def _within(timeout: float, aw: Awaitable[T]) -> T:
    """`await aw`, or TimeoutError after `timeout` seconds. In a task through asyncio.timeout
    (wait_for wraps each call in a task of its own: ~15 us of the loop's CPU); outside any task
    (the NFS driver steps some calls inline until they first wait) through wait_for, which
    needs none."""
    if asyncio.current_task() is None:
        return await asyncio.wait_for(aw, timeout)
    async with asyncio.timeout(timeout):
        return await aw


class Replayable:
    """A write body that can be read again from the start: `factory()` makes a fresh stream."""

    def __init__(self, factory: Callable[[], AsyncIterator[bytes]]) -> None:
        self.factory = factory

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self.factory()


class _Recorder:
    """Reads a one-shot body once, keeping what it read (up to `limit` bytes) so that each
    `stream()` starts over from the beginning. `progress` ticks on every chunk taken."""

    def __init__(self, source: AsyncIterable[bytes], limit: int) -> None:
        self.source = aiter(source)
        self.kept: list[bytes] = []
        self.kept_bytes = 0
        self.limit = limit
        self.overflowed = False
        self.broken: BaseException | None = None  # the source itself failed: nothing to replay
        self.progress = _Progress()

    @property
    def replayable(self) -> bool:
        return not self.overflowed and self.broken is None

    async def stream(self) -> AsyncIterator[bytes]:
        for chunk in list(self.kept):
            self.progress.tick()
            yield chunk
        if self.broken is not None:
            raise self.broken
        try:
            async for chunk in self._source():
                yield chunk
        except BaseException as e:
            if not isinstance(e, GeneratorExit):
                self.broken = e
            raise

    async def _source(self) -> AsyncIterator[bytes]:
        async for chunk in self.source:
            if not self.overflowed:
                self.kept_bytes += len(chunk)
                if self.kept_bytes > self.limit:
                    self.overflowed, self.kept = True, []
                else:
                    self.kept.append(chunk)
            self.progress.tick()
            yield chunk


class RetryingUfs(Ufs):
    def __init__(
        self,
        inner: Ufs,
        *,
        attempts: int = 3,
        base_delay: float = 0.1,
        max_delay: float = 2.0,
        timeout: float = 30.0,
        replay_bytes: int = 8 << 20,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if attempts < 1 or timeout <= 0:
            raise errors.Invalid("retries must be at least 1 and timeout_s positive")
        self.inner = inner
        self.uri = inner.uri
        self.options = inner.options
        self.kind = inner.kind
        self.root_must_exist = inner.root_must_exist
        self.sorted_listing = inner.sorted_listing
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.timeout = timeout
        self.replay_bytes = replay_bytes
        self._sleep = sleep
        self.retries = 0  # tries repeated, for tests and metrics

    def describe(self) -> dict[str, Any]:
        out = self.inner.describe()
        out["retry"] = {"attempts": self.attempts, "timeout_s": self.timeout}
        return out

    def __repr__(self) -> str:
        return f"<RetryingUfs {self.inner!r}>"

    async def _backoff(self, attempt: int) -> None:
        self.retries += 1
        await self._sleep(random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt)))

    def _timed_out(self, what: str, path: str) -> errors.UfsUnavailable:
        return errors.UfsUnavailable(
            f"under-storage {self.inner!r} did not answer {what} within {self.timeout:g}s: {path or '/'}", path=path
        )

    async def _call(self, what: str, path: str, fn: Callable[[], Awaitable[T]]) -> T:
        for attempt in range(self.attempts):
            try:
                try:
                    return await _within(self.timeout, fn())
                except TimeoutError:
                    raise self._timed_out(what, path) from None
            except errors.UfsUnavailable:
                if attempt + 1 >= self.attempts:
                    raise
            await self._backoff(attempt)
        raise AssertionError("unreachable")

    async def stat(self, path: str) -> UfsStatus:
        return await self._call("stat", path, lambda: self.inner.stat(path))

    async def read(self, path: str, offset: int, length: int) -> bytes:
        return await self._call("read", path, lambda: self.inner.read(path, offset, length))

    async def mkdir(self, path: str) -> None:
        await self._call("mkdir", path, lambda: self.inner.mkdir(path))

    async def delete(self, path: str, *, recursive: bool = False, syncs: Syncs | None = None) -> None:
        tried = False

        async def once() -> None:
            nonlocal tried
            try:
                await self.inner.delete(path, recursive=recursive, syncs=syncs)
            except errors.NotFound:
                if not tried:
                    raise
                # An earlier try may have deleted it before its answer was lost: done.
            finally:
                tried = True

        await self._call("delete", path, once)

    async def rename(self, src: str, dst: str) -> None:
        tried = False

        async def once() -> None:
            nonlocal tried
            try:
                await self.inner.rename(src, dst)
            except errors.NotFound:
                if not tried:
                    raise
                # An earlier try may have moved it before its answer was lost: done if dst is there.
                await self.inner.stat(dst)
            finally:
                tried = True

        await self._call("rename", src, once)

    async def link(self, src: str, dst: str) -> None:
        await self._call("link", dst, lambda: self.inner.link(src, dst))

    async def truncate(self, path: str, size: int) -> UfsStatus:
        return await self._call("truncate", path, lambda: self.inner.truncate(path, size))

    def can_adopt(self, local: Path) -> bool:
        return self.inner.can_adopt(local)

    async def adopt(self, path: str, local: Path) -> UfsStatus | None:
        # Neither retried nor timed out: a move cut off half way (renamed, directory not yet
        # synced) is not safely repeated, and a timeout would leave the move running behind us.
        return await self.inner.adopt(path, local)

    async def close(self) -> None:
        await self.inner.close()

    async def sweep_tmp(self, older_than: float) -> int:
        # A whole-tree walk: no per-call timeout (it would cut a long sweep); the next sweep retries.
        return await self.inner.sweep_tmp(older_than)

    async def usage(self) -> tuple[int, int, int] | None:
        return await self._call("usage", "", self.inner.usage)

    async def list_pages(self, path: str) -> AsyncIterator[list[UfsStatus]]:
        """Retried until its first page; a page that does not come within the timeout ends it."""
        for attempt in range(self.attempts):
            it = aiter(self.inner.list_pages(path))
            try:
                first = await self._next(it, path)
            except errors.UfsUnavailable:
                await _aclose(it)
                if attempt + 1 >= self.attempts:
                    raise
                await self._backoff(attempt)
                continue
            except BaseException:
                await _aclose(it)
                raise
            break
        try:
            while first is not None:
                yield first
                first = await self._next(it, path)
        finally:
            await _aclose(it)

    async def _next(self, it: AsyncIterator[list[UfsStatus]], path: str) -> list[UfsStatus] | None:
        try:
            return await _within(self.timeout, anext(it))
        except StopAsyncIteration:
            return None
        except TimeoutError:
            raise self._timed_out("list", path) from None

    async def write(self, path: str, chunks: AsyncIterable[bytes], *, syncs: Syncs | None = None) -> UfsStatus:
        return await self._write("write", path, chunks, lambda body: self.inner.write(path, body, syncs=syncs))

    async def append(self, path: str, chunks: AsyncIterable[bytes], *, at: int) -> UfsStatus:
        # Safe to repeat: an append at `at` first drops whatever an interrupted try left.
        return await self._write("append", path, chunks, lambda body: self.inner.append(path, body, at=at))

    async def _write(
        self,
        what: str,
        path: str,
        chunks: AsyncIterable[bytes],
        fn: Callable[[AsyncIterable[bytes]], Awaitable[UfsStatus]],
    ) -> UfsStatus:
        recorder = None if isinstance(chunks, Replayable) else _Recorder(chunks, self.replay_bytes)
        for attempt in range(self.attempts):
            progress = _Progress()
            body: AsyncIterable[bytes]
            if recorder is None:
                body = _signalling(aiter(chunks), progress)
            else:
                recorder.progress = progress
                body = recorder.stream()
            try:
                return await self._idle_timeout(what, path, fn(body), progress)
            except errors.UfsUnavailable:
                if attempt + 1 >= self.attempts or (recorder is not None and not recorder.replayable):
                    raise
            await self._backoff(attempt)
        raise AssertionError("unreachable")

    async def _idle_timeout(self, what: str, path: str, call: Awaitable[T], progress: _Progress) -> T:
        """Await `call`, failing it after `timeout` seconds without progress. One timer, re-armed
        from the last progress when it fires (this is on every write: no task per wait)."""
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(call)  # cancellable even when no task runs this one
        timers: list[asyncio.TimerHandle] = []  # the armed one last
        expired = False

        def check() -> None:
            nonlocal expired
            idle = time.monotonic() - progress.at
            if idle < self.timeout:
                timers.append(loop.call_later(self.timeout - idle, check))
            else:
                expired = True
                task.cancel()

        timers.append(loop.call_later(self.timeout, check))
        try:
            return await task
        except asyncio.CancelledError:
            if expired:
                raise self._timed_out(what, path) from None
            raise
        finally:
            timers[-1].cancel()
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)


class _Progress:
    """When a write's body last handed over a chunk (time.monotonic)."""

    __slots__ = ("at",)

    def __init__(self) -> None:
        self.at = time.monotonic()

    def tick(self) -> None:
        self.at = time.monotonic()


async def _signalling(it: AsyncIterator[bytes], progress: _Progress) -> AsyncIterator[bytes]:
    async for chunk in it:
        progress.tick()
        yield chunk


async def _aclose(it: AsyncIterator[Any]) -> None:
    close = getattr(it, "aclose", None)
    if close is not None:
        await close()
