"""The group-commit writer: durability points, batching, failure, rolling and reopening."""

from __future__ import annotations

import asyncio
import errno
import itertools
import os
import threading
from pathlib import Path

import pytest
from goldens import GOLDEN, load_golden

from nsd.errors import JournalCorrupt, JournalFailed
from nsd.journal.ops import MkNode, Op
from nsd.journal.recovery import recover
from nsd.journal.segment import MAGIC, list_segments, read_segment, segment_name
from nsd.journal.writer import JournalWriter


def op_for(txid: int) -> Op:
    return MkNode(1, f"f{txid}", txid + 100, 0o100644, 1000, 100, 1_000_000 + txid)


def logged(dir: Path) -> list[tuple[int, Op]]:
    return recover(dir, cut_torn_tail=False).ops


class CountingSync:
    """Stands in for os.fdatasync: counts calls, can hold them until released, can fail."""

    def __init__(self, real: object, *, fail: bool = False, hold: bool = False) -> None:
        self.real = real
        self.calls = 0
        self.fail = fail
        self.release = threading.Event()
        if not hold:
            self.release.set()

    def __call__(self, fd: int) -> None:
        self.calls += 1
        assert self.release.wait(10)
        if self.fail:
            raise OSError(errno.EIO, "injected fdatasync failure")
        self.real(fd)  # type: ignore[operator]


@pytest.fixture
def fdatasync(monkeypatch: pytest.MonkeyPatch) -> CountingSync:
    counter = CountingSync(os.fdatasync)
    monkeypatch.setattr(os, "fdatasync", counter)
    return counter


async def test_append_assigns_consecutive_txids_and_sync_makes_them_durable(
    tmp_path: Path, fdatasync: CountingSync
) -> None:
    w = JournalWriter(tmp_path, 1)
    txids = [w.append(op_for(t)) for t in range(1, 6)]
    assert txids == [1, 2, 3, 4, 5]
    assert w.last_txid == 5
    await w.sync(3)
    assert w.durable_txid == 5  # the whole pending buffer went in one batch
    assert fdatasync.calls == w.stats.fsyncs == 1
    assert logged(tmp_path) == [(t, op_for(t)) for t in range(1, 6)]
    await w.close()


async def test_sync_returns_only_after_the_fsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    held = CountingSync(os.fdatasync, hold=True)
    monkeypatch.setattr(os, "fdatasync", held)
    w = JournalWriter(tmp_path, 1)
    waiter = asyncio.create_task(w.sync(w.append(op_for(1))))
    await asyncio.sleep(0.05)
    assert not waiter.done() and w.durable_txid == 0 and held.calls == 1
    held.release.set()
    await asyncio.wait_for(waiter, 10)
    assert w.durable_txid == 1
    await w.close()


async def test_group_commit_batches_concurrent_appenders(tmp_path: Path, fdatasync: CountingSync) -> None:
    w = JournalWriter(tmp_path, 1)
    rounds = 8

    async def appender(k: int) -> list[int]:
        mine = []
        for _ in range(rounds):
            txid = w.append(op_for(1))
            await w.sync(txid)
            assert w.durable_txid >= txid
            mine.append(txid)
        return mine

    results = await asyncio.gather(*(appender(k) for k in range(64)))
    assert sorted(t for r in results for t in r) == list(range(1, 64 * rounds + 1))
    st = w.stats
    assert st.appends == 64 * rounds
    assert st.fsyncs == fdatasync.calls == st.batches
    assert st.fsyncs <= st.appends // 16  # one fsync serves many callers
    assert st.max_batch_records >= 32
    assert st.batch_records_total == st.appends
    assert st.last_fsync_seconds > 0
    await w.close()
    assert len(logged(tmp_path)) == 64 * rounds


async def test_failed_fsync_fails_every_waiter_and_every_later_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fatal: list[BaseException] = []
    w = JournalWriter(tmp_path, 1, on_fatal=fatal.append)
    await w.sync(w.append(op_for(1)))  # durable before the disk goes bad
    monkeypatch.setattr(os, "fdatasync", CountingSync(os.fdatasync, fail=True))

    async def appender() -> None:
        await w.sync(w.append(op_for(2)))

    results = await asyncio.gather(*(appender() for _ in range(10)), return_exceptions=True)
    assert len(results) == 10 and all(isinstance(r, JournalFailed) for r in results)
    assert w.failed
    assert len(fatal) == 1 and isinstance(fatal[0], OSError)
    with pytest.raises(JournalFailed):
        w.append(op_for(12))
    with pytest.raises(JournalFailed):
        await w.sync(5)
    with pytest.raises(JournalFailed):
        await w.roll()
    await w.sync(1)  # what was durable stays durable
    assert w.durable_txid == 1
    await w.close()
    assert len(fatal) == 1


async def test_failed_write_fails_the_writer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fatal: list[BaseException] = []
    w = JournalWriter(tmp_path, 1, fsync=False)
    w.on_fatal = fatal.append

    real_pwrite = os.pwrite
    segment_fd = w._fd

    def broken(fd: int, data: bytes, offset: int) -> int:
        if fd == segment_fd:
            raise OSError(errno.EIO, "disk broken")
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", broken)
    with pytest.raises(JournalFailed):
        await w.sync(w.append(op_for(1)))
    assert len(fatal) == 1 and fatal[0].errno == errno.EIO  # type: ignore[attr-defined]
    with pytest.raises(JournalFailed):
        w.append(op_for(2))
    await w.close()


class Disk:
    """Stands in for os.pwrite on one fd: a disk that fills up after `room` bytes (part of a write
    goes through, as the kernel does), until `free()`."""

    def __init__(self, fd: int, room: int) -> None:
        self.fd, self.room, self.real = fd, room, os.pwrite
        self.refused = 0

    def __call__(self, fd: int, data: bytes, offset: int) -> int:
        if fd != self.fd or self.room is None:
            return self.real(fd, data, offset)
        if self.room == 0:
            self.refused += 1
            raise OSError(errno.ENOSPC, "No space left on device")
        n = self.real(fd, bytes(memoryview(data)[: self.room]), offset)
        self.room -= n
        return n

    def free(self) -> None:
        self.room = None  # type: ignore[assignment]


async def test_a_full_disk_holds_the_batch_until_there_is_room(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fatal: list[BaseException] = []
    w = JournalWriter(tmp_path, 1, fsync=False, on_fatal=fatal.append)
    await w.sync(w.append(op_for(1)))
    seg = tmp_path / segment_name(1)
    size_before = read_segment(seg, is_last=True).valid_end
    disk = Disk(w._fd, room=10)  # the next batch gets 10 bytes in, then the disk is full
    monkeypatch.setattr(os, "pwrite", disk)
    waiter = asyncio.ensure_future(w.sync(w.append(op_for(2))))
    for _ in range(200):
        if disk.refused >= 2:
            break
        await asyncio.sleep(0.01)
    assert not waiter.done() and w.full is not None and "No space" in w.full  # waiting, not failed
    assert seg.stat().st_size == size_before  # the partial record was cut back
    assert w.stats.full_refusals >= 2 and w.durable_txid == 1
    t3 = w.append(op_for(3))  # appends still take txids; nothing is acknowledged early
    disk.free()
    await asyncio.wait_for(waiter, 10)
    await w.sync(t3)
    assert w.full is None and not fatal
    await w.close()
    sr = read_segment(seg, is_last=True)
    assert sr.torn_at is None and [r.txid for r in sr.records] == [1, 2, 3]


async def test_no_room_for_a_new_segment_keeps_the_old_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    w = JournalWriter(tmp_path, 1, fsync=False)
    await w.sync(w.append(op_for(1)))
    real_write = os.write

    def no_magic(fd: int, data: bytes) -> int:
        if bytes(data[:8]) == MAGIC:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", no_magic)
    with pytest.raises(OSError, match="no room for a new segment"):
        await w.roll()
    assert [p.name for _, p in list_segments(tmp_path)] == [segment_name(1)]  # the half-made one is gone
    await w.sync(w.append(op_for(2)))  # the old segment takes it
    monkeypatch.setattr(os, "write", real_write)
    assert await w.roll() == 2
    await w.sync(w.append(op_for(3)))
    await w.close()
    assert [t for t, _ in logged(tmp_path)] == [1, 2, 3]
    assert [f for f, _ in list_segments(tmp_path)] == [1, 3]


async def test_closing_with_the_disk_full_gives_up_instead_of_hanging(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = JournalWriter(tmp_path, 1, fsync=False)
    monkeypatch.setattr(os, "pwrite", Disk(w._fd, room=0))
    w.append(op_for(1))
    with pytest.raises(JournalFailed, match="disk full at close"):
        await w.close(full_grace=0.3)
    assert logged(tmp_path) == []  # never acknowledged, never written


async def test_a_cancelled_waiter_does_not_disturb_the_others(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    held = CountingSync(os.fdatasync, hold=True)
    monkeypatch.setattr(os, "fdatasync", held)
    w = JournalWriter(tmp_path, 1)
    a = asyncio.create_task(w.sync(w.append(op_for(1))))
    b = asyncio.create_task(w.sync(w.append(op_for(2))))
    await asyncio.sleep(0.02)
    a.cancel()
    held.release.set()
    await asyncio.wait_for(b, 10)
    assert a.cancelled() and w.durable_txid == 2
    await w.close()


async def test_sync_of_a_txid_never_appended_is_a_bug(tmp_path: Path) -> None:
    w = JournalWriter(tmp_path, 10, fsync=False)
    await w.sync(9)  # before our first txid: trivially durable
    with pytest.raises(ValueError):
        await w.sync(10)
    await w.close()


async def test_unencodable_op_uses_no_txid(tmp_path: Path) -> None:
    w = JournalWriter(tmp_path, 1, fsync=False)
    with pytest.raises(TypeError):
        w.append(MkNode(1, object(), 2, 0, 0, 0, 0))  # type: ignore[arg-type]
    assert w.append(op_for(1)) == 1
    await w.close()
    assert logged(tmp_path) == [(1, op_for(1))]


async def test_roll_seals_and_starts_a_segment_named_after_the_next_txid(tmp_path: Path) -> None:
    w = JournalWriter(tmp_path, 1, fsync=False)
    for t in range(1, 4):
        w.append(op_for(t))
    assert await w.roll() == 3
    assert w.durable_txid == 3 and w.segment_first_txid == 4
    assert await w.roll() == 3  # nothing to seal
    assert w.stats.rolls == 1
    w.append(op_for(4))
    await w.close()
    assert [p.name for _, p in list_segments(tmp_path)] == [segment_name(1), segment_name(4)]
    assert [r.txid for r in read_segment(tmp_path / segment_name(1), is_last=False).records] == [1, 2, 3]
    assert logged(tmp_path) == [(t, op_for(t)) for t in range(1, 5)]


async def test_automatic_roll_keeps_segments_near_their_size(tmp_path: Path) -> None:
    w = JournalWriter(tmp_path, 1, segment_bytes=256, fsync=False)
    for t in range(1, 41):
        await w.sync(w.append(op_for(t)))
    await w.close()
    segs = list_segments(tmp_path)
    assert len(segs) >= 5 and w.stats.rolls == len(segs) - 1
    for (first, path), (nxt, _) in itertools.pairwise(segs):
        sr = read_segment(path, is_last=False)
        assert sr.records[0].txid == first and sr.last_txid == nxt - 1
        assert 256 <= sr.size < 256 + sr.records[-1].size  # each batch here is one record
    assert logged(tmp_path) == [(t, op_for(t)) for t in range(1, 41)]


async def test_reopen_appends_to_the_newest_segment(tmp_path: Path) -> None:
    w = JournalWriter(tmp_path, 1, fsync=False)
    w.append(op_for(1))
    w.append(op_for(2))
    await w.close()
    w = JournalWriter(tmp_path, 3, fsync=False)
    assert w.segment_first_txid == 1
    w.append(op_for(3))
    await w.close()
    assert [p.name for _, p in list_segments(tmp_path)] == [segment_name(1)]
    assert logged(tmp_path) == [(t, op_for(t)) for t in range(1, 4)]


async def test_reopen_after_a_checkpoint_beyond_the_log_starts_a_new_segment(tmp_path: Path) -> None:
    w = JournalWriter(tmp_path, 1, fsync=False)
    w.append(op_for(1))
    await w.close()
    w = JournalWriter(tmp_path, 5, fsync=False)
    assert w.segment_first_txid == 5
    await w.close()
    assert [t for t, _ in list_segments(tmp_path)] == [1, 5]
    w = JournalWriter(tmp_path, 5, fsync=False)  # the empty newest segment is reused
    assert w.segment_first_txid == 5
    await w.close()


def test_reopen_refuses_overlap_and_an_uncut_torn_tail(tmp_path: Path) -> None:
    path = tmp_path / segment_name(1)
    op = op_for(1)
    from nsd.journal.record import encode_record

    path.write_bytes(MAGIC + encode_record(1, op.CODE, op.encode()) + encode_record(2, op.CODE, op.encode()))
    with pytest.raises(ValueError):
        JournalWriter(tmp_path, 2, fsync=False)
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(JournalCorrupt):
        JournalWriter(tmp_path, 2, fsync=False)


async def test_close_flushes_unsynced_appends_and_ends_the_writer(tmp_path: Path) -> None:
    w = JournalWriter(tmp_path, 1)
    w.append(op_for(1))
    w.append(op_for(2))
    await w.close()
    await w.close()
    assert w.durable_txid == 2
    with pytest.raises(JournalFailed):
        w.append(op_for(3))
    assert logged(tmp_path) == [(1, op_for(1)), (2, op_for(2))]


async def test_no_fsync_mode_never_syncs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "fdatasync", CountingSync(os.fdatasync, fail=True))
    w = JournalWriter(tmp_path, 1, fsync=False)
    await w.sync(w.append(op_for(1)))
    assert w.stats.fsyncs == 0 and w.stats.batches == 1
    await w.close()


async def test_writer_output_is_the_golden_segment(tmp_path: Path) -> None:
    g = load_golden()
    w = JournalWriter(tmp_path, 1, fsync=False)
    for txid, op in g.GOLDEN_OPS:
        assert w.append(op) == txid
    await w.close()
    assert (tmp_path / g.SEGMENT_NAME).read_bytes() == (GOLDEN / "journal" / g.SEGMENT_NAME).read_bytes()


def _zeros_after_records(path: Path) -> tuple[int, int]:
    """(end of the records, length of the file); asserts that only zeros lie between."""
    sr = read_segment(path, is_last=True)
    data = path.read_bytes()
    assert sr.torn_at is None and not any(data[sr.valid_end :])
    return sr.valid_end, len(data)


async def test_a_segment_is_allocated_ahead_and_cut_back_to_its_records(tmp_path: Path) -> None:
    w = JournalWriter(tmp_path, 1, fsync=False, segment_bytes=1 << 16)
    first = tmp_path / segment_name(1)
    assert _zeros_after_records(first) == (len(MAGIC), 1 << 16)  # ahead: at most segment_bytes
    await w.sync(w.append(op_for(1)))
    end, size = _zeros_after_records(first)
    assert len(MAGIC) < end < size == 1 << 16
    assert await w.roll() == 1
    assert first.stat().st_size == end  # sealed: its records only
    await w.sync(w.append(op_for(2)))
    second = tmp_path / segment_name(2)
    assert _zeros_after_records(second)[1] == 1 << 16
    await w.close()
    assert second.stat().st_size == read_segment(second, is_last=True).valid_end  # closed: the same
    assert [t for t, _ in logged(tmp_path)] == [1, 2]


async def test_records_beyond_the_allocated_space_allocate_more(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("nsd.journal.writer.ALLOCATE_AHEAD", 256)
    w = JournalWriter(tmp_path, 1, fsync=False)
    seg = tmp_path / segment_name(1)
    sizes = set()
    for t in range(1, 41):
        await w.sync(w.append(op_for(t)))
        end, size = _zeros_after_records(seg)
        assert end < size <= end + 256  # zeros after the records, never more than ahead
        sizes.add(size)
    assert len(sizes) > 5  # grew step by step, not once
    await w.close()
    assert [t for t, _ in logged(tmp_path)] == list(range(1, 41))


async def test_no_room_to_allocate_ahead_writes_all_the_same(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_pwrite = os.pwrite

    def no_room_for_zeros(fd: int, data: bytes, offset: int) -> int:
        if len(data) > 4096 and not any(data):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", no_room_for_zeros)
    w = JournalWriter(tmp_path, 1)
    for t in range(1, 4):
        await w.sync(w.append(op_for(t)))
    seg = tmp_path / segment_name(1)
    assert _zeros_after_records(seg)[0] == seg.stat().st_size  # no space ahead: the file grew as written
    assert w.full is None and not w.failed
    await w.close()
    assert [t for t, _ in logged(tmp_path)] == [1, 2, 3]


async def test_after_a_crash_the_space_ahead_is_no_torn_tail_and_is_written_next(tmp_path: Path) -> None:
    w = JournalWriter(tmp_path, 1)
    for t in range(1, 3):
        await w.sync(w.append(op_for(t)))
    os.close(w._fd)  # the process dies: no close, the zeros stay
    seg = tmp_path / segment_name(1)
    end, size = _zeros_after_records(seg)
    assert end < size
    got = recover(tmp_path)
    assert got.torn == [] and [t for t, _ in got.ops] == [1, 2] and seg.stat().st_size == size
    again = JournalWriter(tmp_path, 3)
    await again.sync(again.append(op_for(3)))
    assert _zeros_after_records(seg)[0] > end
    await again.close()
    assert [t for t, _ in logged(tmp_path)] == [1, 2, 3]
    assert [f for f, _ in list_segments(tmp_path)] == [1]  # appended where the records ended
