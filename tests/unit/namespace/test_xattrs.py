"""Extended attributes in the namespace: journaled ops, the side table, images, check()."""

from __future__ import annotations

import pytest
from test_tree import Tree, image

from nsd.errors import Corrupt, Invalid, NotFound, Stale
from nsd.journal.ops import RemoveXAttr, SetXAttr, decode_op
from nsd.namespace import Namespace
from nsd.namespace.image import IMAGE_VERSION, IMAGE_VERSION_XATTRS
from nsd.namespace.tree import XATTRS_PER_INODE


def test_set_replace_remove_and_ctime() -> None:
    t = Tree()
    f = t.mk("/f")
    op = t.ns.plan_setxattr(f.ino, "user.a", b"1", t.now())
    t.apply(op)
    assert f.ctime == op.time_ns
    t.apply(t.ns.plan_setxattr(f.ino, "user.a", b"22", t.now()))
    t.apply(t.ns.plan_setxattr(f.ino, "user.b", b"", t.now()))
    assert t.ns.get_xattrs(f.ino) == {"user.a": b"22", "user.b": b""}
    t.apply(t.ns.plan_removexattr(f.ino, "user.a", t.now()))
    t.apply(t.ns.plan_removexattr(f.ino, "user.b", t.now()))
    assert t.ns.get_xattrs(f.ino) == {}
    assert f.ino not in t.ns.xattrs  # no empty entry left behind
    with pytest.raises(NotFound):
        t.ns.plan_removexattr(f.ino, "user.a", t.now())


def test_inodes_without_xattrs_cost_nothing() -> None:
    t = Tree()
    for i in range(50):
        t.mk(f"/f{i}")
    assert t.ns.xattrs == {}
    assert "xattrs" not in type(t.ns.get(2)).__slots__


def test_limits_and_bad_values() -> None:
    t = Tree()
    f = t.mk("/f")
    with pytest.raises(Invalid):
        t.ns.plan_setxattr(f.ino, "", b"x", t.now())
    with pytest.raises(Invalid):
        t.ns.plan_setxattr(f.ino, "user.big", bytes(20000), t.now())
    for i in range(XATTRS_PER_INODE):
        t.apply(t.ns.plan_setxattr(f.ino, f"user.{i}", b"v", t.now()))
    with pytest.raises(Invalid):
        t.ns.plan_setxattr(f.ino, "user.one-too-many", b"v", t.now())
    t.apply(t.ns.plan_setxattr(f.ino, "user.0", b"replacing is fine", t.now()))
    with pytest.raises(Stale):
        t.ns.plan_setxattr(999, "user.a", b"v", t.now())


def test_xattrs_go_with_their_inode() -> None:
    t = Tree()
    d = t.mkdir("/d")
    f = t.mk("/d/f")
    g = t.mk("/g")
    for node in (d, f, g):
        t.apply(t.ns.plan_setxattr(node.ino, "user.k", b"v", t.now()))
    t.apply(t.ns.plan_unlink(d.ino, "f", t.now()))
    t.apply(t.ns.plan_rmdir(1, "d", t.now()))
    assert set(t.ns.xattrs) == {g.ino}
    h = t.mk("/h")
    t.rename("/h", "/g")  # replaces g
    assert t.ns.xattrs == {}
    assert t.ns.get_xattrs(h.ino) == {}


def test_ops_round_trip_through_the_journal_codec() -> None:
    for op in (SetXAttr(5, "user.é", b"\x00\xff", 123), RemoveXAttr(5, "trusted.x", 124)):
        assert decode_op(op.CODE, op.encode()) == op
        assert 20 <= op.CODE <= 29


def test_image_round_trip_and_version() -> None:
    t = Tree()
    t.mkdir("/d")
    f = t.mk("/d/f")
    plain = image(t.ns)
    assert plain[0]["version"] == IMAGE_VERSION  # images without xattrs are unchanged
    t.apply(t.ns.plan_setxattr(f.ino, "user.a", b"\x00bin", t.now()))
    t.apply(t.ns.plan_setxattr(1, "user.root", b"r", t.now()))
    chunks = image(t.ns)
    assert chunks[0]["version"] == IMAGE_VERSION_XATTRS
    loaded = Namespace.from_image(chunks)
    loaded.check()
    assert loaded.xattrs == t.ns.xattrs
    assert image(loaded) == chunks
    # A version 1 image still loads.
    assert Namespace.from_image(plain).xattrs == {}


def test_image_with_xattrs_of_a_missing_inode_is_corrupt() -> None:
    t = Tree()
    f = t.mk("/f")
    t.apply(t.ns.plan_setxattr(f.ino, "user.a", b"v", t.now()))
    chunks = image(t.ns)
    chunks[-1] = {"xattrs": [[999, "user.a", b"v"]]}
    with pytest.raises(Corrupt):
        Namespace.from_image(chunks)


def test_check_catches_a_dangling_entry() -> None:
    t = Tree()
    t.ns.xattrs[42] = {"user.a": b"v"}
    with pytest.raises(AssertionError):
        t.ns.check()


def test_replay_of_a_bad_remove_is_corrupt() -> None:
    t = Tree()
    f = t.mk("/f")
    with pytest.raises(Corrupt):
        t.ns.apply(RemoveXAttr(f.ino, "user.none", t.now()))
