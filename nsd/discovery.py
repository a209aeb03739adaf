"""Metadata sync with the under-storage: lazy discovery and re-checks per sync interval.

UFS objects enter the namespace on first lookup (one UFS stat) or listing (the whole
directory, one UfsSync record per page), never by a scan at mount time. Each mount's
`sync_interval` says when to look again: -1 never (once per daemon life), 0 on every access,
N seconds otherwise. A re-check adds what appeared, updates files whose fingerprint changed
(which invalidates their cached blocks) and removes what disappeared.

What nsd knows better than the UFS is never touched by a sync: symlinks (namespace only),
mount points, files with staged writes, and entries created while a listing was running.
"""

from __future__ import annotations

import logging
import stat as st
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from nsd import errors
from nsd.metastore import MetaStore
from nsd.mounttable import NEVER, MountTable
from nsd.namespace import DirInode, FileInode, Inode, Namespace
from nsd.namespace.mounts import is_mount_point, plan_ufs_sync
from nsd.namespace.names import validate_name
from nsd.ufs import UfsStatus

log = logging.getLogger("nsd.discovery")

PAGE = 1000  # entries per UfsSync record
CHECKED_MAX = 100_000  # files whose last re-check time is remembered


class Discovery:
    def __init__(self, store: MetaStore, mounts: MountTable, is_staged: Callable[[int], bool]) -> None:
        self.store = store
        self.mounts = mounts
        self.is_staged = is_staged
        self._listed: dict[int, float] = {}  # directory ino -> when its last full listing finished
        self._checked: OrderedDict[int, float] = OrderedDict()  # file ino -> when last re-checked
        self.listings = 0
        self.stats = 0

    @property
    def ns(self) -> Namespace:
        return self.store.ns

    def _fresh(self, mount_id: int, when: float | None) -> bool:
        if when is None:
            return False
        interval = self.mounts.sync_interval(mount_id)
        return interval == NEVER or (interval > 0 and time.monotonic() - when < interval)

    def mark_listed(self, dir_ino: int) -> None:
        """nsd made this directory itself (empty in the UFS too): nothing to discover in it."""
        self._listed[dir_ino] = time.monotonic()

    def forget(self, ino: int) -> None:
        self._listed.pop(ino, None)
        self._checked.pop(ino, None)

    # ---- lookups ---------------------------------------------------------------------------

    async def discover(self, dir_ino: int, name: str) -> bool:
        """Look for `name` in the UFS under directory `dir_ino`; True if it was found and added."""
        d = self.ns.get(dir_ino)
        if not isinstance(d, DirInode) or self._fresh(d.mount, self._listed.get(dir_ino)):
            return False
        try:
            validate_name(name)
        except errors.NsdError:
            return False
        ufs, rel = self.mounts.locate_child(d, name)
        self.stats += 1
        try:
            status = await ufs.stat(rel)
        except errors.NotFound:
            return False
        await self.store.mutate(lambda ns: self._plan_add(ns, d, [(name, status)]))
        return name in d.children

    async def add_found(self, d: DirInode, name: str, status: UfsStatus) -> None:
        """Enter an object the caller found in the UFS, whatever the listing state says."""
        await self.store.mutate(lambda ns: self._plan_add(ns, d, [(name, status)]))

    async def drop_gone(self, d: DirInode, names: list[str]) -> None:
        """Remove entries the caller found gone from the UFS (subtrees included)."""
        await self._remove(d, [n for n in names if (c := d.children.get(n)) is not None and self._removable(c)])

    async def refresh(self, node: Inode, *, force: bool = False) -> None:
        """Re-check a file against the UFS when its mount's interval says so; NotFound if it is gone."""
        if not isinstance(node, FileInode) or node.fingerprint is None or self.is_staged(node.ino):
            return
        if not force:
            interval = self.mounts.sync_interval(node.mount)
            if interval == NEVER or self._fresh(node.mount, self._checked.get(node.ino)):
                return
        ufs, rel = self.mounts.locate(node)
        self.stats += 1
        try:
            status: UfsStatus | None = await ufs.stat(rel)
        except errors.NotFound:
            status = None
        self._remember_check(node.ino)
        parent, name = node.parent, node.name
        if status is None or status.is_dir:
            await self.store.mutate(lambda ns: _plan_removals(ns, parent, [name], self.store.now_ns()))
            path = f"{self.ns.path_of(parent.ino).rstrip('/')}/{name}"
            raise errors.NotFound(f"no such file or directory: {path} (gone from the under-storage)", path=path)
        if status.fingerprint() != node.fingerprint:
            await self.store.mutate(lambda ns: _plan_updates(ns, parent, [(name, status)], self.store.now_ns()))

    def mark_checked(self, ino: int) -> None:
        """nsd just wrote this file: its fingerprint is the UFS's as of now."""
        self._remember_check(ino)

    def _remember_check(self, ino: int) -> None:
        self._checked[ino] = time.monotonic()
        self._checked.move_to_end(ino)
        if len(self._checked) > CHECKED_MAX:
            self._checked.popitem(last=False)

    # ---- listings --------------------------------------------------------------------------

    async def ensure_listed(self, d: DirInode) -> None:
        if not self._fresh(d.mount, self._listed.get(d.ino)):
            await self.sync_dir(d)

    async def sync_dir(self, d: DirInode) -> None:
        """List the directory in the UFS and bring the namespace in line, page by page.

        Memory: one page of UFS entries plus the set of names seen, never the listing twice.
        """
        started = time.monotonic()
        watermark = self.ns.next_ino  # inodes created from here on are newer than the listing
        ufs, rel = self.mounts.locate(d)
        seen: set[str] = set()
        page: list[tuple[str, UfsStatus]] = []
        self.listings += 1
        async for status in ufs.list(rel):
            try:
                validate_name(status.name)
            except errors.NsdError as e:
                log.warning("skipping under-storage entry %r in %s: %s", status.name, ufs.uri, e.message)
                continue
            seen.add(status.name)
            page.append((status.name, status))
            if len(page) >= PAGE:
                await self._apply_page(d, page)
                page = []
        if page:
            await self._apply_page(d, page)
        if d.ino not in self.ns.inodes:
            return
        gone = [
            name
            for name, child in d.children.items()
            if name not in seen and child.ino < watermark and self._removable(child)
        ]
        for i in range(0, len(gone), PAGE):
            await self._remove(d, gone[i : i + PAGE])
        self._listed[d.ino] = started

    async def _remove(self, d: DirInode, names: list[str]) -> None:
        await self.store.mutate(lambda ns: _plan_removals(ns, d, names, self.store.now_ns()))

    def _removable(self, child: Inode) -> bool:
        if child.is_symlink or is_mount_point(self.ns, child) or self.is_staged(child.ino):
            return False
        return child.is_dir or child.fingerprint is not None

    async def _apply_page(self, d: DirInode, page: list[tuple[str, UfsStatus]]) -> None:
        retyped = [
            name
            for name, status in page
            if (child := d.children.get(name)) is not None and child.is_dir != status.is_dir and self._removable(child)
        ]
        if retyped:  # a file that became a directory, or back: out first, then in again as it is now
            await self.store.mutate(lambda ns: _plan_removals(ns, d, retyped, self.store.now_ns()))

        def plan(ns: Namespace) -> list[Any]:
            fresh, changed = [], []
            for name, status in page:
                child = d.children.get(name)
                if child is None:
                    fresh.append((name, status))
                elif self._changed(child, status):
                    changed.append((name, status))
            return _plan_updates(ns, d, changed, self.store.now_ns()) + self._plan_add(ns, d, fresh)

        await self.store.mutate(plan)

    def _changed(self, child: Inode, status: UfsStatus) -> bool:
        """A UFS-backed file, not being written through nsd, whose UFS fingerprint moved."""
        if not isinstance(child, FileInode) or child.fingerprint is None or self.is_staged(child.ino):
            return False
        return not status.is_dir and status.fingerprint() != child.fingerprint

    def _plan_add(self, ns: Namespace, d: DirInode, found: list[tuple[str, UfsStatus]]) -> list[Any]:
        if d.ino not in ns.inodes:
            return []
        uid, gid = self.mounts.owner(d.mount)
        entries = []
        for name, s in found:
            if name in d.children:
                continue  # created meanwhile, through nsd
            kind = st.S_IFDIR if s.is_dir else st.S_IFREG
            perms = s.mode if s.mode is not None else (0o755 if s.is_dir else 0o644)
            fp = None if s.is_dir else s.fingerprint()
            entries.append([name, kind | perms, uid, gid, 0 if s.is_dir else s.size, s.mtime_ns, fp])
        return [plan_ufs_sync(ns, d.ino, entries, [], [], self.store.now_ns())] if entries else []

    async def sync_tree(self, node: Inode, recursive: bool) -> int:
        """`nsd sync`: re-check now, whatever the interval. Returns directories listed."""
        if isinstance(node, DirInode):
            await self.sync_dir(node)
            count = 1
            if recursive:
                for child in list(node.children.values()):
                    if isinstance(child, DirInode) and not is_mount_point(self.ns, child):
                        count += await self.sync_tree(child, True)
            return count
        await self.refresh(node, force=True)
        return 0


def _plan_updates(ns: Namespace, d: DirInode, changed: list[tuple[str, UfsStatus]], now: int) -> list[Any]:
    if d.ino not in ns.inodes:
        return []
    update = [[name, s.size, s.mtime_ns, s.fingerprint()] for name, s in changed if name in d.children]
    return [plan_ufs_sync(ns, d.ino, [], update, [], now)] if update else []


def _plan_removals(ns: Namespace, d: DirInode, names: list[str], now: int) -> list[Any]:
    if d.ino not in ns.inodes:
        return []
    present = [n for n in names if n in d.children]
    return [plan_ufs_sync(ns, d.ino, [], [], present, now)] if present else []
