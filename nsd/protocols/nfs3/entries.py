"""Directory entries on the wire: entry3 (READDIR) and entryplus3 (READDIRPLUS), whole.

A listing is mostly these: a READDIRPLUS reply of 8 KiB holds ~50 entryplus3 of ~160 bytes,
each the name, its cookie, the attributes and a handle. Encoding one takes ~2.3 us (one struct
for all of it, the attributes and the handle's MAC made apart); taking it from `EntryCache`
~0.2 us, which is what a directory listed again costs (an `ls -l`, each task of a job listing
the same input directory, a client revalidating its cache).
"""

from __future__ import annotations

import functools
import struct
from typing import Any

from nsd.namespace import Inode
from nsd.namespace.names import utf8
from nsd.protocols.nfs3.attrs import POST_OP_ATTR_SIZE, post_op_attr
from nsd.protocols.nfs3.handles import FH_SIZE, HandleCodec
from nsd.protocols.xdr import pad_len

Encoded = tuple[bytes, int]  # the entry's bytes (from value_follows on), and its dircount size


@functools.cache
def _head(name_len: int) -> struct.Struct:
    """entry3 up to its cookie: value_follows, fileid, the name (zero-padded), cookie."""
    return struct.Struct(f">IQI{pad_len(name_len)}sQ")


@functools.cache
def _plus(name_len: int) -> struct.Struct:
    """entryplus3: entry3's fields, then post_op_attr, handle_follows, the handle's length and bytes."""
    return struct.Struct(f"{_head(name_len).format}{POST_OP_ATTR_SIZE}sII{FH_SIZE}s")


def entry3(cookie: int, name: str, node: Inode, fsid: int) -> Encoded:
    """An entry3; its dircount size is all but value_follows (fileid, name, cookie)."""
    raw = utf8(name)
    wire = _head(len(raw)).pack(1, node.ino, len(raw), raw, cookie)
    return wire, len(wire) - 4


class EntryCache:
    """entryplus3 of the entries listed lately, reused while the name and every attribute it
    encodes are the same (the key is all of them, and the handle follows from the inode id and
    generation), so a hit is exact, never stale. Keyed by inode id, never reused; holds no inode;
    at most `size` entries, all forgotten at once when full, as `attrs.AttrCache`: ~450 bytes
    an entry, ~7 MiB at the default size. A directory larger than that is encoded every time."""

    __slots__ = ("_codec", "_entries", "_size")

    def __init__(self, codec: HandleCodec, size: int = 16384) -> None:
        self._codec = codec
        self._entries: dict[int, tuple[tuple[Any, ...], Encoded]] = {}
        self._size = size

    def entryplus3(self, cookie: int, name: str, node: Inode, fsid: int) -> Encoded:
        """An entryplus3 (its dircount size counts what an entry3 would: fileid, name, cookie)."""
        key = (name, node.ids, node.size, node.atime, node.mtime, node.ctime, fsid)
        hit = self._entries.get(node.ino)
        if hit is not None and hit[0] == key:
            return hit[1]
        raw, ino = utf8(name), node.ino
        size = len(raw)
        handle = self._codec.make(fsid, ino, node.gen)  # this cache keeps it: the codec need not
        wire = _plus(size).pack(1, ino, size, raw, cookie, post_op_attr(node, fsid), 1, FH_SIZE, handle)
        encoded = (wire, 8 + 4 + pad_len(size) + 8)  # what an entry3 counts: fileid, name, cookie
        if len(self._entries) >= self._size:
            self._entries.clear()
        self._entries[node.ino] = (key, encoded)
        return encoded


Page = tuple[bytes, int | None]  # a reply's entries, and the cookie to go on from (None: the end)
