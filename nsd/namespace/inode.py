"""In-memory inodes.

Memory is the constraint here (a namespace holds millions of these): every class uses
__slots__, optional fields stay None, and callers pass the same int object for times that
are equal so they are stored once.
"""

from __future__ import annotations

import stat
from collections.abc import Iterable, Iterator, KeysView
from collections.abc import Set as AbstractSet
from typing import Any, ClassVar

from sortedcontainers import SortedDict, SortedList

from nsd.namespace.names import name_cookie


class Inode:
    """What every object has. `mode` includes the S_IFMT bits; times are ns since the epoch.

    `mount` is a small int naming the mount the object lives in (0 = root mount) and
    `fingerprint` is None or [size, mtime_ns, etag] of the under-storage object.

    `parent` and `name` are the object's primary link: the entry that locates it (in the
    under-storage too) when it is reached by inode id alone, as NFS handles do. A directory has
    exactly one link; a file with several keeps one of them here (the root: itself and "").
    """

    __slots__ = (
        "_fp",
        "atime",
        "ctime",
        "ids",
        "ino",
        "mtime",
        "name",
        "parent",
        "size",
    )

    is_dir: ClassVar[bool] = False
    is_file: ClassVar[bool] = False
    is_symlink: ClassVar[bool] = False
    namespace_only: ClassVar[bool] = False  # no under-storage object behind it (symlinks, FIFOs, sockets)

    ino: int
    ids: tuple[int, int, int, int, int, int]  # mode, uid, gid, nlink, gen, mount
    size: int
    atime: int
    mtime: int
    ctime: int
    _fp: Any  # see `fingerprint`
    parent: DirInode
    name: str

    def _init(
        self,
        ino: int,
        gen: int,
        mode: int,
        uid: int,
        gid: int,
        nlink: int,
        size: int,
        atime: int,
        mtime: int,
        ctime: int,
        mount: int,
        fingerprint: list[Any] | None,
    ) -> None:
        self.ino = ino
        self.ids = _share((mode, uid, gid, nlink, gen, mount))
        self.size = size
        self.atime = atime
        self.mtime = mtime
        self.ctime = ctime
        self.fingerprint = fingerprint

    # mode, uid, gid, nlink, gen and mount live in one tuple, `ids`, shared by every inode with
    # the same six values (see _SHARED): one slot where six cost 48 bytes an inode. Hot readers
    # of several of them (NFS attributes) unpack `ids` once instead of going through properties.

    @property
    def mode(self) -> int:
        return self.ids[0]

    @mode.setter
    def mode(self, v: int) -> None:
        a = self.ids
        self.ids = _share((v, a[1], a[2], a[3], a[4], a[5]))

    @property
    def uid(self) -> int:
        return self.ids[1]

    @uid.setter
    def uid(self, v: int) -> None:
        a = self.ids
        self.ids = _share((a[0], v, a[2], a[3], a[4], a[5]))

    @property
    def gid(self) -> int:
        return self.ids[2]

    @gid.setter
    def gid(self, v: int) -> None:
        a = self.ids
        self.ids = _share((a[0], a[1], v, a[3], a[4], a[5]))

    @property
    def nlink(self) -> int:
        return self.ids[3]

    @nlink.setter
    def nlink(self, v: int) -> None:
        a = self.ids
        self.ids = _share((a[0], a[1], a[2], v, a[4], a[5]))

    @property
    def gen(self) -> int:
        return self.ids[4]

    @property
    def mount(self) -> int:
        return self.ids[5]

    @mount.setter
    def mount(self, v: int) -> None:
        a = self.ids
        self.ids = _share((a[0], a[1], a[2], a[3], a[4], v))

    # A fingerprint is mostly [size, mtime_ns, etag] with the inode's own size and mtime (what
    # discovery found is what the inode shows). Then `_fp` keeps only the etag, not an 88-byte
    # list (a fifth of a discovered file's memory): _NO_ETAG, an S3 ETag's 16 bytes of MD5 (56
    # bytes where its 34-character str takes 88), or any other etag str as it is. A file written
    # through nsd has the under-storage's mtime, not its own: without an etag `_fp` is that int.
    # Whatever changes size or mtime calls detach_fingerprint() first, so the fingerprint stays
    # the under-storage's.

    @property
    def fingerprint(self) -> list[Any] | None:
        fp = self._fp
        if fp is None or type(fp) is list:
            return fp
        if type(fp) is int:
            return [self.size, fp, None]
        if type(fp) is bytes:
            return [self.size, self.mtime, f'"{fp.hex()}"']
        return [self.size, self.mtime, None if fp is _NO_ETAG else fp]

    @fingerprint.setter
    def fingerprint(self, fp: list[Any] | None) -> None:
        if type(fp) is list and len(fp) == 3 and fp[0] == self.size:
            mtime, etag = fp[1], fp[2]
            if mtime == self.mtime and etag is None:
                self._fp = _NO_ETAG
                return
            if mtime == self.mtime and type(etag) is str:
                self._fp = _md5_etag(etag) or etag
                return
            if type(mtime) is int and etag is None:
                self._fp = mtime
                return
        self._fp = fp

    @property
    def has_fingerprint(self) -> bool:
        """`fingerprint is not None` without building the list (hot paths ask this)."""
        return self._fp is not None

    def detach_fingerprint(self) -> None:
        """Before size or mtime change: the fingerprint no longer follows them."""
        fp = self._fp
        if fp is not None and type(fp) is not list:
            self._fp = self.fingerprint

    def __repr__(self) -> str:
        return f"<{type(self).__name__} ino={self.ino} mode={self.mode:o} nlink={self.nlink} size={self.size}>"


class FileInode(Inode):
    """A regular file. `layout` is None or a list of [offset, length, digest] blocks."""

    __slots__ = ("layout",)
    is_file: ClassVar[bool] = True

    layout: list[Any] | None

    def __init__(
        self,
        ino: int,
        gen: int,
        mode: int,
        uid: int,
        gid: int,
        nlink: int,
        size: int,
        atime: int,
        mtime: int,
        ctime: int,
        mount: int,
        fingerprint: list[Any] | None,
        layout: list[Any] | None,
    ) -> None:
        self._init(ino, gen, mode, uid, gid, nlink, size, atime, mtime, ctime, mount, fingerprint)
        self.layout = layout


class SymlinkInode(Inode):
    """A symbolic link; `size` is the length of `target` in UTF-8 bytes."""

    __slots__ = ("target",)
    is_symlink: ClassVar[bool] = True
    namespace_only: ClassVar[bool] = True

    target: str

    def __init__(
        self,
        ino: int,
        gen: int,
        mode: int,
        uid: int,
        gid: int,
        nlink: int,
        size: int,
        atime: int,
        mtime: int,
        ctime: int,
        mount: int,
        fingerprint: list[Any] | None,
        target: str,
    ) -> None:
        self._init(ino, gen, mode, uid, gid, nlink, size, atime, mtime, ctime, mount, fingerprint)
        self.target = target


_NO_ETAG = object()  # `_fp` of a fingerprint [size, mtime, None] equal to the inode's own


def _md5_etag(etag: str) -> bytes | None:
    """The 16 bytes of an ETag that is a quoted MD5 in lowercase hex (S3's for a single-part
    upload), when they give back exactly `etag`; else None."""
    if len(etag) != 34 or etag[0] != '"' or etag[33] != '"':
        return None
    try:
        raw = bytes.fromhex(etag[1:33])
    except ValueError:
        return None
    return raw if raw.hex() == etag[1:33] else None


# The one tuple kept for each (mode, uid, gid, nlink, gen, mount) in use. Few combinations occur
# (a directory's nlink varies, the rest repeat across millions of inodes); the table only grows,
# by one entry per combination ever seen, as the intern table of ints did before it.
_SHARED: dict[tuple[int, int, int, int, int, int], tuple[int, int, int, int, int, int]] = {}


def _share(values: tuple[int, int, int, int, int, int]) -> tuple[int, int, int, int, int, int]:
    """The kept tuple equal to `values`."""
    return _SHARED.setdefault(values, values)


SPECIAL_KINDS = frozenset({stat.S_IFIFO, stat.S_IFSOCK})
ROOT_INO = 1
S_IFMT = 0o170000  # the type bits of a mode, as a mask: no call to stat.S_IFMT per inode


class SpecialInode(Inode):
    """A FIFO or a socket (made with NFS MKNOD). Like a symlink it lives in the namespace only
    (object stores have none); it has no content here: a client opens it on its own machine."""

    __slots__ = ()
    namespace_only: ClassVar[bool] = True

    __init__ = Inode._init  # no fields of its own


class Children(dict[str, "Inode"]):
    """A directory's entries: name -> Inode, iterated in name order.

    A plain dict underneath (get, `in`, len and [] at C speed, about 40 bytes an entry) plus a
    sorted index of the names (SortedList) built only when something asks for a range in name
    order (`irange`, `bisect_right`: paged listings) and kept in step from then on. Iterating
    without the index sorts the names (timsort: linear when they were inserted in order, as a
    checkpoint load does). An empty one costs about 100 bytes, where a SortedDict costs 1.6 KB:
    most directories are small and never listed by name.
    """

    __slots__ = ("_index",)

    _index: SortedList | None

    def __init__(self, entries: Iterable[tuple[str, Inode]] = ()) -> None:
        super().__init__(entries)
        self._index = None

    def __setitem__(self, name: str, node: Inode) -> None:
        if self._index is not None and name not in self:
            self._index.add(name)
        dict.__setitem__(self, name, node)

    def __delitem__(self, name: str) -> None:
        dict.__delitem__(self, name)
        if self._index is not None:
            self._index.remove(name)

    def pop(self, name: str, *default: Any) -> Any:
        if name not in self:
            return dict.pop(self, name, *default)
        node = dict.pop(self, name)
        if self._index is not None:
            self._index.remove(name)
        return node

    def update(self, *args: Any, **kwargs: Any) -> None:
        dict.update(self, *args, **kwargs)
        self._index = None  # rebuilt on next use

    def setdefault(self, name: str, default: Inode) -> Inode:
        if name not in self:
            self[name] = default
        return dict.__getitem__(self, name)

    def popitem(self) -> tuple[str, Inode]:
        raise NotImplementedError("Children.popitem")

    def clear(self) -> None:
        dict.clear(self)
        self._index = None

    def index(self) -> SortedList:
        """The sorted index of the names, built on first use. Cost: O(n log n) once."""
        if self._index is None:
            self._index = SortedList(dict.keys(self))
        return self._index

    def names_view(self) -> KeysView[str]:
        """The names as a set-like view, in no order (set operations at C speed)."""
        return dict.keys(self)

    def names_not_in(self, names: AbstractSet[str]) -> list[str]:
        """The names that `names` lacks, in name order: a set difference at C speed, then a sort
        of what it leaves (a listing's end asking what the under-storage no longer has)."""
        return sorted(dict.keys(self) - names)

    def names(self) -> list[str]:
        """The names in name order (a new list). O(n) with the index or names inserted in order."""
        return list(self._index) if self._index is not None else sorted(dict.keys(self))

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def keys(self) -> list[str]:  # type: ignore[override]
        return self.names()

    def values(self) -> list[Inode]:  # type: ignore[override]
        get = dict.__getitem__
        return [get(self, n) for n in self.names()]

    def items(self) -> list[tuple[str, Inode]]:  # type: ignore[override]
        get = dict.__getitem__
        return [(n, get(self, n)) for n in self.names()]

    def __reversed__(self) -> Iterator[str]:
        return reversed(self.names())

    def irange(
        self, minimum: str | None = None, maximum: str | None = None, inclusive: tuple[bool, bool] = (True, True)
    ) -> Iterator[str]:
        """Names in [minimum, maximum] in name order (`inclusive` as SortedList.irange)."""
        return self.index().irange(minimum, maximum, inclusive)

    def bisect_right(self, name: str) -> int:
        """How many names are <= `name`."""
        return self.index().bisect_right(name)

    def __repr__(self) -> str:
        return f"Children({self.items()!r})"

    def __reduce__(self) -> Any:
        return (Children, (self.items(),))


class DirInode(Inode):
    """A directory: `children` maps name -> Inode (a Children: iterated in name order).

    `parent` is the containing directory (the root's is itself) and `name` this directory's
    entry in it ("" for the root), so a directory's path costs only its depth. The cookie
    index (cookie -> name, or sorted list of names when hashes collide) exists only once
    something listed the directory in cookie order; from then on add_child/remove_child keep
    it in sync.
    """

    __slots__ = ("children", "cookies")
    is_dir: ClassVar[bool] = True

    children: Children
    cookies: SortedDict | None

    def __init__(
        self,
        ino: int,
        gen: int,
        mode: int,
        uid: int,
        gid: int,
        nlink: int,
        size: int,
        atime: int,
        mtime: int,
        ctime: int,
        mount: int,
        fingerprint: list[Any] | None,
        parent: DirInode | None,
        name: str,
    ) -> None:
        self._init(ino, gen, mode, uid, gid, nlink, size, atime, mtime, ctime, mount, fingerprint)
        self.children = Children()
        self.parent = self if parent is None else parent
        self.name = name
        self.cookies = None

    def add_child(self, name: str, node: Inode) -> None:
        """Insert an entry (the caller checked it is new). Cost: O(log n)."""
        self.children[name] = node
        if self.cookies is not None:
            _cookie_add(self.cookies, name)

    def add_children(self, entries: list[tuple[str, Inode]]) -> None:
        """Insert new entries with distinct names (the caller checked): a listing page. A
        dict update, the cookie index in one merge, where `add_child` one at a time costs
        ~0.5 us an entry more."""
        children, index = self.children, self.cookies
        if children._index is not None:  # a name index to keep in step: one at a time
            for name, node in entries:
                self.add_child(name, node)
            return
        dict.update(children, entries)
        if index is not None:
            fresh = {name_cookie(name): name for name, _ in entries}
            if len(fresh) == len(entries) and fresh.keys().isdisjoint(index):
                index.update(fresh)
            else:  # names sharing a cookie (never, in practice)
                for name, _ in entries:
                    _cookie_add(index, name)

    def remove_child(self, name: str) -> Inode:
        """Remove an existing entry and return its inode. Cost: O(log n)."""
        node: Inode = self.children.pop(name)
        if self.cookies is not None:
            _cookie_remove(self.cookies, name)
        return node

    def cookie_index(self) -> SortedDict:
        """The cookie index, built on first use. Cost: O(n log n) once, then free."""
        if self.cookies is None:
            names = self.children.names_view()  # in no order: sorting 10k names costs ~2 ms
            index: dict[int, str | list[str]] = {name_cookie(name): name for name in names}
            if len(index) < len(names):  # names sharing a cookie (never, in practice)
                index = {}
                for name in self.children:  # in name order, so collision lists come out sorted
                    cookie = name_cookie(name)
                    have = index.get(cookie)
                    if have is None:
                        index[cookie] = name
                    elif isinstance(have, str):
                        index[cookie] = [have, name]
                    else:
                        have.append(name)
            self.cookies = SortedDict(index)
        return self.cookies


def _cookie_add(index: SortedDict, name: str) -> None:
    cookie = name_cookie(name)
    have = index.get(cookie)
    if have is None:
        index[cookie] = name
    elif isinstance(have, str):
        index[cookie] = sorted((have, name))
    else:
        have.append(name)
        have.sort()


def _cookie_remove(index: SortedDict, name: str) -> None:
    cookie = name_cookie(name)
    have = index[cookie]
    if isinstance(have, str):
        del index[cookie]
    else:
        have.remove(name)
        if len(have) == 1:
            index[cookie] = have[0]
