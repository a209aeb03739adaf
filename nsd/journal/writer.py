"""The journal writer: synchronous append, group-committed durability.

Theory of operation. `append` frames the op into an in-memory buffer and hands out the next
txid at once, so journal order is the order in which the caller applied ops. `sync(txid)`
parks the caller until that txid is on disk. A single flusher task owns the file: it swaps
the buffer out, writes it and fdatasyncs it in its own worker thread, then wakes every
waiter the batch covered. Appends made while it waits pile up for the next batch, so under
load many callers share one fsync.

A failed fsync is final (the kernel may have dropped the pages, and retrying would claim
durability it cannot prove): the writer is marked failed, every waiter and later caller gets
JournalFailed, and `on_fatal` is told once. So is a failed write, with one exception: a write
refused for lack of space (ENOSPC, EDQUOT) wrote nothing that counts. The segment is cut back to
its last whole batch, the batch is kept, the writer says it is `full`, and the flush is retried
with backoff; waiters keep waiting (nothing is acknowledged early, nothing is lost) and are
answered once space returns. A new segment that cannot be created for lack of space is not
fatal either: the current one grows until a later roll succeeds.

Space ahead: a segment's file is made `ALLOCATE_AHEAD` bytes longer than its records whenever
they reach its end (zeros, which reading takes for the end; `segment.allocate_ahead` says why),
and cut back to its records when sealed or closed.

Replication (cluster mode): a `sink`, if set, is awaited with each batch (first txid, last txid,
the framed records) after the local write and before any waiter is woken, so nothing is
acknowledged before the sink has it too. A sink that raises fails the writer like a failed fsync.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import heapq
import itertools
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from nsd.errors import JournalCorrupt, JournalFailed
from nsd.journal.ops import Op
from nsd.journal.record import encode_record_into
from nsd.journal.segment import MAGIC, allocate_ahead, create_segment, list_segments, read_segment, segment_name
from nsd.threads import Workers

log = logging.getLogger(__name__)

NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
ALLOCATE_AHEAD = 1 << 20  # one longer fdatasync (the new size) per ~4,000 records of ~250 bytes
FULL_RETRY_FIRST, FULL_RETRY_MAX = 0.05, 2.0


Sink = Callable[[int, int, bytes], Awaitable[None]]


class JournalFull(OSError):
    """A batch did not fit on the journal's disk; the segment was cut back to before it."""


@dataclass
class WriterStats:
    """Counters for metrics; plain ints, updated on the event loop."""

    appends: int = 0
    bytes_appended: int = 0
    batches: int = 0  # flushes that wrote something
    batch_records_total: int = 0  # / batches = mean batch size
    last_batch_records: int = 0
    max_batch_records: int = 0
    fsyncs: int = 0
    last_fsync_seconds: float = 0.0
    max_fsync_seconds: float = 0.0
    rolls: int = 0
    full_refusals: int = 0  # batches the disk had no room for (each retried later)


class JournalWriter:
    """Appends ops to the segments in `dir`, starting at txid `next_txid`.

    Opening reads the newest segment: if its records end at next_txid - 1 the writer appends
    to it, otherwise it starts a new segment named after next_txid. A torn tail must have
    been cut by recovery first (JournalCorrupt otherwise); a segment already holding
    next_txid is refused with ValueError. `fsync=False` is for tests and benchmarks only.
    """

    def __init__(
        self,
        dir: Path,
        next_txid: int,
        *,
        segment_bytes: int = 64 << 20,
        fsync: bool = True,
        on_fatal: Callable[[BaseException], None] | None = None,
    ) -> None:
        if next_txid < 1:
            raise ValueError(f"txids start at 1, not {next_txid}")
        self._dir = dir
        self._segment_bytes = segment_bytes
        self._fsync = fsync
        self.on_fatal = on_fatal  # may be set after construction; called once, on the loop
        self.sink: Sink | None = None  # awaited with every batch before it counts as durable
        self._next = next_txid
        self._durable = next_txid - 1
        self._buf = bytearray()
        self._buf_records = 0
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []  # heap by txid
        self._seq = itertools.count()
        self._flush_task: asyncio.Task[None] | None = None
        self._io = asyncio.Lock()  # held by whoever is using the file: a flush or a roll
        self._thread = Workers("nsd-journal", 1)  # one thread: batches are written in order
        self._failed: BaseException | None = None
        self._closed = False
        self.full: str | None = None  # why the last batch did not fit, until one does
        self._full_delay = FULL_RETRY_FIRST
        self._roll_failed = False
        self.stats = WriterStats()
        self._ahead = min(ALLOCATE_AHEAD, segment_bytes)
        self._seg_end = 0  # the segment file's length (records, then zeros); the journal thread's
        self._fd, self._seg_first, self._seg_size, self._seg_records = self._open_segment(next_txid)

    def _open_segment(self, next_txid: int) -> tuple[int, int, int, int]:
        segs = list_segments(self._dir)
        if segs:
            first, path = segs[-1]
            sr = read_segment(path, is_last=True)
            if sr.torn_at is not None:
                msg = "torn tail not cut; run recovery first"
                raise JournalCorrupt(msg, file=str(path), offset=sr.torn_at)
            if sr.last_txid >= next_txid:
                msg = f"{path.name} already holds txid {sr.last_txid}; cannot start at {next_txid}"
                raise ValueError(msg)
            if sr.last_txid == next_txid - 1:
                fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
                self._seg_end = sr.size
                return fd, first, sr.valid_end, len(sr.records)
        fd = self._create_segment(next_txid)
        return fd, next_txid, len(MAGIC), 0

    def _create_segment(self, first: int) -> int:
        fd = create_segment(self._dir, first, fsync=self._fsync, allocate=self._ahead)
        self._seg_end = os.fstat(fd).st_size
        return fd

    @property
    def last_txid(self) -> int:
        """The txid of the last append (durable or not)."""
        return self._next - 1

    @property
    def durable_txid(self) -> int:
        """Every txid up to this one is on disk."""
        return self._durable

    @property
    def failed(self) -> bool:
        return self._failed is not None

    @property
    def segment_first_txid(self) -> int:
        """Name of the segment being written."""
        return self._seg_first

    def _check_usable(self) -> None:
        if self._failed is not None:
            raise JournalFailed(f"journal failed: {self._failed}") from self._failed
        if self._closed:
            raise JournalFailed("journal writer is closed")

    def append(self, op: Op) -> int:
        """Frame `op` into the pending batch and return its txid. Not durable until `sync`.

        Cost: one msgpack encode and one crc; no I/O. An op that cannot be encoded raises
        without using up a txid.
        """
        self._check_usable()
        payload = op.encode()
        txid = self._next
        self.stats.bytes_appended += encode_record_into(self._buf, txid, op.CODE, payload)
        self._next = txid + 1
        self._buf_records += 1
        self.stats.appends += 1
        self._kick()
        return txid

    async def sync(self, txid: int) -> None:
        """Return once `txid` (and every txid before it) is durable; JournalFailed if it never will be."""
        if txid <= self._durable:
            return
        self._check_usable()
        if txid >= self._next:
            raise ValueError(f"txid {txid} was never appended (last is {self._next - 1})")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (txid, next(self._seq), fut))
        self._kick()
        await fut

    async def roll(self) -> int:
        """Flush, seal the current segment and start the next; returns the sealed segment's last txid.

        Ops appended while the roll runs land in the new segment. Rolling a segment with no
        records is a no-op (its name is already the next txid).
        """
        self._check_usable()
        async with self._io:
            await self._flush_locked()
            if self.full is not None:
                raise JournalFull(errno.ENOSPC, f"journal disk full, cannot roll: {self.full}")
            sealed = self._durable
            await self._roll_locked()
            if self._roll_failed:
                raise JournalFull(errno.ENOSPC, "journal disk full: no room for a new segment")
        self._check_usable()
        return sealed

    async def close(self, full_grace: float = 10.0) -> None:
        """Make every appended op durable, then release the file. Raises JournalFailed if that fails.

        If the disk is full, waits up to `full_grace` seconds for room, then gives up: the ops
        not yet written were never acknowledged, so the writer fails rather than wait forever.
        """
        if self._closed:
            return
        try:
            if self._failed is None and self.last_txid > self._durable:
                try:
                    await asyncio.wait_for(self.sync(self.last_txid), full_grace)
                except TimeoutError:
                    lost = self.last_txid - self._durable
                    self._fail(JournalFull(errno.ENOSPC, f"closed with the disk full; {lost} op(s) never written"))
                    raise JournalFailed(f"journal disk full at close: {lost} unacknowledged op(s) dropped") from None
        finally:
            self._closed = True
            if self._flush_task is not None:
                await asyncio.wait([self._flush_task])
            async with self._io:
                if self._failed is None:
                    with contextlib.suppress(OSError):  # tidiness only: reading stops at the zeros
                        os.ftruncate(self._fd, self._seg_size)
                os.close(self._fd)
            self._thread.close()

    # -- the flusher -------------------------------------------------------------------

    def _kick(self) -> None:
        """Start the flusher if there is work and it is not running (no-op outside an event loop)."""
        if self._flush_task is not None or not self._buf or self._failed is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # appended outside a loop: the next sync, roll or close flushes it
        self._flush_task = loop.create_task(self._flush_loop())

    async def _flush_loop(self) -> None:
        try:
            while self._buf and self._failed is None:
                async with self._io:
                    await self._flush_locked()
                    if self._failed is None and self.full is None and self._seg_size >= self._segment_bytes:
                        await self._roll_locked()
                if self.full is not None:
                    await asyncio.sleep(self._full_delay)
                    self._full_delay = min(self._full_delay * 2, FULL_RETRY_MAX)
        finally:
            self._flush_task = None

    async def _flush_locked(self) -> None:
        """Write and sync the whole pending buffer as one batch, then wake the waiters it covers."""
        if not self._buf or self._failed is not None:
            return
        data, self._buf = self._buf, bytearray()
        records, self._buf_records = self._buf_records, 0
        last = self._next - 1  # appends made from here on go to the next batch
        try:
            fsync_seconds = await self._thread.run(self._write, self._fd, data, self._seg_size)
        except JournalFull as e:
            # Nothing of this batch counts: keep it, ahead of what was appended meanwhile.
            self._buf[:0] = data
            self._buf_records += records
            self.stats.full_refusals += 1
            if self.full is None:
                log.error("journal disk full: %s; holding %d record(s) until there is room", e.strerror, records)
            self.full = e.strerror
            return
        except Exception as e:
            self._fail(e)
            return
        if self.sink is not None:
            try:
                await self.sink(last - records + 1, last, bytes(data))
            except Exception as e:
                self._fail(e)
                return
        if self.full is not None:
            log.warning("journal disk has room again; %d record(s) written", records)
            self.full = None
            self._full_delay = FULL_RETRY_FIRST
        self._seg_size += len(data)
        self._seg_records += records
        self._durable = last
        st = self.stats
        st.batches += 1
        st.batch_records_total += records
        st.last_batch_records = records
        st.max_batch_records = max(st.max_batch_records, records)
        if fsync_seconds is not None:
            st.fsyncs += 1
            st.last_fsync_seconds = fsync_seconds
            st.max_fsync_seconds = max(st.max_fsync_seconds, fsync_seconds)
        while self._waiters and self._waiters[0][0] <= last:
            fut = heapq.heappop(self._waiters)[2]
            if not fut.done():
                fut.set_result(None)

    def _write(self, fd: int, data: bytearray, size_before: int) -> float | None:
        """Runs in the executor thread: `data` at offset `size_before`, the end of the records.
        Returns the fdatasync time, or None without fsync.

        A write refused for lack of space cuts the file back to `size_before` (so no partial
        record stays ahead of later ones) and raises JournalFull."""
        end = size_before + len(data)
        if end >= self._seg_end and allocate_ahead(fd, self._seg_end, end + self._ahead):
            self._seg_end = end + self._ahead
        with memoryview(data) as view:
            done = 0
            try:
                while done < len(view):
                    n = os.pwrite(fd, view[done:], size_before + done)
                    if n <= 0:
                        raise OSError("journal write made no progress")
                    done += n
            except OSError as e:
                if e.errno not in NO_SPACE:
                    raise
                os.ftruncate(fd, size_before)  # shrinking needs no space; if this fails, the writer fails
                self._seg_end = size_before
                raise JournalFull(e.errno, f"{os.strerror(e.errno)} writing {len(data)} bytes to the journal") from e
        if not self._fsync:
            return None
        start = time.perf_counter()
        os.fdatasync(fd)
        return time.perf_counter() - start

    async def _roll_locked(self) -> None:
        """Seal the current segment and switch to a new one named after the next txid to write."""
        if self._seg_records == 0 or self._failed is not None:
            return
        first = self._durable + 1
        try:
            fd = await self._thread.run(self._seal_and_create, self._fd, self._seg_size, first)
        except JournalFull as e:
            if not self._roll_failed:
                log.error("journal disk full, staying on segment %016x: %s", self._seg_first, e.strerror)
            self._roll_failed = True
            return
        except Exception as e:
            self._fail(e)
            return
        self._roll_failed = False
        self._fd, self._seg_first, self._seg_size, self._seg_records = fd, first, len(MAGIC), 0
        self.stats.rolls += 1

    def _seal_and_create(self, old_fd: int, old_size: int, first: int) -> int:
        # The sealed segment is durable before its successor exists, so only the last
        # segment can ever hold a torn tail. It keeps only its records.
        os.ftruncate(old_fd, old_size)
        self._seg_end = old_size  # until the successor exists: a failed roll writes on here
        if self._fsync:
            os.fsync(old_fd)
        try:
            fd = self._create_segment(first)
        except OSError as e:
            if e.errno not in NO_SPACE:
                raise
            # The new segment never held a record: take it away again, keep the old one.
            (self._dir / segment_name(first)).unlink(missing_ok=True)
            raise JournalFull(e.errno, f"{os.strerror(e.errno)} creating segment {segment_name(first)}") from e
        os.close(old_fd)
        return fd

    def _fail(self, exc: BaseException) -> None:
        if self._failed is not None:
            return
        self._failed = exc
        log.critical("journal failed, nothing more can be acknowledged: %r", exc)
        waiters, self._waiters = self._waiters, []
        for _, _, fut in waiters:
            if not fut.done():
                err = JournalFailed(f"journal failed: {exc}")
                err.__cause__ = exc
                fut.set_exception(err)
        if self.on_fatal is not None:
            try:
                self.on_fatal(exc)
            except Exception:
                log.exception("on_fatal callback raised")
