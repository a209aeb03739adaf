"""The inode table: inode id -> Inode, in pages of consecutive ids.

Inode ids are handed out in order and never reused, so live ids sit in dense runs. A dict keyed
by id costs ~40 bytes an inode (its hash table, with room to grow); here a page of PAGE
consecutive ids is a list of PAGE references (8 bytes an id) in a dict by page number, and a
lookup is two indexings. A page whose inodes mostly went (fewer than PAGE // 16 live) becomes a
dict offset -> inode, so ids that died cost nothing; it turns back into a list at PAGE // 8.

The top page (the highest page number set so far: where new ids go) stays a list however empty
it gets. Files that live briefly (a job's scratch files, a create and remove at a time) would
otherwise empty it again and again: each time the page was dropped, made again (a 32 KiB list)
and turned into a dict at its next removal (a walk of PAGE slots, ~100 us of the event loop).
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any, TypeVar

from nsd.namespace.inode import Inode

SHIFT = 12
PAGE = 1 << SHIFT
MASK = PAGE - 1
SPARSE = PAGE // 16  # a list page this empty becomes a dict
DENSE = PAGE // 8  # a dict page this full becomes a list again

_T = TypeVar("_T")
Page = list[Inode | None] | dict[int, Inode]


class InodeTable(MutableMapping[int, Inode]):
    """A mapping ino -> Inode (see the module docstring), iterated in id order. Ids are ints."""

    __slots__ = ("_counts", "_len", "_top", "pages")

    def __init__(self) -> None:
        self.pages: dict[int, Page] = {}  # read directly by Namespace.get (the hottest lookup)
        self._counts: dict[int, int] = {}  # live inodes per page
        self._len = 0
        self._top = -1  # the highest page number set so far

    def __getitem__(self, ino: int) -> Inode:
        try:
            node = self.pages[ino >> SHIFT][ino & MASK]
        except (KeyError, TypeError):
            raise KeyError(ino) from None
        if node is None:
            raise KeyError(ino)
        return node

    def get(self, ino: int, default: _T | None = None) -> Inode | _T | None:  # type: ignore[override]
        try:
            node = self.pages[ino >> SHIFT][ino & MASK]
        except (KeyError, TypeError):
            return default
        return default if node is None else node

    def __contains__(self, ino: object) -> bool:
        try:
            return self.pages[ino >> SHIFT][ino & MASK] is not None  # type: ignore[operator]
        except (KeyError, TypeError):
            return False

    def __setitem__(self, ino: int, node: Inode) -> None:
        if type(ino) is not int:
            raise TypeError(f"inode ids are ints, not {ino!r}")
        number, offset = ino >> SHIFT, ino & MASK
        page = self.pages.get(number)
        if page is None:
            page = self.pages[number] = [None] * PAGE
            self._counts[number] = 0
            if number > self._top:
                below, self._top = self._top, number
                self._settle(below)  # no longer where new ids go: sized by what it holds
        if isinstance(page, list):
            new = page[offset] is None
            page[offset] = node
        else:
            new = offset not in page
            page[offset] = node
        if new:
            self._len += 1
            count = self._counts[number] = self._counts[number] + 1
            if count >= DENSE and isinstance(page, dict):
                dense: list[Inode | None] = [None] * PAGE
                for k, v in page.items():
                    dense[k] = v
                self.pages[number] = dense

    def add_run(self, first: int, nodes: list[Inode]) -> None:
        """Insert `nodes` with the consecutive new ids first, first + 1, ... (none of them in
        the table: ids above any given so far): a listing page's, a slice of a page at a time."""
        done = 0
        while done < len(nodes):
            ino = first + done
            number, offset = ino >> SHIFT, ino & MASK
            if not isinstance(self.pages.get(number), list):
                self[ino] = nodes[done]  # makes the page (or fills a sparse one), one id
                done += 1
                continue
            n = min(len(nodes) - done, PAGE - offset)
            page = self.pages[number]
            assert isinstance(page, list)
            page[offset : offset + n] = nodes[done : done + n]
            self._len += n
            self._counts[number] += n
            done += n

    def __delitem__(self, ino: int) -> None:
        if ino not in self:
            raise KeyError(ino)
        number, offset = ino >> SHIFT, ino & MASK
        page = self.pages[number]
        if isinstance(page, list):
            page[offset] = None
        else:
            del page[offset]
        self._len -= 1
        self._counts[number] -= 1
        if number != self._top:  # new ids go to the top page: kept as it is (module docstring)
            self._settle(number)

    def _settle(self, number: int) -> None:
        """Drop page `number` if it is empty; make it a dict if it is sparse."""
        count = self._counts.get(number)
        if count == 0:
            del self.pages[number], self._counts[number]
        elif count is not None and count < SPARSE and isinstance(page := self.pages[number], list):
            self.pages[number] = {k: v for k, v in enumerate(page) if v is not None}

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[int]:
        for number in sorted(self.pages):
            page = self.pages[number]
            base = number << SHIFT
            if isinstance(page, list):
                for offset, node in enumerate(page):
                    if node is not None:
                        yield base + offset
            else:
                for offset in sorted(page):
                    yield base + offset

    def last(self) -> int:
        """The highest id in the table (ValueError if empty). O(pages)."""
        if not self._len:
            raise ValueError("empty inode table")
        number = max(n for n, count in self._counts.items() if count)  # the top page may be empty
        page = self.pages[number]
        if isinstance(page, dict):
            return (number << SHIFT) + max(page)
        offset = next(i for i in range(PAGE - 1, -1, -1) if page[i] is not None)
        return (number << SHIFT) + offset

    def __repr__(self) -> str:
        return f"<InodeTable of {self._len} inodes in {len(self.pages)} pages>"

    def __reduce__(self) -> Any:
        return (_rebuild, (list(self.items()),))


def _rebuild(items: list[tuple[int, Inode]]) -> InodeTable:
    table = InodeTable()
    for ino, node in items:
        table[ino] = node
    return table
