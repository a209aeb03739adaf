"""The data dir: its format version, its lock and the admin token.

```
VERSION        format version, one line
lock           flock'ed by the process that owns the dir; holds its pid
admin.token    mode 0600, created at format
root.uri       URI of the root mount's under-storage, fixed at format
journal/       segments and checkpoints
```
"""

from __future__ import annotations

import fcntl
import os
import secrets
from pathlib import Path

from nsd.errors import DataDirLocked, Invalid, NotFormatted

FORMAT_VERSION = 1


def fsync_dir(path: str | Path) -> None:
    """Make creations, renames and removals in directory `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: Path, data: bytes, mode: int = 0o644) -> None:
    """tmp -> fsync -> rename -> fsync(dir): after return the file is whole and durable."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


class DataDir:
    def __init__(self, path: Path) -> None:
        self.path = Path(path).resolve()
        self._lock_fd: int | None = None

    @property
    def journal(self) -> Path:
        return self.path / "journal"

    @property
    def token_file(self) -> Path:
        return self.path / "admin.token"

    def is_formatted(self) -> bool:
        return (self.path / "VERSION").exists()

    def format(self, root_ufs: str) -> None:
        """Create an empty data dir. Refuses a dir that is already formatted."""
        if self.is_formatted():
            raise NotFormatted(f"{self.path} is already formatted")
        self.path.mkdir(parents=True, exist_ok=True)
        self.journal.mkdir(exist_ok=True)
        write_durably(self.token_file, secrets.token_urlsafe(32).encode() + b"\n", mode=0o600)
        os.chmod(self.token_file, 0o600)
        write_durably(self.path / "root.uri", root_ufs.encode() + b"\n")
        # VERSION last: its presence means the format finished.
        write_durably(self.path / "VERSION", f"{FORMAT_VERSION}\n".encode())

    def check_version(self) -> None:
        try:
            text = (self.path / "VERSION").read_text().strip()
        except FileNotFoundError:
            raise NotFormatted(f"{self.path} is not an nsd data dir (no VERSION file); run `nsd format`") from None
        if text != str(FORMAT_VERSION):
            raise NotFormatted(f"{self.path} has format version {text!r}; this nsd reads {FORMAT_VERSION}")

    @property
    def root_ufs(self) -> str:
        return (self.path / "root.uri").read_text().strip()

    def read_token(self) -> str:
        return self.token_file.read_text().strip()

    def check_token_mode(self) -> None:
        """The admin token must be readable by its owner only (0600): refuse to start otherwise."""
        mode = self.token_file.stat().st_mode
        if mode & 0o077:
            raise Invalid(
                f"{self.token_file} is mode {mode & 0o777:04o}, readable by others: run chmod 600 {self.token_file}"
            )

    def lock(self) -> None:
        """Take the dir for this process; a second daemon on the same dir gets DataDirLocked."""
        fd = os.open(self.path / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise DataDirLocked(f"data dir {self.path} is in use by another nsd (pid {holder})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
