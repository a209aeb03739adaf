"""The one small async interface every under-storage adapter implements.

Paths are relative to the adapter's root, "/"-separated, "" for the root itself. Adapters
classify their failures into the core error tree: NotFound, Exists, Denied, NotDir, IsDir,
NotEmpty, UfsUnavailable (transient: worth a retry) and NsdError (permanent).
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any

from nsd.errors import Corrupt, NotSupported
from nsd.ufs.options import mask_options, mask_uri

TMP_PREFIX = ".nsd-tmp."  # names of objects being written; never listed as entries
SYSTEM_DIR = ".nsd-system"  # at the top of an under-storage: nsd's own files (cluster checkpoints), never shown


@dataclass(slots=True)
class UfsStatus:
    """What a store says of one object. Treated as a value, never changed once made; not frozen,
    as a frozen dataclass is made field by field through object.__setattr__ (0.67 against
    0.16 us), and listings make one per entry."""

    name: str
    is_dir: bool
    size: int
    mtime_ns: int
    etag: str | None = None
    mode: int | None = None

    def fingerprint(self) -> list[object]:
        """What must match for cached data or metadata to still be valid."""
        return [self.size, self.mtime_ns, self.etag]


class Syncs:
    """The syncs under-storage changes still owe, for a caller that overlaps them with its own
    durable step (a journal commit) instead of waiting for one and then the other.

    An adapter handed one by `write` or `delete` may return once its change is made but not yet
    durable, leaving the wait here; the end of the `async with` block waits for every one and
    raises the first failure (unless the block itself raised), so nothing is acknowledged before
    the change is durable. Adapters that are durable on return ignore it.
    """

    __slots__ = ("_waits",)

    def __init__(self) -> None:
        self._waits: list[tuple[asyncio.Future[None], Callable[[Exception], Exception]]] = []

    def add(self, wait: asyncio.Future[None], error: Callable[[Exception], Exception] = lambda e: e) -> None:
        """`wait` is done once the change is durable; `error` turns its failure into the one to raise.
        It is awaited shielded, as changes may share one sync."""
        self._waits.append((wait, error))

    async def __aenter__(self) -> Syncs:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        failed: Exception | None = None
        waits, self._waits = self._waits, []
        for wait, error in waits:
            try:
                await asyncio.shield(wait)
            except Exception as why:
                failed = failed or error(why)
        if failed is not None and kind is None:
            raise failed


class Ufs(ABC):
    uri: str
    options: Mapping[str, str] = MappingProxyType({})
    kind = "ufs"
    root_must_exist = False  # a mount of a missing root is refused (a directory) or made (a prefix)
    # list() yields entries in name order (Python str order, i.e. UTF-8 byte order), so the
    # part of a listing seen so far is final below its last name and can be served while it runs.
    sorted_listing = False

    def describe(self) -> dict[str, Any]:
        """What `mount ls` and logs may show: kind, URI and options, secrets masked."""
        return {"kind": self.kind, "uri": mask_uri(self.uri), "options": mask_options(self.options)}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {mask_uri(self.uri)}>"

    @abstractmethod
    async def stat(self, path: str) -> UfsStatus: ...

    @abstractmethod
    def list_pages(self, path: str) -> AsyncIterator[list[UfsStatus]]:
        """Entries of a directory, a page at a time as the store gives them (each page non-empty,
        at most a few thousand entries), streamed in bounded memory. Wrappers time out and retry
        per page, not per entry: a listing of 100k entries is 100 steps, not 100k."""

    async def list(self, path: str) -> AsyncIterator[UfsStatus]:
        """Entries of a directory one by one (`list_pages`, flattened)."""
        async for page in self.list_pages(path):
            for entry in page:
                yield entry

    @abstractmethod
    async def read(self, path: str, offset: int, length: int) -> bytes:
        """Up to `length` bytes from `offset`; fewer only at the end of the file."""

    @abstractmethod
    async def write(self, path: str, chunks: AsyncIterable[bytes], *, syncs: Syncs | None = None) -> UfsStatus:
        """Replace the file at `path` with the streamed bytes, all or nothing; durable on return,
        or once `syncs` ends when one is given."""

    @abstractmethod
    async def mkdir(self, path: str) -> None:
        """Create a directory (and missing parents); an existing directory is fine."""

    @abstractmethod
    async def delete(self, path: str, *, recursive: bool = False, syncs: Syncs | None = None) -> None:
        """Durable on return, or once `syncs` ends when one is given."""

    @abstractmethod
    async def rename(self, src: str, dst: str) -> None:
        """Move src to dst, replacing a file (or empty directory) at dst."""

    async def link(self, src: str, dst: str) -> None:
        raise NotSupported(f"{self.uri} has no hard links")

    def can_adopt(self, local: Path) -> bool:
        """Whether `adopt` may take the local file `local` (cheap; it may still decline)."""
        return False

    async def adopt(self, path: str, local: Path) -> UfsStatus | None:
        """Make the complete, fsynced local file `local` the object at `path` by moving it, not
        copying (all or nothing, durable on return, as `write`). None when the store cannot:
        then `local` is left as it was."""
        return None

    async def close(self) -> None:  # noqa: B027 - optional hook
        pass

    async def sweep_tmp(self, older_than: float) -> int:
        """Delete leftover temporary objects (TMP_PREFIX names, left by a write that died between
        upload and move) last changed over `older_than` seconds ago, anywhere below the root,
        never one this adapter is still writing. Returns how many went. Cost: a walk of the
        whole tree (one recursive listing on object stores), so callers run it in the background.
        """
        raise NotSupported(f"{self.kind} under-storage cannot sweep temporary objects")

    async def usage(self) -> tuple[int, int, int] | None:
        """(capacity, used, free) bytes where the store has a notion of them; None for object stores."""
        return None

    async def append(self, path: str, chunks: AsyncIterable[bytes], *, at: int) -> UfsStatus:
        """Write the streamed bytes from offset `at` (the size nsd knows), durably, dropping
        anything past `at` that an interrupted earlier append left. Generic form: rewrite."""

        async def whole() -> AsyncIterator[bytes]:
            pos = 0
            while pos < at:
                chunk = await self.read(path, pos, min(1 << 20, at - pos))
                if not chunk:
                    raise Corrupt(f"under-storage object is shorter than {at} bytes: {path}", path=path)
                pos += len(chunk)
                yield chunk
            async for chunk in chunks:
                yield chunk

        return await self.write(path, whole())

    async def truncate(self, path: str, size: int) -> UfsStatus:
        """Cut or zero-extend a file to `size` bytes. Generic form: rewrite the kept prefix."""
        current = await self.stat(path)

        async def prefix() -> AsyncIterator[bytes]:
            pos, keep = 0, min(size, current.size)
            while pos < keep:
                chunk = await self.read(path, pos, min(1 << 20, keep - pos))
                pos += len(chunk)
                yield chunk
            if size > keep:
                yield bytes(size - keep)

        return await self.write(path, prefix())
