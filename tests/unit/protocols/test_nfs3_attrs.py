"""AttrCache: a reused post_op_attr is always the one encoding the inode as it is now."""

from __future__ import annotations

import stat
import sys

import pytest

from nsd.namespace.inode import FileInode
from nsd.protocols.nfs3.attrs import AttrCache, post_op_attr

T = 1_700_000_000_123_456_789


def file(ino: int = 7) -> FileInode:
    return FileInode(ino, 1, stat.S_IFREG | 0o644, 1000, 1000, 1, 42, T, T, T, 0, None, None)


def test_an_unchanged_inode_is_encoded_once() -> None:
    cache, node = AttrCache(), file()
    first = cache.post_op_attr(node, 1)
    assert first == post_op_attr(node, 1)
    assert cache.post_op_attr(node, 1) is first


CHANGES = {
    "mode": lambda n: setattr(n, "mode", stat.S_IFREG | 0o600),
    "uid": lambda n: setattr(n, "uid", 0),
    "gid": lambda n: setattr(n, "gid", 0),
    "nlink": lambda n: setattr(n, "nlink", 2),
    "size": lambda n: setattr(n, "size", 43),
    "atime": lambda n: setattr(n, "atime", T + 1),
    "mtime": lambda n: setattr(n, "mtime", T + 1),
    "ctime": lambda n: setattr(n, "ctime", T + 1),
    "a second in the same ns": lambda n: setattr(n, "mtime", T + 1_000_000_000),
}


@pytest.mark.parametrize("field", CHANGES)
def test_any_change_to_an_encoded_field_is_seen(field: str) -> None:
    cache, node = AttrCache(), file()
    before = cache.post_op_attr(node, 1)
    CHANGES[field](node)
    after = cache.post_op_attr(node, 1)
    assert after == post_op_attr(node, 1)
    assert after != before


def test_each_export_gets_its_own_fsid() -> None:
    cache, node = AttrCache(), file()
    assert cache.post_op_attr(node, 1) == post_op_attr(node, 1)
    assert cache.post_op_attr(node, 2) == post_op_attr(node, 2) != post_op_attr(node, 1)


def test_an_inode_of_the_same_id_loaded_again_is_encoded_as_it_is() -> None:
    cache = AttrCache()
    cache.post_op_attr(file(), 1)
    reloaded = file()
    reloaded.size = 99
    assert cache.post_op_attr(reloaded, 1) == post_op_attr(reloaded, 1)


def test_bounded_and_holds_no_inode() -> None:
    cache = AttrCache(size=8)
    nodes = [file(ino) for ino in range(1, 30)]
    refs = [sys.getrefcount(n) for n in nodes]
    for n in nodes:
        cache.post_op_attr(n, 1)
    del n
    assert len(cache._entries) <= 8
    assert [sys.getrefcount(n) for n in nodes] == refs  # a removed tree is not kept alive
    for n in nodes:  # and what was forgotten is encoded again, right
        assert cache.post_op_attr(n, 1) == post_op_attr(n, 1)
