"""Which cached blocks each file's content is made of, which files the block store must keep,
pending persists and TTLs.

A layout is a list of [offset, length, digest] in offset order, never overlapping (None: nothing
cached). The namespace knows layouts, never where a block lives. Two kinds of file:

- UFS-backed (a fingerprint): the UFS holds the truth; the layout names whichever blocks are
  cached, all read under that fingerprint (a new fingerprint drops the layout).
- unpersisted (no fingerprint, a layout, possibly empty): written through nsd with MUST_CACHE or
  ASYNC_THROUGH; the blocks are the only copy, so the layout covers [0, size) exactly.

A file's blocks are *held* while it is unpersisted or pinned: eviction must never drop them.
`Namespace.kept` counts, per digest, the references from held files, so the block store's
question "must I keep this digest?" is one dict lookup, never a walk of the tree. Every change
of a layout, a fingerprint or a pin goes through `change()`, which keeps that index and the
`layout_listener` (the block store's reference counts) in step, in live changes and replay alike.
"""

from __future__ import annotations

import bisect
import hashlib
import stat
from collections.abc import Iterable
from typing import Any, Protocol

from nsd.errors import Corrupt, Invalid
from nsd.journal.ops import CacheBlock, DropLayout, Persisted, RequestPersist, SetPin, SetTtl
from nsd.namespace.inode import FileInode, Inode
from nsd.namespace.table import InodeTable

TTL_ACTIONS = ("free", "delete")
_SAME: Any = object()


class LayoutListener(Protocol):
    def layout_changed(self, ino: int, removed: list[str], added: list[str]) -> None: ...


class LayoutTables(Protocol):
    """What this module reads and changes of a namespace (tree.Namespace is one): the tree
    imports this module, so it is typed by this shape rather than by the tree."""

    inodes: InodeTable
    pinned: set[int]
    kept: dict[str, int]
    persist_pending: set[int]
    ttls: dict[int, tuple[int, str]]
    layout_listener: LayoutListener | None

    def get(self, ino: int) -> Inode: ...


def digests(layout: list[Any] | None) -> list[str]:
    return [entry[2] for entry in layout] if layout else []


def is_digest(value: object) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def unpersisted(node: Inode) -> bool:
    """Written through nsd and not yet in the UFS: its blocks are the only copy."""
    return isinstance(node, FileInode) and not node.has_fingerprint and node.layout is not None


def held(ns: LayoutTables, node: Inode) -> bool:
    return unpersisted(node) or node.ino in ns.pinned


def content_token(size: int, layout: list[Any] | None) -> str:
    """A short name for a file's content (its size and blocks): what a persist uploaded."""
    h = hashlib.blake2b(str(size).encode(), digest_size=16)
    for off, length, digest in layout or ():
        h.update(f"|{off}:{length}:{digest}".encode())
    return h.hexdigest()


def check_layout(layout: object, size: int, *, complete: bool) -> None:
    """Invalid unless `layout` is None or sorted, non-overlapping [offset, length, digest] entries
    inside [0, size); `complete`: they must cover [0, size) with no gap."""
    if layout is None:
        if complete and size:
            raise Invalid(f"an unpersisted file of {size} bytes needs a layout")
        return
    if not isinstance(layout, list):
        raise Invalid(f"a layout is a list, not {type(layout).__name__}")
    end = 0
    for entry in layout:
        if not isinstance(entry, list) or len(entry) != 3:
            raise Invalid(f"bad layout entry {entry!r}")
        off, length, digest = entry
        if type(off) is not int or type(length) is not int or length <= 0 or off < end:
            raise Invalid(f"bad or overlapping layout entry {entry!r}")
        if complete and off != end:
            raise Invalid(f"layout of an unpersisted file has a gap at {end}")
        if not is_digest(digest):
            raise Invalid(f"not a block digest in layout: {digest!r}")
        end = off + length
    if end > size or (complete and end != size):
        raise Invalid(f"layout ends at {end}, the file has {size} bytes")


def change(
    ns: LayoutTables, node: Inode, *, layout: Any = _SAME, fingerprint: Any = _SAME, pinned: bool | None = None
) -> None:
    """The only way a file's layout, fingerprint or pin changes (see the module docstring)."""
    assert isinstance(node, FileInode)
    was_held, old = held(ns, node), node.layout
    if layout is not _SAME:
        node.layout = layout
    if fingerprint is not _SAME:
        node.fingerprint = fingerprint
    if pinned is True:
        ns.pinned.add(node.ino)
    elif pinned is False:
        ns.pinned.discard(node.ino)
    if not unpersisted(node):
        ns.persist_pending.discard(node.ino)
    _account(ns, node, was_held, old)


def _account(ns: LayoutTables, node: FileInode, was_held: bool, old: list[Any] | None, gone: bool = False) -> None:
    now_held = not gone and held(ns, node)
    new = None if gone else node.layout
    if was_held:
        _count(ns.kept, digests(old), -1)
    if now_held:
        _count(ns.kept, digests(new), 1)
    if ns.layout_listener is not None and old is not new and (old or new):
        ns.layout_listener.layout_changed(node.ino, digests(old), digests(new))


def _count(index: dict[str, int], keys: list[str], step: int) -> None:
    for d in keys:
        n = index.get(d, 0) + step
        if n:
            index[d] = n
        else:
            del index[d]


def kept_index(ns: LayoutTables) -> dict[str, int]:
    """`Namespace.kept` computed from scratch. Cost: O(inodes + blocks)."""
    kept: dict[str, int] = {}
    for node in ns.inodes.values():
        if isinstance(node, FileInode) and held(ns, node):
            _count(kept, digests(node.layout), 1)
    return kept


def block_at(layout: list[Any] | None, offset: int) -> tuple[int, int, str] | None:
    """The cached block that covers byte `offset`, if any. O(log blocks)."""
    if not layout:
        return None
    i = bisect.bisect_right(layout, offset, key=lambda e: e[0]) - 1
    if i >= 0:
        off, length, digest = layout[i]
        if off <= offset < off + length:
            return off, length, digest
    return None


def _file(ns: LayoutTables, ino: int) -> FileInode:
    node = ns.get(ino)
    if not isinstance(node, FileInode):
        raise Invalid(f"inode {ino} is not a regular file")
    return node


# ---- planning: validate, change nothing ------------------------------------------------------


def plan_drop_layout(ns: LayoutTables, ino: int) -> DropLayout:
    op = DropLayout(ino)
    check_drop_layout(ns, op)
    return op


def plan_set_pin(ns: LayoutTables, ino: int, pinned: bool) -> SetPin:
    _pinnable(ns, ino)
    return SetPin(ino, pinned)


def plan_persisted(ns: LayoutTables, ino: int, token: str, fingerprint: list[Any]) -> Persisted:
    op = Persisted(ino, token, fingerprint)
    check_persisted(ns, op)
    return op


def plan_request_persist(ns: LayoutTables, ino: int) -> RequestPersist:
    op = RequestPersist(ino)
    check_request_persist(ns, op)
    return op


def plan_set_ttl(ns: LayoutTables, ino: int, expires_ns: int | None, action: str = "") -> SetTtl:
    op = SetTtl(ino, expires_ns, action)
    check_set_ttl(ns, op)
    return op


# ---- appliers -----------------------------------------------------------------------------


def apply_cache_block(ns: LayoutTables, op: CacheBlock) -> None:
    node = _file(ns, op.ino)
    if type(op.offset) is not int or op.offset < 0 or type(op.length) is not int or op.length <= 0:
        raise Invalid(f"bad block range {op.offset}+{op.length}")
    if not is_digest(op.digest):
        raise Invalid(f"not a block digest: {op.digest!r}")
    fp = node.fingerprint
    if fp is None or fp != op.fingerprint or op.offset + op.length > node.size:
        return  # read under another version of the file (or it is nsd's own): never part of this one
    end = op.offset + op.length
    # Entries overlapping the new one (cut on another block size) make way for it.
    layout = [e for e in node.layout or () if e[0] + e[1] <= op.offset or e[0] >= end]
    bisect.insort(layout, [op.offset, op.length, op.digest], key=lambda e: e[0])
    change(ns, node, layout=layout)


def check_drop_layout(ns: LayoutTables, op: DropLayout) -> FileInode:
    node = _file(ns, op.ino)
    if unpersisted(node):
        raise Invalid(f"inode {op.ino} is not persisted: its blocks are the only copy")
    return node


def apply_drop_layout(ns: LayoutTables, op: DropLayout) -> None:
    change(ns, check_drop_layout(ns, op), layout=None)


def _pinnable(ns: LayoutTables, ino: int) -> Inode:
    node = ns.get(ino)
    if not isinstance(node, FileInode) and not node.is_dir:
        raise Invalid(f"inode {ino} is not a regular file or a directory")
    return node


def apply_set_pin(ns: LayoutTables, op: SetPin) -> None:
    node = _pinnable(ns, op.ino)
    if isinstance(node, FileInode):
        change(ns, node, pinned=bool(op.pinned))
    elif op.pinned:
        ns.pinned.add(node.ino)
    else:
        ns.pinned.discard(node.ino)


def inherit_pin(ns: LayoutTables, parent: Inode, node: Inode) -> None:
    """A file or directory created in a pinned directory (by nsd, or found in the UFS) is pinned,
    so a pin on a directory reaches everything created below it later (Alluxio's rule). Part of
    the creating op's apply: replay gives the same pins. A new file has no layout yet, so
    nothing becomes held here."""
    if parent.ino in ns.pinned and (isinstance(node, FileInode) or node.is_dir):
        ns.pinned.add(node.ino)


def check_persisted(ns: LayoutTables, op: Persisted) -> FileInode:
    node = _file(ns, op.ino)
    if not unpersisted(node):
        raise Invalid(f"inode {op.ino} is already persisted")
    if op.token != content_token(node.size, node.layout):
        raise Invalid(f"inode {op.ino} changed since its persist began")
    if not isinstance(op.fingerprint, list):
        raise Invalid(f"bad fingerprint {op.fingerprint!r}")
    return node


def apply_persisted(ns: LayoutTables, op: Persisted) -> None:
    change(ns, check_persisted(ns, op), fingerprint=op.fingerprint)


def check_request_persist(ns: LayoutTables, op: RequestPersist) -> FileInode:
    node = _file(ns, op.ino)
    if not unpersisted(node):
        raise Invalid(f"inode {op.ino} has nothing to persist")
    return node


def apply_request_persist(ns: LayoutTables, op: RequestPersist) -> None:
    check_request_persist(ns, op)
    ns.persist_pending.add(op.ino)


def check_set_ttl(ns: LayoutTables, op: SetTtl) -> Inode:
    node = ns.get(op.ino)
    if op.expires_ns is not None:
        if type(op.expires_ns) is not int:
            raise Invalid(f"bad expiry {op.expires_ns!r}")
        if op.action not in TTL_ACTIONS:
            raise Invalid(f"TTL action must be one of {', '.join(TTL_ACTIONS)}, not {op.action!r}")
    return node


def apply_set_ttl(ns: LayoutTables, op: SetTtl) -> None:
    check_set_ttl(ns, op)
    if op.expires_ns is None:
        ns.ttls.pop(op.ino, None)
    else:
        ns.ttls[op.ino] = (op.expires_ns, op.action)


def forget(ns: LayoutTables, node: Inode) -> None:
    """An inode is gone: its blocks are no longer referenced or held by it, and its pin,
    pending persist and TTL go with it."""
    if isinstance(node, FileInode):
        was_held, old = held(ns, node), node.layout
        node.layout = None
        _account(ns, node, was_held, old, gone=True)
    ns.pinned.discard(node.ino)
    ns.persist_pending.discard(node.ino)
    ns.ttls.pop(node.ino, None)


# ---- image and invariants -------------------------------------------------------------------


def image_header(ns: LayoutTables) -> dict[str, Any]:
    """Pending persists and TTLs, only when there are any (older images stay as they were)."""
    out: dict[str, Any] = {}
    if ns.persist_pending:
        out["persist_pending"] = sorted(ns.persist_pending)
    if ns.ttls:
        out["ttls"] = [[ino, exp, action] for ino, (exp, action) in sorted(ns.ttls.items())]
    return out


def image_unpersisted_blocks(chunks: Iterable[Any]) -> dict[str, int]:
    """digest -> length of every block an unpersisted file names in an image, read straight
    from `Namespace.to_image` chunks without building a tree (a backup reads its checkpoint
    so): an inode record has 13 fields; a regular file's is unpersisted when its fingerprint
    (field 11) is None and its layout (field 12) is a list. Cost: O(image), memory O(result)."""
    out: dict[str, int] = {}
    for chunk in chunks:
        if not isinstance(chunk, list):  # the header and the xattrs map
            continue
        for rec in chunk:
            if len(rec) == 13 and stat.S_ISREG(rec[2]) and rec[11] is None and isinstance(rec[12], list):
                for _, length, digest in rec[12]:
                    out[digest] = length
    return out


def load_image_header(ns: LayoutTables, header: dict[str, Any]) -> None:
    ns.persist_pending = set(header.get("persist_pending", []))
    ns.ttls = {ino: (exp, action) for ino, exp, action in header.get("ttls", [])}
    if not ns.persist_pending <= ns.inodes.keys() or not ns.ttls.keys() <= ns.inodes.keys():
        raise Corrupt("image: a pending persist or a TTL names an inode that does not exist")
    ns.kept = kept_index(ns)


def check(ns: LayoutTables) -> None:
    """Layouts are sound, unpersisted files are whole, the kept index is exact, pending persists
    name unpersisted files and TTLs live inodes."""
    for ino, node in ns.inodes.items():
        if isinstance(node, FileInode):
            try:
                check_layout(node.layout, node.size, complete=not node.has_fingerprint and node.layout is not None)
            except Invalid as e:
                raise AssertionError(f"inode {ino}: {e}") from None
    if ns.kept != kept_index(ns):
        raise AssertionError("the index of held blocks is out of step with the layouts")
    for ino in ns.persist_pending:
        pending = ns.inodes.get(ino)
        if pending is None or not unpersisted(pending):
            raise AssertionError(f"pending persist of inode {ino}, which is not an unpersisted file")
    for ino, (exp, action) in ns.ttls.items():
        if ino not in ns.inodes or type(exp) is not int or action not in TTL_ACTIONS:
            raise AssertionError(f"TTL of inode {ino}: {exp!r} {action!r}")
