"""Cache state in the namespace: unpersisted files, the index of held blocks, persist requests,
Persisted, TTLs; their replay, images and check()."""

from __future__ import annotations

import stat
from typing import Any

import msgpack
import pytest
from test_tree import Tree, image

from nsd.errors import Corrupt, Invalid
from nsd.journal.ops import CacheBlock, DropLayout, SetAttr, decode_op
from nsd.namespace import FileInode, Namespace
from nsd.namespace import layouts as L
from nsd.namespace.image import IMAGE_VERSION, IMAGE_VERSION_CACHE
from nsd.namespace.mounts import plan_ufs_sync

A, B, C = "a" * 64, "b" * 64, "c" * 64
FP = [10, 5, None]


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[int, list[str], list[str]]] = []

    def layout_changed(self, ino: int, removed: list[str], added: list[str]) -> None:
        self.calls.append((ino, removed, added))


def unpersisted(t: Tree, path: str, layout: list[Any], size: int) -> FileInode:
    f = t.mk(path)
    assert isinstance(f, FileInode)
    t.apply(t.ns.plan_set_content(f.ino, size, t.now(), None, layout))
    return f


def test_unpersisted_blocks_are_held_until_persisted() -> None:
    t = Tree()
    rec = Recorder()
    t.ns.layout_listener = rec
    f = unpersisted(t, "/f", [[0, 4, A], [4, 4, B], [8, 2, A]], 10)
    assert L.unpersisted(f) and t.ns.kept == {A: 2, B: 1}
    assert rec.calls == [(f.ino, [], [A, B, A])]
    t.apply(L.plan_request_persist(t.ns, f.ino))
    assert t.ns.persist_pending == {f.ino}
    with pytest.raises(Invalid, match="changed"):
        L.plan_persisted(t.ns, f.ino, L.content_token(10, [[0, 10, C]]), FP)
    t.apply(L.plan_persisted(t.ns, f.ino, L.content_token(f.size, f.layout), FP))
    assert f.fingerprint == FP and f.layout is not None  # blocks stay, as ordinary cache
    assert t.ns.kept == {} and t.ns.persist_pending == set()
    with pytest.raises(Invalid, match="already persisted"):
        L.plan_persisted(t.ns, f.ino, L.content_token(f.size, f.layout), FP)
    with pytest.raises(Invalid, match="nothing to persist"):
        L.plan_request_persist(t.ns, f.ino)


def test_pins_hold_blocks_of_persisted_files() -> None:
    t = Tree()
    f = t.mk("/f")
    t.apply(t.ns.plan_set_content(f.ino, 10, t.now(), FP, [[0, 4, A]]))
    assert t.ns.kept == {}
    t.apply(L.plan_set_pin(t.ns, f.ino, True))
    assert t.ns.kept == {A: 1}
    t.apply(CacheBlock(f.ino, 4, 4, B, FP))
    assert t.ns.kept == {A: 1, B: 1}
    t.apply(L.plan_set_pin(t.ns, f.ino, False))
    assert t.ns.kept == {}
    t.apply(L.plan_set_pin(t.ns, f.ino, True))
    t.apply(t.ns.plan_unlink(1, "f", t.now()))  # the inode goes: its pin and holds go too
    assert t.ns.kept == {} and t.ns.pinned == set()


def test_a_pinned_directory_pins_what_is_created_in_it_later() -> None:
    t = Tree()
    d = t.mkdir("/d")
    t.apply(L.plan_set_pin(t.ns, d.ino, True))
    f = t.mk("/d/f")
    sub = t.mkdir("/d/sub")
    deep = t.mk("/d/sub/g")
    link = t.symlink("/d/ln", "f")
    other = t.mk("/other")
    found = plan_ufs_sync(t.ns, sub.ino, [["ufs", stat.S_IFREG | 0o644, 0, 0, 4, 5, [4, 5, None]]], [], [], t.now())
    t.apply(found)
    assert {f.ino, sub.ino, deep.ino, found.add[0][1]} <= t.ns.pinned
    assert link.ino not in t.ns.pinned and other.ino not in t.ns.pinned
    t.apply(t.ns.plan_set_content(deep.ino, 8, t.now(), None, [[0, 8, A]]))
    assert t.ns.kept == {A: 1}  # held twice over (unpersisted and pinned), counted once
    with pytest.raises(Invalid, match="not a regular file or a directory"):
        L.plan_set_pin(t.ns, link.ino, True)

    replay = Namespace(root_uid=0, root_gid=0, time_ns=1_000)
    for op in t.ops:
        replay.apply(decode_op(op.CODE, op.encode()))
    replay.check()
    assert replay.pinned == t.ns.pinned
    loaded = Namespace.from_image([msgpack.unpackb(msgpack.packb(c), strict_map_key=False) for c in t.ns.to_image()])
    loaded.check()
    assert loaded.pinned == t.ns.pinned

    t.apply(L.plan_set_pin(t.ns, d.ino, False))
    assert t.mk("/d/later").ino not in t.ns.pinned  # the directory no longer passes a pin on
    assert t.mk("/d/sub/still").ino in t.ns.pinned  # its subdirectory was pinned on its own
    t.apply(t.ns.plan_unlink(sub.ino, "g", t.now()))
    t.apply(t.ns.plan_unlink(sub.ino, "ufs", t.now()))
    t.apply(t.ns.plan_unlink(sub.ino, "still", t.now()))
    t.apply(t.ns.plan_rmdir(d.ino, "sub", t.now()))
    assert sub.ino not in t.ns.pinned  # a removed directory's pin goes with it


def test_cache_block_rules() -> None:
    t = Tree()
    f = t.mk("/f")
    t.apply(t.ns.plan_set_content(f.ino, 10, t.now(), FP, None))
    t.apply(CacheBlock(f.ino, 0, 4, A, [1, 2, None]))  # another version of the file: ignored
    t.apply(CacheBlock(f.ino, 8, 4, A, FP))  # past the end: ignored
    assert f.layout is None
    t.apply(CacheBlock(f.ino, 4, 4, B, FP))
    t.apply(CacheBlock(f.ino, 0, 4, A, FP))
    assert f.layout == [[0, 4, A], [4, 4, B]]
    t.apply(CacheBlock(f.ino, 2, 6, C, FP))  # cut on another block size: overlapped entries make way
    assert f.layout == [[2, 6, C]]
    with pytest.raises(Corrupt):
        t.ns.apply(CacheBlock(f.ino, 0, 4, "not-a-digest", FP))
    g = unpersisted(t, "/g", [[0, 4, A]], 4)
    t.apply(CacheBlock(g.ino, 0, 4, B, None))  # nsd's own content is never replaced by a cache fill
    assert g.layout == [[0, 4, A]]


def test_unpersisted_content_is_protected() -> None:
    t = Tree()
    g = unpersisted(t, "/g", [[0, 4, A]], 4)
    with pytest.raises(Invalid, match="only copy"):
        L.plan_drop_layout(t.ns, g.ino)
    with pytest.raises(Corrupt):
        t.ns.apply(DropLayout(g.ino))
    with pytest.raises(Invalid, match="lives in blocks"):
        t.ns.plan_setattr(g.ino, size=2, time_ns=t.now())
    with pytest.raises(Invalid, match="gap"):
        t.ns.plan_set_content(g.ino, 8, t.now(), None, [[0, 4, A], [5, 3, B]])
    with pytest.raises(Invalid, match="ends at"):
        t.ns.plan_set_content(g.ino, 8, t.now(), None, [[0, 4, A]])
    with pytest.raises(Invalid, match="overlapping"):
        t.ns.plan_set_content(g.ino, 8, t.now(), FP, [[0, 4, A], [2, 4, B]])
    t.apply(t.ns.plan_set_content(g.ino, 0, t.now(), None, []))  # an empty unpersisted file
    assert L.unpersisted(g) and t.ns.kept == {}


def test_a_persisted_file_whose_size_changes_loses_its_blocks() -> None:
    t = Tree()
    f = t.mk("/f")
    t.apply(t.ns.plan_set_content(f.ino, 10, t.now(), FP, [[0, 4, A]]))
    t.apply(SetAttr(f.ino, None, None, None, 20, None, None, t.now()))
    assert f.layout is None and f.size == 20


def test_a_write_with_a_fingerprint_ends_a_pending_persist() -> None:
    t = Tree()
    f = unpersisted(t, "/f", [[0, 4, A]], 4)
    t.apply(L.plan_request_persist(t.ns, f.ino))
    t.apply(t.ns.plan_set_content(f.ino, 4, t.now(), FP, [[0, 4, A]]))
    assert t.ns.persist_pending == set() and t.ns.kept == {}


def test_ttls() -> None:
    t = Tree()
    d = t.mkdir("/d")
    f = t.mk("/d/f")
    t.apply(L.plan_set_ttl(t.ns, d.ino, 5_000, "free"))
    t.apply(L.plan_set_ttl(t.ns, f.ino, 6_000, "delete"))
    assert t.ns.ttls == {d.ino: (5_000, "free"), f.ino: (6_000, "delete")}
    with pytest.raises(Invalid, match="action"):
        L.plan_set_ttl(t.ns, f.ino, 1, "explode")
    t.apply(L.plan_set_ttl(t.ns, f.ino, None))
    assert t.ns.ttls == {d.ino: (5_000, "free")}
    t.apply(L.plan_set_ttl(t.ns, f.ino, 6_000, "delete"))
    t.apply(t.ns.plan_unlink(d.ino, "f", t.now()))
    t.apply(t.ns.plan_rmdir(1, "d", t.now()))
    assert t.ns.ttls == {}


def populate(t: Tree) -> None:
    f = unpersisted(t, "/f", [[0, 4, A], [4, 4, B]], 8)
    t.apply(L.plan_request_persist(t.ns, f.ino))
    g = t.mk("/g")
    t.apply(t.ns.plan_set_content(g.ino, 10, t.now(), FP, [[0, 4, A]]))
    t.apply(L.plan_set_pin(t.ns, g.ino, True))
    t.apply(L.plan_set_ttl(t.ns, g.ino, 9_000, "free"))
    t.apply(CacheBlock(g.ino, 4, 4, C, FP))


def test_replay_and_image_rebuild_the_same_state() -> None:
    t = Tree()
    populate(t)
    replay = Namespace(root_uid=0, root_gid=0, time_ns=1_000)
    for op in t.ops:
        replay.apply(decode_op(op.CODE, op.encode()))
    replay.check()
    assert image(replay) == image(t.ns)
    chunks = [msgpack.unpackb(msgpack.packb(c), strict_map_key=False) for c in t.ns.to_image()]
    assert chunks[0]["version"] == IMAGE_VERSION_CACHE
    loaded = Namespace.from_image(chunks)
    loaded.check()
    assert (loaded.kept, loaded.persist_pending, loaded.ttls, loaded.pinned) == (
        t.ns.kept,
        t.ns.persist_pending,
        t.ns.ttls,
        t.ns.pinned,
    )
    assert t.ns.kept == {A: 2, B: 1, C: 1}


def test_images_without_cache_state_keep_their_old_version() -> None:
    t = Tree()
    f = t.mk("/f")
    t.apply(t.ns.plan_set_content(f.ino, 10, t.now(), FP, [[0, 4, A]]))
    assert image(t.ns)[0]["version"] == IMAGE_VERSION
    assert "ttls" not in image(t.ns)[0] and "persist_pending" not in image(t.ns)[0]


def test_an_image_naming_a_missing_inode_is_corrupt() -> None:
    t = Tree()
    populate(t)
    chunks = image(t.ns)
    chunks[0] = {**chunks[0], "ttls": [[999, 1, "free"]]}
    with pytest.raises(Corrupt, match="TTL"):
        Namespace.from_image(chunks)


@pytest.mark.parametrize("damage", ["kept", "pending", "ttl", "coverage"])
def test_check_catches_broken_cache_state(damage: str) -> None:
    t = Tree()
    populate(t)
    ns = t.ns
    f = ns.resolve("/f")
    assert isinstance(f, FileInode)
    if damage == "kept":
        ns.kept[A] += 1
    elif damage == "pending":
        ns.persist_pending.add(ns.resolve("/g").ino)
    elif damage == "ttl":
        ns.ttls[f.ino] = (1, "shred")
    else:
        f.layout = [[0, 4, A]]
    with pytest.raises(AssertionError):
        ns.check()
