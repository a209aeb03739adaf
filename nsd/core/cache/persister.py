"""Persisting: an unpersisted file's blocks uploaded to its UFS path, then Persisted journaled.

The queue is the namespace's `persist_pending` set (RequestPersist ops, journaled with the write),
so it survives restarts. A file is due `delay` seconds after the persister first sees it pending
(after a write, or at start): newer content within that time does not put it off further; a
file removed by then is never uploaded, one persisted by `nsd persist` not again. Up to
PERSISTS_IN_FLIGHT due files are tried at once (one try per file at a time); a failure (the UFS
down, or anything else) is retried with exponential backoff and jitter, up to `retry_max`
seconds apart, for as long as the file is pending. `nsd persist` uses the same `persist()`, as
many files at once, and waits for them.

A persist holds the file's content lock while it uploads (writes to that file wait; its blocks
cannot change under the upload anyway, being immutable) and journals Persisted only if the file
still has the content it uploaded and still lives at the path it uploaded to. If an ancestor
directory was renamed during the upload, the upload is retried at the new path (an object
store may keep a stray copy at the old one).

It also knows which files nothing can have reached in the UFS yet (`untouched`): those created
by this process with nothing written there, no upload tried since and the ctime of their create.
Only the persister writes an unpersisted file's path, and it runs only where changes are
journaled (the one process, or a cluster's leader, which re-executes itself when deposed), so
besides its own tries (even one that failed after the bytes arrived) only a rewrite after a
persist, a rename or a link could have put something there, and each sets a new ctime. A remove
or rename of such a file then needs no stat for an older copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import heapq
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from nsd import errors
from nsd.core.locks import content
from nsd.journal.ops import Op
from nsd.namespace import FileInode, Inode, Namespace
from nsd.namespace.layouts import content_token, plan_persisted, unpersisted
from nsd.ufs.wrap.retry import Replayable

if TYPE_CHECKING:
    from nsd.core.cache.reader import BlockReader
    from nsd.core.locks import KeyLocks
    from nsd.core.metastore import MetaStore
    from nsd.core.mounttable import MountTable

log = logging.getLogger("nsd.persist")

CREATED_MAX = 1 << 16  # files `untouched` remembers before it starts over (a miss costs a stat)
# Files uploaded at once: a small file costs an object store one round trip, a local one two
# fsyncs, and each persist a journal record; several at once overlap those and share commits.
PERSISTS_IN_FLIGHT = 8


class Persister:
    def __init__(
        self,
        store: MetaStore,
        mounts: MountTable,
        locks: KeyLocks,
        reader: BlockReader,
        mark_checked: Callable[[int], None],
        *,
        delay: float = 0.0,
        retry_max: float = 60.0,
        retry_base: float = 0.5,
    ) -> None:
        self.store = store
        self.mounts = mounts
        self.locks = locks
        self.reader = reader
        self.mark_checked = mark_checked  # the UFS object was just written: no need to re-check it
        self.delay = delay
        self.retry_max = retry_max
        self.retry_base = retry_base
        self.persisted = 0
        self.failures = 0
        self._due: dict[int, float] = {}  # ino -> monotonic time of its next try
        self._heap: list[tuple[float, int]] = []  # (due, ino), the earliest first; see _schedule
        self._tries: dict[int, int] = {}
        self._errors: dict[int, str] = {}  # ino -> why its last try failed
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._trying: dict[int, asyncio.Task[None]] = {}  # ino -> its try under way
        self._created: dict[int, int] = {}  # inode id -> ctime of a create with no UFS write

    def created(self, node: Inode) -> None:
        """`node` was just created with nothing written to the UFS."""
        if len(self._created) >= CREATED_MAX:
            self._created.clear()
        self._created[node.ino] = node.ctime

    def forget_created(self, ino: int) -> None:
        self._created.pop(ino, None)

    def untouched(self, node: Inode) -> bool:
        """Whether nothing can be at `node`'s path in the UFS: created here with nothing written
        there, no upload tried since, and its ctime still the create's (see the module's
        docstring). An object put there behind nsd's back after its listing stays, as for any
        file nsd never saw."""
        return self._created.get(node.ino) == node.ctime

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        """Stop, and interrupt the uploads under way (all or nothing: redone at the next start)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        tries = list(self._trying.values())
        for task in tries:
            task.cancel()
        await asyncio.gather(*tries, return_exceptions=True)

    def kick(self, ino: int) -> None:
        """A new persist request (or newer content for one): due after `delay`, or sooner if it
        was already waiting for a first try (a failed one is tried again after `delay`)."""
        due = time.monotonic() + self.delay
        if ino not in self._tries:
            due = min(due, self._due.get(ino, due))
        self._tries.pop(ino, None)
        self._errors.pop(ino, None)
        if self._schedule(ino, due):
            self._wake.set()

    def _schedule(self, ino: int, due: float) -> bool:
        """`ino` due at `due`; False if it already was. The heap may keep an older entry for it,
        skipped when it comes up (`_due` says which one counts)."""
        if self._due.get(ino) == due:
            return False
        self._due[ino] = due
        heapq.heappush(self._heap, (due, ino))
        return True

    def _forget(self, ino: int) -> None:
        self._due.pop(ino, None)
        self._tries.pop(ino, None)
        self._errors.pop(ino, None)

    def status(self) -> dict[str, Any]:
        now = time.monotonic()
        return {
            "pending": len(self.store.ns.persist_pending),
            "persisted": self.persisted,
            "failures": self.failures,
            "retrying": sum(
                1 for ino, t in self._due.items() if t > now and self._tries.get(ino) and self._pending(ino)
            ),
        }

    def failing(self, min_tries: int = 3) -> list[tuple[int, int, str]]:
        """(ino, tries, last error) of pending persists that failed `min_tries` times in a row,
        most tries first (what `nsd doctor` reports)."""
        out = [
            (ino, n, self._errors.get(ino, ""))
            for ino, n in self._tries.items()
            if n >= min_tries and self._pending(ino)
        ]
        return sorted(out, key=lambda t: -t[1])

    def _pending(self, ino: int) -> bool:
        return ino in self.store.ns.persist_pending

    async def _run(self) -> None:
        # What is pending at the start (after a restart, or when a cluster node starts to lead);
        # after that every persist request comes with a kick. Each wake then costs what is due,
        # not what is pending (a scan of all of it per write made writes O(pending)).
        start = time.monotonic() + self.delay
        for ino in self.store.ns.persist_pending:
            if ino not in self._due:
                self._schedule(ino, start)
        heap, trying = self._heap, self._trying
        loop = asyncio.get_running_loop()
        while True:
            while heap and heap[0][0] <= time.monotonic() and len(trying) < PERSISTS_IN_FLIGHT:
                due, ino = heapq.heappop(heap)
                if self._due.get(ino) != due:
                    continue  # put off or brought forward since: its newer entry counts
                if not self._pending(ino):
                    self._forget(ino)  # removed, or persisted by `nsd persist`
                    continue
                if ino in trying:
                    # The try under way uploads what the file holds when it takes the content
                    # lock; newer content is written under that lock, after it, and kicks again.
                    continue
                task = loop.create_task(self._try(ino), context=contextvars.Context())
                trying[ino] = task
                task.add_done_callback(functools.partial(self._tried, ino))
            self._wake.clear()
            room = len(trying) < PERSISTS_IN_FLIGHT
            timeout = max(0.0, heap[0][0] - time.monotonic()) if heap and room else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    def _tried(self, ino: int, task: asyncio.Task[None]) -> None:
        self._trying.pop(ino, None)
        if not task.cancelled() and task.exception() is not None:  # a bug, not a UFS failure
            log.error("persist of inode %d failed: %r; tried again in %.0f s", ino, task.exception(), self.retry_max)
            self._schedule(ino, time.monotonic() + self.retry_max)
        self._wake.set()  # room for the next one

    async def _try(self, ino: int) -> None:
        try:
            await self.persist(ino)
        except errors.NsdError as e:
            self.failures += 1
            tries = self._tries[ino] = self._tries.get(ino, 0) + 1
            self._errors[ino] = e.message
            delay = min(self.retry_max, self.retry_base * 2 ** min(tries, 30)) * random.uniform(0.5, 1.0)
            self._schedule(ino, time.monotonic() + delay)
            log.warning("persist of inode %d failed (try %d, next in %.1f s): %s", ino, tries, delay, e.message)
            return
        self._forget(ino)  # persisted (newer content waits for the content lock, then kicks)

    async def persist(self, ino: int) -> bool:
        """Upload the file's blocks and journal Persisted; False when there was nothing to do."""
        async with self.locks.hold(content(ino)):
            node = self.store.ns.inodes.get(ino)
            if not isinstance(node, FileInode) or not unpersisted(node):
                return False
            layout, size = list(node.layout or ()), node.size
            token = content_token(size, layout)
            ufs, rel = self.mounts.locate(node)
            self._created.pop(ino, None)  # whatever becomes of this try, the path may hold a copy
            status = await ufs.write(rel, Replayable(lambda: self._stream(ino, layout)))

            def plan(ns: Namespace) -> list[Op]:
                live = ns.inodes.get(ino)
                if live is None:
                    return []
                if self.mounts.locate(live)[1] != rel:
                    raise errors.Stale(f"inode {ino} moved while it was persisted; trying again")
                return [plan_persisted(ns, ino, token, status.fingerprint())]

            ops = await self.store.mutate(plan)
            if not ops:  # removed while it was uploaded: do not leave the copy behind
                with contextlib.suppress(errors.NsdError):
                    await ufs.delete(rel)
                return False
            self.mark_checked(ino)
            self.persisted += 1
            log.info("persisted inode %d (%d bytes) to %s", ino, size, rel)
            return True

    async def _stream(self, ino: int, layout: list[Any]) -> AsyncIterator[bytes]:
        reader = self.reader
        for _, length, digest in layout:
            blob = await reader.get(digest)
            if blob is None or len(blob) != length:
                raise errors.Corrupt(f"block {digest} of unpersisted inode {ino} is lost")
            yield blob
