"""Random operation sequences against the namespace and a plain model of it.

The model is a dict of paths -> inode id plus each inode's attributes. Every rule decides from
the model alone what should happen (which error, or which new tree), runs the real
plan/apply, and compares. After every step check() must hold and the visible trees must match.
At the end the applied ops, replayed through the journal encoding into a fresh namespace, and
a to_image/from_image round trip must both give the same image.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass, field
from typing import Any

import msgpack
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from nsd.errors import Exists, Invalid, IsDir, NotDir, NotEmpty, NotPermitted, NsdError
from nsd.journal.ops import Op, decode_op
from nsd.namespace import DirInode, FileInode, Namespace, SymlinkInode, layouts

NAMES = st.sampled_from(["a", "b", "c", "dé", "e"])
PERMS = st.sampled_from([0o644, 0o600, 0o4755, 0o7777])
DIGESTS = st.sampled_from(["a" * 64, "b" * 64, "c" * 64])


@dataclass
class Node:
    kind: str  # "d", "f" or "l"
    perms: int
    size: int = 0
    target: str | None = None
    unpersisted: bool = False  # content only in blocks (no fingerprint, a complete layout)
    pinned: bool = False  # set by SetPin, or inherited when created in a pinned directory


@dataclass
class Listing:
    """A readdir in progress: what was seen, and which names existed throughout."""

    cookie: int = 0
    seen: list[str] = field(default_factory=list)
    must: set[str] = field(default_factory=set)


def parent_of(path: str) -> str:
    return path.rsplit("/", 1)[0] or "/"


def join(d: str, name: str) -> str:
    return d.rstrip("/") + "/" + name


class NamespaceModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.ns = Namespace(time_ns=1)
        self.clock = 10
        self.ops: list[Op] = []
        self.paths: dict[str, int] = {"/": 1}
        self.nodes: dict[int, Node] = {1: Node("d", 0o755)}
        self.next_ino = 2
        self.listings: dict[int, Listing] = {}

    # ---- helpers ---------------------------------------------------------------------------

    def now(self) -> int:
        self.clock += 1
        return self.clock

    def apply(self, ops: Op | list[Any]) -> None:
        for op in ops if isinstance(ops, list) else [ops]:
            self.ns.apply(op)
            self.ops.append(op)

    def kind(self, path: str) -> str:
        return self.nodes[self.paths[path]].kind

    def dirs(self) -> list[str]:
        return sorted(p for p in self.paths if self.kind(p) == "d")

    def entries(self) -> list[str]:
        return sorted(p for p in self.paths if p != "/")

    def children(self, d: str) -> list[str]:
        prefix = d.rstrip("/") + "/"
        return [p for p in self.paths if p.startswith(prefix) and "/" not in p[len(prefix) :] and p != "/"]

    def ino(self, path: str) -> int:
        return self.paths[path]

    def forget_name(self, path: str) -> None:
        """A name leaves a directory: a listing there no longer owes it."""
        listing = self.listings.get(self.paths.get(parent_of(path), -1))
        if listing is not None:
            listing.must.discard(path.rsplit("/", 1)[1])

    def drop(self, path: str) -> None:
        self.forget_name(path)
        ino = self.paths.pop(path)
        if ino not in self.paths.values():
            del self.nodes[ino]
            self.listings.pop(ino, None)

    def expect(self, error: type[NsdError] | None, plan: Any) -> Any:
        """Run `plan`; it must raise exactly `error`, or succeed when error is None."""
        event(f"{plan.__qualname__.split('.')[1]}: {error.__name__ if error else 'ok'}")
        if error is None:
            return plan()
        try:
            plan()
        except NsdError as e:
            assert type(e) is error, f"expected {error.__name__}, got {e!r}"
            return None
        raise AssertionError(f"expected {error.__name__}, but the plan succeeded")

    # ---- creating --------------------------------------------------------------------------

    def create(self, data: st.DataObject, kind: str, mode: int, target: str | None = None) -> None:
        d = data.draw(st.sampled_from(self.dirs()), label="dir")
        name = data.draw(NAMES, label="name")
        path = join(d, name)
        error = Exists if path in self.paths else None
        op = self.expect(error, lambda: self.ns.plan_mknod(self.ino(d), name, mode, 1, 2, self.now(), target))
        if op is None:
            return
        assert op.ino == self.next_ino
        self.apply(op)
        self.paths[path] = self.next_ino
        perms = mode & 0o7777
        size = len(target.encode()) if target is not None else 0
        self.nodes[self.next_ino] = Node(kind, perms, size, target, pinned=kind != "l" and self.pinned(d))
        self.next_ino += 1

    def pinned(self, path: str) -> bool:
        return self.nodes[self.ino(path)].pinned

    @rule(data=st.data(), perms=PERMS)
    def mkdir(self, data: st.DataObject, perms: int) -> None:
        self.create(data, "d", stat.S_IFDIR | perms)

    @rule(data=st.data(), perms=PERMS)
    def create_file(self, data: st.DataObject, perms: int) -> None:
        self.create(data, "f", stat.S_IFREG | perms)

    @rule(data=st.data(), dest=st.sampled_from(["a", "../b", "/a/c", "x/y"]))
    def symlink(self, data: st.DataObject, dest: str) -> None:
        self.create(data, "l", stat.S_IFLNK | 0o777, dest)

    @rule(data=st.data(), names=st.lists(NAMES, min_size=1, max_size=3))
    def mkdirs(self, data: st.DataObject, names: list[str]) -> None:
        path = join(data.draw(st.sampled_from(self.dirs()), label="dir"), "/".join(names))
        prefixes = []  # deepest first
        p = path
        while p != "/":
            prefixes.append(p)
            p = parent_of(p)
        if any(q in self.paths and self.kind(q) == "l" for q in prefixes):
            return  # the model follows no symlinks
        existing = [q for q in prefixes if q in self.paths]
        blocking = [q for q in existing if self.kind(q) != "d"]
        error: type[NsdError] | None = None
        if blocking:
            error = Exists if path in blocking else NotDir
        ops = self.expect(error, lambda: self.ns.plan_mkdirs(path, 0o750, 1, 2, self.now()))
        if ops is None:
            return
        self.apply(ops)
        missing = sorted((q for q in prefixes if q not in self.paths and q != "/"), key=len)
        assert [op.ino for op in ops] == list(range(self.next_ino, self.next_ino + len(missing)))
        for q in missing:
            self.paths[q] = self.next_ino
            self.nodes[self.next_ino] = Node("d", 0o750, pinned=self.pinned(parent_of(q)))
            self.next_ino += 1

    @precondition(lambda self: len(self.paths) > 1)
    @rule(data=st.data())
    def link(self, data: st.DataObject) -> None:
        src = data.draw(st.sampled_from(self.entries()), label="src")
        d = data.draw(st.sampled_from(self.dirs()), label="dir")
        name = data.draw(NAMES, label="name")
        path = join(d, name)
        error = NotPermitted if self.kind(src) == "d" else Exists if path in self.paths else None
        op = self.expect(error, lambda: self.ns.plan_link(self.ino(src), self.ino(d), name, self.now()))
        if op is not None:
            self.apply(op)
            self.paths[path] = self.ino(src)

    # ---- removing --------------------------------------------------------------------------

    @precondition(lambda self: len(self.paths) > 1)
    @rule(data=st.data())
    def unlink(self, data: st.DataObject) -> None:
        path = data.draw(st.sampled_from(self.entries()), label="path")
        error = IsDir if self.kind(path) == "d" else None
        d, name = parent_of(path), path.rsplit("/", 1)[1]
        op = self.expect(error, lambda: self.ns.plan_unlink(self.ino(d), name, self.now()))
        if op is not None:
            self.apply(op)
            self.drop(path)

    @precondition(lambda self: len(self.paths) > 1)
    @rule(data=st.data())
    def rmdir(self, data: st.DataObject) -> None:
        path = data.draw(st.sampled_from(self.entries()), label="path")
        error = NotDir if self.kind(path) != "d" else NotEmpty if self.children(path) else None
        d, name = parent_of(path), path.rsplit("/", 1)[1]
        op = self.expect(error, lambda: self.ns.plan_rmdir(self.ino(d), name, self.now()))
        if op is not None:
            self.apply(op)
            self.drop(path)

    # ---- rename ----------------------------------------------------------------------------

    @precondition(lambda self: len(self.paths) > 1)
    @rule(data=st.data())
    def rename(self, data: st.DataObject) -> None:
        src = data.draw(st.sampled_from(self.entries()), label="src")
        d = data.draw(st.sampled_from(self.dirs()), label="dst dir")
        name = data.draw(NAMES, label="name")
        dst = join(d, name)
        error: type[NsdError] | None = None
        noop = dst == src or self.paths.get(dst) == self.ino(src)
        src_dir = self.kind(src) == "d"
        if noop:
            pass
        elif src_dir and (d == src or d.startswith(src + "/")):
            error = Invalid
        elif dst in self.paths:
            dst_dir = self.kind(dst) == "d"
            if src_dir and not dst_dir:
                error = NotDir
            elif not src_dir and dst_dir:
                error = IsDir
            elif dst_dir and self.children(dst):
                error = NotEmpty
        sp, sn = parent_of(src), src.rsplit("/", 1)[1]
        op = self.expect(error, lambda: self.ns.plan_rename(self.ino(sp), sn, self.ino(d), name, self.now()))
        if op is None:
            return
        self.apply(op)
        if noop:
            return
        if dst in self.paths:
            self.drop(dst)
        self.forget_name(src)
        moved = {p: i for p, i in self.paths.items() if p == src or p.startswith(src + "/")}
        for p in moved:
            del self.paths[p]
        for p, i in moved.items():
            self.paths[dst + p[len(src) :]] = i

    # ---- attributes ------------------------------------------------------------------------

    @rule(data=st.data(), perms=st.none() | PERMS, size=st.none() | st.integers(0, 5))
    def setattr(self, data: st.DataObject, perms: int | None, size: int | None) -> None:
        path = data.draw(st.sampled_from(sorted(self.paths)), label="path")
        node = self.nodes[self.ino(path)]
        error: type[NsdError] | None = None
        if size is not None and node.kind != "f":
            error = IsDir if node.kind == "d" else Invalid
        elif size is not None and node.unpersisted and size != node.size:
            error = Invalid  # blocks-only content changes size only with new content

        def plan() -> Any:
            return self.ns.plan_setattr(self.ino(path), mode=perms, size=size, time_ns=self.now())

        op = self.expect(error, plan)
        if op is None:
            return
        self.apply(op)
        if perms is not None:
            node.perms = perms
        if size is not None:
            node.size = size

    @rule(data=st.data(), size=st.integers(0, 100))
    def set_content(self, data: st.DataObject, size: int) -> None:
        files = sorted(p for p in self.paths if self.kind(p) == "f")
        if not files:
            return
        path = data.draw(st.sampled_from(files), label="path")
        layout = [[0, size, "e" * 64]] if size else []
        self.apply(self.ns.plan_set_content(self.ino(path), size, self.now(), [size, 1, "e"], layout))
        self.nodes[self.ino(path)].size = size
        self.nodes[self.ino(path)].unpersisted = False

    # ---- cache state: unpersisted content, pins, persists, TTLs ------------------------------

    def files(self) -> list[str]:
        return sorted(p for p in self.paths if self.kind(p) == "f")

    @rule(data=st.data(), blocks=st.lists(st.tuples(st.integers(1, 9), DIGESTS), max_size=3))
    def write_unpersisted(self, data: st.DataObject, blocks: list[tuple[int, str]]) -> None:
        if not self.files():
            return
        path = data.draw(st.sampled_from(self.files()), label="path")
        layout, pos = [], 0
        for length, digest in blocks:
            layout.append([pos, length, digest])
            pos += length
        self.apply(self.ns.plan_set_content(self.ino(path), pos, self.now(), None, layout))
        node = self.nodes[self.ino(path)]
        node.size, node.unpersisted = pos, True

    @rule(data=st.data(), pinned=st.booleans())
    def pin(self, data: st.DataObject, pinned: bool) -> None:
        path = data.draw(st.sampled_from(sorted(self.paths)), label="path")
        error = Invalid if self.kind(path) == "l" else None
        op = self.expect(error, lambda: layouts.plan_set_pin(self.ns, self.ino(path), pinned))
        if op is not None:
            self.apply(op)
            self.nodes[self.ino(path)].pinned = pinned

    @rule(data=st.data())
    def request_persist(self, data: st.DataObject) -> None:
        if not self.files():
            return
        path = data.draw(st.sampled_from(self.files()), label="path")
        error = None if self.nodes[self.ino(path)].unpersisted else Invalid
        op = self.expect(error, lambda: layouts.plan_request_persist(self.ns, self.ino(path)))
        if op is not None:
            self.apply(op)

    @rule(data=st.data(), stale=st.booleans())
    def persisted(self, data: st.DataObject, stale: bool) -> None:
        if not self.files():
            return
        path = data.draw(st.sampled_from(self.files()), label="path")
        f = self.ns.get(self.ino(path))
        assert isinstance(f, FileInode)
        token = layouts.content_token(f.size + stale, f.layout)
        error = None if self.nodes[f.ino].unpersisted and not stale else Invalid
        op = self.expect(error, lambda: layouts.plan_persisted(self.ns, f.ino, token, [f.size, 2, None]))
        if op is not None:
            self.apply(op)
            self.nodes[f.ino].unpersisted = False

    @rule(data=st.data(), expires=st.none() | st.integers(0, 10**12), action=st.sampled_from(["free", "delete"]))
    def ttl(self, data: st.DataObject, expires: int | None, action: str) -> None:
        path = data.draw(st.sampled_from(sorted(self.paths)), label="path")
        self.apply(layouts.plan_set_ttl(self.ns, self.ino(path), expires, action))

    # ---- listing ---------------------------------------------------------------------------

    @rule(data=st.data())
    def readdir_start(self, data: st.DataObject) -> None:
        d = data.draw(st.sampled_from(self.dirs()), label="dir")
        names = {p.rsplit("/", 1)[1] for p in self.children(d)}
        self.listings[self.ino(d)] = Listing(must=names)

    @precondition(lambda self: self.listings)
    @rule(data=st.data(), limit=st.integers(1, 3))
    def readdir_step(self, data: st.DataObject, limit: int) -> None:
        ino = data.draw(st.sampled_from(sorted(self.listings)), label="listing")
        listing = self.listings[ino]
        batch, eof = self.ns.readdir(ino, listing.cookie, limit)
        cookies = [c for c, _, _ in batch]
        assert cookies == sorted(cookies) and all(c > listing.cookie for c in cookies)
        assert len(batch) <= limit  # 63-bit cookies do not collide among these names
        listing.seen += [n for _, n, _ in batch]
        if batch:
            listing.cookie = batch[-1][0]
        if eof:
            assert len(listing.seen) == len(set(listing.seen)), f"listed twice: {listing.seen}"
            assert listing.must <= set(listing.seen), f"missed {listing.must - set(listing.seen)}"
            del self.listings[ino]

    @rule(data=st.data(), limit=st.integers(1, 3))
    def list_names_pages(self, data: st.DataObject, limit: int) -> None:
        d = data.draw(st.sampled_from(self.dirs()), label="dir")
        seen: list[str] = []
        after = None
        while page := self.ns.list_names(self.ino(d), after, limit):
            assert len(page) <= limit
            seen += [n for n, _ in page]
            after = page[-1][0]
        assert seen == sorted(p.rsplit("/", 1)[1] for p in self.children(d))

    # ---- invariants ------------------------------------------------------------------------

    @invariant()
    def tree_matches_model(self) -> None:
        self.ns.check()
        visible: dict[str, tuple[Any, ...]] = {}
        todo: list[tuple[str, DirInode]] = [("/", self.ns.root)]
        while todo:
            path, d = todo.pop()
            visible[path] = (d.ino, "d", d.mode & 0o7777, d.nlink, 0, None)
            for name, node in d.children.items():
                p = join(path, name)
                if isinstance(node, DirInode):
                    todo.append((p, node))
                elif isinstance(node, SymlinkInode):
                    visible[p] = (node.ino, "l", node.mode & 0o7777, node.nlink, node.size, node.target)
                else:
                    assert isinstance(node, FileInode)
                    visible[p] = (node.ino, "f", node.mode & 0o7777, node.nlink, node.size, None)
        expected: dict[str, tuple[Any, ...]] = {}
        for p, ino in self.paths.items():
            n = self.nodes[ino]
            if n.kind == "d":
                nlink = 2 + sum(1 for c in self.children(p) if self.kind(c) == "d")
            else:
                nlink = sum(1 for i in self.paths.values() if i == ino)
            expected[p] = (ino, n.kind, n.perms, nlink, n.size, n.target)
        assert visible == expected
        assert self.ns.next_ino == self.next_ino
        assert self.ns.pinned == {ino for ino, n in self.nodes.items() if n.pinned}
        for p, ino in self.paths.items():
            assert self.ns.resolve(p, follow=False).ino == ino

    def teardown(self) -> None:
        replay = Namespace(time_ns=1)
        for op in self.ops:
            replay.apply(decode_op(op.CODE, op.encode()))
        replay.check()
        original = list(self.ns.to_image())
        assert list(replay.to_image()) == original
        chunks = [msgpack.unpackb(msgpack.packb(c), strict_map_key=False) for c in self.ns.to_image(chunk_size=3)]
        loaded = Namespace.from_image(chunks)
        loaded.check()
        assert list(loaded.to_image()) == original


NamespaceModel.TestCase.settings = settings(
    max_examples=300,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestNamespaceModel = NamespaceModel.TestCase
