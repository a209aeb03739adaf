"""The vfs checks the caller on every operation, whichever door calls it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from vfsenv import chunks

from nsd import errors
from nsd.core.metastore import MetaStore, initial_checkpoint
from nsd.core.mounttable import MountTable
from nsd.core.permissions import NOW, Permissions, R, W, X
from nsd.core.users import Caller, UserMap
from nsd.daemon import assemble_vfs
from nsd.vfs import SYSTEM, Vfs

USERS = UserMap("alice=1001:1001:2000; bob=1002:1002; eve=1003:1003", "staff=2000; wheel=4000", system=False)
ALICE, BOB, EVE = Caller(1001, 1001, (1001, 2000)), Caller(1002, 1002, (1002,)), Caller(1003, 1003, (1003,))


@pytest.fixture
async def vfs(tmp_path: Path) -> AsyncIterator[Vfs]:
    journal = tmp_path / "journal"
    journal.mkdir()
    initial_checkpoint(journal, root_uid=0, root_gid=0)  # / is root's, 0755, as `nsd format` as root makes it
    (tmp_path / "ufs").mkdir()
    store = await MetaStore.open(journal, fsync=False)
    v = assemble_vfs(
        store,
        MountTable(store.ns, (tmp_path / "ufs").as_uri()),
        tmp_path / "staging",
        perms=Permissions(USERS, superusers=[], supergroups=[4000]),
    )
    # /home/alice is alice's (0755); /tmp is world-writable and sticky
    await v.mkdir("/home", caller=SYSTEM)
    home = await v.mkdir("/home/alice", caller=SYSTEM)
    await v.setattr("/home/alice", caller=SYSTEM, uid=1001, gid=2000)
    assert home.uid == 1001
    await v.mkdir("/tmp", caller=SYSTEM, mode=0o1777)
    yield v
    await v.close()
    await store.close(checkpoint=False)


async def test_create_needs_write_on_the_directory(vfs: Vfs) -> None:
    with pytest.raises(errors.Denied) as e:
        await vfs.write_file("/home/bobs-file", chunks(b"x"), caller=BOB)
    assert e.value.message == 'Permission denied: user=bob, access=WRITE_EXECUTE, inode="/home":0:0:drwxr-xr-x'
    f = await vfs.write_file("/home/alice/f", chunks(b"hi"), caller=ALICE)
    assert (f.uid, f.gid) == (1001, 1001)
    for attempt in (
        vfs.mkdir("/home/alice/d", caller=BOB),
        vfs.symlink("x", "/home/alice/l", caller=BOB),
        vfs.link("/home/alice/f", "/home/alice/f2", caller=BOB),
        vfs.create((await vfs.stat("/home/alice", caller=BOB)).ino, "g", caller=BOB),
    ):
        with pytest.raises(errors.Denied):
            await attempt
    # an existing file is found (not created) with search permission alone: UNCHECKED create
    assert (await vfs.create(f.parent.ino, "f", caller=BOB)).ino == f.ino


async def test_search_permission_on_every_component(vfs: Vfs) -> None:
    await vfs.mkdir("/home/alice/private/deeper", caller=ALICE, parents=True)
    await vfs.write_file("/home/alice/private/deeper/f", chunks(b"secret"), caller=ALICE, mode=0o644)
    await vfs.setattr("/home/alice/private", caller=ALICE, mode=0o700)
    for attempt in (
        vfs.stat("/home/alice/private/deeper/f", caller=BOB),
        read_all_as(vfs, "/home/alice/private/deeper/f", BOB),
        vfs.list("/home/alice/private/deeper", caller=BOB),
        vfs.stat("/home/alice/private/nonexistent", caller=BOB),  # EACCES before ENOENT
    ):
        with pytest.raises(errors.Denied) as e:
            await attempt
        assert "access=EXECUTE" in e.value.message and '"/home/alice/private"' in e.value.message
    private = await vfs.stat("/home/alice/private", caller=BOB)  # the directory itself is visible
    with pytest.raises(errors.Denied):
        await vfs.lookup(private.ino, "deeper", caller=BOB)
    with pytest.raises(errors.Denied):
        await vfs.readdir(private.ino, caller=BOB)
    assert await read_all_as(vfs, "/home/alice/private/deeper/f", ALICE) == b"secret"
    # a symlink does not get around it: its target is walked with the same checks
    await vfs.symlink("/home/alice/private/deeper", "/tmp/way-in", caller=BOB)
    with pytest.raises(errors.Denied):
        await vfs.stat("/tmp/way-in/f", caller=BOB)


async def read_all_as(vfs: Vfs, path: str, who: Caller) -> bytes:
    return b"".join([c async for c in vfs.read(path, caller=who)])


async def test_reads_and_writes_follow_the_mode(vfs: Vfs) -> None:
    f = await vfs.write_file("/home/alice/notes", chunks(b"0123456789"), caller=ALICE, mode=0o640)
    with pytest.raises(errors.Denied):
        await read_all_as(vfs, "/home/alice/notes", BOB)
    with pytest.raises(errors.Denied):
        await vfs.read_at(f.ino, 0, 4, caller=BOB)
    staff = Caller(1500, 1500, (2000,))
    await vfs.setattr("/home/alice/notes", caller=ALICE, gid=2000)
    assert await read_all_as(vfs, "/home/alice/notes", staff) == b"0123456789"
    with pytest.raises(errors.Denied):
        await vfs.write_at(f.ino, 0, b"x", stable=True, caller=staff)
    with pytest.raises(errors.Denied):
        await vfs.append("/home/alice/notes", chunks(b"more"), caller=staff)
    with pytest.raises(errors.Denied):
        await vfs.write_file("/home/alice/notes", chunks(b"over"), caller=staff)
    with pytest.raises(errors.Denied):
        await vfs.truncate("/home/alice/notes", 0, caller=staff)
    # the owner writes at offsets (NFS) even after making the file read-only
    await vfs.setattr("/home/alice/notes", caller=ALICE, mode=0o440)
    await vfs.write_at(f.ino, 0, b"A", stable=False, caller=ALICE)
    await vfs.commit(f.ino, caller=ALICE)
    assert await read_all_as(vfs, "/home/alice/notes", ALICE) == b"A123456789"
    with pytest.raises(errors.Denied):  # but strict path operations want the w bit
        await vfs.append("/home/alice/notes", chunks(b"more"), caller=ALICE)


async def test_remove_and_rename_rules(vfs: Vfs) -> None:
    await vfs.write_file("/tmp/alices", chunks(b"a"), caller=ALICE)
    await vfs.write_file("/tmp/bobs", chunks(b"b"), caller=BOB)
    for attempt in (
        vfs.remove("/tmp/alices", caller=BOB),
        vfs.rename("/tmp/alices", "/tmp/mine", caller=BOB),
        vfs.rename("/tmp/bobs", "/tmp/alices", caller=BOB),  # replacing alice's entry is removing it
    ):
        with pytest.raises(errors.Denied) as e:
            await attempt
        assert "sticky bit" in e.value.message
    await vfs.rename("/tmp/bobs", "/tmp/bobs2", caller=BOB)
    await vfs.remove("/tmp/bobs2", caller=BOB)
    await vfs.remove("/tmp/alices", caller=SYSTEM)
    # w+x on both directories of a rename; moving a directory also needs w on it ("..")
    await vfs.mkdir("/home/alice/d", caller=ALICE)
    with pytest.raises(errors.Denied):
        await vfs.rename("/home/alice/d", "/tmp/d", caller=BOB)
    await vfs.setattr("/home/alice", caller=ALICE, mode=0o777)
    await vfs.setattr("/home/alice/d", caller=ALICE, mode=0o555)
    with pytest.raises(errors.Denied) as e:
        await vfs.rename("/home/alice/d", "/tmp/d", caller=BOB)
    assert '"/home/alice/d"' in e.value.message and "access=WRITE" in e.value.message
    await vfs.rename("/home/alice/d", "/home/alice/d2", caller=BOB)  # same parent: ".." unchanged


async def test_recursive_delete_checks_the_subtree(vfs: Vfs) -> None:
    await vfs.setattr("/home/alice", caller=ALICE, mode=0o777)
    await vfs.mkdir("/home/alice/t/locked", caller=BOB, parents=True)
    await vfs.write_file("/home/alice/t/locked/f", chunks(b"x"), caller=BOB)
    await vfs.setattr("/home/alice/t/locked", caller=BOB, mode=0o755)
    await vfs.setattr("/home/alice/t", caller=BOB, mode=0o777)
    with pytest.raises(errors.Denied) as e:
        await vfs.remove("/home/alice/t", caller=EVE, recursive=True)
    assert '"/home/alice/t/locked"' in e.value.message
    assert (await vfs.stat("/home/alice/t/locked/f", caller=SYSTEM)).size == 1  # nothing went
    await vfs.remove("/home/alice/t", caller=BOB, recursive=True)


async def test_attributes_and_xattrs(vfs: Vfs) -> None:
    await vfs.write_file("/tmp/f", chunks(b"x"), caller=ALICE, mode=0o644)
    with pytest.raises(errors.NotPermitted):
        await vfs.setattr("/tmp/f", caller=BOB, mode=0o777)
    with pytest.raises(errors.NotPermitted):
        await vfs.setattr("/tmp/f", caller=ALICE, uid=1002)
    with pytest.raises(errors.NotPermitted):
        await vfs.setattr("/tmp/f", caller=ALICE, gid=4000)  # not one of alice's groups
    await vfs.setattr("/tmp/f", caller=ALICE, gid=2000, mode=0o664)
    with pytest.raises(errors.NotPermitted):
        await vfs.setattr("/tmp/f", caller=BOB, mtime=5)
    with pytest.raises(errors.Denied):
        await vfs.setattr("/tmp/f", caller=BOB, mtime=NOW)
    await vfs.setattr("/tmp/f", caller=Caller(1500, 1500, (2000,)), mtime=NOW, atime=NOW)  # staff may write
    wheel = Caller(1600, 1600, (4000,))  # the supergroup
    await vfs.setattr("/tmp/f", caller=wheel, uid=1002, gid=1002)
    with pytest.raises(errors.Denied):
        await vfs.set_xattr("/tmp/f", "user.a", b"1", caller=EVE)
    await vfs.set_xattr("/tmp/f", "user.a", b"1", caller=BOB)
    await vfs.setattr("/tmp/f", caller=BOB, mode=0o600)
    with pytest.raises(errors.Denied):
        await vfs.get_xattrs("/tmp/f", caller=EVE)
    with pytest.raises(errors.Denied):
        await vfs.remove_xattr("/tmp/f", "user.a", caller=EVE)
    assert await vfs.get_xattrs("/tmp/f", caller=BOB) == {"user.a": b"1"}


async def test_access_summary_concat_and_mounts(vfs: Vfs, tmp_path: Path) -> None:
    await vfs.write_file("/home/alice/a", chunks(b"aa"), caller=ALICE, mode=0o600)
    await vfs.write_file("/home/alice/b", chunks(b"bb"), caller=ALICE, mode=0o644)
    await vfs.access("/home/alice/a", R | W, caller=ALICE)
    await vfs.access("/home/alice/b", R, caller=BOB)
    for path, want in (("/home/alice/a", R), ("/home/alice/b", W), ("/home/alice", W | X)):
        with pytest.raises(errors.Denied):
            await vfs.access(path, want, caller=BOB)
    assert await vfs.content_summary("/home", caller=BOB) == (4, 2, 2)
    await vfs.setattr("/home/alice", caller=ALICE, mode=0o711)
    with pytest.raises(errors.Denied):
        await vfs.content_summary("/home", caller=BOB)
    await vfs.write_file("/tmp/t", chunks(b"t"), caller=BOB)
    with pytest.raises(errors.Denied):  # bob may read b, but not remove it from alice's directory
        await vfs.concat("/tmp/t", ["/home/alice/b"], caller=BOB)
    assert (await vfs.stat("/home/alice/b", caller=ALICE)).size == 2
    (tmp_path / "other").mkdir()
    with pytest.raises(errors.NotPermitted):
        await vfs.mount("/tmp/m", (tmp_path / "other").as_uri(), caller=ALICE)
    await vfs.mount("/tmp/m", (tmp_path / "other").as_uri(), caller=SYSTEM)
    with pytest.raises(errors.NotPermitted):
        await vfs.unmount("/tmp/m", caller=ALICE)
