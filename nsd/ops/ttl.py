"""TTLs: `nsd ttl set PATH SECONDS --action free|delete`, enforced in the background.

A TTL is journaled (SetTtl) with its absolute expiry, so it survives restarts. Every `interval`
seconds the enforcer looks at the (small) table of TTLs; an expired one frees the cached data
at and below its inode (then the TTL is removed) or deletes the inode (the TTL goes with it).
A failure is logged and tried again at the next look.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from nsd import errors
from nsd.core.users import SYSTEM
from nsd.namespace.layouts import plan_set_ttl

if TYPE_CHECKING:
    from nsd.vfs import Vfs

log = logging.getLogger("nsd.ttl")


class TtlEnforcer:
    def __init__(self, vfs: Vfs, *, interval: float = 10.0) -> None:
        self.vfs = vfs
        self.interval = interval
        self.expired = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.enforce()

    async def enforce(self, now_ns: int | None = None) -> int:
        """Act on every TTL expired at `now_ns` (default: now). Returns how many were acted on."""
        from nsd.ops.cache.controls import free_path

        now = time.time_ns() if now_ns is None else now_ns
        due = [(ino, action) for ino, (exp, action) in self.vfs.ns.ttls.items() if exp <= now]
        done = 0
        for ino, action in due:
            if ino not in self.vfs.ns.inodes:
                continue
            path = self.vfs.ns.path_of(ino)
            try:
                if action == "delete":
                    await self.vfs.remove(path, caller=SYSTEM, recursive=True)
                else:
                    await free_path(self.vfs, path, recursive=True)
                    if ino in self.vfs.ns.ttls:
                        await self.vfs.store.mutate(lambda ns: plan_set_ttl(ns, ino, None))  # noqa: B023
            except errors.NsdError as e:
                log.warning("TTL of %s (%s) could not be enforced, will retry: %s", path, action, e.message)
                continue
            done += 1
            self.expired += 1
            log.info("TTL expired: %s %s", "deleted" if action == "delete" else "freed", path)
        return done
