"""Mount table and UFS discovery in the namespace: rules, apply, image, invariants."""

from __future__ import annotations

import stat

import pytest

from nsd.errors import Corrupt, CrossDevice, Exists, Invalid, NotDir, NotEmpty
from nsd.journal.ops import MkNode, Op, decode_op
from nsd.namespace import Namespace
from nsd.namespace import mounts as mounts_module
from nsd.namespace.mounts import plan_add_mount, plan_remove_mount, plan_ufs_sync

FILE, DIR = stat.S_IFREG | 0o644, stat.S_IFDIR | 0o755
T = 1_700_000_000_000_000_000


def apply(ns: Namespace, op: Op | list[Op]) -> None:
    for o in op if isinstance(op, list) else [op]:
        ns.apply(decode_op(o.CODE, o.encode()))  # through the journal encoding, as replay does
    ns.check()


def mount(ns: Namespace, path: str, uri: str = "file:///u", **kw: object) -> None:
    args = {"readonly": False, "options": {}, "uid": 0, "gid": 0, "time_ns": T} | kw
    apply(ns, plan_add_mount(ns, path, uri, **args))  # type: ignore[arg-type]


def test_mount_rules() -> None:
    ns = Namespace()
    apply(ns, ns.plan_mkdirs("/data/full", DIR, 0, 0, T))
    apply(ns, ns.plan_mknod(1, "file", FILE, 0, 0, T))
    apply(ns, ns.plan_mknod(ns.resolve("/data/full").ino, "x", FILE, 0, 0, T))
    with pytest.raises(NotDir, match="existing file"):
        mount(ns, "/file")
    with pytest.raises(NotEmpty):
        mount(ns, "/data/full")
    mount(ns, "/s3")  # a new directory
    apply(ns, ns.plan_mkdirs("/data/empty", DIR, 0, 0, T))
    mount(ns, "/data/empty", "s3://b/p", options={"secret_key": "s"})  # an existing empty one
    with pytest.raises(Exists, match="already mounted"):
        mount(ns, "/s3")
    assert {m.mount_id: ns.path_of(m.point.ino) for m in ns.mounts.values()} == {1: "/s3", 2: "/data/empty"}
    with pytest.raises(Invalid, match="root"):
        plan_remove_mount(ns, "/", T)
    with pytest.raises(Invalid, match="not a mount point"):
        plan_remove_mount(ns, "/data", T)


def test_nested_mounts_longest_prefix_and_unmount_order() -> None:
    ns = Namespace()
    mount(ns, "/a")
    apply(ns, ns.plan_mknod(ns.resolve("/a").ino, "f", FILE, 0, 0, T))
    mount(ns, "/a/b")
    apply(ns, ns.plan_mkdirs("/a/b/c/d", DIR, 0, 0, T))
    assert ns.resolve("/a/f").mount == 1 and ns.resolve("/a/b/c/d").mount == 2
    with pytest.raises(Invalid, match="mounted below it"):
        plan_remove_mount(ns, "/a", T)
    apply(ns, plan_remove_mount(ns, "/a/b", T))
    assert [n for n, _ in ns.list_names(ns.resolve("/a").ino)] == ["f"]
    apply(ns, plan_remove_mount(ns, "/a", T))
    assert ns.list_names(1) == [] and len(ns.inodes) == 1 and not ns.mounts


def test_no_rename_or_link_across_mounts_nor_of_mount_points() -> None:
    ns = Namespace()
    mount(ns, "/m")
    apply(ns, ns.plan_mknod(1, "f", FILE, 0, 0, T))
    f = ns.resolve("/f")
    m = ns.resolve("/m").ino
    with pytest.raises(CrossDevice):
        ns.plan_rename(1, "f", m, "f", T)
    with pytest.raises(CrossDevice):
        ns.plan_link(f.ino, m, "g", T)
    with pytest.raises(Invalid, match="mount point"):
        ns.plan_rename(1, "m", 1, "n", T)
    with pytest.raises(Invalid, match="mount point"):
        ns.plan_rmdir(1, "m", T)
    apply(ns, ns.plan_mkdirs("/outer", DIR, 0, 0, T))
    mount(ns, "/outer/inner")
    with pytest.raises(Invalid, match="mounted below it"):
        ns.plan_rename(1, "outer", 1, "moved", T)


def test_ufs_sync_adds_updates_and_removes() -> None:
    ns = Namespace()
    mount(ns, "/s3")
    d = ns.resolve("/s3").ino
    op = plan_ufs_sync(
        ns,
        d,
        [["a.csv", FILE, 0, 0, 10, T, [10, T, "e1"]], ["dir", DIR, 0, 0, 0, T, None]],
        [],
        [],
        T + 1,
    )
    apply(ns, op)
    a = ns.resolve("/s3/a.csv")
    assert (a.size, a.mtime, a.fingerprint, a.mount) == (10, T, [10, T, "e1"], 1)
    assert ns.resolve("/s3").mtime == T  # discovery changes no directory time
    apply(ns, plan_ufs_sync(ns, ns.resolve("/s3/dir").ino, [["x", FILE, 0, 0, 1, T, [1, T, None]]], [], [], T))
    a.layout = [[0, 10, "old-digest"]]
    apply(ns, plan_ufs_sync(ns, d, [], [["a.csv", 20, T + 5, [20, T + 5, "e2"]]], [], T + 6))
    assert (a.size, a.mtime, a.ctime, a.layout) == (20, T + 5, T + 6, None)
    apply(ns, plan_ufs_sync(ns, d, [], [], ["dir"], T + 7))
    assert [n for n, _ in ns.list_names(d)] == ["a.csv"] and len(ns.inodes) == 3
    with pytest.raises(Exists):
        plan_ufs_sync(ns, d, [["a.csv", FILE, 0, 0, 1, T, None]], [], [], T)
    with pytest.raises(Invalid):
        plan_ufs_sync(ns, d, [["bad/name", FILE, 0, 0, 1, T, None]], [], [], T)


@pytest.mark.parametrize("indexed", [(), ("cookies",), ("names",), ("cookies", "names")])
def test_a_discovered_page_joins_the_directory_s_indexes(indexed: tuple[str, ...]) -> None:
    # A page goes in at once (a dict update, a run of inode ids, the cookie index in one merge):
    # the tree afterwards is the one made entry by entry, whichever indexes the directory has.
    ns = Namespace()
    mount(ns, "/s3")
    d = ns.get_dir(ns.resolve("/s3").ino)
    apply(ns, plan_ufs_sync(ns, d.ino, [[f"old{i}", FILE, 0, 0, i, T, None] for i in range(50)], [], [], T))
    if "cookies" in indexed:
        ns.readdir(d.ino)
    if "names" in indexed:
        ns.list_names(d.ino, "old1", 2)
    first = ns.next_ino
    page = [[f"new{i:04d}", DIR if i % 7 == 0 else FILE, 0, 0, 0, T, None] for i in range(5000)]
    apply(ns, plan_ufs_sync(ns, d.ino, page, [], [], T))
    ns.check()  # every index of every directory against its entries, the inode table included
    assert ns.next_ino == first + 5000 and len(d.children) == 5050 and d.nlink == 2 + 715
    assert [ns.inodes[first + i].name for i in (0, 4095, 4999)] == ["new0000", "new4095", "new4999"]
    listed = [name for _, name, _ in ns.readdir(d.ino, 0, 10_000)[0]]
    assert sorted(listed) == sorted(d.children.keys())


def test_a_page_is_checked_once_unless_the_tree_moved_since(monkeypatch: pytest.MonkeyPatch) -> None:
    ns = Namespace()
    mount(ns, "/s3")
    d = ns.resolve("/s3").ino
    checks = []
    real = mounts_module._check_ufs_sync
    monkeypatch.setattr(mounts_module, "_check_ufs_sync", lambda ns, op: checks.append(op) or real(ns, op))
    op = plan_ufs_sync(ns, d, [["a", FILE, 0, 0, 1, T, None]], [], [], T)
    ns.apply(op)  # as the metastore does: planned, appended and applied in one step
    assert checks == [op] and "a" in ns.get_dir(d).children
    # Something applied in between: the page is checked again, and refused (its id is taken).
    op = plan_ufs_sync(ns, d, [["b", FILE, 0, 0, 1, T, None]], [], [], T)
    ns.apply(MkNode(d, "c", op.add[0][1], FILE, 0, 0, T))
    with pytest.raises(Corrupt):
        ns.apply(op)
    assert checks[-2:] == [op, op] and "b" not in ns.get_dir(d).children
    # An unjournaled change (an unstable write) counts too; so does an equal op that is another object.
    op = plan_ufs_sync(ns, d, [["b", FILE, 0, 0, 1, T, None]], [], [], T)
    ns.changed()
    ns.apply(op)
    op = plan_ufs_sync(ns, d, [["e", FILE, 0, 0, 1, T, None]], [], [], T)
    ns.apply(decode_op(op.CODE, op.encode()))
    assert len(checks) == 7 and sorted(ns.get_dir(d).children) == ["a", "b", "c", "e"]
    ns.check()


@pytest.mark.parametrize(
    "fields",
    [
        *[(-1, 0, 1, T), (0, -1, 1, T), (0, 0, -1, T), (0, 0, 1, -1), (0, 0, -(2**70), T), (0, 0, 2**70, -T)],
        *[("0", 0, 1, T), (0, 0.0, 1, T), (0, 0, True, T), (0, 0, 1, None)],
    ],
)
def test_a_discovered_entry_with_a_bad_number_is_corrupt(fields: tuple[object, ...]) -> None:
    ns = Namespace()
    mount(ns, "/s3")
    d = ns.resolve("/s3").ino
    with pytest.raises(Corrupt, match="uid/gid/size/mtime"):
        plan_ufs_sync(ns, d, [["ok", FILE, *fields, None]], [], [], T)
    assert not ns.get_dir(d).children


@pytest.mark.parametrize("mode", [0o644, stat.S_IFLNK | 0o777, stat.S_IFIFO | 0o644, "33188", float(FILE), None])
def test_a_discovered_entry_that_is_no_file_or_directory_is_corrupt(mode: object) -> None:
    ns = Namespace()
    mount(ns, "/s3")
    d = ns.resolve("/s3").ino
    with pytest.raises(Corrupt, match="bad discovered entry 'ok'"):
        plan_ufs_sync(ns, d, [["ok", mode, 0, 0, 1, T, None]], [], [], T)
    assert not ns.get_dir(d).children


def test_a_bad_discovered_mode_is_reported_in_octal() -> None:
    ns = Namespace()
    mount(ns, "/s3")
    with pytest.raises(Corrupt, match=r"mode 120777$"):
        plan_ufs_sync(ns, ns.resolve("/s3").ino, [["ok", stat.S_IFLNK | 0o777, 0, 0, 1, T, None]], [], [], T)


def test_a_big_but_valid_discovered_entry_is_taken() -> None:
    ns = Namespace()
    mount(ns, "/s3")
    d = ns.resolve("/s3").ino
    apply(ns, plan_ufs_sync(ns, d, [["big", FILE, 2**31, 2**31, 2**62, 2**62, None]], [], [], T))
    assert ns.resolve("/s3/big").size == 2**62


def test_a_discovered_file_keeps_its_fingerprint_compact_and_true() -> None:
    """A fingerprint equal to the file's own size and mtime is kept as its etag alone; whatever
    changes size or mtime afterwards leaves the fingerprint as the under-storage showed it."""
    ns = Namespace()
    mount(ns, "/s3")
    d = ns.resolve("/s3").ino
    md5, upper, multi = '"9e107d9d372bb6826bd81d3542a419d6"', '"9E107D9D372BB6826BD81D3542A419D6"', '"ab-2"'
    add = [["e.csv", FILE, 0, 0, 10, T, [10, T, "e1"]], ["n.csv", FILE, 0, 0, 10, T, [10, T, None]]]
    add += [["o.csv", FILE, 0, 0, 10, T, [11, T, "e1"]]]  # size differs from the UFS's: kept whole
    add += [[f"{i}.csv", FILE, 0, 0, 10, T, [10, T, etag]] for i, etag in enumerate((md5, upper, multi))]
    apply(ns, plan_ufs_sync(ns, d, add, [], [], T + 1))
    e, n, o = (ns.resolve(f"/s3/{x}.csv") for x in "eno")
    assert (e.fingerprint, n.fingerprint, o.fingerprint) == ([10, T, "e1"], [10, T, None], [11, T, "e1"])
    assert [ns.resolve(f"/s3/{i}.csv").fingerprint for i in range(3)] == [[10, T, x] for x in (md5, upper, multi)]
    assert type(e._fp) is str and type(n._fp) is not list and type(o._fp) is list  # no list for e and n
    assert [type(ns.resolve(f"/s3/{i}.csv")._fp) for i in range(3)] == [bytes, str, str]  # an MD5 as 16 bytes

    apply(ns, ns.plan_setattr(e.ino, mtime=T + 9, time_ns=T + 9))  # touch -m
    apply(ns, ns.plan_setattr(n.ino, size=3, time_ns=T + 9))  # truncate
    assert (e.mtime, e.fingerprint, n.size, n.fingerprint) == (T + 9, [10, T, "e1"], 3, [10, T, None])
    back = Namespace.from_image(ns.to_image())  # and through a checkpoint
    assert [back.resolve(f"/s3/{x}.csv").fingerprint for x in "eno"] == [[10, T, "e1"], [10, T, None], [11, T, "e1"]]

    apply(ns, ns.plan_set_content(o.ino, 4, T + 20, [4, T + 20, "e3"]))
    assert (o.size, o.fingerprint, type(o._fp)) == (4, [4, T + 20, "e3"], str)
    apply(ns, ns.plan_set_content(o.ino, 6, T + 30, [6, T + 29, None]))  # written: the UFS's own mtime
    assert (o.fingerprint, type(o._fp)) == ([6, T + 29, None], int)
    apply(ns, ns.plan_setattr(o.ino, size=2, time_ns=T + 31))
    assert (o.size, o.fingerprint) == (2, [6, T + 29, None])
    apply(ns, ns.plan_set_content(o.ino, 5, T + 21))  # new content, not in the UFS yet
    assert (o.size, o.fingerprint) == (5, None)


def test_image_keeps_the_mount_table() -> None:
    ns = Namespace()
    mount(ns, "/s3", "s3://bucket/p", readonly=True, options={"region": "x"})
    apply(ns, ns.plan_mknod(ns.resolve("/s3").ino, "f", FILE, 0, 0, T))
    back = Namespace.from_image(ns.to_image())
    back.check()
    m = back.mounts[1]
    assert (back.path_of(m.point.ino), m.uri, m.readonly, m.options) == ("/s3", "s3://bucket/p", True, {"region": "x"})
    assert back.next_mount_id == 2 and back.resolve("/s3/f").mount == 1
    assert list(back.to_image()) == list(ns.to_image())
