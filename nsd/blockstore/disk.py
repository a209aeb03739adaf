"""A disk tier: one directory of immutable block files. Synchronous file I/O only; the store runs
every call here in a worker thread.

```
<tier>/00/ .. <tier>/ff/       fanout directories, all 256 created by prepare()
<tier>/ab/abcdef...            a block: exactly the bytes whose blake3 digest is its name
<tier>/ab/abcdef....<rand>.tmp a block being written (or left by a crash: scan() deletes it)
```
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from nsd.blockstore.digest import FANOUT, TMP_SUFFIX, fanout_dir, is_digest
from nsd.datadir import fsync_dir
from nsd.errors import NoSpace

# Errors meaning "this file system is full": the block goes elsewhere or the put fails with NoSpace.
FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


FileIdentity = tuple[int, int, int, int]  # st_ino, st_size, st_mtime_ns, st_ctime_ns

# The kernel stamps ctime from a coarse clock (a tick of 1-10 ms), so a write in the same tick as
# the last change leaves ctime as it was. An identity is only trusted once its ctime is this far
# in the past: every later change then gets a later ctime.
SETTLED_NS = 200_000_000


def identity(st: os.stat_result) -> FileIdentity:
    """What changes whenever a file's bytes can have changed: any write, truncate or replace moves
    ctime (which no call short of setting the clock can move back)."""
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def settled(ident: FileIdentity, now_ns: int, margin_ns: int = SETTLED_NS) -> bool:
    """Whether a change after `now_ns` would surely show in ctime (see SETTLED_NS)."""
    return now_ns - ident[3] > margin_ns


@dataclass(frozen=True)
class TierSpec:
    """A disk tier: a directory and the bytes of blocks it may hold. Tiers are given fastest first."""

    path: Path
    capacity: int


class DiskTier:
    def __init__(self, spec: TierSpec, *, fsync: bool = True) -> None:
        if spec.capacity < 0:
            raise ValueError(f"tier capacity must not be negative, not {spec.capacity}")
        self.path = Path(spec.path)
        self.capacity = spec.capacity
        self.fsync = fsync

    def path_of(self, digest: str) -> Path:
        return self.path / fanout_dir(digest) / digest

    def prepare(self) -> None:
        """Create the tier and its 256 fanout directories (made durable once, here, so a put never
        has to create or sync a parent above its own fanout directory)."""
        self.path.mkdir(parents=True, exist_ok=True)
        created = False
        for name in FANOUT:
            d = self.path / name
            if not d.is_dir():
                d.mkdir(exist_ok=True)
                created = True
        if created and self.fsync:
            fsync_dir(self.path)
            fsync_dir(self.path.parent)

    def scan(self, *, remove_tmp: bool) -> dict[str, tuple[int, int]]:
        """Every block file: digest -> (size, mtime_ns). Cost: one readdir of each fanout dir and one
        stat per file; contents are not read (a block is verified when it is read). Leftover tmp
        files are deleted when `remove_tmp`; other foreign files are left alone and ignored."""
        found: dict[str, tuple[int, int]] = {}
        for name in FANOUT:
            try:
                entries = list(os.scandir(self.path / name))
            except FileNotFoundError:
                continue
            for entry in entries:
                if entry.name.endswith(TMP_SUFFIX):
                    if remove_tmp:
                        _unlink(entry.path)
                    continue
                if is_digest(entry.name) and entry.name.startswith(name) and entry.is_file(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    found[entry.name] = (st.st_size, st.st_mtime_ns)
        return found

    def tmp_files(self) -> list[Path]:
        return [p for name in FANOUT for p in (self.path / name).glob("*" + TMP_SUFFIX)]

    def write(self, digest: str, data: bytes | memoryview) -> None:
        """tmp -> fsync -> rename -> fsync(dir). On any failure the tmp file is removed, so no partial
        block is ever left; a full file system raises NoSpace."""
        final = self.path_of(digest)
        tmp = final.with_name(f"{digest}.{secrets.token_hex(4)}{TMP_SUFFIX}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                view = memoryview(data).cast("B")
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, final)
        except BaseException as e:
            _unlink(tmp)
            if isinstance(e, OSError) and e.errno in FULL_ERRNOS:
                raise NoSpace(f"disk tier {self.path} is full: {e.strerror}") from None
            raise
        if self.fsync:
            fsync_dir(final.parent)

    def read(self, digest: str) -> tuple[bytes, FileIdentity] | None:
        """The block file's bytes and the identity of the file they were read from (taken after
        the read), or None when it is gone."""
        try:
            with open(self.path_of(digest), "rb", buffering=0) as f:
                data = f.readall()
                return data, identity(os.fstat(f.fileno()))
        except FileNotFoundError:
            return None

    def unlink(self, digest: str) -> None:
        _unlink(self.path_of(digest))


def _unlink(path: os.PathLike[str] | str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
