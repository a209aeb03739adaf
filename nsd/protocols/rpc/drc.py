"""The duplicate request cache: a retransmitted non-idempotent call gets its first reply."""

from __future__ import annotations

import asyncio
import zlib
from collections import OrderedDict
from typing import Any

DEFAULT_DRC_ENTRIES = 4096


class DuplicateRequestCache:
    """Replies of non-idempotent calls by (host, xid, length and CRC of the whole call).

    The CRC covers procedure, credentials and arguments, so two users of one client host that
    happen to reuse an XID are never confused.

    Bounded LRU of `entries` replies. An entry is a Future while its call runs, so a
    retransmit arriving meanwhile waits for the one execution. Cost: O(1) per call.
    """

    def __init__(self, entries: int = DEFAULT_DRC_ENTRIES) -> None:
        self.entries = entries
        self._cache: OrderedDict[tuple[Any, ...], asyncio.Future[bytes]] = OrderedDict()

    @staticmethod
    def key(peer_host: str, xid: int, record: bytes | bytearray) -> tuple[Any, ...]:
        """A call's key: its host, XID and the length and CRC of its whole record."""
        return (peer_host, xid, len(record), zlib.crc32(record))

    def get(self, key: tuple[Any, ...]) -> asyncio.Future[bytes] | None:
        fut = self._cache.get(key)
        if fut is not None:
            self._cache.move_to_end(key)
        return fut

    def start(self, key: tuple[Any, ...]) -> asyncio.Future[bytes]:
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._cache[key] = fut
        while len(self._cache) > self.entries:
            _, old = self._cache.popitem(last=False)
            if not old.done():
                old.cancel()
        return fut

    def forget(self, key: tuple[Any, ...]) -> None:
        fut = self._cache.pop(key, None)
        if fut is not None and not fut.done():
            fut.cancel()

    def __len__(self) -> int:
        return len(self._cache)

    def check(self) -> None:
        """At most `entries` replies; each entry a future, running or holding its reply bytes
        (evicted and forgotten ones are cancelled and gone)."""
        assert len(self._cache) <= self.entries, f"{len(self._cache)} entries over {self.entries}"
        for key, fut in self._cache.items():
            assert isinstance(fut, asyncio.Future), key
            assert not fut.cancelled(), f"a cancelled entry is kept: {key}"
            assert not fut.done() or isinstance(fut.result(), bytes), f"entry {key} holds no reply bytes"
