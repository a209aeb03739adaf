"""Metadata sync with the under-storage: lazy discovery and re-checks per sync interval.

UFS objects enter the namespace on first lookup (one UFS stat) or listing (the whole
directory, one UfsSync record per page), never by a scan at mount time. Each mount's
`sync_interval` says when to look again: -1 never (once per daemon life), 0 on every access,
N seconds otherwise. A re-check adds what appeared, updates files whose fingerprint changed
(which invalidates their cached blocks) and removes what disappeared.

What nsd knows better than the UFS is never touched by a sync: symlinks (namespace only),
mount points, files with staged writes, and entries created while a listing was running.

A directory's listing runs as one background task shared by every caller that needs it
(`Listing`). Where the adapter lists in name order (`Ufs.sorted_listing`: S3, WebHDFS, memory)
each page is merged with the namespace as it comes (added, updated and removed names in one
UfsSync record), so the names up to the page's last one are final, and a paged listing
(`window`) is answered after the first page instead of after the whole directory. Other
adapters (local, GCS, Azure) are applied page by page too, but removals wait for the end
(a set of the names seen), and callers wait for the whole listing.

A store that is down (UfsUnavailable) does not hide what is known: a file's re-check keeps
its last metadata, and a directory listed before keeps its last listing. Names never seen,
and directories never listed, fail with the store's error.
"""

from __future__ import annotations

import asyncio
import logging
import stat as st
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from functools import partial
from operator import itemgetter
from typing import Any

from nsd import errors
from nsd.core.metastore import MetaStore
from nsd.core.mounttable import NEVER, MountTable
from nsd.namespace import DirInode, FileInode, Inode, Namespace
from nsd.namespace.mounts import is_mount_point, plan_ufs_sync
from nsd.namespace.names import names_plainly_valid, validate_name
from nsd.ufs import Ufs, UfsStatus
from nsd.ufs.base import SYSTEM_DIR, TMP_PREFIX

log = logging.getLogger("nsd.discovery")

PAGE = 1000  # entries per UfsSync record
CHECKED_MAX = 100_000  # files whose last re-check time is remembered
PRUNE_MIN = 4096  # what is remembered of gone objects is dropped once the tables pass this (and double)


class Listing:
    """One running listing of a directory: how far it is in line with the UFS, and its end."""

    def __init__(self, d: DirInode) -> None:
        self.dir = d
        self.through: str | None = None  # sorted listings: names <= this are in line with the UFS
        self.done = False
        self.error: BaseException | None = None
        self._progress = asyncio.Event()

    def advance(self, through: str) -> None:
        self.through = through
        self._wake()

    def finish(self, error: BaseException | None = None) -> None:
        self.done, self.error = True, error
        self._wake()

    def _wake(self) -> None:
        event, self._progress = self._progress, asyncio.Event()
        event.set()

    async def progressed(self) -> None:
        await self._progress.wait()


class Discovery:
    def __init__(
        self, store: MetaStore, mounts: MountTable, is_staged: Callable[[int], bool], *, page: int = PAGE
    ) -> None:
        self.store = store
        self.page = page  # UFS entries per UfsSync record
        self.mounts = mounts
        self.is_staged = is_staged
        self._listed: dict[int, float] = {}  # directory ino -> when its last full listing finished
        self._checked: OrderedDict[int, float] = OrderedDict()  # file ino -> when last re-checked
        self._prune_at = PRUNE_MIN
        self._listings: dict[int, Listing] = {}  # directory ino -> its running listing
        self._tasks: set[asyncio.Task[None]] = set()
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
        self._added()

    def remembered(self) -> int:
        """Objects whose listing or re-check time is remembered."""
        return len(self._listed) + len(self._checked)

    def _added(self) -> None:
        if self.remembered() > self._prune_at:
            self._forget_gone()

    def _forget_gone(self) -> None:
        """Drop what is remembered of objects no longer in the namespace, whatever removed them
        (a change, a listing, the reconciler, a replayed record): directories made and removed by
        the million (a job's temporary ones) must not grow these tables for the daemon's life.
        Runs once they doubled since the last run: O(1) amortized per entry."""
        inodes = self.ns.inodes
        for table in (self._listed, self._checked):
            for ino in [ino for ino in table if ino not in inodes]:
                del table[ino]
        self._prune_at = max(PRUNE_MIN, 2 * self.remembered())

    async def close(self) -> None:
        """Stop running listings (what they applied so far stays: it is journaled). Their
        waiters get an error: a task cancelled before its first step never runs its finally."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for listing in list(self._listings.values()):
            listing.finish(errors.NsdError("the daemon is stopping: listing abandoned"))
        self._listings.clear()

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
        if name.startswith(TMP_PREFIX):
            return False  # an adapter's temporary object: never shown
        ufs, rel = self.mounts.locate_child(d, name)
        if rel == SYSTEM_DIR:
            return False
        self.stats += 1
        try:
            status = await ufs.stat(rel)
        except errors.NotFound:
            return False
        await self.store.mutate(lambda ns: self._plan_add(ns, d, [(name, status)]))
        return name in d.children

    def due(self, node: Inode) -> bool:
        """Whether `refresh` would ask the UFS about this object now (cheap, synchronous: the
        hot paths call refresh only when it would, and skip making a coroutine otherwise)."""
        if not self.periodic(node):  # the default: the cheapest "no" first
            return False
        return not (self.is_staged(node.ino) or self._fresh(node.mount, self._checked.get(node.ino)))

    def periodic(self, node: Inode) -> bool:
        """Whether `due` may say yes for this object as it is: a file found in (or written to)
        a UFS whose mount has a sync interval. Only a change to it (new content, a move) or to
        the mounts can make that change."""
        return isinstance(node, FileInode) and node.has_fingerprint and self.mounts.sync_interval(node.mount) != NEVER

    async def add_found(self, d: DirInode, name: str, status: UfsStatus) -> None:
        """Enter an object the caller found in the UFS, whatever the listing state says."""
        await self.store.mutate(lambda ns: self._plan_add(ns, d, [(name, status)]))

    async def drop_gone(self, d: DirInode, names: list[str]) -> None:
        """Remove entries the caller found gone from the UFS (subtrees included)."""
        await self._remove(d, [n for n in names if (c := d.children.get(n)) is not None and self._removable(c)])

    async def refresh(self, node: Inode, *, force: bool = False) -> None:
        """Re-check a file against the UFS when its mount's interval says so; NotFound if it is gone."""
        if not isinstance(node, FileInode) or not node.has_fingerprint or self.is_staged(node.ino):
            return
        if not force and not self.due(node):
            return
        ufs, rel = self.mounts.locate(node)
        self.stats += 1
        try:
            status: UfsStatus | None = await ufs.stat(rel)
        except errors.NotFound:
            status = None
        except errors.UfsUnavailable as e:
            if force:
                raise
            # The store is down: what is known still answers; reading the data will fail clearly.
            log.debug("keeping what is known of %s: %s", rel, e.message)
            return
        self._remember_check(node.ino)
        parent, name = node.parent, node.name
        try:
            if status is None or status.is_dir:
                await self.store.mutate(lambda ns: _plan_removals(ns, parent, [name], self.store.now_ns()))
                path = f"{self.ns.path_of(parent.ino).rstrip('/')}/{name}"
                raise errors.NotFound(f"no such file or directory: {path} (gone from the under-storage)", path=path)
            if status.fingerprint() != node.fingerprint:
                await self.store.mutate(lambda ns: _plan_updates(ns, parent, [(name, status)], self.store.now_ns()))
        except errors.Unavailable as e:  # the journal cannot take changes now (cluster, etcd down)
            log.debug("keeping what is known of %s: %s", rel, e.message)
            self._checked.pop(node.ino, None)  # look again next time

    def mark_checked(self, ino: int) -> None:
        """nsd just wrote this file: its fingerprint is the UFS's as of now."""
        self._remember_check(ino)

    def _remember_check(self, ino: int) -> None:
        self._checked[ino] = time.monotonic()
        self._checked.move_to_end(ino)
        if len(self._checked) > CHECKED_MAX:
            self._checked.popitem(last=False)
        self._added()

    # ---- listings --------------------------------------------------------------------------

    async def ensure_listed(self, d: DirInode) -> None:
        """Return once `d` is in line with the UFS as its mount's interval requires."""
        if not self._fresh(d.mount, self._listed.get(d.ino)):
            await self._wait(self._start(d), d, None, None)

    async def sync_dir(self, d: DirInode) -> None:
        """List `d` now, whatever the interval (after any listing already running)."""
        running = self._listings.get(d.ino)
        if running is not None:
            await self._wait(running, d, None, None)
        await self._wait(self._start(d), d, None, None, stale_ok=False)

    async def window(self, d: DirInode, start_after: str | None, limit: int | None) -> None:
        """Return once the `limit` names after `start_after` (all, for None) are in line with the
        UFS, or the listing has ended. A first page (no `start_after`) starts a listing when the
        interval says so; later pages only join one that is running."""
        listing = self._listings.get(d.ino)
        if listing is None:
            if start_after or self._fresh(d.mount, self._listed.get(d.ino)):
                return
            listing = self._start(d)
        await self._wait(listing, d, start_after, limit)

    def pending_above(self, d: DirInode) -> str | None:
        """While a listing of `d` runs: the name up to which entries are final ("" none yet)."""
        listing = self._listings.get(d.ino)
        if listing is None or listing.done:
            return None
        return listing.through or ""

    def _start(self, d: DirInode) -> Listing:
        listing = self._listings.get(d.ino)
        if listing is None:
            listing = self._listings[d.ino] = Listing(d)
            task = asyncio.get_running_loop().create_task(self._run(listing))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return listing

    async def _run(self, listing: Listing) -> None:
        error: BaseException | None = None
        try:
            await self._sync(listing)
        except Exception as e:  # kept for the waiters; CancelledError ends the task as usual
            error = e
        finally:
            if self._listings.get(listing.dir.ino) is listing:
                del self._listings[listing.dir.ino]
            listing.finish(error)

    async def _wait(
        self, listing: Listing, d: DirInode, start_after: str | None, limit: int | None, *, stale_ok: bool = True
    ) -> None:
        """Wait for the listing to cover the window; its error, unless the store is down and
        `stale_ok` and the directory was listed before (then the last listing answers)."""
        while not listing.done and not _covers(listing, d, start_after, limit):
            await listing.progressed()
        error = listing.error
        if not listing.done or error is None:
            return
        if stale_ok and isinstance(error, errors.UfsUnavailable) and d.ino in self._listed:
            log.debug("store down; serving the last listing of %s: %s", self.ns.path_of(d.ino), error)
            return
        if stale_ok and isinstance(error, errors.Unavailable):
            # the journal cannot take what the listing found (cluster, etcd down): what the
            # namespace knows answers, and the next listing tries again
            log.debug("cannot journal the listing of %s now; serving what is known: %s", self.ns.path_of(d.ino), error)
            return
        raise error

    async def _sync(self, listing: Listing) -> None:
        """List the directory in the UFS and bring the namespace in line, page by page.

        Memory: one page of UFS entries (plus, for unsorted listings, the set of names seen),
        never the listing twice.
        """
        d = listing.dir
        started = time.monotonic()
        watermark = self.ns.next_ino  # inodes created from here on are newer than the listing
        ufs, rel = self.mounts.locate(d)
        self.listings += 1
        if ufs.sorted_listing:
            await self._sync_sorted(listing, ufs, rel, watermark)
        else:
            await self._sync_unsorted(d, ufs, rel, watermark)
        if d.ino in self.ns.inodes:
            self._listed[d.ino] = started
            self._added()

    async def _entries(self, ufs: Ufs, rel: str) -> AsyncIterator[list[tuple[str, UfsStatus]]]:
        """The UFS listing in pages of PAGE valid entries."""
        page: list[tuple[str, UfsStatus]] = []
        async for found in ufs.list_pages(rel):
            named = [(status.name, status) for status in found]
            if not names_plainly_valid([name for name, _ in named]):
                named = [entry for entry in named if _valid(ufs, entry[0])]
            if not rel:
                named = [entry for entry in named if entry[0] != SYSTEM_DIR]
            page += named
            while len(page) >= self.page:
                yield page[: self.page]
                page = page[self.page :]
        if page:
            yield page

    async def _sync_sorted(self, listing: Listing, ufs: Ufs, rel: str, watermark: int) -> None:
        """Merge each page with the namespace's names between the previous page's last name
        and this page's last name: one UfsSync record per page (adds, updates and removals)."""
        d = listing.dir
        prev: str | None = None
        async for page in self._entries(ufs, rel):
            if d.ino not in self.ns.inodes:
                return
            last = max(prev or "", *(name for name, _ in page))  # robust to a store's slip in order
            await self._apply_page(d, page, partial(self._gone, d, page, prev, last, watermark))
            prev = last
            listing.advance(last)
        if d.ino in self.ns.inodes:
            await self._remove_all(d, self._gone(d, [], prev, None, watermark))

    def _gone(
        self, d: DirInode, page: list[tuple[str, UfsStatus]], lo: str | None, hi: str | None, watermark: int
    ) -> list[str]:
        """Names in (lo, hi] (None: unbounded) that the UFS no longer has."""
        names = {name for name, _ in page}
        window = d.children.irange(minimum=lo, maximum=hi, inclusive=(False, True))
        return [
            name
            for name in window
            if name not in names and (child := d.children[name]).ino < watermark and self._removable(child)
        ]

    async def _sync_unsorted(self, d: DirInode, ufs: Ufs, rel: str, watermark: int) -> None:
        seen: set[str] = set()
        async for page in self._entries(ufs, rel):
            if d.ino not in self.ns.inodes:
                return
            seen.update(map(itemgetter(0), page))
            await self._apply_page(d, page, list)
        if d.ino in self.ns.inodes:
            children = d.children
            gone = [
                name
                for name in children.names_not_in(seen)
                if (child := children[name]).ino < watermark and self._removable(child)
            ]
            await self._remove_all(d, gone)

    async def _remove_all(self, d: DirInode, gone: list[str]) -> None:
        for i in range(0, len(gone), self.page):
            await self._remove(d, gone[i : i + self.page])

    async def _remove(self, d: DirInode, names: list[str]) -> None:
        await self.store.mutate(lambda ns: _plan_removals(ns, d, names, self.store.now_ns()))

    def _removable(self, child: Inode) -> bool:
        if child.namespace_only or is_mount_point(self.ns, child) or self.is_staged(child.ino):
            return False
        return child.is_dir or child.has_fingerprint

    async def _apply_page(self, d: DirInode, page: list[tuple[str, UfsStatus]], gone: Callable[[], list[str]]) -> None:
        """One UfsSync record: the page's new and changed entries, and the names `gone()`
        finds missing (asked when the record is planned, so it sees the namespace as it is)."""
        names = set(map(itemgetter(0), page))
        known = _known(d, names)
        retyped = [
            name
            for name, status in page
            if name in known and (child := d.children[name]).is_dir != status.is_dir and self._removable(child)
        ]
        if retyped:  # a file that became a directory, or back: out first, then in again as it is now
            await self.store.mutate(lambda ns: _plan_removals(ns, d, retyped, self.store.now_ns()))

        def plan(ns: Namespace) -> list[Any]:
            if d.ino not in ns.inodes:
                return []
            known = _known(d, names)
            fresh = [entry for entry in page if entry[0] not in known] if known else page
            changed = [(n, s) for n, s in page if n in known and self._changed(d.children[n], s)]
            now = self.store.now_ns()
            add = self._entries_to_add(d, fresh, now)
            update = [[name, s.size, s.mtime_ns, s.fingerprint()] for name, s in changed]
            remove = gone()
            if not (add or update or remove):
                return []
            return [plan_ufs_sync(ns, d.ino, add, update, remove, now)]

        await self.store.mutate(plan)

    def _changed(self, child: Inode, status: UfsStatus) -> bool:
        """A UFS-backed file, not being written through nsd, whose UFS fingerprint moved."""
        if not isinstance(child, FileInode) or not child.has_fingerprint or self.is_staged(child.ino):
            return False
        return not status.is_dir and status.fingerprint() != child.fingerprint

    def _plan_add(self, ns: Namespace, d: DirInode, found: list[tuple[str, UfsStatus]]) -> list[Any]:
        if d.ino not in ns.inodes:
            return []
        now = self.store.now_ns()
        entries = self._entries_to_add(d, found, now)
        return [plan_ufs_sync(ns, d.ino, entries, [], [], now)] if entries else []

    def _entries_to_add(self, d: DirInode, found: list[tuple[str, UfsStatus]], now: int) -> list[list[Any]]:
        """UfsSync entries for what the UFS shows; a directory whose store keeps no time (an
        object store's prefix) gets the time it was found, journaled with it, never 1970."""
        uid, gid = self.mounts.owner(d.mount)
        entries = []
        for name, s in found:
            if name in d.children:
                continue  # created meanwhile, through nsd
            kind = st.S_IFDIR if s.is_dir else st.S_IFREG
            perms = s.mode if s.mode is not None else (0o755 if s.is_dir else 0o644)
            fp = None if s.is_dir else s.fingerprint()
            mtime = (s.mtime_ns or now) if s.is_dir else s.mtime_ns
            entries.append([name, kind | perms, uid, gid, 0 if s.is_dir else s.size, mtime, fp])
        return entries

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


def _valid(ufs: Ufs, name: str) -> bool:
    """Whether `name` can be an entry; a name that cannot is skipped, with a warning."""
    try:
        validate_name(name)
    except errors.NsdError as e:
        log.warning("skipping under-storage entry %r in %s: %s", name, ufs.uri, e.message)
        return False
    return True


def _known(d: DirInode, names: set[str]) -> set[str]:
    """Which of `names` directory `d` has: one set operation at C speed (none, on the pages
    of a first listing)."""
    return d.children.names_view() & names


def _covers(listing: Listing, d: DirInode, start_after: str | None, limit: int | None) -> bool:
    """Whether the `limit` names after `start_after` are final in a running sorted listing."""
    if listing.through is None or limit is None:
        return False
    lo = d.children.bisect_right(start_after) if start_after else 0
    return d.children.bisect_right(listing.through) - lo >= limit


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
