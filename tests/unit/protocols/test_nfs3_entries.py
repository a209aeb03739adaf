"""READDIR/READDIRPLUS entries: the wire format, and an EntryCache hit is always what
would be built now."""

from __future__ import annotations

import stat
import sys

import pytest
from test_nfs3_attrs import CHANGES, T, file  # the same inode and the same changes as AttrCache's

from nsd.namespace.inode import FileInode
from nsd.protocols.nfs3.attrs import post_op_attr
from nsd.protocols.nfs3.entries import EntryCache, entry3
from nsd.protocols.nfs3.handles import HandleCodec
from nsd.protocols.xdr import Unpacker

CODEC = HandleCodec(b"k" * 32)


def fresh(cookie: int, name: str, node: FileInode, fsid: int) -> tuple[bytes, int]:
    """The entryplus3 encoded from nothing, as a new cache would."""
    return EntryCache(CODEC).entryplus3(cookie, name, node, fsid)


@pytest.mark.parametrize("name", ["a", "abcd", "abcde", "é" * 127, "x" * 255])
def test_entries_decode_as_rfc_1813_says(name: str) -> None:
    node = file()
    wire, dir_size = entry3(12345, name, node, 1)
    u = Unpacker(wire, 0)
    assert (u.bool(), u.uint64(), u.string(255), u.uint64()) == (True, 7, name.encode(), 12345)
    assert u.remaining() == 0 and dir_size == len(wire) - 4  # value_follows is not counted

    plus, plus_dir_size = EntryCache(CODEC).entryplus3(12345, name, node, 1)
    assert plus_dir_size == dir_size and plus.startswith(wire)
    u = Unpacker(plus, len(wire))
    assert u.fixed(88) == post_op_attr(node, 1)
    assert (u.bool(), u.opaque(64)) == (True, CODEC.encode(1, 7, 1))
    assert u.remaining() == 0


def test_an_unchanged_entry_is_encoded_once() -> None:
    cache, node = EntryCache(CODEC), file()
    first = cache.entryplus3(99, "f", node, 1)
    assert cache.entryplus3(99, "f", node, 1) is first


@pytest.mark.parametrize("field", CHANGES)
def test_any_change_to_an_encoded_field_is_seen(field: str) -> None:
    cache, node = EntryCache(CODEC), file()
    before = cache.entryplus3(99, "f", node, 1)
    CHANGES[field](node)
    after = cache.entryplus3(99, "f", node, 1)
    assert after == fresh(99, "f", node, 1) and after != before


def test_a_new_name_or_another_export_is_encoded_as_it_is() -> None:
    cache, node = EntryCache(CODEC), file()
    cache.entryplus3(99, "f", node, 1)
    assert cache.entryplus3(98, "g", node, 1) == fresh(98, "g", node, 1)  # renamed: its own cookie too
    assert cache.entryplus3(98, "g", node, 2) == fresh(98, "g", node, 2)  # fsid and handle of export 2


def test_an_inode_of_another_generation_gets_its_handle() -> None:
    cache = EntryCache(CODEC)
    cache.entryplus3(99, "f", file(), 1)
    again = FileInode(7, 2, stat.S_IFREG | 0o644, 1000, 1000, 1, 42, T, T, T, 0, None, None)
    assert cache.entryplus3(99, "f", again, 1) == fresh(99, "f", again, 1)


def test_bounded_and_holds_no_inode() -> None:
    cache = EntryCache(CODEC, size=8)
    nodes = [file(ino) for ino in range(1, 30)]
    refs = [sys.getrefcount(n) for n in nodes]
    for n in nodes:
        cache.entryplus3(99, "f", n, 1)
    del n
    assert len(cache._entries) <= 8
    assert [sys.getrefcount(n) for n in nodes] == refs
    for n in nodes:
        assert cache.entryplus3(99, "f", n, 1) == fresh(99, "f", n, 1)
