"""Which cached blocks each file's content is made of, and which files are pinned.

A layout is a list of [offset, length, digest] in offset order (None: nothing cached). The
namespace knows layouts, never where a block lives; every change to a layout is reported to
`Namespace.layout_listener` (the block store's reference counts) as digests removed and added,
during live changes and replay alike.
"""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING, Any, Protocol

from nsd.errors import Invalid
from nsd.journal.ops import CacheBlock, DropLayout, SetPin
from nsd.namespace.inode import FileInode, Inode

if TYPE_CHECKING:
    from nsd.namespace.tree import Namespace


class LayoutListener(Protocol):
    def layout_changed(self, ino: int, removed: list[str], added: list[str]) -> None: ...


def digests(layout: list[Any] | None) -> list[str]:
    return [entry[2] for entry in layout] if layout else []


def replace_layout(ns: Namespace, node: Inode, layout: list[Any] | None) -> None:
    """The only way a file's layout changes (so the listener sees every change)."""
    assert isinstance(node, FileInode)
    old = node.layout
    node.layout = layout
    if ns.layout_listener is not None and (old or layout):
        ns.layout_listener.layout_changed(node.ino, digests(old), digests(layout))


def block_at(layout: list[Any] | None, offset: int) -> tuple[int, int, str] | None:
    """The cached block that starts at `offset`, if any. O(log blocks)."""
    if not layout:
        return None
    i = bisect.bisect_left(layout, offset, key=lambda e: e[0])
    if i < len(layout) and layout[i][0] == offset:
        off, length, digest = layout[i]
        return off, length, digest
    return None


def _file(ns: Namespace, ino: int) -> FileInode:
    node = ns.get(ino)
    if not isinstance(node, FileInode):
        raise Invalid(f"inode {ino} is not a regular file")
    return node


def apply_cache_block(ns: Namespace, op: CacheBlock) -> None:
    node = _file(ns, op.ino)
    if type(op.offset) is not int or op.offset < 0 or type(op.length) is not int or op.length <= 0:
        raise Invalid(f"bad block range {op.offset}+{op.length}")
    if node.fingerprint != op.fingerprint or op.offset + op.length > node.size:
        return  # read under another version of the file: never part of this one
    layout = list(node.layout or [])
    i = bisect.bisect_left(layout, op.offset, key=lambda e: e[0])
    entry = [op.offset, op.length, op.digest]
    if i < len(layout) and layout[i][0] == op.offset:
        layout[i] = entry
    else:
        layout.insert(i, entry)
    replace_layout(ns, node, layout)


def apply_drop_layout(ns: Namespace, op: DropLayout) -> None:
    replace_layout(ns, _file(ns, op.ino), None)


def apply_set_pin(ns: Namespace, op: SetPin) -> None:
    _file(ns, op.ino)
    if op.pinned:
        ns.pinned.add(op.ino)
    else:
        ns.pinned.discard(op.ino)


def forget(ns: Namespace, node: Inode) -> None:
    """A file inode is gone: its blocks are no longer referenced by it, and it is no longer pinned."""
    if isinstance(node, FileInode) and node.layout:
        replace_layout(ns, node, None)
    ns.pinned.discard(node.ino)
