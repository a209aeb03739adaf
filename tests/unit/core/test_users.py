"""Users nobody knows get a journaled id (unknown_users = map): once, for life, and the map
survives restarts and checkpoints; `refuse` names the setting."""

from __future__ import annotations

import asyncio
import pwd
from pathlib import Path

import pytest

from nsd.core.metastore import MetaStore, initial_checkpoint
from nsd.core.users import UserMap
from nsd.errors import Denied, Invalid
from nsd.journal.recovery import recover


async def open_store(journal: Path) -> MetaStore:
    if not journal.exists():
        journal.mkdir()
        initial_checkpoint(journal, root_uid=0, root_gid=0)
    return await MetaStore.open(journal, fsync=False)


def mapping_map(store: MetaStore, id_range: str = "200000-200009") -> UserMap:
    users = UserMap("alice=3001", system=False, unknown_users="map", auto_id_range=id_range)
    users.bind(store)
    return users


async def test_a_new_name_is_mapped_once_and_shows_everywhere(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "j")
    users = mapping_map(store)
    assert users.user("etl") is None and users.user_name(200000) == "200000"  # asked before: cached
    found = await asyncio.gather(*(users.resolve("etl") for _ in range(5)))  # concurrent first calls
    assert {(u.name, u.caller.uid, u.caller.gid, u.caller.gids) for u in found} == {("etl", 200000, 200000, (200000,))}
    assert (await users.resolve("bob")).caller.uid == 200001
    assert (await users.resolve("alice")).caller.uid == 3001  # configured: not mapped
    assert users.user_name(200000) == "etl" and users.group_name(200000) == "etl"
    assert users.uid_of("etl") == 200000 and users.gid_of("etl") == 200000
    assert users.mapped() == [("etl", 200000), ("bob", 200001)]
    await store.close(checkpoint=False)
    ops = [type(op).__name__ for _, op in recover(tmp_path / "j").ops]
    assert ops == ["MapUser", "MapUser"]  # five first calls by etl, one record


@pytest.mark.parametrize("checkpoint", [False, True])
async def test_the_map_survives_a_restart_and_a_checkpoint(tmp_path: Path, checkpoint: bool) -> None:
    store = await open_store(tmp_path / "j")
    users = mapping_map(store)
    await users.resolve("etl")
    await users.resolve("bob")
    if checkpoint:
        await store.checkpoint()
    await store.close(checkpoint=False)
    if checkpoint:
        assert recover(tmp_path / "j").ops == []  # the map comes from the checkpoint image alone
    store = await open_store(tmp_path / "j")
    users = mapping_map(store)
    assert users.user_name(200001) == "bob"
    assert (await users.resolve("etl")).caller.uid == 200000
    assert (await users.resolve("carol")).caller.uid == 200002  # never an id given before
    store.ns.check()
    await store.close()


async def test_ids_of_real_accounts_are_skipped(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "j")
    users = UserMap("alice=5000:5001", "staff=5002", system=False, unknown_users="map", auto_id_range="5000-5003")
    users.bind(store)
    assert (await users.resolve("etl")).caller.uid == 5003  # configured uid, gid and group skipped
    account = pwd.getpwnam("daemon").pw_uid
    users = UserMap(unknown_users="map", auto_id_range=f"{account}-{account}")  # passwd knows it
    users.bind(store)
    with pytest.raises(Denied, match="is used up"):
        await users.resolve("bob")
    await store.close()


async def test_a_used_up_range_is_a_clear_refusal_and_changes_nothing(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "j")
    users = mapping_map(store, "200000-200000")
    await users.resolve("etl")
    with pytest.raises(Denied) as e:
        await users.resolve("bob")
    assert e.value.message == (
        "cannot map user bob: auto_id_range 200000-200000 is used up; widen it or add the user to `users`"
    )
    assert users.user("bob") is None and users.mapped() == [("etl", 200000)]
    await store.close()


async def test_refuse_mode_names_the_setting(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "j")
    users = UserMap("alice=3001", system=False, unknown_users="refuse")
    users.bind(store)
    with pytest.raises(Denied) as e:
        await users.resolve("etl")
    assert e.value.message == "Unknown user: etl (unknown_users = refuse: add it to `users` or set unknown_users = map)"
    assert (await users.resolve("alice")).caller.uid == 3001
    assert store.ns.auto_ids == {}
    await store.close()


async def test_a_bad_name_is_refused_not_mapped(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "j")
    users = mapping_map(store)
    with pytest.raises(Denied, match="must not contain ':'"):
        await users.resolve("etl:etl")
    assert store.ns.auto_ids == {}
    await store.close()


def test_bad_settings() -> None:
    with pytest.raises(Invalid, match="unknown_users must be one of map, refuse"):
        UserMap(unknown_users="allow")
    with pytest.raises(Invalid, match="auto_id_range"):
        UserMap(auto_id_range="300000-200000")
