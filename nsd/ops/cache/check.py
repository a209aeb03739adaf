"""fsck's look at the cache: the namespace's layouts against the block store.

- missing_block: an unpersisted file names a block the store does not have (its only copy is
  gone: nothing to repair from; the file reads fail with EIO until it is rewritten or removed);
- block_size_mismatch: a layout entry's length differs from the stored block (repair: a
  persisted file's layout is dropped and read through again; an unpersisted one cannot be);
- unreferenced blocks (whole namespace only) are not a problem: what deleted or rewritten files
  leave behind, which eviction takes first. They are counted as garbage; repair removes them now;
- refcount_mismatch (whole namespace only): the store's counts differ from the layouts'
  (repair: recounted).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

from nsd import errors
from nsd.namespace import FileInode
from nsd.namespace.layouts import plan_drop_layout, unpersisted

if TYPE_CHECKING:
    from nsd.vfs import Vfs

Report = Callable[[str, str, str, bool], None]  # path, kind, detail, repaired


async def check_files(vfs: Vfs, files: list[FileInode], repair: bool, report: Report) -> None:
    cache = vfs.cache
    if cache is None:
        return
    for f in files:
        if f.ino not in vfs.ns.inodes or not f.layout:
            continue
        path = vfs.ns.path_of(f.ino)
        if cache.copies_held is not None and unpersisted(f):  # a cluster: on two owners, not here
            held = [await cache.copies_held(d) for _, _, d in f.layout]
            if any(n == 0 for n in held):
                lost = sum(n == 0 for n in held)
                report(path, "missing_block", f"{lost} of {len(f.layout)} blocks lost and never persisted", False)
            elif any(n < cache.copies_wanted for n in held):
                short = sum(n < cache.copies_wanted for n in held)
                report(path, "missing_copies", f"{short} of {len(f.layout)} blocks on fewer than "
                       f"{cache.copies_wanted} nodes (being copied back)", False)  # fmt: skip
        else:
            lost_here = [d for _, _, d in f.layout if not cache.blocks.has(d)]
            if lost_here and unpersisted(f):
                detail = f"{len(lost_here)} of {len(f.layout)} blocks lost and never persisted"
                report(path, "missing_block", detail, False)
        bad = [(length, d) for _, length, d in f.layout if cache.blocks.size_of(d) not in (None, length)]
        if bad:
            detail = f"{len(bad)} blocks differ in size from the layout (first: {bad[0][1]})"
            fixed = False
            if repair and not unpersisted(f):
                ino = f.ino
                try:
                    await vfs.store.mutate(lambda ns: plan_drop_layout(ns, ino))  # noqa: B023
                    fixed = True
                except errors.NsdError as e:
                    detail += f"; repair failed: {e.message}"
            report(path, "block_size_mismatch", detail, fixed)


async def check_store(vfs: Vfs, repair: bool, report: Report) -> dict[str, int | bool]:
    """Store-wide checks; returns the garbage found (unreferenced blocks and their bytes)."""
    cache = vfs.cache
    if cache is None:
        return {"blocks": 0, "bytes": 0, "removed": False}
    counts: Counter[str] = Counter()
    for node in vfs.ns.inodes.values():
        if isinstance(node, FileInode) and node.layout:
            counts.update(e[2] for e in node.layout)
    have = cache.blocks.referenced()
    if have != dict(counts):
        wrong = len(set(have.items()) ^ set(counts.items()))
        if repair:
            for d, n in have.items():
                cache.blocks.unref(d, n)
            for d, n in counts.items():
                cache.blocks.ref(d, n)
        report("(block store)", "refcount_mismatch", f"{wrong} reference counts differ from the layouts", repair)
    garbage = [d for d in cache.blocks.digests() if d not in counts and not cache.must_keep(d)]
    size = sum(cache.blocks.size_of(d) or 0 for d in garbage)
    if repair:
        for d in garbage:
            if cache.blocks.refs(d) == 0 and not cache.must_keep(d):
                await cache.blocks.remove(d)
    return {"blocks": len(garbage), "bytes": size, "removed": repair and bool(garbage)}
