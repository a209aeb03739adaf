"""Durable metadata: the namespace, its journal and its checkpoints, as one unit.

Theory of operation: a mutation is planned against the live namespace, appended to the
journal and applied to memory in one synchronous step (so journal order is apply order and
no other mutation can slip in between), then awaited until its record is fsynced. Many
callers awaiting at once share one fsync (group commit in JournalWriter). Since a change is
visible before it is durable, the inode ids it gives come from a reservation journaled and made
durable ahead of them (nsd.namespace.inode_ids), so a crash never gives a seen id twice.

Checkpoints do not stall writers: the writer rolls to a new segment, and a child process
folds the previous checkpoint plus the sealed segments into a new one.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from nsd.core import wcc
from nsd.core.trim import release_free_memory
from nsd.errors import JournalFailed, NoSpace, NsdError
from nsd.journal.checkpoint import checkpoint_name, list_checkpoints, write_checkpoint
from nsd.journal.ops import IntentDone, Op
from nsd.journal.recovery import recover
from nsd.journal.segment import list_segments
from nsd.journal.writer import JournalWriter
from nsd.namespace import Namespace, inode_ids, layouts

log = logging.getLogger("nsd.metastore")

CHECKPOINTS_KEPT = 2
# Inode ids are reserved in the journal ahead of use (nsd.namespace.inode_ids): this many at a
# time (a restart skips what is left of them), the next run appended once fewer than half are
# left, and a change waits for its ids' reservation to be durable only if fewer than the most
# one change gives (a listing page gives 1,000) are covered: at a start, or in a burst faster than fsync.
INODE_IDS_RESERVED = 1 << 20
INODE_IDS_LOW = INODE_IDS_RESERVED // 2
INODE_IDS_PER_CHANGE = 1 << 16
SPACE_CHECK_SECONDS = 0.25  # how stale the journal disk's free space may be when admitting a change


class Clock:
    """Nanoseconds since the epoch, strictly increasing so every change gets a new ctime."""

    def __init__(self) -> None:
        self._last = 0

    def now_ns(self) -> int:
        t = time.time_ns()
        if t <= self._last:
            t = self._last + 1
        self._last = t
        return t


def initial_checkpoint(
    journal_dir: Path, *, root_uid: int, root_gid: int, root_mode: int = 0o755, time_ns: int | None = None
) -> None:
    """Checkpoint 0 of a new data dir, so the root's attributes are fixed once, at format."""
    when = time.time_ns() if time_ns is None else time_ns
    ns = Namespace(root_uid=root_uid, root_gid=root_gid, root_mode=root_mode, time_ns=when)
    write_checkpoint(journal_dir, 0, ns.to_image())


def fold(journal_dir: Path, upto: int | None = None) -> int:
    """Write a checkpoint at `upto` (default: the last record) from the newest checkpoint and the log.

    Reads only; never cuts the log. Returns the checkpoint's txid. Cost: one full load and replay.
    """
    return _fold(journal_dir, upto)[0]


def fold_namespace(journal_dir: Path) -> tuple[int, int]:
    """Fold the whole log into a checkpoint (as `fold`): its txid and how many files wait for a
    persist (their data is only in this node's cache)."""
    txid, ns = _fold(journal_dir, None)
    return txid, sum(1 for node in ns.inodes.values() if layouts.unpersisted(node))


def _fold(journal_dir: Path, upto: int | None) -> tuple[int, Namespace]:
    rec = recover(journal_dir, cut_torn_tail=False)
    ns = Namespace.from_image(rec.image) if rec.image is not None else Namespace()
    txid = rec.checkpoint_txid
    for op_txid, op in rec.ops:
        if upto is not None and op_txid > upto:
            break
        ns.apply(op)
        txid = op_txid
    if txid > rec.checkpoint_txid:
        write_checkpoint(journal_dir, txid, ns.to_image())
    return txid, ns


def purge(journal_dir: Path, keep: int = CHECKPOINTS_KEPT) -> None:
    """Drop all but the newest `keep` checkpoints and the segments only older ones need."""
    ckpts = list_checkpoints(journal_dir)
    if len(ckpts) < keep:
        return
    for _, path in ckpts[:-keep]:
        path.unlink(missing_ok=True)
    oldest_kept = ckpts[-keep][0]
    segments = list_segments(journal_dir)
    for (_, path), (next_first, _) in itertools.pairwise(segments):
        if next_first - 1 <= oldest_kept:
            path.unlink(missing_ok=True)


class MetaStore:
    def __init__(
        self,
        ns: Namespace,
        writer: JournalWriter,
        journal_dir: Path,
        *,
        checkpoint_txid: int,
        checkpoint_entries: int = 1_000_000,
        checkpoint_interval: float = 3600.0,
        on_fatal: Callable[[BaseException], None] | None = None,
        reserve_bytes: int = 0,
    ) -> None:
        self.ns = ns
        self.writer = writer
        self.journal_dir = journal_dir
        self.clock = Clock()
        self.checkpoint_txid = checkpoint_txid
        self.checkpoint_entries = checkpoint_entries
        self.checkpoint_interval = checkpoint_interval
        self.last_checkpoint_time = time.monotonic()
        self.last_checkpoint_seconds = 0.0
        self._on_fatal = on_fatal
        self._checkpointing: asyncio.Task[int] | None = None
        self._ckpt_lock = asyncio.Lock()
        self.failed: BaseException | None = None
        self.reserve_bytes = reserve_bytes
        self.refusing: str | None = None  # why client changes are refused right now
        self._space_checked = -SPACE_CHECK_SECONDS
        self._free = 0
        # Cluster mode: why this node may not append now (a follower, no etcd), None when it may.
        self.append_refusal: Callable[[], NsdError | None] = lambda: None
        # Cluster mode, at a follower: facts `record` may not journal here, for the leader.
        self.share: Callable[[list[Op]], None] | None = None
        # Cluster mode: share a checkpoint just written (txid, its file); runs under the checkpoint lock.
        self.on_checkpoint: Callable[[int, Path], Awaitable[None]] | None = None
        # Inode ids: whether ns.ino_limit is a reservation this store made (not one recovered or
        # replicated, which another life may have used), ids below which a durable one of ours
        # covers, and (txid, limit) of our newest reservation not yet known durable.
        self._ids_own = False
        self._ids_durable = 0
        self._ids_pending: tuple[int, int] | None = None

    @classmethod
    async def open(
        cls,
        journal_dir: Path,
        *,
        fsync: bool = True,
        segment_bytes: int = 64 << 20,
        checkpoint_entries: int = 1_000_000,
        checkpoint_interval: float = 3600.0,
        on_fatal: Callable[[BaseException], None] | None = None,
        reserve_bytes: int = 0,
    ) -> MetaStore:
        """Recover (newest valid checkpoint + replay, torn tail cut) and open the log for appends."""
        started = time.monotonic()
        rec = await asyncio.to_thread(recover, journal_dir)
        ns = Namespace.from_image(rec.image) if rec.image is not None else Namespace()
        for _, op in rec.ops:
            ns.apply(op)
        release_free_memory()  # what reading the checkpoint in a thread left in its arena
        for note in rec.torn:
            log.warning("journal: %s", note)
        log.info(
            "recovered txid %d (checkpoint %d + %d records, %d inodes) in %.2fs",
            rec.last_txid,
            rec.checkpoint_txid,
            len(rec.ops),
            len(ns.inodes),
            time.monotonic() - started,
        )
        writer = JournalWriter(journal_dir, rec.last_txid + 1, segment_bytes=segment_bytes, fsync=fsync)
        store = cls(
            ns,
            writer,
            journal_dir,
            checkpoint_txid=rec.checkpoint_txid,
            checkpoint_entries=checkpoint_entries,
            checkpoint_interval=checkpoint_interval,
            on_fatal=on_fatal,
            reserve_bytes=reserve_bytes,
        )
        writer.on_fatal = store._fatal
        return store

    def now_ns(self) -> int:
        return self.clock.now_ns()

    def _fatal(self, exc: BaseException) -> None:
        if self.failed is None:
            self.failed = exc
            log.critical("journal failed, no more changes are accepted: %s", exc)
            if self._on_fatal is not None:
                self._on_fatal(exc)

    def admit(self) -> None:
        """Raise NoSpace if a client change must be refused now because the journal's disk is full.

        Checked before a change touches anything (the UFS first of all), so a refused change
        changed nothing. Below `reserve_bytes` free, changes are refused while what is already
        under way still fits; a batch the disk refused outright (the writer is `full`) refuses
        them too. Cost: one statvfs per SPACE_CHECK_SECONDS.
        """
        if self.failed is not None:
            raise JournalFailed(f"journal failed earlier: {self.failed}")
        refused = self.append_refusal()
        if refused is not None:
            raise refused
        reason = self.refusal()
        if reason is not None:
            raise NoSpace(reason)

    def refusal(self) -> str | None:
        """Why client changes are refused right now (None: they are not); logs each change of mind."""
        now = time.monotonic()
        if now - self._space_checked >= SPACE_CHECK_SECONDS:
            self._space_checked = now
            try:
                st = os.statvfs(self.journal_dir)
                self._free = st.f_bavail * st.f_frsize
            except OSError:
                self._free = self.reserve_bytes  # cannot tell: let the writer find out
        reason = None
        if self.writer.full is not None:
            reason = f"journal disk full ({self.writer.full}); writes are refused until there is room"
        elif self._free < self.reserve_bytes:
            reason = (
                f"journal disk full: {self._free} bytes free in {self.journal_dir}, less than the "
                f"{self.reserve_bytes} kept in reserve; writes are refused until space is freed"
            )
        if reason != self.refusing:
            if reason is not None and self.refusing is None:
                log.error("refusing changes: %s", reason)
            elif reason is None:
                log.warning("journal disk has room again: accepting changes")
            self.refusing = reason
        return reason

    async def mutate(self, plan: Callable[[Namespace], Op | Sequence[Op]], *, done: int | None = None) -> list[Op]:
        """Plan, append, apply, and return once durable. `plan` must not change anything itself.

        The plan runs in the same step as the append, so what it validated still holds.
        `done`: an open UFS intent this change resolves; its IntentDone joins the same batch
        (after the planned ops), so the outcome and the resolution are durable together.
        """
        while not self._ids_covered():
            self._check_appendable()
            self._reserve_ids()
            assert self._ids_pending is not None
            await self.writer.sync(self._ids_pending[0])
        ops, txid = self._append_apply(plan, done)
        if txid:
            await self.writer.sync(txid)
            self.maybe_checkpoint()
        return ops

    def record(self, plan: Callable[[Namespace], Op | Sequence[Op]]) -> list[Op]:
        """Like mutate() but without waiting for the fsync: for facts that acknowledge nothing to
        a client (a block was cached), which a crash may lose harmlessly; never for new inodes
        (their ids must wait for a durable reservation, which mutate() does). The next group commit
        makes them durable; journal order is still apply order. A node that may not append
        (a cluster follower) hands them to `share` (the leader journals what still holds)."""
        if self.append_refusal() is not None:
            if self.share is not None:
                planned = plan(self.ns)
                self.share([planned] if isinstance(planned, Op) else list(planned))
            return []
        ops, _ = self._append_apply(plan)
        if ops:
            self.maybe_checkpoint()
        return ops

    def _append_apply(
        self, plan: Callable[[Namespace], Op | Sequence[Op]], done: int | None = None
    ) -> tuple[list[Op], int]:
        """Append and apply the planned ops (and IntentDone(done)); (the planned ops, last txid or 0)."""
        self._check_appendable()
        self._reserve_ids()  # before the plan, which takes its ids from the next one
        planned = plan(self.ns)
        ops = [planned] if isinstance(planned, Op) else list(planned)
        batch = ops if done is None else [*ops, IntentDone(done)]
        txid = 0
        watch = wcc.current()  # an NFS call's wcc_data is taken here, at the change itself
        lookup = self.ns.inodes.get
        for op in batch:
            txid = self.writer.append(op)
            snaps = watch.snap(lookup) if watch is not None else None
            self._apply(op)
            if snaps:
                assert watch is not None
                watch.compare(lookup, snaps)
        return ops, txid

    def _apply(self, op: Op) -> None:
        try:
            self.ns.apply(op)
        except Exception as e:  # a journaled op that cannot apply is a bug; the log now disagrees
            self._fatal(e)
            raise

    def _check_appendable(self) -> None:
        if self.failed is not None:
            raise JournalFailed(f"journal failed earlier: {self.failed}")
        refused = self.append_refusal()
        if refused is not None:
            raise refused

    def _reserve_ids(self) -> None:
        """Journal the next reservation of inode ids if one is due (see nsd.namespace.inode_ids)."""
        ns = self.ns
        if not self._ids_own:  # a recovered or replicated limit: skip what its maker may have shown
            first = max(ns.next_ino, ns.ino_limit)
        elif ns.ino_limit - ns.next_ino >= INODE_IDS_LOW:
            return
        else:
            first = ns.next_ino
        op = inode_ids.plan_reserve(ns, first, INODE_IDS_RESERVED)
        txid = self.writer.append(op)
        self._apply(op)
        self._ids_own, self._ids_pending = True, (txid, op.limit)

    def _ids_covered(self) -> bool:
        """Whether the next change may give ids: the next INODE_IDS_PER_CHANGE are below a durable
        reservation this store made."""
        pending = self._ids_pending
        if pending is not None and pending[0] <= self.writer.durable_txid:
            self._ids_durable, self._ids_pending = pending[1], None
        return self._ids_own and self.ns.next_ino + INODE_IDS_PER_CHANGE <= self._ids_durable

    def apply_replicated(self, txid: int, op: Op) -> None:
        """Take one record another node (the cluster's leader) journaled: the same append and apply
        as recovery's replay, at the same txid. Records must come in txid order without gaps."""
        if txid != self.writer.last_txid + 1:
            raise ValueError(f"replicated txid {txid} does not follow {self.writer.last_txid}")
        self.writer.append(op)
        self._apply(op)
        self._ids_own = False  # the leader's ids: when this node leads, it skips its reservation

    def maybe_checkpoint(self) -> None:
        if self._checkpointing is not None:
            return
        pending = self.writer.last_txid - self.checkpoint_txid
        overdue = time.monotonic() - self.last_checkpoint_time > self.checkpoint_interval
        if pending >= self.checkpoint_entries or (pending and overdue):
            self._checkpointing = asyncio.create_task(self._background_checkpoint())

    async def _background_checkpoint(self) -> int:
        try:
            return await self.checkpoint()
        except Exception:
            log.exception("checkpoint failed; will retry later")
            return self.checkpoint_txid
        finally:
            self._checkpointing = None

    async def checkpoint(self) -> int:
        """Seal the current segment and fold it into a new checkpoint in a child process."""
        async with self._ckpt_lock:
            started = time.monotonic()
            upto = await self.writer.roll()
            if upto <= self.checkpoint_txid:
                return self.checkpoint_txid
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "nsd.ops.checkpointer", str(self.journal_dir), str(upto)
            )
            if await proc.wait() != 0:
                raise RuntimeError(f"checkpointer exited with {proc.returncode}")
            self._checkpoint_written(upto, started)
            if self.on_checkpoint is not None:
                await self.on_checkpoint(upto, self.journal_dir / checkpoint_name(upto))
            return upto

    def _checkpoint_written(self, txid: int, started: float) -> None:
        self.checkpoint_txid = txid
        self.last_checkpoint_time = time.monotonic()
        self.last_checkpoint_seconds = self.last_checkpoint_time - started
        purge(self.journal_dir)
        release_free_memory()  # the image's buffers, packed in a worker thread
        log.info("checkpoint at txid %d in %.2fs", txid, self.last_checkpoint_seconds)

    async def close(self, *, checkpoint: bool = True) -> None:
        """Flush the log; with `checkpoint`, write one straight from memory (nothing else runs now)."""
        if self._checkpointing is not None:
            await self._checkpointing
        await self.writer.close()
        if checkpoint and self.failed is None and self.writer.last_txid > self.checkpoint_txid:
            started = time.monotonic()
            await asyncio.to_thread(write_checkpoint, self.journal_dir, self.writer.last_txid, self.ns.to_image())
            self._checkpoint_written(self.writer.last_txid, started)
