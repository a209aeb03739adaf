"""Directory fsyncs shared by concurrent changes (group commit for a local directory).

A create, rename or unlink in a local directory is durable once the directory is fsynced. Many
changes in one directory at once (32 NFS CREATEs in flight, a job writing its part files) need
not fsync it once each: a sync that starts after a change covers it. So per directory, while
one fsync runs, the changes finished meanwhile wait for the next one together: at most two
fsyncs of a directory are ever outstanding (one running, one gathering), whatever the load.

The first change in a quiet directory does its operation and the fsync in one worker-thread
call, so a lone change costs one hand-off to a thread. `made` gives the caller the operation's
result as soon as it is done, with the sync still running, so the caller can overlap its own
durable step (a journal commit) with the directory's fsync; `change` waits for both.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from nsd.datadir import fsync_dir
from nsd.threads import Workers, settle_soon

T = TypeVar("T")


class DirSyncs:
    """Runs directory changes in worker threads and makes them durable (see the module docstring)."""

    def __init__(self, workers: Workers) -> None:
        self._workers = workers  # the threads that run the changes and the fsyncs
        # directories with an fsync running -> the future of the next one (None: nobody waits yet)
        self._syncing: dict[str, asyncio.Future[None] | None] = {}
        self.fsyncs = 0  # directory fsyncs done (changes made durable / fsyncs: the sharing)
        self.changes = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def change(self, directory: str, op: Callable[[], T]) -> T:
        """Run `op` (a change in `directory`) in a thread; return once the change is durable.
        OSError from `op` or from the fsync is raised as is."""
        result, synced = await self.made(directory, op)
        await asyncio.shield(synced)
        return result

    async def made(self, directory: str, op: Callable[[], T]) -> tuple[T, asyncio.Future[None]]:
        """Run `op` (a change in `directory`) in a thread; return its result once it is made, with
        a future that is done once the change is durable (its error, an OSError, is the fsync's;
        await it shielded: other changes may share it). An OSError from `op` is raised as is."""
        self.changes += 1
        if directory in self._syncing:
            result = await self._workers.run(op)
            return result, self._next_sync(directory)
        loop = asyncio.get_running_loop()
        outcome: asyncio.Future[T] = loop.create_future()

        def op_then_sync() -> None:
            try:
                settle_soon(loop, outcome, op(), None)
            except BaseException as e:
                settle_soon(loop, outcome, None, e)
            fsync_dir(directory)  # after a failed op too: cheap, rare, and the count stays true

        self._syncing[directory] = None  # claimed now: a change before the task starts waits for it
        synced = asyncio.ensure_future(self._claimed(directory, op_then_sync))
        synced.add_done_callback(_retrieve)  # the caller may drop it when `op` failed
        return await outcome, synced

    def _next_sync(self, directory: str) -> asyncio.Future[None]:
        """A future done once an fsync of `directory` that starts from now on has finished."""
        if directory not in self._syncing:
            self._syncing[directory] = None
            lead = asyncio.ensure_future(self._claimed(directory, lambda: fsync_dir(directory)))
            lead.add_done_callback(_retrieve)  # its waiter may be cancelled
            return lead
        waiting = self._syncing[directory]
        if waiting is None:
            waiting = self._syncing[directory] = asyncio.get_running_loop().create_future()
        return waiting

    async def sync(self, directory: str) -> None:
        """Return once an fsync of `directory` that started after this call has finished."""
        await asyncio.shield(self._next_sync(directory))

    async def _claimed(self, directory: str, work: Callable[[], T]) -> T:
        """Run `work`, which ends with an fsync of `directory`, as its running sync (the caller
        has marked it running)."""
        try:
            result = await self._workers.run(work)
            self.fsyncs += 1
            return result
        finally:
            self._done(directory)

    def _done(self, directory: str) -> None:
        """The running fsync ended: start the one the latest changes wait for, if any."""
        waiting = self._syncing.pop(directory)
        if waiting is None:
            return
        self._syncing[directory] = None
        task = asyncio.get_running_loop().create_task(self._run_next(directory, waiting))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_next(self, directory: str, waiting: asyncio.Future[None]) -> None:
        try:
            await self._workers.run(fsync_dir, directory)
            self.fsyncs += 1
        except OSError as e:
            waiting.set_exception(e)
        else:
            waiting.set_result(None)
        finally:
            self._done(directory)


def _retrieve(task: asyncio.Future[None]) -> None:
    if not task.cancelled():
        task.exception()
