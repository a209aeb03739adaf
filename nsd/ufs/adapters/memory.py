"""An in-memory under-storage with fault injection (memory://NAME), for tests.

Stores of the same NAME are shared within a process, so a test can open one through
`open_ufs` (as a mount would) and reach the same store to inject faults or change objects
"out of band". Faults apply to every call of every adapter on the store:

- `latency`: seconds each call sleeps first; `read_latency`: seconds each read sleeps more;
- `fail_every`: every Nth call fails with UfsUnavailable (transient); `fail_calls`: the calls
  with these numbers (1 is the first) fail so;
- `permanent`: an error every call raises (e.g. Denied), until cleared;
- `down`: every call fails at once with UfsUnavailable; `hang`: every call blocks until the
  store comes back (a black-holed endpoint, what a timeout is for);
- `lose_answers`: calls (by number) whose change is made but whose answer is lost (they fail
  with UfsUnavailable afterwards), as when a connection drops after the store acted;
- `capacity`: bytes the store holds; a write past it fails with NoSpace and changes nothing.

A daemon in another process can be given faults through mount options (`fault_latency_s`,
`fault_read_latency_s`, `fault_capacity`: set when the store is opened) or `faults_file`: a JSON
object with any of latency, fail_every, down, hang, re-read whenever the file changes.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from nsd import errors
from nsd.ufs.base import TMP_PREFIX, Syncs, Ufs, UfsStatus
from nsd.ufs.options import Options

LIST_BATCH = 256


@dataclass
class Faults:
    latency: float = 0.0
    read_latency: float = 0.0
    fail_every: int = 0
    fail_calls: frozenset[int] = frozenset()
    lose_answers: frozenset[int] = frozenset()
    permanent: errors.NsdError | None = None
    down: bool = False
    hang: bool = False
    capacity: int | None = None


@dataclass
class _File:
    data: bytes
    mtime_ns: int
    version: int


@dataclass
class MemoryStore:
    """The objects: files by path, and directories (the root "" always exists)."""

    files: dict[str, _File] = field(default_factory=dict)
    dirs: set[str] = field(default_factory=lambda: {""})
    faults: Faults = field(default_factory=Faults)
    calls: int = 0
    faults_file: str | None = None
    _faults_seen: tuple[int, int, int] = (0, 0, 0)
    _versions: int = 0
    _up: asyncio.Event | None = None

    def used(self) -> int:
        return sum(len(f.data) for f in self.files.values())

    def put(self, path: str, data: bytes) -> UfsStatus:
        """Write an object directly (an out-of-band change), parents created."""
        _check_path(path)
        self._make_parents(path)
        self._versions += 1
        self.files[path] = _File(bytes(data), time.time_ns(), self._versions)
        return self.status(path)

    def status(self, path: str) -> UfsStatus:
        name = path.rsplit("/", 1)[-1]
        f = self.files.get(path)
        if f is not None:
            return UfsStatus(name, False, len(f.data), f.mtime_ns, f"v{f.version}", 0o644)
        if path in self.dirs:
            return UfsStatus(name, True, 0, 0, None, 0o755)
        raise errors.NotFound(f"under-storage: no such object: {path or '/'}", path=path)

    def set_down(self, down: bool) -> None:
        """Take the store down or bring it back (releasing calls that hang)."""
        self.faults.down = down
        if not down:
            self.faults.hang = False
            if self._up is not None:
                self._up.set()
                self._up = None

    def _make_parents(self, path: str) -> None:
        parts = path.split("/")[:-1]
        for i in range(len(parts)):
            d = "/".join(parts[: i + 1])
            if d in self.files:
                raise errors.NotDir(f"under-storage: not a directory: {d}", path=d)
            self.dirs.add(d)

    def _parent_must_exist(self, path: str) -> None:
        parent = path.rsplit("/", 1)[0] if "/" in path else ""
        if parent in self.files:
            raise errors.NotDir(f"under-storage: not a directory: {parent}", path=parent)
        if parent not in self.dirs:
            raise errors.NotFound(f"under-storage: no such directory: {parent or '/'}", path=parent)

    def _children(self, path: str) -> list[str]:
        prefix = path + "/" if path else ""
        names = {p[len(prefix) :].split("/", 1)[0] for p in (*self.files, *self.dirs) if p.startswith(prefix) and p}
        names.discard("")
        return sorted(names)

    def answer(self, call: int) -> None:
        """A mutating call passes here after acting: its answer may be lost."""
        if call in self.faults.lose_answers:
            raise errors.UfsUnavailable(f"under-storage: injected lost answer (call {call})")

    def _load_faults(self) -> None:
        """Apply `faults_file` if it changed since it was last read (a missing file: no faults)."""
        assert self.faults_file is not None
        try:
            st = os.stat(self.faults_file)
            seen = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            seen = (0, 0, 0)
        if seen == self._faults_seen:
            return
        self._faults_seen = seen
        given = json.loads(Path(self.faults_file).read_text()) if seen[2] else {}
        self.faults.latency = float(given.get("latency", 0.0))
        self.faults.fail_every = int(given.get("fail_every", 0))
        self.faults.down = bool(given.get("down", False))
        self.faults.hang = bool(given.get("hang", False))

    async def enter(self) -> None:
        """Every call passes here: count it, then apply the faults."""
        self.calls += 1
        if self.faults_file is not None:
            self._load_faults()
            while self.faults.hang:  # released by the file, which another process writes
                await asyncio.sleep(0.05)
                self._load_faults()
        f = self.faults
        if f.hang:
            if self._up is None:
                self._up = asyncio.Event()
            await self._up.wait()
        if f.latency:
            await asyncio.sleep(f.latency)
        if f.down:
            raise errors.UfsUnavailable("under-storage memory store is down")
        if f.permanent is not None:
            raise f.permanent
        if (f.fail_every and self.calls % f.fail_every == 0) or self.calls in f.fail_calls:
            raise errors.UfsUnavailable(f"under-storage: injected transient failure (call {self.calls})")


_STORES: dict[str, MemoryStore] = {}


def store(name: str) -> MemoryStore:
    """The shared store called `name`, created empty on first use."""
    return _STORES.setdefault(name, MemoryStore())


def drop_store(name: str) -> None:
    _STORES.pop(name, None)


def _check_path(path: str) -> None:
    if any(p in ("", ".", "..") or "\0" in p for p in path.split("/")) and path != "":
        raise errors.Invalid(f"bad under-storage path {path!r}")


class MemoryUfs(Ufs):
    kind = "memory"
    sorted_listing = True

    def __init__(self, uri: str, options: Mapping[str, str] | None = None) -> None:
        parsed = urlparse(uri)
        if parsed.scheme != "memory" or not parsed.netloc:
            raise errors.Invalid(f"not a memory store URI (memory://NAME/optional/prefix): {uri!r}")
        self.uri = uri
        self.store = store(parsed.netloc)
        faults_file = (options or {}).get("faults_file")
        if faults_file:
            self.store.faults_file = faults_file
        self.prefix = parsed.path.strip("/")
        opts = Options(options, uri)
        faults = self.store.faults
        faults.latency = opts.number("fault_latency_s", faults.latency)
        faults.read_latency = opts.number("fault_read_latency_s", faults.read_latency)
        capacity = opts.text("fault_capacity")
        if capacity is not None:
            faults.capacity = opts.integer("fault_capacity", 0)
        if self.prefix:
            self.store._make_parents(self.prefix + "/x")

    def _p(self, path: str) -> str:
        path = path.strip("/")
        _check_path(path)
        return f"{self.prefix}/{path}".strip("/") if self.prefix else path

    async def stat(self, path: str) -> UfsStatus:
        await self.store.enter()
        return self.store.status(self._p(path))

    async def list_pages(self, path: str) -> AsyncIterator[list[UfsStatus]]:
        await self.store.enter()
        p = self._p(path)
        st = self.store.status(p)
        if not st.is_dir:
            raise errors.NotDir(f"under-storage: not a directory: {path}", path=path)
        names = [n for n in self.store._children(p) if not n.startswith(TMP_PREFIX)]
        for i in range(0, len(names), LIST_BATCH):
            if i:
                await self.store.enter()  # one call per page, as a paging store would make
            page = []
            for n in names[i : i + LIST_BATCH]:
                try:
                    page.append(self.store.status(f"{p}/{n}" if p else n))
                except errors.NotFound:
                    continue  # deleted while listing
            if page:
                yield page

    async def read(self, path: str, offset: int, length: int) -> bytes:
        await self.store.enter()
        if self.store.faults.read_latency:
            await asyncio.sleep(self.store.faults.read_latency)
        p = self._p(path)
        f = self.store.files.get(p)
        if f is None:
            if p in self.store.dirs:
                raise errors.IsDir(f"under-storage: is a directory: {path}", path=path)
            raise errors.NotFound(f"under-storage: no such object: {path}", path=path)
        return f.data[offset : offset + length]

    async def write(self, path: str, chunks: AsyncIterable[bytes], *, syncs: Syncs | None = None) -> UfsStatus:
        await self.store.enter()
        p = self._p(path)
        if p in self.store.dirs:
            raise errors.IsDir(f"under-storage: is a directory: {path}", path=path)
        self.store._parent_must_exist(p)
        buf = bytearray()
        async for chunk in chunks:
            buf += chunk
        cap = self.store.faults.capacity
        old = self.store.files.get(p)
        if cap is not None and self.store.used() - (len(old.data) if old else 0) + len(buf) > cap:
            raise errors.NoSpace(f"under-storage: no space left for {path}", path=path)
        await self.store.enter()  # the commit is a call of its own: it can fail after the upload
        call = self.store.calls
        status = self.store.put(p, bytes(buf))
        self.store.answer(call)
        return status

    async def mkdir(self, path: str) -> None:
        await self.store.enter()
        p = self._p(path)
        if p in self.store.files:
            raise errors.Exists(f"under-storage: a file is in the way: {path}", path=path)
        if p:
            self.store._make_parents(p + "/x")

    async def delete(self, path: str, *, recursive: bool = False, syncs: Syncs | None = None) -> None:
        await self.store.enter()
        p = self._p(path)
        s = self.store
        call = s.calls
        if p in s.files:
            del s.files[p]
            s.answer(call)
            return
        if p not in s.dirs:
            raise errors.NotFound(f"under-storage: no such object: {path}", path=path)
        if s._children(p) and not recursive:
            raise errors.NotEmpty(f"under-storage: directory not empty: {path}", path=path)
        prefix = p + "/" if p else ""
        for f in [f for f in s.files if f.startswith(prefix)]:
            del s.files[f]
        s.dirs -= {d for d in s.dirs if d.startswith(prefix)}
        if p:
            s.dirs.discard(p)
        s.dirs.add("")
        s.answer(call)

    async def sweep_tmp(self, older_than: float) -> int:
        await self.store.enter()
        cutoff = time.time_ns() - int(older_than * 1e9)
        base = self.prefix + "/" if self.prefix else ""
        stale = [
            p
            for p, f in self.store.files.items()
            if p.startswith(base) and p.rsplit("/", 1)[-1].startswith(TMP_PREFIX) and f.mtime_ns < cutoff
        ]
        for p in stale:
            del self.store.files[p]
        return len(stale)

    async def rename(self, src: str, dst: str) -> None:
        await self.store.enter()
        s, d = self._p(src), self._p(dst)
        st = self.store.status(s)
        self.store._parent_must_exist(d)
        store = self.store
        if d in store.dirs:
            if not st.is_dir:
                raise errors.IsDir(f"under-storage: is a directory: {dst}", path=dst)
            if store._children(d):
                raise errors.NotEmpty(f"under-storage: directory not empty: {dst}", path=dst)
        elif d in store.files and st.is_dir:
            raise errors.NotDir(f"under-storage: not a directory: {dst}", path=dst)
        if st.is_dir and (d + "/").startswith(s + "/"):
            raise errors.Invalid(f"under-storage: cannot move {src} into itself", path=src)
        call = store.calls
        if not st.is_dir:
            store.files[d] = store.files.pop(s)
            store.answer(call)
            return
        store.dirs.discard(d)
        moved = {k: v for k, v in store.files.items() if k.startswith(s + "/")}
        for k, v in moved.items():
            del store.files[k]
            store.files[d + k[len(s) :]] = v
        sub = {x for x in store.dirs if x == s or x.startswith(s + "/")}
        store.dirs -= sub
        store.dirs |= {d + x[len(s) :] for x in sub}
        store.answer(call)
