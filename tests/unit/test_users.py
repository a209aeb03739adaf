"""nsd.users with a real journal: ids for names nobody knows, given once and kept for good."""

from __future__ import annotations

import asyncio
import stat as st
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from goldens import load_golden
from vfsenv import close_vfs, open_vfs

from nsd import errors
from nsd.journal.checkpoint import list_checkpoints, read_checkpoint, write_checkpoint
from nsd.journal.ops import AutoUser, decode_op
from nsd.journal.record import encode_record
from nsd.journal.segment import MAGIC, read_segment
from nsd.metastore import MetaStore, initial_checkpoint
from nsd.namespace import Namespace
from nsd.namespace.tree import IMAGE_VERSION_INTENTS, IMAGE_VERSION_USERS
from nsd.permissions import Permissions
from nsd.users import Caller, UserMap, parse_id_range

CONFIGURED = "alice=200000"  # the config holds the first id of the range: it is skipped


def user_map(unknown_users: str = "map", auto_id_range: str = "200000-200009") -> UserMap:
    return UserMap(CONFIGURED, system=False, unknown_users=unknown_users, auto_id_range=auto_id_range)


async def open_store(journal: Path) -> MetaStore:
    if not journal.exists():
        journal.mkdir()
        initial_checkpoint(journal, root_uid=0, root_gid=0)
    return await MetaStore.open(journal, fsync=False)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[MetaStore]:
    s = await open_store(tmp_path / "journal")
    yield s
    await s.close(checkpoint=False)


async def test_an_unknown_name_gets_the_lowest_free_id_as_uid_and_group(store: MetaStore) -> None:
    users = user_map()
    users.attach(store)
    assert users.user("etl") is None and users.user_name(200001) == "200001"  # cached answers...
    etl = await users.resolve("etl")
    assert (etl.name, etl.caller) == ("etl", Caller(200001, 200001, (200001,)))
    # ...are forgotten once the name has its id: both doors now show the name
    assert users.user_name(200001) == "etl" and users.group_name(200001) == "etl"
    assert users.gid_of("etl") == 200001 and users.user("200001") == etl
    assert (await users.resolve("bob")).caller.uid == 200002
    last = store.writer.last_txid
    assert await users.resolve("etl") == etl and store.writer.last_txid == last  # given once
    assert users.auto_users() == [
        {"name": "etl", "uid": 200001, "gid": 200001, "group": "etl"},
        {"name": "bob", "uid": 200002, "gid": 200002, "group": "bob"},
    ]
    assert store.writer.durable_txid == last  # durable before resolve() returned
    store.ns.check()


async def test_concurrent_first_calls_by_one_name_share_one_id(store: MetaStore) -> None:
    users = user_map()
    users.attach(store)
    first = store.writer.last_txid
    found = await asyncio.gather(*(users.resolve(name) for name in ["carol"] * 5 + ["dave"] * 3))
    assert {u.caller.uid for u in found[:5]} == {200001} and {u.caller.uid for u in found[5:]} == {200002}
    assert store.writer.last_txid == first + 2  # one record per name


async def test_ids_survive_a_restart_and_a_checkpoint(tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    store = await open_store(journal)
    users = user_map()
    users.attach(store)
    await users.resolve("etl")
    await store.close(checkpoint=False)  # from the log alone

    store = await open_store(journal)
    users = user_map()
    users.attach(store)
    assert users.user("etl") is not None and users.user("etl").caller.uid == 200001  # type: ignore[union-attr]
    assert (await users.resolve("bob")).caller.uid == 200002  # 200001 stays etl's
    await store.checkpoint()  # folded by the child process, as the daemon does
    await store.close(checkpoint=False)
    header = next(iter(read_checkpoint(list_checkpoints(journal)[-1][1])[1]))
    assert header["version"] == IMAGE_VERSION_USERS and header["auto_users"] == [["etl", 200001], ["bob", 200002]]

    store = await open_store(journal)
    users = user_map()
    users.attach(store)
    assert [(u["name"], u["uid"]) for u in users.auto_users()] == [("etl", 200001), ("bob", 200002)]
    await store.close(checkpoint=False)


async def test_a_used_up_range_is_a_clear_refusal_that_changes_nothing(store: MetaStore) -> None:
    users = user_map(auto_id_range="200000-200001")
    users.attach(store)
    await users.resolve("etl")
    last = store.writer.last_txid
    with pytest.raises(errors.Denied) as e:
        await users.resolve("bob")
    assert e.value.message == (
        "Unknown user bob: every id in auto_id_range 200000-200001 is taken; widen auto_id_range"
    )
    assert store.writer.last_txid == last and users.user("bob") is None


async def test_refuse_mode_names_the_setting_and_keeps_earlier_ids(store: MetaStore) -> None:
    mapping = user_map()
    mapping.attach(store)
    await mapping.resolve("etl")
    refusing = user_map(unknown_users="refuse")
    refusing.attach(store)
    with pytest.raises(errors.Denied) as e:
        await refusing.resolve("bob")
    assert e.value.message == "Unknown user: bob (unknown_users = refuse)"
    assert (await refusing.resolve("etl")).caller.uid == 200001


async def test_names_hadoop_would_refuse_get_no_id(store: MetaStore) -> None:
    users = UserMap(system=False, reserved=frozenset({"supergroup"}))
    users.attach(store)
    last = store.writer.last_txid
    for bad in ("bad name", "a:b", "-dash", "x" * 256, "é"):
        with pytest.raises(errors.Invalid, match="invalid user name"):
            await users.resolve(bad)
    with pytest.raises(errors.Denied, match="the supergroup's name is never given an id"):
        await users.resolve_group("supergroup")
    assert store.writer.last_txid == last


def test_bad_settings_are_one_line_errors() -> None:
    assert parse_id_range(" 200000 - 299999 ") == (200000, 299999)
    for bad in ("", "200000", "5-10", "300000-200000", "1000-4294967295", "a-b"):
        with pytest.raises(errors.Invalid, match="auto_id_range"):
            parse_id_range(bad)
    with pytest.raises(errors.Invalid, match="unknown_users must be one of map, refuse"):
        UserMap(unknown_users="maybe")


async def test_without_a_journal_unknown_names_stay_unknown() -> None:
    with pytest.raises(errors.Denied, match="Unknown user: etl"):
        await user_map().resolve("etl")


def test_the_map_is_checked_on_replay_and_in_images() -> None:
    ns = Namespace()
    ns.apply(AutoUser("etl", 200001))
    for bad in (AutoUser("etl", 200002), AutoUser("bob", 200001), AutoUser("bad name", 200003)):
        with pytest.raises(errors.Corrupt):
            ns.apply(bad)
    chunks = list(ns.to_image())
    assert chunks[0]["version"] == IMAGE_VERSION_USERS
    assert Namespace.from_image(chunks).auto_users == {"etl": 200001}
    chunks[0]["version"] = IMAGE_VERSION_INTENTS
    with pytest.raises(errors.Corrupt, match="auto_users in a version 4 image"):
        Namespace.from_image(chunks)


async def test_two_unknown_users_are_kept_apart_like_known_ones(tmp_path: Path) -> None:
    """etl's directory 0755 lets bob look but not write, worded with both names."""
    users = user_map()
    vfs = await open_vfs(tmp_path, owner=Caller(0, 0), perms=Permissions(users))
    try:
        etl, bob = (await users.resolve("etl")).caller, (await users.resolve("bob")).caller
        await vfs.mkdir("/shared", caller=Caller(0, 0), mode=0o777)
        node = await vfs.mkdir("/shared/etl", caller=etl, mode=0o755)
        assert (node.uid, node.gid) == (200001, 200001)
        assert [name for name, _ in await vfs.list("/shared/etl", caller=bob)] == []
        with pytest.raises(errors.Denied) as e:
            await vfs.mkdir("/shared/etl/x", caller=bob, mode=0o755)
        assert e.value.message == (
            'Permission denied: user=bob, access=WRITE_EXECUTE, inode="/shared/etl":etl:etl:drwxr-xr-x'
        )
        await vfs.mkdir("/shared/etl/mine", caller=etl, mode=0o700)
        assert st.S_IMODE((await vfs.stat("/shared/etl/mine", caller=etl)).mode) == 0o700
    finally:
        await close_vfs(vfs)


def test_golden_auto_user_segment_and_image(tmp_path: Path) -> None:
    """tests/golden/journal/auto_user pins op 32 and image version 5 (see make_golden.py)."""
    g = load_golden()
    segment = g.AUTO_USER_DIR / g.SEGMENT_NAME
    sr = read_segment(segment, is_last=True)
    assert [(r.txid, decode_op(r.code, r.payload)) for r in sr.records] == g.AUTO_USER_OPS
    assert MAGIC + b"".join(encode_record(t, op.CODE, op.encode()) for t, op in g.AUTO_USER_OPS) == segment.read_bytes()
    txid, chunks = read_checkpoint(list_checkpoints(g.AUTO_USER_DIR)[-1][1])
    assert (txid, list(chunks)) == (g.AUTO_USER_CHECKPOINT_TXID, g.AUTO_USER_CHUNKS)
    again = write_checkpoint(tmp_path, g.AUTO_USER_CHECKPOINT_TXID, g.AUTO_USER_CHUNKS)
    assert again.read_bytes() == list_checkpoints(g.AUTO_USER_DIR)[-1][1].read_bytes()
    # today's code writes the same image from the same ops, and reads it back
    ns = Namespace(time_ns=g.T0)
    for _, op in g.AUTO_USER_OPS:
        ns.apply(op)
    assert list(ns.to_image()) == g.AUTO_USER_CHUNKS
    assert Namespace.from_image(g.AUTO_USER_CHUNKS).auto_users == {"etl": 200000, "bob": 200001}
