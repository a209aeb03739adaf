"""`nsd fsck`: the namespace against its own invariants, the under-storage and the block store.

Checks, for every UFS-backed file below a path: the object still exists, its size matches,
its fingerprint matches. `repair` re-syncs such files from the UFS (the UFS holds the truth for
them), which is always safe. Staged files are skipped: their truth is the stage until sealed.

Under-storage changes a crash interrupted are reconciled first (nsd.core.reconcile); one that
cannot be yet (the UFS is down) is a problem of its own. Objects only the UFS holds are not
problems: they are undiscovered, like anything written there by others, and the next lookup
or listing enters them.

The cache checks (missing blocks of unpersisted files, block sizes, reference counts, and the
count of unreferenced blocks, which are garbage awaiting eviction rather than problems) are in
nsd.ops.cache.check.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from nsd import errors
from nsd.core.users import SYSTEM
from nsd.namespace import DirInode, FileInode, Inode
from nsd.ops.cache import check as cache_check

if TYPE_CHECKING:
    from nsd.vfs import Vfs

PARALLEL_STATS = 16


@dataclass
class Problem:
    path: str
    kind: str  # invariant | pending_intent | missing_in_ufs | size_mismatch | changed_in_ufs | ufs_unreachable | cache
    detail: str
    repaired: bool = False


async def fsck(vfs: Vfs, path: str, *, repair: bool = False) -> dict[str, Any]:
    problems: list[Problem] = []
    await vfs.reconciler.settle()
    for intent in vfs.reconciler.orphans():
        kind, args = vfs.ns.intents[intent]
        why = vfs.reconciler.errors.get(intent, "not reconciled yet")
        problems.append(Problem("/", "pending_intent", f"interrupted {kind} {args}: {why}"))
    try:
        vfs.ns.check()
    except AssertionError as e:
        problems.append(Problem("/", "invariant", str(e)))
    files = _files_below(await vfs.resolve(path, caller=SYSTEM, follow=False))
    gate = asyncio.Semaphore(PARALLEL_STATS)

    async def check(node: FileInode) -> None:
        async with gate:
            problem = await _check_file(vfs, node)
            if problem is None:
                return
            if repair and problem.kind not in ("ufs_unreachable", "pending_intent"):
                try:
                    await vfs.discovery.refresh(node, force=True)
                    problem.repaired = True
                except errors.NotFound:
                    problem.repaired = True  # gone from the UFS: the entry went too
                except errors.NsdError as e:
                    problem.detail += f"; repair failed: {e.message}"
            problems.append(problem)

    await asyncio.gather(*(check(f) for f in files))

    def found(p: str, kind: str, detail: str, repaired: bool) -> None:
        problems.append(Problem(p, kind, detail, repaired))

    await cache_check.check_files(vfs, files, repair, found)
    garbage = None
    if path.rstrip("/") == "":
        garbage = await cache_check.check_store(vfs, repair, found)
    problems.sort(key=lambda p: p.path)
    return {
        "path": path,
        "files_checked": len(files),
        "problems": [asdict(p) for p in problems],
        "garbage_blocks": garbage,
        "clean": all(p.repaired for p in problems),
    }


def _files_below(node: Inode) -> list[FileInode]:
    if isinstance(node, FileInode):
        return [node]
    out: list[FileInode] = []
    todo = [node] if isinstance(node, DirInode) else []
    while todo:
        d = todo.pop()
        for child in d.children.values():
            if isinstance(child, DirInode):
                todo.append(child)
            elif isinstance(child, FileInode):
                out.append(child)
    return out


async def _check_file(vfs: Vfs, node: FileInode) -> Problem | None:
    if not node.has_fingerprint or node.ino in vfs.stager.stages or node.ino not in vfs.ns.inodes:
        return None
    path = vfs.ns.path_of(node.ino)
    ufs, rel = vfs.mounts.locate(node)
    try:
        status = await ufs.stat(rel)
    except errors.NotFound:
        return Problem(path, "missing_in_ufs", f"{ufs.uri} has no {rel}")
    except errors.NsdError as e:
        return Problem(path, "ufs_unreachable", e.message)
    if status.is_dir:
        return Problem(path, "missing_in_ufs", f"{rel} is a directory in {ufs.uri}")
    if status.size != node.size:
        return Problem(path, "size_mismatch", f"namespace {node.size} bytes, under-storage {status.size}")
    if status.fingerprint() != node.fingerprint:
        return Problem(path, "changed_in_ufs", f"fingerprint {node.fingerprint} -> {status.fingerprint()}")
    return None
