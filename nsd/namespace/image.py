"""The namespace image: the whole tree as msgpack-able chunks, the payload of a checkpoint.

`encode(ns)` writes it and `load(ns, chunks)` reads it into a fresh namespace (the tree calls
them as `Namespace.to_image` and `Namespace.from_image`). The format is durable: versions are
append-only, and tests/golden/image/ holds one golden checkpoint per version.

First a header {"version", "next_ino", "inodes", ...the mount table, pins, pending persists,
TTLs and intents...}, then lists of records, about `chunk_size` inodes or entries each. An inode
record is [ino, gen, mode, uid, gid, nlink, size, atime, mtime, ctime, mount, fingerprint,
extra], where extra is the layout of a file, the target of a symlink, or [names, inos] of a
directory's entries in name order. A directory comes after everything it contains, so a loader
can build it at once; entries beyond the last `chunk_size` come first in [ino, names, inos]
records. Version 2 adds a trailing {"xattrs": ...} chunk.
"""

from __future__ import annotations

import stat
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from nsd.errors import Corrupt
from nsd.gcpause import collector_off
from nsd.namespace import identities, inode_ids, intents, mounts
from nsd.namespace.inode import (
    ROOT_INO,
    S_IFMT,
    SPECIAL_KINDS,
    DirInode,
    FileInode,
    Inode,
    SpecialInode,
    SymlinkInode,
)
from nsd.namespace.table import InodeTable

IMAGE_VERSION = 1
IMAGE_VERSION_XATTRS = 2  # written only when some inode has xattrs; adds a trailing {"xattrs": ...} chunk
IMAGE_VERSION_CACHE = 3  # written only with pending persists or TTLs: version 2 plus header keys for them
IMAGE_VERSION_INTENTS = 4  # written only while UFS intents are open: version 3 plus header key "intents"
IMAGE_VERSION_IDS = 5  # written only once ids were given to unknown names: version 4 plus header key "auto_ids"
IMAGE_VERSION_INO_LIMIT = 6  # written once inode ids were reserved: version 5 plus header key "ino_limit"
SHARE_MAX = 1 << 21  # entries of the load's table of shared names and times (~100 MB at most)
IMAGE_VERSIONS = (
    IMAGE_VERSION,
    IMAGE_VERSION_XATTRS,
    IMAGE_VERSION_CACHE,
    IMAGE_VERSION_INTENTS,
    IMAGE_VERSION_IDS,
    IMAGE_VERSION_INO_LIMIT,
)


class ImageTree(mounts.MountTree, intents.IntentTables, identities.IdTables, inode_ids.InoCounters, Protocol):
    """What the image codec reads and fills of a namespace (tree.Namespace is one)."""

    links: dict[int, list[tuple[DirInode, str]]]
    xattrs: dict[int, dict[str, bytes]]
    interned: dict[int, int]


def encode(ns: ImageTree, chunk_size: int = 4096) -> Iterator[Any]:
    """The image of `ns` (see the module docstring). The order depends only on the tree, so
    equal trees give equal images. The tree must not change while the iterator is consumed.
    Cost: O(inodes)."""
    version = IMAGE_VERSION_XATTRS if ns.xattrs else IMAGE_VERSION
    if ns.persist_pending or ns.ttls:
        version = IMAGE_VERSION_CACHE
    if ns.intents:
        version = IMAGE_VERSION_INTENTS
    if ns.auto_ids:
        version = IMAGE_VERSION_IDS
    if ns.ino_limit:
        version = IMAGE_VERSION_INO_LIMIT
    yield {
        "version": version,
        "next_ino": ns.next_ino,
        "inodes": len(ns.inodes),
        **mounts.image_header(ns),
        **intents.image_header(ns),
        **identities.image_header(ns),
        **inode_ids.image_header(ns),
    }
    chunk: list[list[Any]] = []
    units = 0
    for record, size in _image_records(ns.root, chunk_size):
        chunk.append(record)
        units += size
        if units >= chunk_size:
            yield chunk
            chunk, units = [], 0
    if chunk:
        yield chunk
    if ns.xattrs:
        # Version 2 only: one trailing map chunk, [ino, name, value] in inode then name order.
        yield {"xattrs": [[ino, k, v] for ino in sorted(ns.xattrs) for k, v in sorted(ns.xattrs[ino].items())]}


def _image_records(root: DirInode, piece: int) -> Iterator[tuple[list[Any], int]]:
    """(record, its size in inodes + entries), children before their directory."""
    written: set[int] = set()  # files with several links go out once
    todo: list[tuple[DirInode, bool]] = [(root, False)]
    while todo:
        d, children_done = todo.pop()
        if not children_done:
            todo.append((d, True))
            subdirs = []
            for k in d.children.values():
                if isinstance(k, DirInode):
                    subdirs.append(k)
                elif k.nlink == 1 or k.ino not in written:
                    if k.nlink > 1:
                        written.add(k.ino)
                    extra = k.layout if isinstance(k, FileInode) else getattr(k, "target", None)
                    yield _record(k, extra), 1
            todo.extend((s, False) for s in reversed(subdirs))
            continue
        names = list(d.children.keys())
        inos = [k.ino for k in d.children.values()]
        last = (len(names) - 1) // piece * piece if names else 0
        for i in range(0, last, piece):
            yield [d.ino, names[i : i + piece], inos[i : i + piece]], piece
        yield _record(d, [names[last:], inos[last:]]), 1 + len(names) - last


def load(ns: ImageTree, chunks: Iterable[Any]) -> None:
    """Fill the new, empty namespace `ns` with the tree `encode` wrote; Corrupt if the image is
    malformed.

    Checks structure only (ids, entries, header); call check() for every invariant.
    Cost: linear (about 1.5 s per million inodes, unpacking included); each directory's
    entries go into its dict in one bulk step, in name order.
    """
    with collector_off():
        _load(ns, chunks)


def _load(ns: ImageTree, chunks: Iterable[Any]) -> None:
    it = iter(chunks)
    header = next(it, None)
    if not isinstance(header, dict) or header.get("version") not in IMAGE_VERSIONS:
        raise Corrupt(f"not a namespace image header: {header!r}")
    inodes = InodeTable()
    pending: dict[int, tuple[list[str], list[Inode]]] = {}  # entries of big directories
    intern = ns.interned.setdefault
    # Equal names (part-00000, _SUCCESS, ...) and equal times across directories share one object
    # (a name is ~70 bytes, a time 40) through these tables, which live only during the load; they
    # start over past SHARE_MAX entries, so the load's extra peak stays bounded.
    shared: dict[Any, Any] = {}
    records = 0
    try:
        for chunk in it:
            if isinstance(chunk, dict):
                if header["version"] < IMAGE_VERSION_XATTRS or set(chunk) != {"xattrs"}:
                    raise Corrupt(f"image: unexpected map chunk {sorted(chunk)!r}")
                for ino, name, value in chunk["xattrs"]:
                    if not isinstance(name, str) or not isinstance(value, bytes):
                        raise Corrupt(f"image: bad xattr of inode {ino}")
                    ns.xattrs.setdefault(ino, {})[name] = value
                continue
            for rec in chunk:
                if len(rec) == 3:
                    names, kids = pending.setdefault(rec[0], ([], []))
                    names.extend(rec[1])
                    kids.extend([inodes[i] for i in rec[2]])
                    continue
                ino, gen, mode, uid, gid, nlink, size, atime, mtime, ctime, mount, fp, extra = rec
                if len(shared) > SHARE_MAX:
                    shared.clear()
                atime = shared.setdefault(atime, atime)
                mtime = shared.setdefault(mtime, mtime)
                ctime = shared.setdefault(ctime, ctime)
                mode = intern(mode, mode)
                uid = intern(uid, uid)
                gid = intern(gid, gid)
                kind = mode & S_IFMT
                node: Inode
                if kind == stat.S_IFREG:
                    node = FileInode(ino, gen, mode, uid, gid, nlink, size, atime, mtime, ctime, mount, fp, extra)
                elif kind == stat.S_IFDIR:
                    node = DirInode(ino, gen, mode, uid, gid, nlink, size, atime, mtime, ctime, mount, fp, None, "")
                    _load_entries(node, extra, pending.pop(ino, None), inodes, ns.links, shared)
                elif kind == stat.S_IFLNK:
                    node = SymlinkInode(ino, gen, mode, uid, gid, nlink, size, atime, mtime, ctime, mount, fp, extra)
                elif kind in SPECIAL_KINDS:
                    node = SpecialInode(ino, gen, mode, uid, gid, nlink, size, atime, mtime, ctime, mount, fp)
                else:
                    raise Corrupt(f"image: inode {ino} has unknown mode {mode:o}")
                inodes[ino] = node
                records += 1
        if len(inodes) != records or pending:
            raise Corrupt("image: an inode id appears twice, or entries of no directory")
        root = inodes[ROOT_INO]
        next_ino = header["next_ino"]
        if inodes.last() >= next_ino:
            raise Corrupt(f"image: next_ino {next_ino} is not above every inode id")
        if not ns.xattrs.keys() <= inodes.keys():
            raise Corrupt("image: xattrs of an inode that does not exist")
    except (KeyError, ValueError, TypeError) as e:
        raise Corrupt(f"malformed namespace image: {e!r}") from None
    if not isinstance(root, DirInode):
        raise Corrupt("image: inode 1 is not a directory")
    root.parent = root
    root.name = ""
    ns.root = root
    ns.inodes = inodes
    ns.next_ino = next_ino
    mounts.load_image_header(ns, header)
    if header["version"] < IMAGE_VERSION_INTENTS and "intents" in header:
        raise Corrupt(f"image: intents in a version {header['version']} image")
    intents.load_image_header(ns, header)
    if header["version"] < IMAGE_VERSION_IDS and "auto_ids" in header:
        raise Corrupt(f"image: auto_ids in a version {header['version']} image")
    identities.load_image_header(ns, header)
    if header["version"] < IMAGE_VERSION_INO_LIMIT and "ino_limit" in header:
        raise Corrupt(f"image: ino_limit in a version {header['version']} image")
    inode_ids.load_image_header(ns, header)


def _load_entries(
    d: DirInode,
    last: list[Any],
    earlier: tuple[list[str], list[Inode]] | None,
    inodes: InodeTable,
    links: dict[int, list[tuple[DirInode, str]]],
    shared: dict[Any, Any],
) -> None:
    names, kids = earlier if earlier is not None else ([], [])
    names.extend(last[0])
    names = [shared.setdefault(n, n) for n in names]
    kids.extend([inodes[i] for i in last[1]])
    d.children.update(zip(names, kids, strict=True))  # in name order: later listings sort in O(n)
    if len(d.children) != len(names):
        raise Corrupt(f"image: directory {d.ino} has a name twice")
    for name, k in zip(names, kids, strict=True):
        k.parent = d
        k.name = name
        if k.nlink > 1 and not isinstance(k, DirInode):
            links.setdefault(k.ino, []).append((d, name))


def _record(node: Inode, extra: Any) -> list[Any]:
    return [
        node.ino, node.gen, node.mode, node.uid, node.gid, node.nlink, node.size,
        node.atime, node.mtime, node.ctime, node.mount, node.fingerprint, extra,
    ]  # fmt: skip
