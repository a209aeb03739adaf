"""Open UFS intents: journaled before a UFS change, resolved with its outcome, reconciled otherwise.

Theory of operation. A vfs mutation that changes the UFS where the journal cannot follow
atomically runs inside `Vfs._ufs_change`: a durable `UfsIntent` first, then the UFS call, then
the outcome op and the intent's `IntentDone` in one batch. If the UFS call or the outcome fails
in life, the owner reconciles at once; if the daemon dies in between, the intent is still open
at the next start and the background pass here reconciles it.

Reconciling makes the entries an intent names agree with the UFS, which holds the truth for
UFS-backed files:

- content (replace, seal, truncate): the UFS holds the old or the new whole object (writes are
  all or nothing): the namespace takes what the UFS has (a forced re-check).
- append: the UFS may hold part of an append nobody acknowledged: it is cut back to the
  journaled size, so a half append is never visible.
- remove: gone from the UFS -> gone from the namespace; still there (a recursive delete cut
  short) -> the directory is re-listed.
- rename: the UFS shows the move done -> the namespace moves the same inode (handles and
  fileids survive); otherwise both entries are re-checked as they are.

Objects a crash left only in the UFS (a create or mkdir whose record was lost) need no
intent: they are undiscovered objects, found by the next lookup or listing like any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from nsd import errors
from nsd.core.locks import content, entry
from nsd.namespace import DirInode, FileInode, Inode
from nsd.namespace.intents import plan_intent
from nsd.namespace.mounts import is_mount_point
from nsd.ufs import UfsStatus

if TYPE_CHECKING:
    from nsd.core.core import Core

log = logging.getLogger("nsd.reconcile")

RETRY_FIRST, RETRY_MAX = 1.0, 30.0


class Reconciler:
    def __init__(self, core: Core) -> None:
        self.core = core
        self.active: set[int] = set()  # intents whose owner (a request) is still running
        self.errors: dict[int, str] = {}  # intent id -> why the last reconcile failed
        self.reconciled = 0  # intents resolved by reconciling rather than by their outcome
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._pass: asyncio.Task[int] | None = None

    # ---- owners (vfs mutations) ------------------------------------------------------------

    @asynccontextmanager
    async def change(self, kind: str, args: list[Any]) -> AsyncIterator[int]:
        """Open a durable intent around a UFS change; the body resolves it with `done=`.

        The caller holds the locks of what the intent names. On failure the intent is
        reconciled at once (best effort; the background pass retries what that leaves open).
        An orphan with the same kind and args is taken over rather than a second one opened, so
        a change retried while the UFS is down keeps one intent, not one per try.
        """
        same = [i for i, (k, a) in self.core.ns.intents.items() if k == kind and a == args and i not in self.active]
        if same:
            intent = same[0]
        else:
            ops = await self.core.store.mutate(lambda ns: plan_intent(ns, kind, args))
            intent = ops[0].id  # type: ignore[attr-defined]
        self.active.add(intent)
        try:
            yield intent
            if intent in self.core.ns.intents:  # the body changed nothing to journal
                await self.core.store.mutate(lambda ns: [], done=intent)
        except Exception:
            try:
                if intent in self.core.ns.intents:
                    await self._resolve(intent)
            except Exception as e:
                self.errors[intent] = str(e)
                log.warning("intent %d (%s %s) left open for the background pass: %s", intent, kind, args, e)
            raise
        finally:
            self.active.discard(intent)
            if intent in self.core.ns.intents:
                self._wake.set()

    def check(self) -> None:
        """Assert the invariants; AssertionError says which. One open intent per change (a retry
        takes its orphan over instead of opening another), so no two open intents name the same
        change; the counters are sound. Cost: O(open intents)."""
        changes = [(kind, repr(args)) for kind, args in self.core.ns.intents.values()]
        if len(set(changes)) != len(changes):
            raise AssertionError(f"two open intents for one change: {sorted(changes)}")
        if type(self.reconciled) is not int or self.reconciled < 0:
            raise AssertionError(f"reconciled count {self.reconciled!r}")
        if not all(isinstance(why, str) for why in self.errors.values()):
            raise AssertionError(f"reconcile errors that are not messages: {self.errors}")

    # ---- the background pass ---------------------------------------------------------------

    def start(self) -> asyncio.Task[int]:
        """Start the background task; returns its first pass (await it to know start-up state)."""
        self._pass = asyncio.ensure_future(self._one_pass())
        self._task = asyncio.create_task(self._loop())
        return self._pass

    async def close(self) -> None:
        for t in (self._task, self._pass):
            if t is not None and not t.done():
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await t

    def orphans(self) -> list[int]:
        return sorted(set(self.core.ns.intents) - self.active)

    async def settle(self) -> int:
        """Reconcile every orphaned intent now (waiting for a pass already running); how many stay open."""
        if self._pass is not None and not self._pass.done():
            await asyncio.wait([self._pass])
        self._pass = asyncio.ensure_future(self._one_pass())
        return await asyncio.shield(self._pass)

    async def _loop(self) -> None:
        delay = RETRY_FIRST
        while True:
            if self._pass is not None and not self._pass.done():
                await asyncio.wait([self._pass])
            if not self.orphans():
                delay = RETRY_FIRST
                self._wake.clear()
                await self._wake.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
                self._wake.clear()
                delay = min(delay * 2, RETRY_MAX)
            self._pass = asyncio.ensure_future(self._one_pass())

    async def _one_pass(self) -> int:
        for intent in self.orphans():
            if intent not in self.core.ns.intents or intent in self.active:
                continue
            try:
                async with self.core.locks.hold(*self._keys(intent)):
                    if intent in self.core.ns.intents:
                        await self._resolve(intent)
            except errors.NsdError as e:
                if self.errors.get(intent) != e.message:
                    log.warning("cannot reconcile intent %d yet: %s", intent, e.message)
                self.errors[intent] = e.message
        return len(self.orphans())

    def _keys(self, intent: int) -> list[Hashable]:
        kind, args = self.core.ns.intents[intent]
        if kind in ("content", "append"):
            return [content(args[0])]
        if kind == "remove":
            return [entry(args[0], args[1])]
        return [entry(args[0], args[1]), entry(args[2], args[3])]

    # ---- reconciling one intent (its locks held) -------------------------------------------

    async def _resolve(self, intent: int) -> None:
        """Bring what `intent` names in line with the UFS, then close it. NsdError leaves it open."""
        kind, args = self.core.ns.intents[intent]
        if kind == "content":
            done = await self._content(args[0], cut_at=None)
        elif kind == "append":
            done = await self._content(args[0], cut_at=args[1])
        elif kind == "remove":
            done = await self._entry(args[0], args[1])
        else:
            done = await self._rename(*args)
        if not done:
            raise errors.UfsUnavailable(f"intent {intent}: the file is being written; retry after it is sealed")
        await self.core.store.mutate(lambda ns: [], done=intent)
        self.errors.pop(intent, None)
        self.reconciled += 1
        log.info("reconciled interrupted under-storage change %d (%s %s)", intent, kind, args)

    async def _content(self, ino: int, cut_at: int | None) -> bool:
        node = self.core.ns.inodes.get(ino)
        if not isinstance(node, FileInode) or not node.has_fingerprint:
            return True
        if ino in self.core.stager.stages:
            # The stage is the truth until sealed. Settled if the UFS still holds what the journal
            # says (the failed write changed nothing); otherwise the next seal journals it.
            ufs, rel = self.core.mounts.locate(node)
            try:
                return (await ufs.stat(rel)).fingerprint() == node.fingerprint
            except errors.NotFound:
                return False
        if cut_at is not None:
            ufs, rel = self.core.mounts.locate(node)
            try:
                status = await ufs.stat(rel)
            except errors.NotFound:
                status = None
            if status is not None and not status.is_dir and status.size > node.size:
                await ufs.truncate(rel, node.size)  # an unacknowledged append is never half visible
        with contextlib.suppress(errors.NotFound):  # gone from the UFS: the entry went too
            await self.core.discovery.refresh(node, force=True)
        return True

    async def _stat(self, d: DirInode, name: str) -> UfsStatus | None:
        ufs, rel = self.core.mounts.locate_child(d, name)
        try:
            return await ufs.stat(rel)
        except errors.NotFound:
            return None

    def _ufs_backed(self, node: Inode) -> bool:
        return not node.namespace_only and not is_mount_point(self.core.ns, node)

    async def _entry(self, dir_ino: int, name: str) -> bool:
        """Make entry `name` of `dir_ino` what the UFS shows there."""
        d = self.core.ns.inodes.get(dir_ino)
        if not isinstance(d, DirInode):
            return True
        node = d.children.get(name)
        if node is not None and not self._ufs_backed(node):
            return True
        if node is not None and node.ino in self.core.stager.stages:
            return False
        status = await self._stat(d, name)
        discovery = self.core.discovery
        if status is None:
            if node is not None:
                await discovery.drop_gone(d, [name])
            return True
        if node is not None and node.is_dir != status.is_dir:
            await discovery.drop_gone(d, [name])
            node = None
        if node is None:
            await discovery.add_found(d, name, status)
        elif isinstance(node, DirInode):
            await discovery.sync_tree(node, recursive=True)
        else:
            with contextlib.suppress(errors.NotFound):
                await discovery.refresh(node, force=True)
        return True

    async def _rename(self, src_dir: int, src_name: str, dst_dir: int, dst_name: str) -> bool:
        ns = self.core.ns
        sd, dd = ns.inodes.get(src_dir), ns.inodes.get(dst_dir)
        if isinstance(sd, DirInode) and isinstance(dd, DirInode):
            node = sd.children.get(src_name)
            if node is not None and self._ufs_backed(node):
                src, dst = await self._stat(sd, src_name), await self._stat(dd, dst_name)
                if src is None and dst is not None and dst.is_dir == node.is_dir:
                    # The UFS moved: move the same inode, so handles and fileids survive.
                    with contextlib.suppress(errors.NsdError):
                        await self.core.store.mutate(
                            lambda ns: ns.plan_rename(src_dir, src_name, dst_dir, dst_name, self.core.store.now_ns())
                        )
        return await self._entry(src_dir, src_name) and await self._entry(dst_dir, dst_name)
