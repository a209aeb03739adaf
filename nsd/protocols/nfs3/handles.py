"""NFS file handles: 32 opaque bytes that name (export, inode, generation) and cannot be forged.

Layout (big-endian):

    offset size field
    0      1    format version (1)
    1      1    export id
    2      2    reserved, zero
    4      8    inode id
    12     4    generation
    16     16   keyed BLAKE2b of bytes 0..15 under the data dir's secret

Inode ids are never reused and the secret lives in the data dir (`nfs.secret`, mode 0600), so a
handle stays valid across restarts for as long as its object exists. A handle of the wrong
length or version is BADHANDLE; one whose MAC does not match (forged, flipped or from another
data dir) is STALE, as is one naming a deleted inode or an older generation.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import struct
from pathlib import Path

from nsd.protocols.nfs3.const import NfsError, Status

FH_VERSION = 1
FH_SIZE = 32
_BODY = struct.Struct(">BBHQI")  # 16 bytes
MAC_SIZE = 16
SECRET_FILE = "nfs.secret"


def load_secret(data_dir: Path) -> bytes:
    """The handle key of a data dir, created (32 random bytes, hex, mode 0600) on first use."""
    path = data_dir / SECRET_FILE
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        text = secrets.token_hex(32)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, (text + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        dfd = os.open(data_dir, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    key = bytes.fromhex(text)
    if len(key) < 16:
        raise ValueError(f"{path}: the NFS handle secret must be at least 16 bytes")
    return key[:64]


class HandleCodec:
    """Encodes and checks handles with one key. Cost: one keyed BLAKE2b (about 0.4 us) per new
    handle; handles made or checked before are remembered (at most `remember` of each)."""

    def __init__(self, key: bytes, remember: int = 65536) -> None:
        # BLAKE2b with the key already absorbed (the key is a first block of its own): each MAC
        # copies this state and hashes the body, 0.37 us where keying a new hasher takes 0.50.
        self._keyed = hashlib.blake2b(digest_size=MAC_SIZE, key=key)
        self._remember = remember
        self._checked: dict[bytes, tuple[int, int, int]] = {}
        self._made: dict[tuple[int, int, int], bytes] = {}

    def _mac(self, body: bytes) -> bytes:
        h = self._keyed.copy()
        h.update(body)
        return h.digest()

    def encode(self, export_id: int, ino: int, gen: int) -> bytes:
        made = self._made.get((export_id, ino, gen))
        if made is not None:
            return made
        made = self.make(export_id, ino, gen)
        if len(self._made) >= self._remember:
            self._made.clear()
        self._made[export_id, ino, gen] = made
        return made

    def make(self, export_id: int, ino: int, gen: int) -> bytes:
        """The handle, not remembered: for a caller that keeps what it makes itself."""
        body = _BODY.pack(FH_VERSION, export_id, 0, ino, gen & 0xFFFFFFFF)
        return body + self._mac(body)

    def decode(self, fh: bytes | memoryview) -> tuple[int, int, int]:
        """(export id, inode id, generation); NfsError(BADHANDLE or STALE) if not ours."""
        key = bytes(fh)
        known = self._checked.get(key)
        if known is not None:
            return known
        if len(fh) != FH_SIZE:
            raise NfsError(Status.BADHANDLE, f"handle of {len(fh)} bytes")
        version, export_id, reserved, ino, gen = _BODY.unpack_from(fh, 0)
        if version != FH_VERSION or reserved != 0:
            raise NfsError(Status.BADHANDLE, f"handle format {version}")
        body = bytes(fh[:16])
        if not hmac.compare_digest(self._mac(body), bytes(fh[16:])):
            raise NfsError(Status.STALE, "handle fails its check")
        if len(self._checked) >= self._remember:
            self._checked.clear()
        self._checked[key] = (export_id, ino, gen)
        return export_id, ino, gen
