"""Locks by key: a directory entry (`entry(dir, name)`) or a file's content (`content(ino)`).

Mutations of the same entry, or of the same file's content, hold its lock across the UFS change
and the journal append, so the UFS and the namespace change in the same order.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager


class KeyLocks:
    """asyncio locks by key, created on demand and dropped when nobody holds or waits."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, *keys: Hashable) -> AsyncIterator[None]:
        ordered = sorted(set(keys), key=repr)  # one global order: no deadlock between two callers
        for k in ordered:
            lock, users = self._locks.get(k, (asyncio.Lock(), 0))
            self._locks[k] = (lock, users + 1)
        acquired: list[asyncio.Lock] = []
        try:
            for k in ordered:
                lock = self._locks[k][0]
                await lock.acquire()
                acquired.append(lock)
            yield
        finally:
            for lock in acquired:
                lock.release()
            for k in ordered:
                lock, users = self._locks[k]
                if users == 1:
                    del self._locks[k]
                else:
                    self._locks[k] = (lock, users - 1)

    def __len__(self) -> int:
        """How many keys have a lock now (held or waited for)."""
        return len(self._locks)

    def check(self) -> None:
        """Every kept lock has at least one holder or waiter: a lock nobody uses is dropped, so
        the table never grows with keys that were used once."""
        for key, (lock, users) in self._locks.items():
            assert isinstance(lock, asyncio.Lock), f"{key!r} maps to {lock!r}"
            assert users >= 1, f"lock {key!r} kept with {users} users"


def entry(dir_ino: int, name: str) -> tuple[str, int, str]:
    return ("entry", dir_ino, name)


def content(ino: int) -> tuple[str, int]:
    return ("content", ino)
