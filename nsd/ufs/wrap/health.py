"""Whether a mount's store answers, and failing fast while it does not (a circuit breaker).

Wraps a mount's adapter (outside the retry wrapper, so it sees each call's final outcome).
A call that ends in UfsUnavailable marks the store unreachable, with the error as its last
error; any answer from the store (a result, or NotFound, Denied, ...) marks it connected. While
unreachable, calls fail at once with a UfsUnavailable that quotes the last error, instead of
each paying the retries and timeouts again; `probe_after` seconds after the last failure one
call is let through as a probe, and its answer decides. So a store that is down costs its
first caller the retry budget, everyone after it nothing, and a store that is back serves
again within `probe_after` seconds.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from nsd import errors
from nsd.ufs.base import Syncs, Ufs, UfsStatus
from nsd.ufs.options import mask_uri, scrub, secret_values

T = TypeVar("T")

UNUSED, CONNECTED, UNREACHABLE = "unused", "connected", "unreachable"


class HealthUfs(Ufs):
    def __init__(self, inner: Ufs, *, probe_after: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        if probe_after < 0:
            raise errors.Invalid("down_probe_s must not be negative")
        self.inner = inner
        self.uri = inner.uri
        self.options = inner.options
        self.kind = inner.kind
        self.root_must_exist = inner.root_must_exist
        self.sorted_listing = inner.sorted_listing
        self.probe_after = probe_after
        self._clock = clock
        self._hidden = secret_values(inner.options)
        self.state = UNUSED
        self.last_error: str | None = None
        self.changed_at: float | None = None  # wall-clock seconds of the last state change
        self._failed_at = 0.0
        self._probing = False
        self.fast_failures = 0  # calls refused without reaching the store

    def status(self) -> dict[str, Any]:
        """State for `mount ls`: unused (not called yet), connected or unreachable; the last error."""
        return {"state": self.state, "since": self.changed_at, "last_error": self.last_error}

    def describe(self) -> dict[str, Any]:
        return {**self.inner.describe(), **self.status()}

    def __repr__(self) -> str:
        return repr(self.inner)

    # ---- the breaker ------------------------------------------------------------------------

    def _enter(self) -> bool:
        """Raise while the store is known down; True if this call is the probe."""
        if self.state != UNREACHABLE:
            return False
        wait = self._failed_at + self.probe_after - self._clock()
        if wait <= 0 and not self._probing:
            self._probing = True
            return True
        self.fast_failures += 1
        raise errors.UfsUnavailable(
            f"under-storage {mask_uri(self.uri)} is unreachable ({self.last_error}); "
            f"failing fast, next try in {max(wait, 0.0):.1f}s"
        )

    def _answered(self) -> None:
        if self.state != CONNECTED:
            self.state, self.changed_at = CONNECTED, time.time()

    def _failed(self, e: errors.UfsUnavailable) -> None:
        self._failed_at = self._clock()
        self.last_error = scrub(e.message, self._hidden)
        if self.state != UNREACHABLE:
            self.state, self.changed_at = UNREACHABLE, time.time()

    def _settle(self, e: BaseException | None) -> None:
        if isinstance(e, errors.UfsUnavailable):
            self._failed(e)
        elif e is None or isinstance(e, errors.NsdError):
            self._answered()  # NotFound, Denied, ... are answers: the store is there

    async def _call(self, fn: Callable[[], Awaitable[T]]) -> T:
        probe = self._enter()
        try:
            result = await fn()
        except BaseException as e:
            self._settle(e)
            raise
        finally:
            if probe:
                self._probing = False
        self._settle(None)
        return result

    # ---- the interface ----------------------------------------------------------------------

    async def stat(self, path: str) -> UfsStatus:
        return await self._call(lambda: self.inner.stat(path))

    async def read(self, path: str, offset: int, length: int) -> bytes:
        return await self._call(lambda: self.inner.read(path, offset, length))

    async def write(self, path: str, chunks: AsyncIterable[bytes], *, syncs: Syncs | None = None) -> UfsStatus:
        return await self._call(lambda: self.inner.write(path, chunks, syncs=syncs))

    async def append(self, path: str, chunks: AsyncIterable[bytes], *, at: int) -> UfsStatus:
        return await self._call(lambda: self.inner.append(path, chunks, at=at))

    async def truncate(self, path: str, size: int) -> UfsStatus:
        return await self._call(lambda: self.inner.truncate(path, size))

    async def mkdir(self, path: str) -> None:
        await self._call(lambda: self.inner.mkdir(path))

    async def delete(self, path: str, *, recursive: bool = False, syncs: Syncs | None = None) -> None:
        await self._call(lambda: self.inner.delete(path, recursive=recursive, syncs=syncs))

    async def rename(self, src: str, dst: str) -> None:
        await self._call(lambda: self.inner.rename(src, dst))

    async def link(self, src: str, dst: str) -> None:
        await self._call(lambda: self.inner.link(src, dst))

    async def usage(self) -> tuple[int, int, int] | None:
        return await self._call(self.inner.usage)

    async def sweep_tmp(self, older_than: float) -> int:
        return await self._call(lambda: self.inner.sweep_tmp(older_than))

    def can_adopt(self, local: Path) -> bool:
        return self.inner.can_adopt(local)

    async def adopt(self, path: str, local: Path) -> UfsStatus | None:
        return await self._call(lambda: self.inner.adopt(path, local))

    async def close(self) -> None:
        await self.inner.close()

    async def list_pages(self, path: str) -> AsyncIterator[list[UfsStatus]]:
        probe = self._enter()
        it = aiter(self.inner.list_pages(path))
        settled = False
        try:
            while True:
                try:
                    page = await anext(it)
                except StopAsyncIteration:
                    break
                except BaseException as e:
                    settled = True
                    self._settle(e)
                    raise
                if not settled:
                    settled = True
                    self._answered()
                yield page
            if not settled:
                self._answered()
        finally:
            if probe:
                self._probing = False
            close = getattr(it, "aclose", None)
            if close is not None:
                await close()
