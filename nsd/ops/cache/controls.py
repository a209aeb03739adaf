"""Operator controls on paths: load, free, pin, unpin, persist, TTLs (admin API and CLI).

Each works on one file, or with `recursive` on every file below a directory (listing
directories from their UFS first, as `ls -R` would). Cost: O(files below the path).
They run as the daemon (SYSTEM): the admin API takes them only from the token holder.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nsd import errors
from nsd.core.cache.persister import PERSISTS_IN_FLIGHT
from nsd.core.cache.policy import ReadType
from nsd.core.cache.service import Cache
from nsd.core.users import SYSTEM
from nsd.namespace import DirInode, FileInode, Inode, Namespace
from nsd.namespace.layouts import TTL_ACTIONS, plan_drop_layout, plan_set_pin, plan_set_ttl, unpersisted

if TYPE_CHECKING:
    from nsd.vfs import Vfs

BATCH = 1000  # pin changes per journal group
LOADS_IN_FLIGHT = 4  # blocks read and stored at once by a load (each store waits on its fsyncs)


def require_cache(vfs: Vfs) -> Cache:
    if vfs.cache is None:
        raise errors.NotSupported("this daemon runs without a block cache")
    return vfs.cache


async def files_below(vfs: Vfs, path: str, recursive: bool) -> list[FileInode]:
    node = await vfs.resolve(path, caller=SYSTEM)
    if isinstance(node, FileInode):
        return [node]
    if not isinstance(node, DirInode):
        raise errors.Invalid(f"not a file or directory: {path}", path=path)
    if not recursive:
        raise errors.IsDir(f"{path} is a directory (use -r for everything below it)", path=path)
    out: list[FileInode] = []
    todo = [node]
    while todo:
        d = todo.pop()
        await vfs.discovery.ensure_listed(d)
        for child in list(d.children.values()):
            if isinstance(child, DirInode):
                todo.append(child)
            elif isinstance(child, FileInode):
                out.append(child)
    return out


def cache_info(vfs: Vfs, node: Inode) -> dict[str, Any]:
    """A file's cache state, for `nsd stat`: persisted, pinned, bytes cached, TTL."""
    out: dict[str, Any] = {}
    if isinstance(node, FileInode | DirInode):
        out["pinned"] = node.ino in vfs.ns.pinned
    if isinstance(node, FileInode):
        out["persisted"] = not unpersisted(node)
        if vfs.cache is not None:
            has = vfs.cache.blocks.has
            out["cached_bytes"] = sum(length for _, length, d in node.layout or () if has(d))
        out["persist_pending"] = node.ino in vfs.ns.persist_pending
    ttl = vfs.ns.ttls.get(node.ino)
    if ttl is not None:
        out["ttl"] = {"expires_ns": ttl[0], "action": ttl[1]}
    return out


async def load_path(
    vfs: Vfs, path: str, *, recursive: bool = False, progress: Callable[[dict[str, Any]], Any] | None = None
) -> dict[str, Any]:
    """Read every block of the files into the cache, `LOADS_IN_FLIGHT` blocks at once across
    files (many small files: several at once too; a large one: several of its blocks). After a
    block of a file fails, its other blocks are skipped. `progress` is called with the plan
    first ({"files", "bytes"}), then once per file as it completes. Returns the summary."""
    cache = require_cache(vfs)
    files = await files_below(vfs, path, recursive)
    total = sum(f.size for f in files)
    if progress is not None:
        await _call(progress, {"files": len(files), "bytes": total})
    summary: dict[str, Any] = {
        "files": len(files),
        "bytes": total,
        "bytes_from_ufs": 0,
        "bytes_already_cached": 0,
        "failed": 0,
    }
    started = time.monotonic()
    bs = cache.block_size
    loads = [_FileLoad(f, f.size, -(-f.size // bs)) for f in files]  # sizes as planned, whatever comes
    reporting = asyncio.Lock()  # one event at a time on the progress stream

    async def report(load: _FileLoad) -> None:
        f = load.node
        event: dict[str, Any] = {"path": vfs.ns.path_of(f.ino) if f.ino in vfs.ns.inodes else "?", "bytes": load.size}
        summary["bytes_already_cached"] += load.already
        summary["bytes_from_ufs"] += load.fetched
        event["bytes_from_ufs"] = load.fetched
        if load.failure is not None:
            summary["failed"] += 1
            event["error"] = load.failure.message
        if progress is not None:
            async with reporting:
                await _call(progress, event)

    blocks = ((load, off) for load in loads for off in range(0, load.size, bs))

    async def worker() -> None:
        for load, off in blocks:  # shared: each worker takes the next block
            if load.failure is None and off < load.node.size:  # (a file cut short meanwhile: skipped)
                try:
                    _, blob, cached = await cache.reader.block(load.node, off, ReadType.CACHE)
                except errors.NsdError as e:
                    load.failure = e
                else:
                    if cached:
                        load.already += len(blob)
                    else:
                        load.fetched += len(blob)
            load.left -= 1
            if load.left == 0:
                await report(load)

    for load in loads:
        if load.left == 0:  # empty: nothing to read
            await report(load)
    await asyncio.gather(*(worker() for _ in range(min(LOADS_IN_FLIGHT, sum(load.left for load in loads)))))
    summary["seconds"] = round(time.monotonic() - started, 3)
    return summary


@dataclass(slots=True)
class _FileLoad:
    node: FileInode
    size: int  # when the load was planned
    left: int  # blocks not yet read (or skipped)
    fetched: int = 0  # bytes read from the UFS
    already: int = 0  # bytes found cached
    failure: errors.NsdError | None = None


async def _call(fn: Callable[[dict[str, Any]], Any], event: dict[str, Any]) -> None:
    result = fn(event)
    if hasattr(result, "__await__"):
        await result


async def free_path(vfs: Vfs, path: str, *, recursive: bool = False) -> dict[str, Any]:
    """Drop the cached blocks of persisted, unpinned files; blocks no layout needs any more
    leave the store at once. Unpersisted and pinned files are skipped (and counted)."""
    cache = require_cache(vfs)
    files = await files_below(vfs, path, recursive)
    out = {"files": len(files), "freed_files": 0, "freed_bytes": 0, "skipped_unpersisted": 0, "skipped_pinned": 0}
    for f in files:
        if f.ino not in vfs.ns.inodes or not f.layout:
            continue
        if unpersisted(f):
            out["skipped_unpersisted"] += 1
            continue
        if f.ino in vfs.ns.pinned:
            out["skipped_pinned"] += 1
            continue
        digests = {e[2] for e in f.layout}
        ino = f.ino
        await vfs.store.mutate(lambda ns: plan_drop_layout(ns, ino))  # noqa: B023 - awaited at once
        out["freed_files"] += 1
        for d in digests:
            size = cache.blocks.size_of(d)
            if size is not None and cache.blocks.refs(d) == 0 and not cache.must_keep(d):
                await cache.blocks.remove(d)
                out["freed_bytes"] += size
        if cache.drop_elsewhere is not None:  # a cluster: the blocks' owners drop their copies too
            out["freed_bytes"] += await cache.drop_elsewhere(sorted(digests))
    return out


async def pin_path(vfs: Vfs, path: str, *, pinned: bool, recursive: bool = False) -> dict[str, Any]:
    """Pin (or unpin) a file, or a directory with every file and directory below it: a pinned
    file's cached blocks are never evicted, and whatever is created in a pinned directory later
    is pinned too (Alluxio's rule; pinning caches nothing by itself: `nsd load` does). A
    directory is always taken whole, `recursive` or not.

    A directory's own pin is journaled before it is listed, so children that appear meanwhile
    (written, or found in the UFS) inherit it instead of slipping through; unpinning also starts
    at the top, so nothing inherits a pin being taken away."""
    node = await vfs.resolve(path, caller=SYSTEM)
    if not isinstance(node, FileInode | DirInode):
        raise errors.Invalid(f"not a file or directory: {path}", path=path)
    before = set(vfs.ns.pinned)  # "changed" counts files against this (found ones inherit)
    out = {"files": 0, "directories": 0, "changed": 0, "pinned": pinned}
    if isinstance(node, FileInode):
        await _set_pins(vfs, [node], pinned)
        files = [node]
    else:
        files = []
        todo = [node]
        await _set_pins(vfs, [node], pinned)
        while todo:
            d = todo.pop()
            out["directories"] += 1
            await vfs.discovery.ensure_listed(d)
            kids = [k for k in list(d.children.values()) if isinstance(k, FileInode | DirInode)]
            files += [k for k in kids if isinstance(k, FileInode)]
            dirs = [k for k in kids if isinstance(k, DirInode)]
            await _set_pins(vfs, [k for k in kids if isinstance(k, FileInode)], pinned)
            await _set_pins(vfs, dirs, pinned)  # before they are listed: see the docstring
            todo.extend(dirs)
    out["files"] = len(files)
    out["changed"] = sum(1 for f in files if (f.ino in before) != pinned)
    return out


async def _set_pins(vfs: Vfs, nodes: list[Any], pinned: bool) -> None:
    """Journal SetPin for those of `nodes` not already so, BATCH per group."""
    todo = [n.ino for n in nodes if (n.ino in vfs.ns.pinned) != pinned]
    for i in range(0, len(todo), BATCH):
        batch = todo[i : i + BATCH]

        def plan(ns: Namespace, batch: list[int] = batch) -> list[Any]:
            return [plan_set_pin(ns, ino, pinned) for ino in batch if ino in ns.inodes]

        await vfs.store.mutate(plan)


async def persist_path(vfs: Vfs, path: str, *, recursive: bool = False) -> dict[str, Any]:
    """Put unpersisted files into their UFS now, PERSISTS_IN_FLIGHT at once, and wait for
    them. The first failure stops the files not yet started and is raised once those under way
    have ended."""
    require_cache(vfs)
    persister = vfs.persister
    assert persister is not None
    files = await files_below(vfs, path, recursive)
    todo = iter(files)
    done = 0
    failures: list[errors.NsdError] = []

    async def worker() -> None:
        nonlocal done
        for f in todo:  # shared: each worker takes the next file
            if failures:
                return
            try:
                if unpersisted(f) and await persister.persist(f.ino):
                    done += 1
            except errors.NsdError as e:
                failures.append(e)

    await asyncio.gather(*(worker() for _ in range(min(PERSISTS_IN_FLIGHT, len(files)))))
    if failures:
        raise failures[0]
    return {"files": len(files), "persisted": done, "already_persisted": len(files) - done}


async def set_ttl(vfs: Vfs, path: str, seconds: float, action: str) -> dict[str, Any]:
    if not seconds >= 0:
        raise errors.Invalid(f"TTL seconds must not be negative, got {seconds}")
    if action not in TTL_ACTIONS:
        raise errors.Invalid(f"TTL action must be one of {', '.join(TTL_ACTIONS)}, not {action!r}")
    node = await vfs.resolve(path, caller=SYSTEM)
    expires = time.time_ns() + int(seconds * 1e9)
    await vfs.store.mutate(lambda ns: plan_set_ttl(ns, node.ino, expires, action))
    return {"path": path, "expires_ns": expires, "action": action}


def list_ttls(vfs: Vfs) -> list[dict[str, Any]]:
    """Every TTL, soonest first: path, expiry (ns since the epoch) and action. Cost: O(TTLs)."""
    rows = [
        {"path": vfs.ns.path_of(ino), "expires_ns": expires, "action": action}
        for ino, (expires, action) in vfs.ns.ttls.items()
        if ino in vfs.ns.inodes
    ]
    return sorted(rows, key=lambda r: (r["expires_ns"], r["path"]))


async def remove_ttl(vfs: Vfs, path: str) -> dict[str, Any]:
    node = await vfs.resolve(path, caller=SYSTEM)
    if node.ino not in vfs.ns.ttls:
        raise errors.NotFound(f"no TTL on {path}", path=path)
    await vfs.store.mutate(lambda ns: plan_set_ttl(ns, node.ino, None))
    return {"path": path, "removed": True}
