"""The duplicate request cache: a retransmitted non-idempotent call gets the first reply.

A call retransmitted with the same XID, from the same host, with the same bytes (credentials
and arguments), gets the first execution's reply (waiting for it if the first is still
running) instead of running twice.
"""

from __future__ import annotations

import asyncio
import zlib
from collections import OrderedDict

from nsd.protocols.rpc.oncrpc import RpcCall

DEFAULT_DRC_ENTRIES = 4096

# (peer host, xid, record length, CRC32 of the record)
Key = tuple[str, int, int, int]


class DuplicateRequestCache:
    """Replies of non-idempotent calls by (host, xid, length and CRC of the whole call).

    The CRC covers procedure, credentials and arguments, so two users of one client host that
    happen to reuse an XID are never confused.

    Bounded LRU of `entries` replies. An entry is a Future while its call runs, so a
    retransmit arriving meanwhile waits for the one execution. Cost: O(1) per call.
    """

    def __init__(self, entries: int = DEFAULT_DRC_ENTRIES) -> None:
        if entries < 1:
            raise ValueError(f"a duplicate request cache needs at least 1 entry, got {entries}")
        self.entries = entries
        self._cache: OrderedDict[Key, asyncio.Future[bytes]] = OrderedDict()

    @staticmethod
    def key(peer_host: str, call: RpcCall) -> Key:
        return (peer_host, call.xid, len(call.record), zlib.crc32(call.record))

    def get(self, key: Key) -> asyncio.Future[bytes] | None:
        fut = self._cache.get(key)
        if fut is not None:
            self._cache.move_to_end(key)
        return fut

    def start(self, key: Key) -> asyncio.Future[bytes]:
        """A new entry for a call about to run; the least recently used past `entries` goes,
        and whoever waits on it (a retransmit) is cancelled: the client will retransmit."""
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._cache[key] = fut
        while len(self._cache) > self.entries:
            _, old = self._cache.popitem(last=False)
            if not old.done():
                old.cancel()
        return fut

    def forget(self, key: Key) -> None:
        """Drop the entry of a call that failed, so a retransmit runs it again."""
        fut = self._cache.pop(key, None)
        if fut is not None and not fut.done():
            fut.cancel()

    def check(self) -> None:
        """Assert the invariants: at most `entries` entries, each a future that is still running
        or holds its reply (bytes); a cancelled or failed future never stays. Cost: O(entries)."""
        assert len(self._cache) <= self.entries, (len(self._cache), self.entries)
        for key, fut in self._cache.items():
            assert len(key) == 4 and isinstance(key[0], str), key
            assert asyncio.isfuture(fut), (key, fut)
            assert not fut.cancelled(), f"cancelled entry {key} kept"
            if fut.done():
                assert fut.exception() is None, f"failed entry {key} kept"
                assert isinstance(fut.result(), bytes), (key, type(fut.result()))

    def __len__(self) -> int:
        return len(self._cache)
