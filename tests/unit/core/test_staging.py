"""Sparse stages: written ranges over a base read on demand, checked against a plain bytes model."""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import shutil
import stat
import tempfile
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from nsd import errors
from nsd.core import staging
from nsd.core.staging import Extents, Stage, Stager
from nsd.threads import Workers
from nsd.ufs import open_ufs
from nsd.ufs.adapters.memory import drop_store

T = TypeVar("T")


@given(hs.lists(hs.tuples(hs.integers(0, 200), hs.integers(0, 40)), max_size=30), hs.integers(0, 260))
def test_extents_match_a_set_of_offsets(ranges: list[tuple[int, int]], cut: int) -> None:
    ext, model = Extents(), set()
    for start, length in ranges:
        ext.add(start, start + length)
        model.update(range(start, start + length))
        pairs = list(zip(ext.starts, ext.ends, strict=True))
        assert all(s < e for s, e in pairs)
        assert all(e1 < s2 for (_, e1), (s2, _) in itertools.pairwise(pairs))  # disjoint, not touching
        assert {i for s, e in pairs for i in range(s, e)} == model
    pieces = ext.pieces(5, 250)
    assert pieces[0][0] == 5 and pieces[-1][1] == 250 if pieces else True
    for start, stop, covered in pieces:
        assert all((i in model) == covered for i in range(start, stop))
    ext.clip(cut)
    assert {i for s, e in zip(ext.starts, ext.ends, strict=True) for i in range(s, e)} == {i for i in model if i < cut}


def _base_of(content: bytes, calls: list[tuple[int, int]]):  # type: ignore[no-untyped-def]
    async def base(offset: int, length: int) -> bytes:
        assert offset + length <= len(content), "the stage read past the base"
        calls.append((offset, length))
        return content[offset : offset + length]

    return base


@settings(max_examples=40, deadline=None)
@given(hs.randoms(use_true_random=False), hs.integers(0, 3000))
def test_stage_reads_like_the_model(
    tmp_path_factory: pytest.TempPathFactory, rnd: random.Random, base_len: int
) -> None:
    asyncio.run(_model_run(tmp_path_factory.mktemp("stage"), rnd, base_len))


async def _model_run(tmp: Path, rnd: random.Random, base_len: int) -> None:
    content = rnd.randbytes(base_len)
    stager = Stager(tmp / "staging")
    stage = stager.open(7, _base_of(content, []), len(content))
    model = bytearray(content)
    for _ in range(rnd.randint(1, 12)):
        if rnd.random() < 0.75:
            off = rnd.randint(0, len(model) + 500)
            data = rnd.randbytes(rnd.randint(1, 700))
            await stage.write(off, data, behind=rnd.random() < 0.5)  # later calls see both alike
            if off > len(model):
                model += bytes(off - len(model))
            model[off : off + len(data)] = data
        else:
            size = rnd.randint(0, len(model) + 300)
            await stage.truncate(size)
            model = model[:size] + bytes(max(0, size - len(model)))
        assert stage.size == len(model)
        off = rnd.randint(0, len(model) + 10)
        n = rnd.randint(0, 900)
        assert await stage.read(off, n) == bytes(model[off : off + n])
    assert b"".join([c async for c in stage.chunks()]) == model
    await stage.fill()
    assert (tmp / "staging" / f"{7:016x}").read_bytes() == model  # the file alone is the content now
    assert b"".join([c async for c in stage.chunks()]) == model
    stager.drop(7)


async def test_opening_copies_nothing_and_reads_only_what_is_asked(tmp_path: Path) -> None:
    content = os.urandom(3 << 20)
    calls: list[tuple[int, int]] = []
    stage = Stager(tmp_path / "s").open(1, _base_of(content, calls), len(content))
    await stage.write(1 << 20, b"x" * 10)
    assert calls == [] and os.stat(stage.path).st_blocks * 512 <= 64 << 10  # sparse: 10 bytes staged
    assert (
        await stage.read((1 << 20) - 2, 14)
        == content[(1 << 20) - 2 : 1 << 20] + b"x" * 10 + content[(1 << 20) + 10 : (1 << 20) + 12]
    )
    assert calls == [((1 << 20) - 2, 2), ((1 << 20) + 10, 2)]


def _one_held_thread(stager: Stager) -> tuple[asyncio.Event, asyncio.Future[Any]]:
    """Give the stages one worker thread and hold it until the event is set: a write behind
    then stays queued, deterministically."""
    stager.io.workers = Workers("test-stage", 1)
    release = asyncio.Event()
    loop = asyncio.get_running_loop()
    held = asyncio.run_coroutine_threadsafe(release.wait(), loop)
    blocker = stager.io.workers.run(held.result, 10)
    return release, blocker


async def test_a_write_behind_returns_before_the_bytes_are_written_and_later_calls_wait(tmp_path: Path) -> None:
    stager = Stager(tmp_path / "s")
    stage = stager.open(1, None, 0)
    release, blocker = _one_held_thread(stager)
    await stage.write(0, b"a" * 100, behind=True)
    assert stage.size == 100 and os.stat(stage.path).st_size == 0  # answered; not written yet
    assert stager.io.bytes_behind == 100
    read = asyncio.ensure_future(stage.read(0, 100))
    second = asyncio.ensure_future(stage.write(100, b"b" * 50, behind=True))
    await asyncio.sleep(0.05)
    assert not read.done() and not second.done()
    release.set()
    await blocker
    assert await read == b"a" * 100  # a read after the reply sees the bytes, never a hole
    await second
    assert await stage.read(0, 200) == b"a" * 100 + b"b" * 50
    assert stager.io.bytes_behind == 0
    stage.check()
    stager.drop(1)


@pytest.mark.parametrize("limit", ["BEHIND_MAX_BYTES", "BEHIND_MIN_FREE_BYTES"])
async def test_past_the_memory_budget_or_near_a_full_disk_a_write_is_not_left_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: str
) -> None:
    free = shutil.disk_usage(tmp_path).free
    monkeypatch.setattr(staging, limit, 10 if limit == "BEHIND_MAX_BYTES" else free + (1 << 30))
    stager = Stager(tmp_path / "s")
    stage = stager.open(1, None, 0)
    release, blocker = _one_held_thread(stager)
    write = asyncio.ensure_future(stage.write(0, b"a" * 100, behind=True))
    await asyncio.sleep(0.05)
    assert not write.done()  # waits for its own bytes, so a failure is this call's
    release.set()
    await blocker
    await write
    assert os.stat(stage.path).st_size == 100 and stager.io.bytes_behind == 0
    stager.drop(1)


async def test_a_failed_write_behind_is_raised_once_by_the_next_change_and_reads_go_on(tmp_path: Path) -> None:
    stager = Stager(tmp_path / "s")
    stage = stager.open(1, None, 0)
    await stage.write(0, b"a" * 10)
    writable = os.dup(stage.fd)
    readonly = os.open(stage.path, os.O_RDONLY)
    try:
        os.dup2(readonly, stage.fd)  # the stage's writes now fail in the kernel (EBADF)
        await stage.write(10, b"b" * 10, behind=True)
        assert await stage.read(0, 30) == b"a" * 10 + bytes(10)  # waits; the lost range reads as a hole
        assert stage.failed is not None
        assert stager.idle(0) == []  # not sealed by the idle sealer: the writer is to learn of it
        os.dup2(writable, stage.fd)
        with pytest.raises(errors.NsdError):
            await stage.write(20, b"c")  # the next change learns of it ...
        await stage.write(20, b"c")  # ... once
        assert await stage.read(0, 30) == b"a" * 10 + bytes(10) + b"c"
        assert stager.idle(0) == [1]
    finally:
        os.close(readonly)
        os.close(writable)
    stager.drop(1)


async def test_upload_hands_the_file_over_to_a_local_store(tmp_path: Path) -> None:
    (tmp_path / "ufs").mkdir()
    ufs = open_ufs((tmp_path / "ufs").as_uri())
    old = os.urandom(100_000)
    (tmp_path / "ufs" / "f").write_bytes(old)
    stager = Stager(tmp_path / "staging")
    stage = stager.open(3, _base_of(old, []), len(old))
    await stage.write(10, b"new")
    staged_inode = os.stat(stage.path).st_ino
    status = await stage.upload(ufs, "f")
    want = old[:10] + b"new" + old[13:]
    st = os.stat(tmp_path / "ufs" / "f")
    assert (status.size, st.st_ino) == (len(want), staged_inode)  # renamed, not copied
    assert (tmp_path / "ufs" / "f").read_bytes() == want
    assert stat.S_IMODE(st.st_mode) == 0o644 & ~_umask()
    assert stage.handed_over and not stage.path.exists()
    with pytest.raises(errors.Stale):
        await stage.write(0, b"late")  # never through the fd the UFS owns now
    stager.drop(3)
    assert (tmp_path / "ufs" / "f").read_bytes() == want
    await ufs.close()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


async def test_upload_streams_where_the_store_cannot_adopt(tmp_path: Path) -> None:
    ufs = open_ufs("memory://staging-test")
    try:
        old = os.urandom(5000)
        stage = Stager(tmp_path / "staging").open(4, _base_of(old, []), len(old))
        await stage.truncate(3000)
        await stage.write(4000, b"tail")
        status = await stage.upload(ufs, "f")
        assert not stage.handed_over and stage.path.exists()
        assert status.size == 4004
        assert await ufs.read("f", 0, 5000) == old[:3000] + bytes(1000) + b"tail"
    finally:
        await ufs.close()
        drop_store("staging-test")


async def test_the_fd_outlives_calls_in_flight(tmp_path: Path) -> None:
    stager = Stager(tmp_path / "s")
    stage: Stage = stager.open(5, None, 0)
    await stage.write(0, b"a" * 1000)
    reads = [asyncio.ensure_future(stage.read(0, 1000)) for _ in range(20)]
    await asyncio.sleep(0)
    stager.drop(5)  # closes only once the reads in worker threads are done
    done = await asyncio.gather(*reads, return_exceptions=True)
    assert all(r == b"a" * 1000 or isinstance(r, errors.Stale) for r in done)
    with pytest.raises(errors.Stale):
        await stage.read(0, 10)


PICK = hs.integers(0, 5)


class StagerMachine(RuleBasedStateMachine):
    """Several stages at once, written, truncated, filled, uploaded to a local store (handed
    over) and dropped, with restarts: after every step Stager.check() holds and each open
    stage reads as a plain bytes model of its file."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.dir = Path(tempfile.mkdtemp(prefix="nsd-stager-"))
        (self.dir / "ufs").mkdir()
        self.ufs = open_ufs((self.dir / "ufs").as_uri())
        self.stager = Stager(self.dir / "staging")
        self.model: dict[int, bytearray] = {}
        self.next_ino = 1

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        for ino in list(self.stager.stages):
            self.stager.drop(ino)
        self.run(self.ufs.close())
        self.loop.close()
        shutil.rmtree(self.dir)

    def staged(self, pick: int) -> tuple[int, Stage]:
        ino = sorted(self.model)[pick % len(self.model)]
        stage = self.stager.get(ino)
        assert stage is not None
        return ino, stage

    @precondition(lambda self: len(self.model) < 3)
    @rule(base=hs.binary(max_size=300))
    def open(self, base: bytes) -> None:
        self.stager.open(self.next_ino, _base_of(base, []), len(base))
        self.model[self.next_ino] = bytearray(base)
        self.next_ino += 1

    @precondition(lambda self: self.model)
    @rule(pick=PICK, offset=hs.integers(0, 400), data=hs.binary(min_size=1, max_size=200))
    def write(self, pick: int, offset: int, data: bytes) -> None:
        ino, stage = self.staged(pick)
        self.run(stage.write(offset, data))
        model = self.model[ino]
        model.extend(bytes(max(0, offset - len(model))))
        model[offset : offset + len(data)] = data

    @precondition(lambda self: self.model)
    @rule(pick=PICK, size=hs.integers(0, 500), cut_back=hs.none() | hs.integers(0, 30))
    def truncate(self, pick: int, size: int, cut_back: int | None) -> None:
        """To `size`, or `cut_back` bytes short of the current size (into the last write)."""
        ino, stage = self.staged(pick)
        if cut_back is not None:
            size = max(0, stage.size - cut_back)
        self.run(stage.truncate(size))
        model = self.model[ino]
        del model[size:]
        model.extend(bytes(size - len(model)))

    @precondition(lambda self: self.model)
    @rule(pick=PICK)
    def fill(self, pick: int) -> None:
        ino, stage = self.staged(pick)
        self.run(stage.fill())
        assert stage.path.read_bytes() == self.model[ino]

    @precondition(lambda self: self.model)
    @rule(pick=PICK)
    def upload_and_drop(self, pick: int) -> None:
        ino, stage = self.staged(pick)
        self.run(stage.upload(self.ufs, f"f{ino}"))
        assert stage.handed_over
        self.stager.drop(ino)
        assert (self.dir / "ufs" / f"f{ino}").read_bytes() == self.model.pop(ino)

    @precondition(lambda self: self.model)
    @rule(pick=PICK)
    def drop(self, pick: int) -> None:
        ino, _ = self.staged(pick)
        self.stager.drop(ino)
        del self.model[ino]

    @rule()
    def restart(self) -> None:
        """A new life: leftover stages are deleted."""
        for stage in self.stager.stages.values():
            stage.close()
        self.stager = Stager(self.dir / "staging")
        self.model.clear()

    @invariant()
    def sound_and_like_the_model(self) -> None:
        self.stager.check()
        assert self.stager.stages.keys() == self.model.keys()
        for ino, stage in self.stager.stages.items():
            assert stage.size == len(self.model[ino])
            assert self.run(stage.read(0, stage.size + 10)) == self.model[ino]


TestStagerMachine = StagerMachine.TestCase
TestStagerMachine.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
