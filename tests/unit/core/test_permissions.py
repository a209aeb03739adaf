"""nsd.core.permissions on hand-built inodes: mode bits, superusers, sticky, owner-only changes, wording."""

from __future__ import annotations

import stat as st

import pytest

from nsd import errors
from nsd.core.permissions import NOW, Permissions, R, W, X, parse_fsaction
from nsd.core.users import Caller, UserMap
from nsd.namespace import Namespace
from nsd.namespace.inode import Inode

USERS = UserMap("alice=1001:1001:2000; bob=1002:1002; carol=1003:3000:4000", "staff=2000; admins=4000", system=False)
ALICE, BOB = USERS.user("alice").caller, USERS.user("bob").caller  # type: ignore[union-attr]
CAROL = USERS.user("carol").caller  # type: ignore[union-attr]
P = Permissions(USERS, supergroups=[4000])


def tree() -> tuple[Namespace, Inode, Inode]:
    """/p (alice:staff 0750) holding f (alice:staff 0640)."""
    ns = Namespace(root_uid=0, root_gid=0, root_mode=0o755)
    ns.apply(ns.plan_mknod(1, "p", st.S_IFDIR | 0o750, 1001, 2000, 1))
    p = ns.resolve("/p")
    ns.apply(ns.plan_mknod(p.ino, "f", st.S_IFREG | 0o640, 1001, 2000, 2))
    return ns, p, ns.resolve("/p/f")


def test_owner_then_group_then_other() -> None:
    _, _p, f = tree()
    assert P.allowed(f, ALICE, R | W) and not P.allowed(f, ALICE, X)
    member = Caller(1500, 1500, (2000,))  # staff only as a supplementary group
    assert P.allowed(f, member, R) and not P.allowed(f, member, W)
    assert not P.allowed(f, BOB, R)
    # the owner class decides for the owner even when the group class would allow more
    f.mode = st.S_IFREG | 0o070
    assert not P.allowed(f, ALICE, R) and P.allowed(f, member, R | W | X)


def test_superusers_and_supergroup_pass_everything() -> None:
    _, _p, f = tree()
    f.mode = st.S_IFREG | 0o000
    assert P.allowed(f, Caller(0, 0), R | W | X)
    assert P.allowed(f, CAROL, R | W)  # carol is in the supergroup (4000)
    assert P.is_super(CAROL) and not P.is_super(ALICE)
    assert P.is_super(Caller(4321, 4000))  # supergroup as the primary gid
    assert Permissions(USERS, superusers=[1002]).is_super(BOB)


def test_denied_is_worded_as_hadoop_words_it() -> None:
    _, p, _f = tree()
    with pytest.raises(errors.Denied) as e:
        P.require(p, BOB, W | X)
    assert e.value.message == 'Permission denied: user=bob, access=WRITE_EXECUTE, inode="/p":alice:staff:drwxr-x---'
    assert e.value.errno == 13 and e.value.path == "/p"


def test_stateless_data_access_owner_override_and_read_if_exec() -> None:
    _, _p, f = tree()
    f.mode = st.S_IFREG | 0o401
    P.require_data(f, ALICE, W)  # the owner writes a file it created read-only
    P.require_data(f, BOB, R)  # others may execute, so they may read (a client reads to execute)
    with pytest.raises(errors.Denied):
        P.require_data(f, BOB, W)
    with pytest.raises(errors.Denied):
        P.require(f, BOB, R)  # the strict check (open(2), WebHDFS OPEN) wants the r bit


def test_sticky_directory() -> None:
    ns, p, f = tree()
    p.mode = st.S_IFDIR | 0o1777
    ns.apply(ns.plan_mknod(p.ino, "g", st.S_IFREG | 0o666, 1002, 1002, 3))
    g = ns.resolve("/p/g")
    P.require_delete(p, g, BOB)  # own entry
    P.require_delete(p, g, ALICE)  # owner of the directory
    P.require_delete(p, g, Caller(0, 0))
    with pytest.raises(errors.Denied) as e:
        P.require_delete(p, f, BOB)
    assert e.value.message.startswith("Permission denied by sticky bit: user=bob, ")
    assert 'parent="/p":alice:staff:drwxrwxrwt' in e.value.message
    p.mode = st.S_IFDIR | 0o777
    P.require_delete(p, f, BOB)  # not sticky: w+x on the directory is enough


def test_delete_tree_needs_every_directory() -> None:
    ns, p, _f = tree()
    p.mode = st.S_IFDIR | 0o777
    root = ns.root
    root.mode = st.S_IFDIR | 0o777
    P.require_delete_tree(root, p, BOB)
    ns.apply(ns.plan_mknod(p.ino, "sub", st.S_IFDIR | 0o755, 1001, 2000, 4))
    with pytest.raises(errors.Denied) as e:
        P.require_delete_tree(root, p, BOB)
    assert 'inode="/p/sub"' in e.value.message and "access=ALL" in e.value.message
    P.require_delete_tree(root, p, ALICE)


def test_chmod_chown_and_times() -> None:
    _, _p, f = tree()
    P.require_setattr(f, ALICE, mode=0o600, gid=2000)
    P.require_setattr(f, ALICE, uid=1001)  # giving a file to oneself is no change
    with pytest.raises(errors.NotPermitted) as e:
        P.require_setattr(f, BOB, mode=0o777)
    assert e.value.message == "Permission denied. user=bob is not the owner of inode=/p/f"
    with pytest.raises(errors.NotPermitted) as e:
        P.require_setattr(f, ALICE, uid=1002)
    assert "non-super user cannot change owner" in e.value.message
    with pytest.raises(errors.NotPermitted) as e:
        P.require_setattr(f, ALICE, gid=3000)
    assert e.value.message == "User alice does not belong to 3000"
    P.require_setattr(f, CAROL, uid=1002, gid=3000)  # a supergroup member may give away
    f.mode = st.S_IFREG | 0o666
    P.require_setattr(f, BOB, mtime=NOW, atime=NOW, size=0)  # writers may touch and truncate
    with pytest.raises(errors.NotPermitted):
        P.require_setattr(f, BOB, mtime=123)  # an explicit time is the owner's to set
    f.mode = st.S_IFREG | 0o644
    with pytest.raises(errors.Denied):
        P.require_setattr(f, BOB, size=0)


def test_require_super_and_fsaction() -> None:
    P.require_super(Caller(0, 0))
    with pytest.raises(errors.NotPermitted) as e:
        P.require_super(BOB)
    assert e.value.message == "Access denied for user bob. Superuser privilege is required"
    assert [parse_fsaction(a) for a in ("rwx", "r-x", "-w-", "---")] == [7, 5, 2, 0]
    for bad in ("rw", "xwr", "rwz", "RWX"):
        with pytest.raises(ValueError):
            parse_fsaction(bad)


def test_user_map_names_and_ids() -> None:
    assert USERS.user("alice") is not None and USERS.user("alice").caller == Caller(1001, 1001, (1001, 2000))  # type: ignore[union-attr]
    assert USERS.user_name(1002) == "bob" and USERS.group_name(2000) == "staff"
    assert USERS.user("77") is not None and USERS.user("77").caller == Caller(77, 77, (77,))  # type: ignore[union-attr]
    assert USERS.user_name(77) == "77" and USERS.group_name(77) == "77"
    assert USERS.user("nobody-here") is None and USERS.gid_of("nogroup-here") is None
    assert USERS.user("1001").name == "alice"  # type: ignore[union-attr]
    for users, groups in (("alice", ""), ("alice=x", ""), ("1=2", ""), ("a=1:2:nosuchgroup", ""), ("", "g=abc")):
        with pytest.raises(errors.Invalid):
            UserMap(users, groups, system=False)


def test_user_map_falls_back_to_the_machine() -> None:
    import os
    import pwd

    me = pwd.getpwuid(os.getuid())
    system = UserMap()
    found = system.user(me.pw_name)
    assert found is not None and found.caller.uid == os.getuid() and found.caller.gid == me.pw_gid
    assert system.user_name(os.getuid()) == me.pw_name
    # the configured map wins over passwd, both ways
    over = UserMap(f"{me.pw_name}=4242:4242")
    assert over.uid_of(me.pw_name) == 4242 and over.user_name(4242) == me.pw_name
