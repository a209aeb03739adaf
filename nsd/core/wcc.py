"""Weak cache consistency: an object's attributes just before and just after one call's change.

NFSv3 replies to a change carry wcc_data: the object's size, mtime and ctime before the change
and all its attributes after it. A client keeps its cached data only when the "before" matches
what it cached, and then takes the "after" as its own change's result. So the pair must frame
exactly this call's change: a snapshot taken when the call starts, or attributes read when the
reply is built, may straddle another call's change to the same directory, and the client would
then miss that change.

A call therefore says what it watches (`Watch.on(ino, ...)` around the awaited vfs call), and
the places that change attributes report each change in the same synchronous step as the
change itself: `MetaStore` around each journaled op it applies, and the vfs for the in-memory
size/mtime of staged writes (`changing`). The first change keeps its "before", every change
moves the "after". The active watch lives in a ContextVar; the RPC driver runs every call in a
context of its own (rpcserver), so watches of concurrent calls never see each other's changes.

Nothing here imports from protocols/: the namespace side reports, the protocol side reads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Protocol


class _Attrs(Protocol):
    ino: int
    size: int
    atime: int
    mtime: int
    ctime: int

    @property
    def ids(self) -> tuple[int, ...]: ...  # mode, uid, gid, nlink, ...: replaced on change


class Attrs:
    """A frozen copy of the attributes an NFS reply shows, read as an Inode's are (`ids` is the
    inode's own tuple: replaced, never changed in place, so it is shared, not copied)."""

    __slots__ = ("atime", "ctime", "ids", "ino", "mtime", "size")

    def __init__(self, n: _Attrs) -> None:
        self.ino, self.ids, self.size = n.ino, n.ids, n.size
        self.atime, self.mtime, self.ctime = n.atime, n.mtime, n.ctime

    def same_wcc(self, n: _Attrs) -> bool:
        """Whether `n` still has these pre-op attributes (size, mtime, ctime)."""
        return self.size == n.size and self.mtime == n.mtime and self.ctime == n.ctime


Lookup = Callable[[int], "_Attrs | None"]


class Watch:
    """The wcc pairs of the inodes one call watches. Cost when nothing is watched: none."""

    __slots__ = ("active", "after", "before", "inos")

    def __init__(self) -> None:
        self.inos: tuple[int, ...] = ()
        self.active = False
        self.before: dict[int, Attrs] = {}
        self.after: dict[int, Attrs | None] = {}  # None: the inode went away

    @contextmanager
    def on(self, *inos: int) -> Iterator[Watch]:
        """Watch `inos` while the block runs (in this call's context only)."""
        self.inos = tuple(dict.fromkeys(self.inos + inos))
        self.active = True
        token = _current.set(self)
        try:
            yield self
        finally:
            self.active = False  # a task that copied this context meanwhile reports nothing more
            _current.reset(token)

    def pair(self, ino: int) -> tuple[Attrs, Attrs | None] | None:
        """(before the first change, after the last) for `ino`, or None if this call changed nothing."""
        before = self.before.get(ino)
        return None if before is None else (before, self.after[ino])

    # ---- reporting (called where changes are applied) ---------------------------------------

    def snap(self, lookup: Lookup) -> list[tuple[int, Attrs]]:
        out = []
        for ino in self.inos:
            node = lookup(ino)
            if node is not None:
                out.append((ino, Attrs(node)))
        return out

    def compare(self, lookup: Lookup, snaps: list[tuple[int, Attrs]]) -> None:
        for ino, old in snaps:
            node = lookup(ino)
            if node is None:
                self.before.setdefault(ino, old)
                self.after[ino] = None
            elif not old.same_wcc(node):
                self.before.setdefault(ino, old)
                self.after[ino] = Attrs(node)


_current: ContextVar[Watch | None] = ContextVar("nsd_wcc_watch", default=None)


def current() -> Watch | None:
    """The watch of the running call, if it watches anything right now."""
    w = _current.get()
    return w if w is not None and w.active else None


@contextmanager
def changing(lookup: Lookup) -> Iterator[None]:
    """Report the change made inside the block (synchronous: nothing else may run meanwhile)."""
    w = current()
    if w is None:
        yield
        return
    snaps = w.snap(lookup)
    yield
    w.compare(lookup, snaps)
