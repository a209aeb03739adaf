"""Reads that outlast an RPC: answer JUKEBOX and keep the read going for the client's retry.

A cold read from a slow under-storage (an object store far away) can take longer than a
client waits for a reply. With `patience` set, READ waits that many seconds; if the data is not
there yet, it answers NFS3ERR_JUKEBOX ("try again later") and leaves the read running here,
keyed by (inode, offset, count). The client's retry, a new call with the same arguments, picks
up the finished (or still running) read instead of starting over, so a slow store is read once,
not once per retry.

Without `patience` (0, the default) READ just waits: libnfs (nfs-cat, nfs-cp) and the Windows
client fail a READ answered JUKEBOX instead of retrying, and the Linux client retries only
after 5 s. A TCP client waits for its reply (Linux: 60 s before it sends the READ again, which
is then served like any other), and the mount's timeout_s x retries bounds the wait.

Bounded: at most `max_pending` reads are parked; results nobody collects expire after
`keep_seconds`. Cost: one dict lookup per READ.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

Key = tuple[int, int, int]
Result = tuple[bytes | memoryview, bool]


class Jukebox(Exception):
    """The read is still running; tell the client to retry later."""


class SlowReads:
    def __init__(self, patience: float = 0.0, keep_seconds: float = 120.0, max_pending: int = 64) -> None:
        self.patience = patience
        self.keep_seconds = keep_seconds
        self.max_pending = max_pending
        self._parked: dict[Key, tuple[asyncio.Future[Result], float]] = {}

    async def read(self, key: Key, start: Callable[[], Awaitable[Result]]) -> Result:
        """The read's result, from a parked read of the same key if there is one.

        Raises Jukebox if it takes over `patience` seconds (the read stays parked), and
        whatever the read raises.
        """
        if not self.patience:  # nothing is ever parked; still a task of its own, as below: the
            # RPC server steps procedures outside any task, and code under a read may need one
            # (aiohttp's timeouts, fetching a block from a peer in a cluster)
            return await asyncio.ensure_future(start())
        parked = self._parked.get(key)
        task = parked[0] if parked is not None else asyncio.ensure_future(start())
        if not task.done():
            done, _ = await asyncio.wait({task}, timeout=self.patience)
            if not done:
                self._park(key, task)
                raise Jukebox(f"read {key} still running")
        self._parked.pop(key, None)
        return task.result()

    def forget(self, ino: int) -> None:
        """Drop parked reads of `ino`: it is being written, their data may be out of date."""
        if self._parked:
            for key in [k for k in self._parked if k[0] == ino]:
                task, _ = self._parked.pop(key)
                task.cancel()

    def _park(self, key: Key, task: asyncio.Future[Result]) -> None:
        now = time.monotonic()
        for k, (t, since) in list(self._parked.items()):
            if now - since > self.keep_seconds:
                del self._parked[k]
                if not t.done():
                    t.cancel()
        if key not in self._parked and len(self._parked) >= self.max_pending:
            oldest = min(self._parked, key=lambda k: self._parked[k][1])
            self._parked.pop(oldest)[0].cancel()
        self._parked.setdefault(key, (task, now))
        # A parked read that fails must not log "exception never retrieved".
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    def __len__(self) -> int:
        return len(self._parked)
