"""Locks by key: a directory entry (`entry(dir, name)`) or a file's content (`content(ino)`).

Mutations of the same entry, or of the same file's content, hold its lock across the UFS change
and the journal append, so the UFS and the namespace change in the same order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable, Sequence
from types import TracebackType


class KeyLocks:
    """asyncio locks by key, created on demand and dropped when nobody holds or waits."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, tuple[asyncio.Lock, int]] = {}

    def hold(self, *keys: Hashable) -> Held:
        """`async with locks.hold(k1, k2): ...` holds every key's lock for the block."""
        # one global order for several keys: no deadlock between two callers
        return Held(self._locks, keys if len(keys) == 1 else sorted(set(keys), key=repr))

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


class Held:
    """One `hold` (a class, not a generator: three a CREATE+REMOVE pair, on the hot path)."""

    __slots__ = ("_acquired", "_keys", "_locks")

    def __init__(self, locks: dict[Hashable, tuple[asyncio.Lock, int]], keys: Sequence[Hashable]) -> None:
        self._locks = locks
        self._keys = keys
        self._acquired: list[asyncio.Lock] = []

    async def __aenter__(self) -> None:
        locks = self._locks
        for k in self._keys:  # counted first: a lock somebody waits for is never dropped
            held = locks.get(k)
            locks[k] = (asyncio.Lock(), 1) if held is None else (held[0], held[1] + 1)
        try:
            for k in self._keys:
                lock = locks[k][0]
                await lock.acquire()
                self._acquired.append(lock)
        except BaseException:
            self._release()
            raise

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._release()

    def _release(self) -> None:
        for lock in self._acquired:
            lock.release()
        self._acquired = []
        locks = self._locks
        for k in self._keys:
            lock, users = locks[k]
            if users == 1:
                del locks[k]
            else:
                locks[k] = (lock, users - 1)
