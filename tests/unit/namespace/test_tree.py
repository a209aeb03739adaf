import itertools
import stat
from collections.abc import Iterator
from typing import Any

import msgpack
import pytest

from nsd.errors import (
    Corrupt,
    Exists,
    Invalid,
    IsDir,
    Loop,
    NameTooLong,
    NotDir,
    NotEmpty,
    NotFound,
    NotPermitted,
    NotSupported,
    Stale,
)
from nsd.journal.ops import Link, MkNode, Op, Rename, SetAttr, SetContent, Unlink, decode_op
from nsd.namespace import DirInode, FileInode, Inode, Namespace, SpecialInode, SymlinkInode, name_cookie
from nsd.namespace import inode as inode_module
from nsd.namespace.mounts import plan_add_mount

FILE = stat.S_IFREG | 0o644
DIR = stat.S_IFDIR | 0o755
LINK = stat.S_IFLNK | 0o777


class Tree:
    """A namespace plus every op applied to it, with a clock that always moves forward."""

    def __init__(self) -> None:
        self.ns = Namespace(root_uid=0, root_gid=0, time_ns=1_000)
        self.ops: list[Op] = []
        self._clock = itertools.count(2_000)

    def now(self) -> int:
        return next(self._clock)

    def apply(self, op: Op | list[Any]) -> None:
        for o in op if isinstance(op, list) else [op]:
            self.ns.apply(o)
            self.ops.append(o)
        self.ns.check()

    def mk(self, path: str, mode: int = FILE, target: str | None = None) -> Inode:
        parent, name = self.ns.resolve_parent(path)
        op = self.ns.plan_mknod(parent.ino, name, mode, 1000, 100, self.now(), target)
        self.apply(op)
        return self.ns.get(op.ino)

    def mkdir(self, path: str) -> DirInode:
        node = self.mk(path, DIR)
        assert isinstance(node, DirInode)
        return node

    def symlink(self, path: str, target: str) -> Inode:
        return self.mk(path, LINK, target)

    def rename(self, src: str, dst: str) -> None:
        sp, sn = self.ns.resolve_parent(src)
        dp, dn = self.ns.resolve_parent(dst)
        self.apply(self.ns.plan_rename(sp.ino, sn, dp.ino, dn, self.now()))

    def paths(self) -> dict[str, int]:
        """Every visible path -> inode id."""
        out: dict[str, int] = {}

        def walk(d: DirInode, prefix: str) -> None:
            for name, child in d.children.items():
                out[prefix + name] = child.ino
                if isinstance(child, DirInode):
                    walk(child, prefix + name + "/")

        walk(self.ns.root, "/")
        return out


def image(ns: Namespace, chunk_size: int = 4096) -> list[Any]:
    return list(ns.to_image(chunk_size))


@pytest.fixture
def t() -> Tree:
    return Tree()


# ---- construction and lookups --------------------------------------------------------------


def test_new_namespace_has_only_the_root() -> None:
    ns = Namespace(root_uid=7, root_gid=8, root_mode=0o700, time_ns=123)
    root = ns.get(1)
    assert isinstance(root, DirInode) and root is ns.root
    assert root.parent is root
    assert (root.mode, root.uid, root.gid, root.nlink) == (stat.S_IFDIR | 0o700, 7, 8, 2)
    assert (root.atime, root.mtime, root.ctime, root.gen, root.mount) == (123, 123, 123, 1, 0)
    assert ns.next_ino == 2
    assert ns.inodes == {1: root}
    assert ns.path_of(1) == "/"
    ns.check()


def test_get_unknown_inode_is_stale(t: Tree) -> None:
    with pytest.raises(Stale):
        t.ns.get(99)
    f = t.mk("/f")
    t.apply(t.ns.plan_unlink(1, "f", t.now()))
    with pytest.raises(Stale):
        t.ns.get(f.ino)


def test_lookup(t: Tree) -> None:
    d = t.mkdir("/d")
    f = t.mk("/d/f")
    assert t.ns.lookup(1, "d") is d
    assert t.ns.lookup(d.ino, "f") is f
    assert t.ns.lookup(d.ino, ".") is d
    assert t.ns.lookup(d.ino, "..") is t.ns.root
    assert t.ns.lookup(1, "..") is t.ns.root
    with pytest.raises(NotFound, match="/d/nope"):
        t.ns.lookup(d.ino, "nope")
    with pytest.raises(NotDir):
        t.ns.lookup(f.ino, "x")
    with pytest.raises(Stale):
        t.ns.lookup(1234, "x")
    with pytest.raises(NameTooLong):
        t.ns.lookup(d.ino, "x" * 256)


def test_resolve(t: Tree) -> None:
    t.mkdir("/a")
    b = t.mkdir("/a/b")
    f = t.mk("/a/b/f")
    assert t.ns.resolve("/") is t.ns.root
    assert t.ns.resolve("/a/b") is b
    assert t.ns.resolve("//a//b/f") is f
    with pytest.raises(NotFound, match="/a/x") as e:
        t.ns.resolve("/a/x/y")
    assert e.value.path == "/a/x/y"
    with pytest.raises(NotDir):
        t.ns.resolve("/a/b/f/g")
    with pytest.raises(Invalid):
        t.ns.resolve("a/b")
    with pytest.raises(Invalid):
        t.ns.resolve("/a/../a")


def test_resolve_parent(t: Tree) -> None:
    a = t.mkdir("/a")
    t.mk("/a/f")
    t.symlink("/l", "a")
    assert t.ns.resolve_parent("/a/new") == (a, "new")
    assert t.ns.resolve_parent("/a/f") == (a, "f")
    assert t.ns.resolve_parent("/x") == (t.ns.root, "x")
    assert t.ns.resolve_parent("/l/new") == (a, "new")  # symlinked parent is followed
    with pytest.raises(Invalid):
        t.ns.resolve_parent("/")
    with pytest.raises(NotFound):
        t.ns.resolve_parent("/nope/x")
    with pytest.raises(NotDir):
        t.ns.resolve_parent("/a/f/x")


def test_path_of(t: Tree) -> None:
    t.mkdir("/a")
    b = t.mkdir("/a/b")
    c = t.mkdir("/a/b/c")
    f = t.mk("/a/f")
    assert t.ns.path_of(c.ino) == "/a/b/c"
    t.rename("/a/b", "/b2")
    assert t.ns.path_of(c.ino) == "/b2/c"
    assert t.ns.path_of(b.ino) == "/b2"
    assert t.ns.path_of(f.ino) == "/a/f"
    t.rename("/a/f", "/b2/c/g")
    assert t.ns.path_of(f.ino) == "/b2/c/g"
    with pytest.raises(Stale):
        t.ns.path_of(999)


def test_primary_link_moves_to_a_surviving_hard_link(t: Tree) -> None:
    t.mkdir("/d")
    f = t.mk("/d/a")
    t.ns.apply(t.ns.plan_link(f.ino, t.ns.resolve("/").ino, "b", 5))
    t.ns.apply(t.ns.plan_link(f.ino, t.ns.resolve("/d").ino, "c", 6))
    assert t.ns.path_of(f.ino) == "/d/a"
    t.ns.apply(t.ns.plan_unlink(t.ns.resolve("/d").ino, "a", 7))
    assert t.ns.path_of(f.ino) in ("/b", "/d/c")
    t.ns.apply(t.ns.plan_rename(1, "b", t.ns.resolve("/d").ino, "moved", 8))
    t.ns.check()
    assert t.ns.path_of(f.ino) in ("/d/moved", "/d/c")
    t.ns.apply(t.ns.plan_unlink(t.ns.resolve("/d").ino, "c", 9))
    assert t.ns.path_of(f.ino) == "/d/moved" and f.nlink == 1 and f.ino not in t.ns.links
    t.ns.check()


# ---- symlinks ------------------------------------------------------------------------------


def test_symlink_attributes(t: Tree) -> None:
    link = t.symlink("/l", "dést/x")
    assert isinstance(link, SymlinkInode)
    assert link.target == "dést/x"
    assert link.size == len("dést/x".encode())
    assert link.nlink == 1 and link.mode == LINK


@pytest.mark.parametrize(("target", "error"), [("", Invalid), ("a\0b", Invalid), ("x" * 4097, NameTooLong)])
def test_bad_symlink_targets(t: Tree, target: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        t.ns.plan_mknod(1, "l", LINK, 0, 0, t.now(), target)


def test_target_only_for_symlinks(t: Tree) -> None:
    with pytest.raises(Invalid):
        t.ns.plan_mknod(1, "l", LINK, 0, 0, t.now())
    with pytest.raises(Invalid):
        t.ns.plan_mknod(1, "f", FILE, 0, 0, t.now(), "x")


def test_resolve_follows_symlinks(t: Tree) -> None:
    t.mkdir("/a")
    b = t.mkdir("/a/b")
    f = t.mk("/a/b/f")
    rel = t.symlink("/a/rel", "b/f")  # relative: from the link's directory
    t.symlink("/abs", "/a/b")
    t.symlink("/a/b/up", "../b/./f")
    t.symlink("/a/dotdot", "../../../a")  # ".." at the root stays at the root
    assert t.ns.resolve("/a/rel") is f
    assert t.ns.resolve("/a/rel", follow=False) is rel
    assert t.ns.resolve("/abs") is b
    assert t.ns.resolve("/abs/f") is f
    assert t.ns.resolve("/abs/up") is f
    assert t.ns.resolve("/a/dotdot/b/f") is f
    # intermediate components are followed even without follow
    assert t.ns.resolve("/abs/f", follow=False) is f


def test_symlink_chains_and_loops(t: Tree) -> None:
    f = t.mk("/f")
    t.symlink("/l0", "/f")
    for i in range(1, 40):
        t.symlink(f"/l{i}", f"l{i - 1}")
    assert t.ns.resolve("/l39") is f  # 40 links followed
    t.symlink("/l40", "l39")
    with pytest.raises(Loop):
        t.ns.resolve("/l40")  # 41
    assert t.ns.resolve("/l40", follow=False).ino == t.ns.lookup(1, "l40").ino
    t.symlink("/x", "y")
    t.symlink("/y", "x")
    with pytest.raises(Loop, match="/x"):
        t.ns.resolve("/x")
    t.symlink("/self", "self/a")
    with pytest.raises(Loop):
        t.ns.resolve("/self")


def test_dangling_symlinks(t: Tree) -> None:
    t.mk("/f")
    t.symlink("/dangling", "nowhere")
    t.symlink("/through_file", "f/x")
    with pytest.raises(NotFound):
        t.ns.resolve("/dangling")
    assert t.ns.resolve("/dangling", follow=False).is_symlink
    with pytest.raises(NotDir):
        t.ns.resolve("/through_file")
    with pytest.raises(NotFound):
        t.ns.resolve_parent("/dangling/x")


# ---- mknod and mkdirs ----------------------------------------------------------------------


def test_mknod_creates_a_file(t: Tree) -> None:
    before = t.ns.next_ino
    op = t.ns.plan_mknod(1, "f", FILE, 1000, 100, 5_000)
    assert op == MkNode(1, "f", before, FILE, 1000, 100, 5_000, None)
    assert t.ns.next_ino == before and "f" not in t.ns.root.children  # planning changes nothing
    t.apply(op)
    f = t.ns.lookup(1, "f")
    assert isinstance(f, FileInode) and f.is_file and not f.is_dir and not f.is_symlink
    assert (f.ino, f.gen, f.mode, f.uid, f.gid, f.nlink, f.size) == (before, 1, FILE, 1000, 100, 1, 0)
    assert f.atime == f.mtime == f.ctime == 5_000
    assert f.atime is f.mtime is f.ctime  # one int object
    assert f.fingerprint is None and f.layout is None and f.mount == 0
    assert t.ns.root.mtime == t.ns.root.ctime == 5_000
    assert t.ns.root.nlink == 2
    assert t.ns.next_ino == before + 1


def test_mknod_creates_a_directory(t: Tree) -> None:
    d = t.mkdir("/d")
    assert d.is_dir and d.nlink == 2 and d.parent is t.ns.root and len(d.children) == 0
    assert t.ns.root.nlink == 3
    t.mkdir("/d/e")
    assert d.nlink == 3 and t.ns.root.nlink == 3


def test_mknod_inherits_the_mount(t: Tree) -> None:
    t.apply(plan_add_mount(t.ns, "/m", "file:///x", readonly=False, options={}, uid=0, gid=0, time_ns=t.now()))
    assert t.ns.resolve("/m").mount == 1
    assert t.mk("/m/f").mount == 1
    assert t.mkdir("/m/sub").mount == 1
    assert t.mk("/g").mount == 0


def test_mknod_errors(t: Tree) -> None:
    f = t.mk("/f")
    with pytest.raises(Exists, match="/f"):
        t.ns.plan_mknod(1, "f", FILE, 0, 0, t.now())
    with pytest.raises(Exists):
        t.ns.plan_mknod(1, "f", DIR, 0, 0, t.now())
    with pytest.raises(NotDir):
        t.ns.plan_mknod(f.ino, "x", FILE, 0, 0, t.now())
    with pytest.raises(Stale):
        t.ns.plan_mknod(777, "x", FILE, 0, 0, t.now())
    for bad in ["", ".", "..", "a/b", "a\0"]:
        with pytest.raises(Invalid):
            t.ns.plan_mknod(1, bad, FILE, 0, 0, t.now())
    with pytest.raises(NameTooLong):
        t.ns.plan_mknod(1, "n" * 256, FILE, 0, 0, t.now())
    for device in (stat.S_IFCHR, stat.S_IFBLK):
        with pytest.raises(NotSupported):
            t.ns.plan_mknod(1, "dev", device | 0o644, 0, 0, t.now())
    with pytest.raises(Invalid, match="only a symlink has a target"):
        t.ns.plan_mknod(1, "fifo", stat.S_IFIFO | 0o644, 0, 0, t.now(), "target")
    with pytest.raises(Invalid):
        t.ns.plan_mknod(1, "notype", 0o644, 0, 0, t.now())
    with pytest.raises(Invalid):
        t.ns.plan_mknod(1, "u", FILE, -1, 0, t.now())
    assert t.ns.next_ino == f.ino + 1


def test_mknod_creates_fifos_and_sockets(t: Tree) -> None:
    for name, kind in (("fifo", stat.S_IFIFO), ("sock", stat.S_IFSOCK)):
        t.apply(t.ns.plan_mknod(1, name, kind | 0o640, 7, 8, t.now()))
        node = t.ns.lookup(1, name)
        assert isinstance(node, SpecialInode) and node.namespace_only
        assert not (node.is_file or node.is_dir or node.is_symlink)
        assert (node.mode, node.uid, node.gid, node.size, node.nlink) == (kind | 0o640, 7, 8, 0, 1)
    t.ns.check()
    t.apply(t.ns.plan_unlink(1, "sock", t.now()))
    assert "sock" not in t.ns.root.children


def test_mkdirs(t: Tree) -> None:
    t.mkdir("/a")
    ops = t.ns.plan_mkdirs("/a/b/c/d", 0o750, 5, 6, t.now())
    first = t.ns.next_ino
    assert [(o.name, o.ino) for o in ops] == [("b", first), ("c", first + 1), ("d", first + 2)]
    assert ops[0].parent == t.ns.resolve("/a").ino
    assert [o.parent for o in ops[1:]] == [first, first + 1]
    assert all(o.mode == stat.S_IFDIR | 0o750 for o in ops)
    t.apply(ops)
    assert t.ns.path_of(first + 2) == "/a/b/c/d"
    assert t.ns.plan_mkdirs("/a/b/c/d", 0o755, 0, 0, t.now()) == []
    assert t.ns.plan_mkdirs("/", 0o755, 0, 0, t.now()) == []


def test_mkdirs_through_symlinks_and_over_files(t: Tree) -> None:
    a = t.mkdir("/a")
    t.symlink("/l", "a")
    t.mk("/a/f")
    ops = t.ns.plan_mkdirs("/l/x", 0o755, 0, 0, t.now())
    assert len(ops) == 1 and ops[0].parent == a.ino
    assert t.ns.plan_mkdirs("/l", 0o755, 0, 0, t.now()) == []
    with pytest.raises(Exists, match="/a/f"):
        t.ns.plan_mkdirs("/a/f", 0o755, 0, 0, t.now())
    with pytest.raises(NotDir, match="/a/f"):
        t.ns.plan_mkdirs("/a/f/g", 0o755, 0, 0, t.now())
    with pytest.raises(Invalid):
        t.ns.plan_mkdirs("/a/../b", 0o755, 0, 0, t.now())


# ---- link, unlink, rmdir -------------------------------------------------------------------


def test_hard_links(t: Tree) -> None:
    d = t.mkdir("/d")
    f = t.mk("/f")
    now = t.now()
    t.apply(t.ns.plan_link(f.ino, d.ino, "g", now))
    assert t.ns.resolve("/d/g") is f
    assert f.nlink == 2 and f.ctime == now
    assert d.mtime == d.ctime == now
    t.apply(t.ns.plan_unlink(1, "f", t.now()))
    assert f.nlink == 1 and t.ns.get(f.ino) is f
    t.apply(t.ns.plan_unlink(d.ino, "g", t.now()))
    assert f.nlink == 0 and f.ino not in t.ns.inodes


def test_hard_link_to_a_symlink_is_allowed(t: Tree) -> None:
    link = t.symlink("/l", "x")
    t.apply(t.ns.plan_link(link.ino, 1, "l2", t.now()))
    assert link.nlink == 2


def test_link_errors(t: Tree) -> None:
    d = t.mkdir("/d")
    f = t.mk("/f")
    with pytest.raises(NotPermitted):
        t.ns.plan_link(d.ino, 1, "d2", t.now())
    with pytest.raises(Exists):
        t.ns.plan_link(f.ino, 1, "d", t.now())
    with pytest.raises(NotDir):
        t.ns.plan_link(f.ino, f.ino, "x", t.now())
    with pytest.raises(Stale):
        t.ns.plan_link(999, 1, "x", t.now())
    with pytest.raises(Invalid):
        t.ns.plan_link(f.ino, 1, "..", t.now())


def test_unlink(t: Tree) -> None:
    d = t.mkdir("/d")
    t.mk("/d/f")
    now = t.now()
    t.apply(t.ns.plan_unlink(d.ino, "f", now))
    assert "f" not in d.children and d.nlink == 2 and d.mtime == d.ctime == now
    with pytest.raises(NotFound, match="/d/f"):
        t.ns.plan_unlink(d.ino, "f", t.now())
    with pytest.raises(IsDir, match="/d"):
        t.ns.plan_unlink(1, "d", t.now())


def test_rmdir(t: Tree) -> None:
    d = t.mkdir("/d")
    t.mkdir("/d/e")
    t.mk("/f")
    with pytest.raises(NotEmpty, match="/d"):
        t.ns.plan_rmdir(1, "d", t.now())
    with pytest.raises(NotDir, match="/f"):
        t.ns.plan_rmdir(1, "f", t.now())
    with pytest.raises(NotFound):
        t.ns.plan_rmdir(1, "nope", t.now())
    with pytest.raises(Invalid):
        t.ns.plan_rmdir(1, ".", t.now())
    with pytest.raises(Invalid):
        t.ns.plan_rmdir(1, "..", t.now())  # the root has no entry, so it cannot be removed
    now = t.now()
    t.apply(t.ns.plan_rmdir(d.ino, "e", now))
    assert d.nlink == 2 and d.mtime == now
    t.apply(t.ns.plan_rmdir(1, "d", t.now()))
    assert d.ino not in t.ns.inodes and t.ns.root.nlink == 2


def test_inode_ids_are_never_reused(t: Tree) -> None:
    f = t.mk("/f")
    t.apply(t.ns.plan_unlink(1, "f", t.now()))
    assert t.mk("/f").ino == f.ino + 1


# ---- rename --------------------------------------------------------------------------------


def test_rename_within_and_across_directories(t: Tree) -> None:
    a = t.mkdir("/a")
    b = t.mkdir("/b")
    f = t.mk("/a/f")
    t.rename("/a/f", "/a/g")
    assert t.ns.resolve("/a/g") is f and "f" not in a.children
    now = t.now()
    t.apply(t.ns.plan_rename(a.ino, "g", b.ino, "h", now))
    assert t.ns.resolve("/b/h") is f
    assert a.mtime == a.ctime == b.mtime == b.ctime == f.ctime == now
    assert f.nlink == 1


def test_rename_a_directory_across_parents(t: Tree) -> None:
    a = t.mkdir("/a")
    b = t.mkdir("/b")
    d = t.mkdir("/a/d")
    t.mk("/a/d/f")
    t.rename("/a/d", "/b/e")
    assert d.parent is b and d.name == "e"
    assert a.nlink == 2 and b.nlink == 3
    assert t.ns.resolve("/b/e/f").is_file
    assert t.ns.path_of(d.ino) == "/b/e"


def test_rename_onto_itself_is_a_noop(t: Tree) -> None:
    t.mkdir("/a")
    t.mk("/a/f")
    before = image(t.ns)
    t.rename("/a/f", "/a/f")
    t.rename("/a", "/a")
    assert image(t.ns) == before


def test_rename_onto_another_link_of_the_same_file_is_a_noop(t: Tree) -> None:
    f = t.mk("/f")
    t.apply(t.ns.plan_link(f.ino, 1, "g", t.now()))
    before = image(t.ns)
    t.rename("/f", "/g")
    assert image(t.ns) == before  # as rename(2): both names stay
    assert f.nlink == 2


def test_rename_replaces_a_file(t: Tree) -> None:
    f = t.mk("/f")
    g = t.mk("/g")
    t.rename("/f", "/g")
    assert t.ns.resolve("/g") is f
    assert g.ino not in t.ns.inodes and "f" not in t.ns.root.children


def test_rename_replacing_a_linked_file_keeps_its_other_name(t: Tree) -> None:
    t.mkdir("/d")
    f = t.mk("/f")
    g = t.mk("/g")
    t.apply(t.ns.plan_link(g.ino, t.ns.resolve("/d").ino, "g2", t.now()))
    now = t.now()
    t.apply(t.ns.plan_rename(1, "f", 1, "g", now))
    assert t.ns.resolve("/g") is f
    assert g.nlink == 1 and t.ns.resolve("/d/g2") is g and g.ctime == now


def test_rename_directory_over_empty_directory(t: Tree) -> None:
    a = t.mkdir("/a")
    t.mk("/a/f")
    empty = t.mkdir("/b")
    x = t.mkdir("/x")
    t.rename("/a", "/x/e")
    assert (t.ns.root.nlink, x.nlink) == (4, 3)
    t.rename("/x/e", "/b")
    assert t.ns.resolve("/b") is a and empty.ino not in t.ns.inodes
    assert (t.ns.root.nlink, x.nlink) == (4, 2)


def test_rename_type_and_emptiness_errors(t: Tree) -> None:
    t.mkdir("/d")
    t.mkdir("/full")
    t.mk("/full/x")
    t.mk("/f")
    with pytest.raises(NotEmpty, match="/full"):
        t.rename("/d", "/full")
    with pytest.raises(IsDir, match="/d"):
        t.rename("/f", "/d")
    with pytest.raises(NotDir, match="/f"):
        t.rename("/d", "/f")
    with pytest.raises(NotFound):
        t.rename("/nope", "/x")
    with pytest.raises(NotDir):
        t.ns.plan_rename(1, "f", t.ns.resolve("/f").ino, "x", t.now())
    with pytest.raises(Invalid):
        t.ns.plan_rename(1, "f", 1, "a/b", t.now())


def test_rename_a_directory_into_its_own_subtree(t: Tree) -> None:
    t.mkdir("/a")
    t.mkdir("/a/b")
    t.mkdir("/a/b/c")
    with pytest.raises(Invalid, match="/a"):
        t.rename("/a", "/a/b/c/x")
    with pytest.raises(Invalid):
        t.rename("/a", "/a/x")
    with pytest.raises(Invalid):  # invalid before "not empty", as Linux
        t.rename("/a/b", "/a/b/c")


def test_the_root_cannot_be_renamed(t: Tree) -> None:
    t.mkdir("/a")
    with pytest.raises(Invalid):
        t.ns.plan_rename(1, "..", 1, "x", t.now())
    with pytest.raises(Invalid):
        t.ns.plan_rename(1, ".", 1, "x", t.now())


# ---- setattr and content -------------------------------------------------------------------


def test_setattr_mode_owner_and_times(t: Tree) -> None:
    f = t.mk("/f")
    now = t.now()
    op = t.ns.plan_setattr(f.ino, mode=stat.S_IFDIR | 0o4700, uid=1, gid=2, atime=10, mtime=20, time_ns=now)
    t.apply(op)
    assert f.mode == stat.S_IFREG | 0o4700  # type bits stay
    assert (f.uid, f.gid, f.atime, f.mtime, f.ctime) == (1, 2, 10, 20, now)
    d = t.mkdir("/d")
    t.apply(t.ns.plan_setattr(d.ino, mode=0o700, time_ns=t.now()))
    assert d.mode == stat.S_IFDIR | 0o700
    later = t.now()
    t.apply(t.ns.plan_setattr(d.ino, time_ns=later))
    assert d.ctime == later and d.uid == 1000


def test_setattr_size(t: Tree) -> None:
    f = t.mk("/f")
    created = f.mtime
    now = t.now()
    op = t.ns.plan_setattr(f.ino, size=100, time_ns=now)
    assert op == SetAttr(f.ino, None, None, None, 100, None, now, now)
    t.apply(op)
    assert f.size == 100 and f.mtime == f.ctime == now
    t.apply(t.ns.plan_setattr(f.ino, size=5, mtime=created, time_ns=t.now()))
    assert f.size == 5 and f.mtime == created
    same = t.ns.plan_setattr(f.ino, size=5, time_ns=t.now())
    assert same.mtime is None  # no change of size, no new mtime


def test_setattr_errors(t: Tree) -> None:
    d = t.mkdir("/d")
    link = t.symlink("/l", "x")
    f = t.mk("/f")
    with pytest.raises(IsDir):
        t.ns.plan_setattr(d.ino, size=0, time_ns=t.now())
    with pytest.raises(Invalid):
        t.ns.plan_setattr(link.ino, size=0, time_ns=t.now())
    with pytest.raises(Invalid):
        t.ns.plan_setattr(f.ino, size=-1, time_ns=t.now())
    with pytest.raises(Invalid):
        t.ns.plan_setattr(f.ino, uid=-5, time_ns=t.now())
    with pytest.raises(Stale):
        t.ns.plan_setattr(999, mode=0o600, time_ns=t.now())


def test_set_content(t: Tree) -> None:
    f = t.mk("/f")
    assert isinstance(f, FileInode)
    now = t.now()
    op = t.ns.plan_set_content(f.ino, 42, now, [42, 7, "etag"], [[0, 42, "ab" * 32]])
    t.apply(op)
    assert (f.size, f.mtime, f.ctime) == (42, now, now)
    assert f.fingerprint == [42, 7, "etag"] and f.layout == [[0, 42, "ab" * 32]]
    t.apply(t.ns.plan_set_content(f.ino, 0, t.now()))
    assert f.fingerprint is None and f.layout is None
    with pytest.raises(IsDir):
        t.ns.plan_set_content(1, 0, t.now())
    with pytest.raises(Invalid):
        t.ns.plan_set_content(t.symlink("/l", "x").ino, 0, t.now())
    with pytest.raises(Invalid):
        t.ns.plan_set_content(f.ino, -1, t.now())


# ---- apply ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "op",
    [
        MkNode(99, "x", 50, FILE, 0, 0, 1),  # no such parent
        MkNode(1, "f", 50, FILE, 0, 0, 1),  # exists
        MkNode(1, "new", 2, FILE, 0, 0, 1),  # inode id given before
        MkNode(1, "new", 3, 0o644, 0, 0, 1),  # no type
        MkNode(1, "a/b", 50, FILE, 0, 0, 1),
        MkNode(1, "new", 50, FILE, 0, 0, "soon"),  # type: ignore[arg-type]
        Link(1, "g", 1, 1),  # directory
        Link(1, "f", 2, 1),  # exists
        Unlink(1, "nope", 1),
        Unlink(1, "d", 1),
        Rename(1, "d", 3, "x", 1),  # into a file
        Rename(1, "f", 1, "d", 1),
        SetAttr(2, None, None, None, -1, None, None, 1),
        SetAttr(3, None, None, None, 1, None, None, 1),  # size of a directory
        SetContent(3, 1, 1, "not a list"),  # type: ignore[arg-type]
    ],
)
def test_apply_refuses_ops_that_do_not_fit_and_changes_nothing(op: Op) -> None:
    t = Tree()
    t.mk("/f")
    t.mkdir("/d")
    before = image(t.ns)
    with pytest.raises(Corrupt):
        t.ns.apply(op)
    assert image(t.ns) == before
    t.ns.check()


def test_apply_refuses_unknown_ops() -> None:
    with pytest.raises(Corrupt):
        Namespace().apply(Op())


def populate(t: Tree) -> None:
    t.mkdir("/a")
    t.mkdir("/a/b")
    f = t.mk("/a/b/f")
    t.apply(t.ns.plan_link(f.ino, 1, "hard", t.now()))
    t.symlink("/a/l", "b/f")
    t.apply(t.ns.plan_set_content(f.ino, 10, t.now(), [10, 1, None], [[0, 10, "d1" * 32]]))
    t.apply(t.ns.plan_setattr(t.ns.resolve("/a").ino, mode=0o700, uid=5, time_ns=t.now()))
    t.apply(t.ns.plan_mkdirs("/x/y/z", 0o755, 0, 0, t.now()))
    t.rename("/a/b", "/x/y/b")
    t.mk("/gone")
    t.rename("/a/l", "/gone")
    t.apply(t.ns.plan_unlink(1, "hard", t.now()))
    t.apply(t.ns.plan_mknod(t.ns.resolve("/x").ino, "pipe", stat.S_IFIFO | 0o600, 3, 4, t.now()))
    t.apply(t.ns.plan_mknod(t.ns.resolve("/x").ino, "sock", stat.S_IFSOCK | 0o777, 3, 4, t.now()))
    t.rename("/x/sock", "/sock")


def test_replaying_the_ops_rebuilds_the_same_tree(t: Tree) -> None:
    populate(t)
    replay = Namespace(root_uid=0, root_gid=0, time_ns=1_000)
    for op in t.ops:
        replay.apply(decode_op(op.CODE, op.encode()))  # through the journal encoding
    replay.check()
    assert image(replay) == image(t.ns)
    assert replay.next_ino == t.ns.next_ino


# ---- listing -------------------------------------------------------------------------------


def test_list_names(t: Tree) -> None:
    d = t.mkdir("/d")
    names = ["b", "a", "é", "c1", "c0", "Z"]
    for n in names:
        t.mk(f"/d/{n}")
    listed = t.ns.list_names(d.ino)
    assert [n for n, _ in listed] == sorted(names)
    assert all(node is d.children[n] for n, node in listed)
    assert [n for n, _ in t.ns.list_names(d.ino, limit=2)] == ["Z", "a"]
    assert [n for n, _ in t.ns.list_names(d.ino, start_after="a", limit=2)] == ["b", "c0"]
    assert [n for n, _ in t.ns.list_names(d.ino, start_after="b5")] == ["c0", "c1", "é"]  # need not exist
    assert t.ns.list_names(d.ino, start_after="é") == []
    assert t.ns.list_names(d.ino, limit=0) == []
    with pytest.raises(NotDir):
        t.ns.list_names(t.ns.resolve("/d/a").ino)
    with pytest.raises(Invalid):
        t.ns.list_names(d.ino, limit=-1)


def test_names_not_in_a_set_come_in_name_order_with_or_without_the_index(t: Tree) -> None:
    d = t.mkdir("/d")
    for n in ["b", "a", "é", "c1", "c0", "Z"]:
        t.mk(f"/d/{n}")
    assert d.children.names_not_in({"a", "c0", "gone"}) == ["Z", "b", "c1", "é"]
    t.ns.list_names(d.ino, start_after="a")  # builds the sorted index, kept in step from now on
    t.mk("/d/c2")
    t.ns.apply(t.ns.plan_unlink(d.ino, "b", t.now()))
    assert d.children.names_not_in(frozenset({"a", "c0"})) == ["Z", "c1", "c2", "é"]
    assert d.children.names_not_in(set(d.children)) == []


def test_list_names_pages_through_everything(t: Tree) -> None:
    d = t.mkdir("/d")
    for i in range(50):
        t.mk(f"/d/n{i}")
    seen: list[str] = []
    after = None
    while page := t.ns.list_names(d.ino, after, 7):
        seen += [n for n, _ in page]
        after = page[-1][0]
    assert seen == sorted(f"n{i}" for i in range(50))


def read_all(ns: Namespace, dir_ino: int, limit: int) -> list[tuple[int, str, Inode]]:
    out: list[tuple[int, str, Inode]] = []
    cookie = 0
    while True:
        batch, eof = ns.readdir(dir_ino, cookie, limit)
        out += batch
        if eof:
            return out
        assert batch
        cookie = batch[-1][0]


def test_readdir_returns_everything_in_cookie_order(t: Tree) -> None:
    d = t.mkdir("/d")
    for i in range(30):
        t.mk(f"/d/n{i}")
    batch, eof = t.ns.readdir(d.ino, 0, 100)
    assert eof
    assert [c for c, _, _ in batch] == sorted(name_cookie(n) for n in d.children)
    assert all(c == name_cookie(n) and node is d.children[n] for c, n, node in batch)
    paged = read_all(t.ns, d.ino, 4)
    assert paged == batch


def test_readdir_eof(t: Tree) -> None:
    d = t.mkdir("/d")
    assert t.ns.readdir(d.ino) == ([], True)
    for n in "abc":
        t.mk(f"/d/{n}")
    batch, eof = t.ns.readdir(d.ino, 0, 3)
    assert len(batch) == 3 and eof
    batch, eof = t.ns.readdir(d.ino, 0, 2)
    assert len(batch) == 2 and not eof
    assert t.ns.readdir(d.ino, max(name_cookie(n) for n in "abc"), 5) == ([], True)


def test_readdir_errors(t: Tree) -> None:
    f = t.mk("/f")
    with pytest.raises(NotDir):
        t.ns.readdir(f.ino)
    with pytest.raises(Invalid):
        t.ns.readdir(1, 0, 0)


def test_readdir_resumes_after_a_deleted_entry(t: Tree) -> None:
    d = t.mkdir("/d")
    for i in range(20):
        t.mk(f"/d/n{i}")
    first, _ = t.ns.readdir(d.ino, 0, 5)
    last_cookie, last_name, _ = first[-1]
    t.apply(t.ns.plan_unlink(d.ino, last_name, t.now()))
    rest = read_all_from(t.ns, d.ino, last_cookie, 5)
    names = [n for _, n, _ in first] + [n for _, n, _ in rest]
    assert sorted(names) == sorted([*d.children, last_name])


def read_all_from(ns: Namespace, dir_ino: int, cookie: int, limit: int) -> list[tuple[int, str, Inode]]:
    out: list[tuple[int, str, Inode]] = []
    while True:
        batch, eof = ns.readdir(dir_ino, cookie, limit)
        out += batch
        if eof:
            return out
        cookie = batch[-1][0]


def test_readdir_is_stable_while_entries_come_and_go(t: Tree) -> None:
    d = t.mkdir("/d")
    for i in range(40):
        t.mk(f"/d/keep{i}")
        t.mk(f"/d/churn{i}")
    kept = {f"keep{i}" for i in range(40)}
    seen: list[str] = []
    cookie, eof, step = 0, False, 0
    while not eof:
        batch, eof = t.ns.readdir(d.ino, cookie, 3)
        seen += [n for _, n, _ in batch]
        if batch:
            cookie = batch[-1][0]
        # change the directory between calls: remove, add, rename within
        if step < 40:
            t.apply(t.ns.plan_unlink(d.ino, f"churn{step}", t.now()))
            t.mk(f"/d/new{step}")
            if step % 5 == 0:
                t.rename(f"/d/new{step}", f"/d/moved{step}")
        step += 1
    assert len(seen) == len(set(seen)), "an entry was listed twice"
    assert kept <= set(seen), "an entry that existed throughout was missed"


def test_readdir_never_splits_entries_with_the_same_cookie(t: Tree, monkeypatch: pytest.MonkeyPatch) -> None:
    # Real 63-bit collisions are too rare to find; force them.
    monkeypatch.setattr(inode_module, "name_cookie", lambda name: 3 + len(name))
    d = t.mkdir("/d")
    for n in ["a", "b", "c", "dd", "ee", "fff"]:
        t.mk(f"/d/{n}")
    batch, eof = t.ns.readdir(d.ino, 0, 1)
    assert [(c, n) for c, n, _ in batch] == [(4, "a"), (4, "b"), (4, "c")] and not eof
    batch, eof = t.ns.readdir(d.ino, 4, 2)
    assert [n for _, n, _ in batch] == ["dd", "ee"] and not eof
    batch, eof = t.ns.readdir(d.ino, 5, 3)
    assert [n for _, n, _ in batch] == ["fff"] and eof
    # the index follows later changes, including groups shrinking back to one name
    t.apply(t.ns.plan_unlink(d.ino, "a", t.now()))
    t.apply(t.ns.plan_unlink(d.ino, "b", t.now()))
    t.rename("/d/ee", "/d/gggg")
    t.mk("/d/x")
    assert [(c, n) for c, n, _ in read_all(t.ns, d.ino, 1)] == [
        (4, "c"),
        (4, "x"),
        (5, "dd"),
        (6, "fff"),
        (7, "gggg"),
    ]


def test_cookie_index_is_built_lazily_and_kept_in_sync(t: Tree) -> None:
    d = t.mkdir("/d")
    other = t.mkdir("/o")
    t.mk("/d/a")
    assert d.cookies is None
    t.ns.readdir(d.ino)
    assert d.cookies is not None and other.cookies is None
    t.mk("/d/b")
    t.rename("/d/a", "/o/a")
    t.rename("/o/a", "/d/c")
    t.apply(t.ns.plan_link(t.ns.resolve("/d/b").ino, d.ino, "b2", t.now()))
    t.ns.check()  # includes the cookie index
    assert sorted(n for _, n, _ in read_all(t.ns, d.ino, 2)) == ["b", "b2", "c"]


# ---- check ---------------------------------------------------------------------------------


def broken(change: str) -> Namespace:
    t = Tree()
    d = t.mkdir("/d")
    f = t.mk("/d/f")
    t.ns.readdir(d.ino)
    ns = t.ns
    if change == "file nlink":
        f.nlink = 2
    elif change == "dir nlink":
        d.nlink = 3
    elif change == "parent":
        d.parent = d
    elif change == "orphan":
        ns.inodes[99] = FileInode(99, 1, FILE, 0, 0, 1, 0, 0, 0, 0, 0, None, None)
        ns.next_ino = 100
    elif change == "next_ino":
        ns.next_ino = f.ino
    elif change == "cookies":
        d.children["g"] = FileInode(ns.next_ino, 1, FILE, 0, 0, 1, 0, 0, 0, 0, 0, None, None)
        ns.inodes[ns.next_ino] = d.children["g"]
        ns.next_ino += 1
    elif change == "name":
        d.children["a/b"] = d.children.pop("f")
        d.cookies = None
    elif change == "dir name":
        d.name = "e"
    elif change == "mode":
        f.mode = stat.S_IFDIR | 0o644
    return ns


@pytest.mark.parametrize(
    "change", ["file nlink", "dir nlink", "parent", "orphan", "next_ino", "cookies", "name", "dir name", "mode"]
)
def test_check_finds_broken_invariants(change: str) -> None:
    with pytest.raises(AssertionError):
        broken(change).check()


# ---- image ---------------------------------------------------------------------------------


def test_image_round_trip(t: Tree) -> None:
    populate(t)
    for chunk_size in (1, 3, 4096):
        chunks = [msgpack.unpackb(msgpack.packb(c), strict_map_key=False) for c in t.ns.to_image(chunk_size)]
        loaded = Namespace.from_image(chunks)
        loaded.check()
        assert image(loaded) == image(t.ns)
        assert loaded.next_ino == t.ns.next_ino
        assert loaded.resolve("/x/y/b/f").layout == [[0, 10, "d1" * 32]]  # type: ignore[attr-defined]
        assert isinstance(loaded.resolve("/x/pipe"), SpecialInode)
        assert loaded.resolve("/sock").mode == stat.S_IFSOCK | 0o777
        z = loaded.resolve("/x/y/z")
        assert z.atime is z.mtime is z.ctime  # equal times share one int


def test_image_of_big_directories_with_small_chunks(t: Tree) -> None:
    d = t.mkdir("/big")
    for i in range(25):
        t.mk(f"/big/f{i:02d}")
        t.mkdir(f"/big/d{i:02d}")
    t.mk("/big/d00/inner")
    chunks = list(t.ns.to_image(chunk_size=4))
    assert all(len(c) <= 5 for c in chunks[1:])
    loaded = Namespace.from_image(chunks)
    loaded.check()
    assert image(loaded) == image(t.ns)
    assert loaded.path_of(loaded.resolve("/big/d07").ino) == "/big/d07"
    assert loaded.get(d.ino).nlink == 27


def test_image_does_not_depend_on_history() -> None:
    one, two = Tree(), Tree()
    one.mk("/a")
    one.mk("/b")
    two.mk("/b")
    two.mk("/a")
    # same names and ids in a different order give different trees; same tree, same image
    assert image(one.ns) != image(two.ns)
    assert image(Namespace.from_image(image(one.ns))) == image(one.ns)


def test_loaded_namespace_keeps_working(t: Tree) -> None:
    populate(t)
    loaded = Namespace.from_image(image(t.ns))
    op = loaded.plan_mknod(loaded.resolve("/x/y").ino, "new", FILE, 0, 0, t.now())
    assert op.ino == t.ns.next_ino
    loaded.apply(op)
    loaded.apply(loaded.plan_rename(1, "x", 1, "x2", t.now()))
    loaded.check()
    assert loaded.path_of(loaded.resolve("/x2/y/b").ino) == "/x2/y/b"


def bad_images() -> Iterator[list[Any]]:
    t = Tree()
    t.mkdir("/d")
    t.mk("/d/f")
    good = image(t.ns)
    yield []
    yield [{"version": 99, "next_ino": 4}, *good[1:]]  # an unknown version
    yield [good[0], *good[1:], {"xattrs": []}]  # an xattr chunk in a version 1 image
    yield [good[0], [good[1][0], *good[1]]]  # an inode twice
    yield [good[0], good[1][1:]]  # the file is missing
    yield [{"version": 1, "next_ino": 2}, *good[1:]]
    yield [good[0], [[*good[1][0][:2], 0o20644, *good[1][0][3:]], *good[1][1:]]]  # a character device
    yield [good[0], [*good[1][:-1]]]  # no root


@pytest.mark.parametrize("chunks", list(bad_images()))
def test_from_image_refuses_malformed_images(chunks: list[Any]) -> None:
    with pytest.raises(Corrupt):
        Namespace.from_image(chunks)
