"""New content per write type, as (size, fingerprint, layout) ready to journal with SetContent.

Each function seals through a Sealer the caller holds open until the SetContent is journaled.
A fingerprint of None means the UFS does not have the content: the file is unpersisted and the
layout covers it completely.

- whole(): a file's entire new content (create, overwrite).
- from_stage(): a stage being sealed; full blocks below the first staged write are carried over
  unhashed, so a small write near the end re-seals only the blocks from there on.
- append(): bytes added at the end; only the last, partial block is read back and re-sealed.
"""

from __future__ import annotations

from collections.abc import AsyncIterable
from typing import TYPE_CHECKING, Any, NamedTuple

from nsd import errors
from nsd.core.cache.ingest import Sealer
from nsd.core.cache.policy import ReadType, WriteType
from nsd.core.staging import Stage
from nsd.namespace import FileInode
from nsd.namespace.layouts import block_at, unpersisted
from nsd.ufs import Ufs

if TYPE_CHECKING:
    from nsd.core.cache.service import Cache


class Content(NamedTuple):
    size: int
    fingerprint: list[Any] | None
    layout: list[list[Any]] | None


def effective(node: FileInode | None, wt: WriteType) -> WriteType:
    """An unpersisted file has no UFS copy to append to or truncate: it stays in blocks and is
    persisted in the background, whatever its mount's write type says."""
    if node is not None and unpersisted(node) and wt in (WriteType.THROUGH, WriteType.CACHE_THROUGH):
        return WriteType.ASYNC_THROUGH
    return wt


async def whole(sealer: Sealer, wt: WriteType, chunks: AsyncIterable[bytes], ufs: Ufs, rel: str) -> Content:
    if wt is WriteType.CACHE_THROUGH:
        status = await ufs.write(rel, sealer.tee(chunks))
        layout = await sealer.finish()
        if status.size != sealer.size:
            raise errors.Corrupt(f"under-storage took {status.size} bytes of {sealer.size}: {rel}")
        return Content(status.size, status.fingerprint(), layout)
    await sealer.feed_all(chunks)
    return Content(sealer.size, None, await sealer.finish())


def unchanged_prefix(layout: list[Any] | None, block_size: int, upto: int) -> list[list[Any]]:
    """Leading full grid blocks of `layout` that end at or before `upto`."""
    out: list[list[Any]] = []
    for off, length, digest in layout or ():
        if off != len(out) * block_size or length != block_size or off + length > upto:
            break
        out.append([off, length, digest])
    return out


async def from_stage(
    cache: Cache, wt: WriteType, stage: Stage, old: list[Any] | None, ufs: Ufs, rel: str
) -> tuple[Sealer, Content]:
    """Seal a stage. `old` is the layout the stage started from (its blocks below the first
    staged write hold the same bytes). The returned Sealer must be closed after journaling."""
    kept = unchanged_prefix(old, cache.block_size, min(stage.dirty_from, stage.size))
    start = kept[-1][0] + kept[-1][1] if kept else 0
    sealer = Sealer(cache, start)
    try:
        sealer.keep(kept)
        await sealer.feed_all(stage.chunks(start, cache.block_size))  # whole blocks: sealed without a copy
        layout = await sealer.finish()
        if wt is WriteType.CACHE_THROUGH:
            status = await stage.upload(ufs, rel)
            return sealer, Content(status.size, status.fingerprint(), layout)
        return sealer, Content(sealer.size, None, layout)
    except BaseException:
        await sealer.abort()
        raise


async def append(
    cache: Cache, wt: WriteType, node: FileInode, chunks: AsyncIterable[bytes], ufs: Ufs, rel: str
) -> tuple[Sealer, Content]:
    """Append with a caching write type: the blocks before the last partial one stay as they
    are; that one is read back (from the cache, else the UFS) and sealed again with the new
    bytes. A file that must become unpersisted is first cached whole."""
    bs = cache.block_size
    size = node.size
    base = size // bs * bs
    sealer = Sealer(cache, base)
    try:
        if wt is not WriteType.CACHE_THROUGH and not unpersisted(node):
            await _cache_whole(cache, node, sealer, base)
        else:
            sealer.keep([e for e in node.layout or () if e[0] + e[1] <= base])
        if size > base:
            await sealer.feed(await cache.reader.read(node, base, size - base, ReadType.CACHE))
        if wt is WriteType.CACHE_THROUGH:
            status = await ufs.append(rel, sealer.tee(chunks), at=size)
            layout = await sealer.finish()
            return sealer, Content(status.size, status.fingerprint(), layout)
        await sealer.feed_all(chunks)
        return sealer, Content(sealer.size, None, await sealer.finish())
    except BaseException:
        await sealer.abort()
        raise


async def _cache_whole(cache: Cache, node: FileInode, sealer: Sealer, upto: int) -> None:
    """Make every block of [0, upto) cached and held, so the new layout can be complete."""
    entries: list[list[Any]] = []
    pos = 0
    while pos < upto:
        await cache.reader.block(node, pos)
        entry = block_at(node.layout, pos)
        if entry is None or not cache.blocks.has(entry[2]) or entry[0] != pos:
            raise errors.NoSpace(f"cannot cache inode {node.ino} whole: the cache has no room for it")
        sealer.keep([list(entry)])  # held at once, in the same stretch as the check
        entries.append(list(entry))
        pos += entry[1]
