"""Inode ids are reserved in the journal before a client can see them, so a crash that loses a
change a client already saw never gives its id to another object."""

from __future__ import annotations

import asyncio
import shutil
import stat
from pathlib import Path

import pytest

from nsd.core import metastore
from nsd.core.metastore import MetaStore, initial_checkpoint
from nsd.journal.checkpoint import write_checkpoint
from nsd.journal.ops import MkNode, Op, ReserveInodes
from nsd.journal.recovery import recover
from nsd.namespace import Namespace

FILE = stat.S_IFREG | 0o644


async def open_store(path: Path) -> MetaStore:
    if not path.exists():
        path.mkdir()
        initial_checkpoint(path, root_uid=0, root_gid=0)
    return await MetaStore.open(path, fsync=False)


async def create(store: MetaStore, name: str) -> int:
    (op,) = await store.mutate(lambda ns: ns.plan_mknod(1, name, FILE, 0, 0, store.now_ns()))
    assert isinstance(op, MkNode)
    return op.ino


def journal_ops(path: Path) -> list[object]:
    return [op for _, op in recover(path, cut_torn_tail=False).ops]


@pytest.fixture
def small_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs of 8 ids, the next reserved with 4 left, a change covered when 2 are."""
    monkeypatch.setattr(metastore, "INODE_IDS_RESERVED", 8)
    monkeypatch.setattr(metastore, "INODE_IDS_LOW", 4)
    monkeypatch.setattr(metastore, "INODE_IDS_PER_CHANGE", 2)


async def test_the_first_change_reserves_ids_durably_before_it_is_made(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "j")
    ino = await create(store, "a")
    await store.close(checkpoint=False)
    reserve, mknod = journal_ops(tmp_path / "j")
    assert reserve == ReserveInodes(2, 2 + metastore.INODE_IDS_RESERVED)
    assert isinstance(mknod, MkNode) and mknod.ino == ino == 2


async def test_an_id_seen_before_a_crash_lost_its_record_is_not_given_again(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "j")
    await create(store, "kept")
    # "seen" is applied (a concurrent LOOKUP would hand out its id) but its group commit has not
    # run: copy the journal as a crash at this instant would leave it.
    (seen,), _ = store._append_apply(lambda ns: ns.plan_mknod(1, "seen", FILE, 0, 0, store.now_ns()))
    assert isinstance(seen, MkNode) and store.ns.resolve("/seen").ino == seen.ino
    shutil.copytree(tmp_path / "j", tmp_path / "crashed")
    await store.close(checkpoint=False)

    after = await open_store(tmp_path / "crashed")
    with pytest.raises(Exception, match="seen"):
        after.ns.resolve("/seen")  # its record was lost
    new = await create(after, "other")
    assert new > seen.ino
    after.ns.check()
    await after.close()
    # the skip is journaled: a replay and the checkpoint written at close agree with the daemon
    again = await open_store(tmp_path / "crashed")
    assert again.ns.resolve("/other").ino == new
    assert again.ns.ino_limit >= new + 1
    await again.close(checkpoint=False)


@pytest.mark.usefixtures("small_runs")
async def test_ids_are_reserved_run_after_run_without_gaps_and_a_restart_skips_the_rest(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "j")
    inos = [await create(store, f"f{i}") for i in range(20)]
    assert inos == list(range(2, 22))  # the reservations themselves take no ids
    limit = store.ns.ino_limit
    await store.close(checkpoint=False)
    reservations = [op for op in journal_ops(tmp_path / "j") if isinstance(op, ReserveInodes)]
    assert [r.first for r in reservations] == [2, 7, 12, 17]  # each once fewer than 4 of 8 were left
    assert limit == reservations[-1].limit == 25

    store = await open_store(tmp_path / "j")
    assert await create(store, "after") == limit  # 22..24 may have been shown: skipped
    replayed = Namespace()
    for op in journal_ops(tmp_path / "j"):
        replayed.apply(op)  # type: ignore[arg-type]
    assert replayed.resolve("/after").ino == limit
    await store.close(checkpoint=False)


@pytest.mark.usefixtures("small_runs")
async def test_a_burst_of_changes_waits_for_its_reservation_instead_of_outrunning_it(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "j")
    reserved: list[tuple[int, ReserveInodes]] = []  # (txid, op)
    apply = store.ns.apply

    def watched(op: Op) -> None:
        if isinstance(op, ReserveInodes):
            reserved.append((store.writer.last_txid, op))
        elif isinstance(op, MkNode):  # shown to clients from now on: its reservation is on disk
            txid = next(t for t, r in reserved if r.first <= op.ino < r.limit)
            assert txid <= store.writer.durable_txid, f"id {op.ino} given before its reservation was durable"
        apply(op)

    store.ns.apply = watched  # type: ignore[method-assign]
    inos = await asyncio.gather(*(create(store, f"f{i}") for i in range(30)))  # one loop step each
    assert sorted(inos) == list(range(2, 32))
    assert len(reserved) >= 30 // 8
    await store.close(checkpoint=False)


def replicate(source: MetaStore, to: MetaStore) -> None:
    """Give `to` the records of `source` it lacks, as a follower takes them from etcd."""
    for txid, op in recover(source.journal_dir, cut_torn_tail=False).ops:
        if txid > to.writer.last_txid:
            to.apply_replicated(txid, op)


async def test_a_node_that_leads_again_skips_the_reservation_of_the_leader_between(tmp_path: Path) -> None:
    first = await open_store(tmp_path / "first")
    await create(first, "a")  # under its own reservation
    second = await open_store(tmp_path / "second")
    replicate(first, second)
    assert await create(second, "b") == first.ns.ino_limit  # the second leads: it skips the first's run
    replicate(second, first)  # the first follows
    # the second shows a client one more id whose record never reaches the others, and dies
    (shown,), _ = second._append_apply(lambda ns: ns.plan_mknod(1, "shown", FILE, 0, 0, second.now_ns()))
    assert isinstance(shown, MkNode)
    # the first leads again: its next id is above everything the second reserved
    assert await create(first, "c") == second.ns.ino_limit > shown.ino
    first.ns.check()
    await first.close(checkpoint=False)
    await second.close(checkpoint=False)


async def test_a_journal_from_before_reservations_starts_reserving_where_it_ends(tmp_path: Path) -> None:
    journal = tmp_path / "j"
    journal.mkdir()
    ns = Namespace()
    ns.apply(MkNode(1, "old", 2, FILE, 0, 0, 1))
    write_checkpoint(journal, 0, ns.to_image())
    store = await MetaStore.open(journal, fsync=False)
    assert store.ns.ino_limit == 0
    assert await create(store, "new") == 3
    await store.close(checkpoint=False)
