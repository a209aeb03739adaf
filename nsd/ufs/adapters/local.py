"""A local directory as under-storage (file:///abs/path).

Written with os calls rather than pyarrow so that writes can be fsynced and hard links kept.
Blocking calls run in worker threads; writes go to a hidden temporary file in the target
directory and are renamed into place, so a reader never sees half a file.

Confinement: no path leaves the root. `..`, `.` and NUL components are refused, and a path
whose real location (symlinks resolved) is outside the root is refused with Denied, so a
symlink someone placed in the directory cannot lead nsd (which may run as root) to files it was
never given; listings leave such symlinks out. The check lstats the components below the root
only: the root is resolved once, when the store is opened (its ancestors are the operator's).
Known limit: a symlink swapped in between the check and the open is not caught (that needs
openat2's RESOLVE_BENEATH, which Python lacks).
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import secrets
import shutil
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlparse

from nsd import errors
from nsd.threads import Workers
from nsd.ufs.adapters.dirsync import DirSyncs
from nsd.ufs.adapters.lister import Lister, ListerGone, Listing, OutsideRoot
from nsd.ufs.adapters.local_scan import PAGE, Entry, scan, stays_beneath
from nsd.ufs.base import TMP_PREFIX, Syncs, Ufs, UfsStatus

_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL  # a write's temporary file


def _umask() -> int:
    """The process umask, read without changing it (os.umask would, racing other threads)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


NEW_FILE_MODE = 0o644 & ~_umask()  # what os.open(..., 0o644) gives a file `write` creates
T = TypeVar("T")
WORKERS = min(32, (os.cpu_count() or 1) + 4)  # threads per mount, as asyncio's default executor

_ERRNO_TO_ERROR: dict[int, type[errors.NsdError]] = {
    errno.ENOENT: errors.NotFound,
    errno.EEXIST: errors.Exists,
    errno.EACCES: errors.Denied,
    errno.EPERM: errors.Denied,
    errno.ENOTDIR: errors.NotDir,
    errno.EISDIR: errors.IsDir,
    errno.ENOTEMPTY: errors.NotEmpty,
    errno.ENOSPC: errors.NoSpace,
    errno.EDQUOT: errors.NoSpace,
    errno.EROFS: errors.ReadOnly,
    errno.EXDEV: errors.CrossDevice,
    errno.ENAMETOOLONG: errors.NameTooLong,
}


def classify(e: OSError, path: str) -> errors.NsdError:
    cls = _ERRNO_TO_ERROR.get(e.errno or 0, errors.UfsUnavailable)
    return cls(f"under-storage: {e.strerror or e}: {path or '/'}", path=path)


def _status(name: str, st: os.stat_result) -> UfsStatus:
    is_dir = (st.st_mode & 0o170000) == 0o040000
    return UfsStatus(name, is_dir, 0 if is_dir else st.st_size, st.st_mtime_ns, None, st.st_mode & 0o7777)


class LocalUfs(Ufs):
    kind = "local"
    root_must_exist = True  # a typo in a path must not become a new directory

    def __init__(self, uri: str, *, list_helper: bool = True) -> None:
        parsed = urlparse(uri)
        if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
            raise errors.Invalid(f"not a local directory URI: {uri!r}")
        self.uri = uri
        self.root = Path(unquote(parsed.path)).resolve()
        self._root = str(self.root)  # paths below it are strings: pathlib's cost on a CREATE was ~5%
        self._device: int | None = None
        self._writing: set[str] = set()  # temporary files of writes in progress: never swept
        # Their names: random per mount and start, then counted (a getrandom call per write took
        # ~15 us of the event loop on a VM, the most of any one call in an NFS CREATE).
        self._tmp_stem, self._tmp_seq = f"{TMP_PREFIX}{secrets.token_hex(6)}-", itertools.count()
        # Each mount its own threads: calls stuck on a hung mount never hold up another's.
        self._calls = Workers(f"nsd-ufs-{self.root.name or 'root'}", WORKERS)
        self._dirs = DirSyncs(self._calls)  # directory fsyncs shared by concurrent changes
        # Lists directories larger than a page in a process of its own (lister.py); None: threads only.
        self._lister = Lister(self._root, TMP_PREFIX) if list_helper else None

    async def _durably(self, path: str, directory: str, op: Callable[[], T], syncs: Syncs | None = None) -> T:
        """Run the change `op` in `directory` in a thread; return once it is durable, or once it
        is made, its directory's fsync left to `syncs` when one is given."""
        try:
            if syncs is None:
                return await self._dirs.change(directory, op)
            result, synced = await self._dirs.made(directory, op)
        except OSError as e:
            raise classify(e, path) from None
        syncs.add(synced, lambda e: classify(e, path) if isinstance(e, OSError) else e)
        return result

    def _abs(self, path: str) -> str:
        """The path under the root for `path`, `..`, `.` and NUL refused; no file-system call
        (the thread that uses it calls `_confine` first)."""
        parts = _parts(path)
        if any(p in (".", "..") or "\0" in p for p in parts):
            raise errors.Invalid(f"bad under-storage path {path!r}")
        return os.path.join(self._root, *parts)

    def _confine(self, path: str, *, follow_last: bool = True) -> None:
        """Refuse `path` if, symlinks resolved, it leads outside the root (see the module's
        docstring). An lstat per component: called in the worker thread, at the start of the call
        that uses the path, never on the event loop (a hung mount must not stall it).
        `follow_last=False` for calls that act on a link itself (unlink, rename)."""
        parts = _parts(path)
        if parts and not stays_beneath(self._root, parts if follow_last else parts[:-1]):
            raise errors.Denied(f"under-storage path leads outside the mount root: {path}", path=path)

    async def usage(self) -> tuple[int, int, int]:
        du = await self._run("", shutil.disk_usage, self.root)
        return du.total, du.used, du.free

    async def _run(self, path: str, fn: Callable[..., T], *args: Any) -> T:
        try:
            return await self._calls.run(fn, *args)
        except OSError as e:
            raise classify(e, path) from None

    async def _run_at(self, path: str, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` in a thread, once `path` is confined there."""

        def confined() -> T:
            self._confine(path)
            return fn(*args)

        return await self._run(path, confined)

    async def stat(self, path: str) -> UfsStatus:
        p = self._abs(path)
        st = await self._run_at(path, os.stat, p)
        return _status(os.path.basename(p), st)

    async def list_pages(self, path: str) -> AsyncIterator[list[UfsStatus]]:
        """The first page from the worker threads; the rest of a larger directory from the
        listing helper when there is one and it is free (lister.py), else from the threads."""
        p = self._abs(path)
        if self._lister is not None:
            self._lister.start()  # for this mount's listings to come, should this one be small
        it = await self._run_at(path, os.scandir, p)
        try:
            first = await self._run(path, _next_page, it, self._root)
            if len(first) < PAGE or self._lister is None or not self._lister.free():
                batch = first
                while batch:
                    yield batch
                    batch = await self._run(path, _next_page, it, self._root)
                return
        finally:
            it.close()
        # Asked before the first page goes out: the helper lists while the daemon applies it.
        rest = self._lister.listing(_parts(path))
        try:
            yield first
            seen = {s.name for s in first}
            while (page := await _from_helper(rest, path)) is not None:
                fresh = [UfsStatus(*e) for e in page if e[0] not in seen]  # it lists from the start
                if fresh:
                    yield fresh
        finally:
            rest.close()

    async def read(self, path: str, offset: int, length: int) -> bytes:
        p = self._abs(path)

        def read() -> bytes:
            with open(p, "rb", buffering=0) as f:
                return os.pread(f.fileno(), length, offset)

        return await self._run_at(path, read)

    async def write(self, path: str, chunks: AsyncIterable[bytes], *, syncs: Syncs | None = None) -> UfsStatus:
        p = self._abs(path)
        tmp = os.path.join(os.path.dirname(p), f"{self._tmp_stem}{next(self._tmp_seq):x}")
        self._writing.add(tmp)
        try:
            return _status(os.path.basename(p), await self._write(path, p, tmp, chunks, syncs))
        except BaseException:
            await self._calls.run(_unlink_quietly, tmp)  # whatever a failed write left
            raise
        finally:
            self._writing.discard(tmp)

    async def _write(
        self, path: str, p: str, tmp: str, chunks: AsyncIterable[bytes], syncs: Syncs | None
    ) -> os.stat_result:
        """`chunks` into `tmp`, fsynced, then renamed to `p`, durably (see `_durably`); the stat of `p`."""

        def into_place() -> os.stat_result:
            os.replace(tmp, p)
            return os.stat(p)

        it = aiter(chunks)
        first = await anext(it, None)
        second = None if first is None else await anext(it, None)
        if second is None:  # all of it in hand (an empty file, a small one): one thread call in all

            def whole() -> os.stat_result:
                self._confine(path)
                if not first:
                    made = _new_empty_file(p)
                    if made is not None:
                        return made
                _write_file(tmp, first or b"")
                return into_place()

            return await self._durably(path, os.path.dirname(p), whole, syncs)
        fd = await self._run_at(path, os.open, tmp, _NEW_FILE, 0o644)
        try:
            for chunk in (first, second):
                await self._run(path, _write_all, fd, chunk)
            async for chunk in it:
                await self._run(path, _write_all, fd, chunk)
            await self._run(path, os.fsync, fd)
        finally:
            os.close(fd)
        return await self._durably(path, os.path.dirname(p), into_place, syncs)

    def can_adopt(self, local: Path) -> bool:
        """A file on the same file system as the root can be renamed into place."""
        try:
            if self._device is None:
                self._device = os.stat(self.root).st_dev
            return os.stat(local).st_dev == self._device
        except OSError:
            return False

    async def adopt(self, path: str, local: Path) -> UfsStatus | None:
        """Rename the (complete, fsynced) local file into place; None if it is on another file
        system. The result is what `write` leaves: a new file of mode 0644 less the umask."""
        p = self._abs(path)

        def adopt() -> bool:
            self._confine(path)
            os.chmod(local, NEW_FILE_MODE)
            try:
                os.rename(local, p)
            except OSError as e:
                if e.errno == errno.EXDEV:
                    return False
                raise
            return True

        return await self.stat(path) if await self._durably(path, os.path.dirname(p), adopt) else None

    async def mkdir(self, path: str) -> None:
        """Durable on return, as every change here: each directory made is in its fsynced parent."""
        p = Path(self._abs(path))

        def make() -> list[Path]:
            """`p` and its missing ancestors, made top down; the ones this call made."""
            self._confine(path)
            missing = []
            d = p
            while not d.is_dir() and d != d.parent:  # the root too, as mkdir -p (made on first use)
                missing.append(d)
                d = d.parent
            made = []
            for d in reversed(missing):
                try:
                    d.mkdir()
                except FileExistsError:
                    if not d.is_dir():
                        raise
                    continue
                made.append(d)
            return made

        made = await self._durably(path, str(p.parent), make)
        for parent in dict.fromkeys(str(d.parent) for d in made if d != p):  # what mkdir -p added above
            try:
                await self._dirs.sync(parent)
            except OSError as e:
                raise classify(e, path) from None

    async def delete(self, path: str, *, recursive: bool = False, syncs: Syncs | None = None) -> None:
        p = self._abs(path)

        def delete() -> None:
            self._confine(path, follow_last=False)
            if os.path.isdir(p) and not os.path.islink(p):
                if recursive:
                    shutil.rmtree(p)
                else:
                    os.rmdir(p)
            else:
                os.unlink(p)

        await self._durably(path, os.path.dirname(p), delete, syncs)

    async def rename(self, src: str, dst: str) -> None:
        s, d = self._abs(src), self._abs(dst)

        def rename() -> None:
            self._confine(src, follow_last=False)
            self._confine(dst, follow_last=False)
            os.rename(s, d)

        await self._durably(src, os.path.dirname(d), rename)
        if os.path.dirname(s) != os.path.dirname(d):
            try:
                await self._dirs.sync(os.path.dirname(s))
            except OSError as e:
                raise classify(e, src) from None

    async def append(self, path: str, chunks: AsyncIterable[bytes], *, at: int) -> UfsStatus:
        """pwrite from `at`, after cutting what an interrupted append left there; no rewrite."""
        p = self._abs(path)
        fd = await self._run_at(path, os.open, p, os.O_WRONLY)
        try:
            await self._run(path, os.ftruncate, fd, at)
            pos = at
            async for chunk in chunks:
                view = memoryview(chunk)
                while view:
                    n = await self._run(path, os.pwrite, fd, view, pos)
                    view, pos = view[n:], pos + n
            await self._run(path, os.fsync, fd)
        finally:
            os.close(fd)
        return await self.stat(path)

    async def truncate(self, path: str, size: int) -> UfsStatus:
        p = self._abs(path)

        def truncate() -> None:
            with open(p, "r+b") as f:
                f.truncate(size)
                os.fsync(f.fileno())

        await self._run_at(path, truncate)
        return await self.stat(path)

    async def link(self, src: str, dst: str) -> None:
        s, d = self._abs(src), self._abs(dst)

        def link() -> None:
            self._confine(src)
            self._confine(dst)
            os.link(s, d)

        await self._durably(dst, os.path.dirname(d), link)

    async def close(self) -> None:
        self._calls.close()
        if self._lister is not None:
            await self._lister.close()

    async def sweep_tmp(self, older_than: float) -> int:
        def sweep() -> int:
            cutoff, swept = time.time() - older_than, 0
            for top, _, files in os.walk(self.root):
                for name in files:
                    full = os.path.join(top, name)
                    if not name.startswith(TMP_PREFIX) or full in self._writing:
                        continue
                    with contextlib.suppress(FileNotFoundError):
                        if os.lstat(full).st_mtime < cutoff:
                            os.unlink(full)
                            swept += 1
            return swept

        return await self._run("", sweep)


def _parts(path: str) -> list[str]:
    """The names of a path relative to the root ("a//b/" -> ["a", "b"])."""
    return [part for part in path.split("/") if part]


def _next_page(it: Iterator[os.DirEntry[str]], root: str) -> list[UfsStatus]:
    return [UfsStatus(*e) for e in scan(it, root, TMP_PREFIX)]


async def _from_helper(listing: Listing, path: str) -> list[Entry] | None:
    """The helper's next page of `path`, its failures as the adapter's errors."""
    try:
        return await listing.next()
    except OSError as e:
        raise classify(e, path) from None
    except OutsideRoot:
        raise errors.Denied(f"under-storage path leads outside the mount root: {path}", path=path) from None
    except ListerGone as e:
        raise errors.UfsUnavailable(f"under-storage: {e}: {path or '/'}", path=path) from None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _write_file(path: str, data: bytes) -> None:
    """A new file holding `data`, fsynced; an empty one has nothing to sync (its directory's
    fsync makes it durable)."""
    fd = os.open(path, _NEW_FILE, 0o644)
    try:
        _write_all(fd, data)
        if data:
            os.fsync(fd)
    finally:
        os.close(fd)


def _new_empty_file(path: str) -> os.stat_result | None:
    """An empty file made at `path` itself, its stat; None when `path` exists (a link too).
    Nothing to write means nothing to be seen half-written: no temporary file, no rename."""
    try:
        fd = os.open(path, _NEW_FILE, 0o644)
    except FileExistsError:
        return None
    try:
        return os.fstat(fd)
    finally:
        os.close(fd)


def _unlink_quietly(p: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(p)
