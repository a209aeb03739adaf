"""Backups: one gzip'd tar holding a consistent checkpoint, the mount table (inside the
checkpoint image), the effective configuration, the data dir's identity files, and the blocks
of unpersisted files.

File content that lives in an under-storage is not copied: a restored data dir serves it from
the same stores (its root mount URI is kept). Content written with MUST_CACHE or ASYNC_THROUGH
and not yet persisted exists nowhere but in the block cache, so those blocks are in the archive,
and a restore puts them into the new data dir's block store, each re-hashed against its name.

Members, in this order, so that a restore reads the archive once, as a stream:

    nsd-backup.json          manifest: format, txid, versions, config, blocks to follow
                             (count, bytes), blocks of unpersisted files already lost
    journal/{T:016x}.ckpt    the checkpoint at txid T
    root.uri, nfs.secret     identity files (nfs.secret when present: NFS handles stay valid)
    blocks/ab/abcdef...      each block an unpersisted file names at T, named by its digest
    nsd-backup-end.json      blocks written, and any found lost while they were read

Format 1 archives (before blocks were carried) have neither blocks nor the end member; they
still restore. Taking a backup from a running daemon is `backup_live.py`; this module only
knows the format. Restore is offline, into an empty (or absent) data dir.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tarfile
import time
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from nsd.blockstore import TierSpec, hash_block
from nsd.blockstore.digest import fanout_dir, is_digest
from nsd.blockstore.disk import DiskTier
from nsd.datadir import FORMAT_VERSION, DataDir, write_durably
from nsd.errors import Corrupt, Exists, Invalid, NoSpace
from nsd.journal.checkpoint import checkpoint_name, read_checkpoint
from nsd.namespace.layouts import image_unpersisted_blocks

MANIFEST = "nsd-backup.json"
END = "nsd-backup-end.json"
IDENTITY_FILES = ("root.uri", "nfs.secret")
FORMAT = 2
FORMATS = (1, 2)
BLOCKS_DIR = "blocks"
MAX_SMALL_MEMBER = 64 << 20  # manifest, end and identity files are read whole
MAX_BLOCK = 1 << 30  # a block member larger than this is not a block nsd wrote
_BLOCK = tarfile.BLOCKSIZE


def block_member(digest: str) -> str:
    return f"{BLOCKS_DIR}/{fanout_dir(digest)}/{digest}"


def manifest(txid: int, config: dict[str, Any], blocks: dict[str, int], lost: Iterable[str]) -> dict[str, Any]:
    from nsd import __version__

    return {
        "format": FORMAT,
        "data_dir_format": FORMAT_VERSION,
        "nsd_version": __version__,
        "txid": txid,
        "created_ns": time.time_ns(),
        "config": config,
        "blocks": len(blocks),
        "block_bytes": sum(blocks.values()),
        "lost_blocks": sorted(lost),
    }


def archive_size(member_sizes: Iterable[int]) -> int:
    """Bytes of the uncompressed tar of members of these sizes (for a progress bar's total)."""
    total = sum(_BLOCK + -(-size // _BLOCK) * _BLOCK for size in member_sizes) + 2 * _BLOCK
    return -(-total // tarfile.RECORDSIZE) * tarfile.RECORDSIZE


class ArchiveWriter:
    """The archive as gzip'd tar bytes, produced piece by piece: each call returns the compressed
    bytes ready so far (often none), so memory stays at one piece. gzip level 1: blocks are
    mostly incompressible, and level 9 would cost the daemon's CPU for nothing."""

    def __init__(self, level: int = 1) -> None:
        self._z = zlib.compressobj(level, zlib.DEFLATED, 31)  # wbits 31: a gzip stream
        self._offset = 0  # uncompressed tar bytes so far
        self._member_left = 0

    def header(self, name: str, size: int, mode: int = 0o600) -> bytes:
        """Start a member of `size` bytes; its data follows through data()."""
        if self._member_left:
            raise ValueError(f"previous member still needs {self._member_left} bytes")
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = size, mode, int(time.time())
        self._member_left = size
        return self._feed(info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict")) + self._pad_if_done()

    def data(self, piece: bytes | memoryview) -> bytes:
        if len(piece) > self._member_left:
            raise ValueError("more data than the member's size")
        self._member_left -= len(piece)
        return self._feed(piece) + self._pad_if_done()

    def member(self, name: str, data: bytes, mode: int = 0o600) -> bytes:
        return self.header(name, len(data), mode) + self.data(data)

    def close(self) -> bytes:
        """The end of the archive (two zero blocks, padded to a whole record) and gzip's trailer."""
        if self._member_left:
            raise ValueError(f"last member still needs {self._member_left} bytes")
        end = self._offset + 2 * _BLOCK
        padded = -(-end // tarfile.RECORDSIZE) * tarfile.RECORDSIZE
        return self._feed(bytes(padded - self._offset)) + self._z.flush()

    def _pad_if_done(self) -> bytes:
        if self._member_left == 0 and self._offset % _BLOCK:
            return self._feed(bytes(_BLOCK - self._offset % _BLOCK))
        return b""

    def _feed(self, raw: bytes | memoryview) -> bytes:
        self._offset += len(raw)
        return self._z.compress(raw)


# ---- restore ------------------------------------------------------------------------------------


def restore_archive(archive: Path, data_dir: Path, tiers: list[TierSpec] | None = None) -> dict[str, Any]:
    """Unpack a backup into a new data dir (absent or empty); blocks go into `tiers` (the
    block store's disk tiers as the restored daemon will be configured; default
    `<data_dir>/blocks`), the first with room first. Returns the manifest plus what was restored.

    The archive is read once, as a stream. The manifest, checkpoint and identity files come
    first and are checked before anything is written; each block is re-hashed against its name
    before it is stored; at the end every block an unpersisted file names must have arrived (or
    have been lost before the backup). On any failure what was written is removed again, so a
    damaged archive never leaves a half-restored dir. A new admin token is made.
    """
    target = DataDir(data_dir)
    existed = target.path.exists()
    if existed and any(target.path.iterdir()):
        raise Exists(f"restore needs an empty data dir; {target.path} is not empty")
    tiers = tiers if tiers is not None else [TierSpec(target.path / BLOCKS_DIR, 16 << 30)]
    written: list[Path] = []
    try:
        with open(archive, "rb") as raw, tarfile.open(fileobj=raw, mode="r|gz") as tar:
            return _restore(tar, archive, target, tiers, written)
    except BaseException:
        _undo(target, existed, written)
        raise


def _restore(
    tar: tarfile.TarFile, archive: Path, target: DataDir, tiers: list[TierSpec], written: list[Path]
) -> dict[str, Any]:
    members = _members(tar, archive)
    head, ckpt_name, ckpt = _head(members, archive)
    txid, chunks = read_checkpoint(target.journal / ckpt_name, data=ckpt)  # Corrupt before anything is written
    needed = image_unpersisted_blocks(chunks)
    identity: dict[str, bytes] = {}
    member, data = next(members, (None, b""))
    while member is not None and member.name in IDENTITY_FILES:
        identity[member.name] = data
        member, data = next(members, (None, b""))
    root_uri = identity.get("root.uri", b"").decode().strip()
    if not root_uri:
        raise Invalid("backup has no root.uri")
    placer = _Placer(tiers, head.get("block_bytes", 0))

    target.format(root_uri)
    path = target.journal / checkpoint_name(txid)
    write_durably(path, ckpt)
    if "nfs.secret" in identity:
        write_durably(target.path / "nfs.secret", identity["nfs.secret"], mode=0o600)

    restored: dict[str, int] = {}
    end: dict[str, Any] | None = None
    while member is not None:
        if member.name == END:
            end = json.loads(data)
        elif member.name.startswith(BLOCKS_DIR + "/") and end is None:
            digest = member.name.rsplit("/", 1)[-1]
            if member.name != block_member(digest) or not is_digest(digest):
                raise Invalid(f"not a block member: {member.name}")
            if hash_block(data) != digest:
                raise Corrupt(f"block {digest} in {archive} does not match its digest")
            new = placer.put(digest, data)
            if new is not None:
                written.append(new)
            restored[digest] = len(data)
        else:
            raise Invalid(f"unexpected member {member.name} in {archive}")
        member, data = next(members, (None, b""))
    if head["format"] >= 2 and end is None:
        raise Invalid(f"{archive} ends early (no {END}): the backup was cut short")
    lost = set(head.get("lost_blocks", ())) | set((end or {}).get("lost_blocks", ()))
    if head["format"] == 1:  # taken before backups carried blocks: whatever they named is lost
        lost |= needed.keys()
    missing = [d for d in needed if d not in restored and d not in lost]
    if missing:
        raise Invalid(f"{archive} lacks {len(missing)} blocks of unpersisted files (first: {missing[0]})")
    return {
        **head,
        "blocks_restored": len(restored),
        "block_bytes_restored": sum(restored.values()),
        "lost_blocks": sorted(d for d in lost if d in needed),
    }


def _members(tar: tarfile.TarFile, archive: Path) -> Any:
    """(member, its bytes) in archive order; any read error becomes Invalid."""
    try:
        for member in tar:
            if not member.isfile():
                raise Invalid(f"unexpected member {member.name} in {archive}")
            limit = MAX_BLOCK if member.name.startswith(BLOCKS_DIR + "/") else MAX_SMALL_MEMBER
            if member.size > limit:
                raise Invalid(f"member {member.name} of {member.size} bytes is too large")
            f = tar.extractfile(member)
            assert f is not None
            yield member, f.read()
    except (OSError, EOFError, tarfile.TarError, zlib.error) as e:
        raise Invalid(f"not a usable nsd backup: {archive}: {e}") from None


def _head(members: Any, archive: Path) -> tuple[dict[str, Any], str, bytes]:
    """The manifest and the checkpoint (name, bytes): the archive's first two members."""
    first, data = next(members, (None, b""))
    if first is None or first.name != MANIFEST:
        raise Invalid(f"not a usable nsd backup: {archive}: it does not start with {MANIFEST}")
    try:
        head = json.loads(data)
        txid = int(head["txid"])
    except (ValueError, KeyError, TypeError) as e:
        raise Invalid(f"not a usable nsd backup: {archive}: bad manifest: {e}") from None
    if head.get("format", 1) not in FORMATS:
        raise Invalid(f"backup format {head.get('format')}; this nsd reads formats {FORMATS}")
    head.setdefault("format", 1)
    if head.get("data_dir_format") != FORMAT_VERSION:
        raise Invalid(f"backup of data dir format {head.get('data_dir_format')}; this nsd reads {FORMAT_VERSION}")
    second, ckpt = next(members, (None, b""))
    name = f"journal/{checkpoint_name(txid)}"
    if second is None or second.name != name:
        raise Invalid(f"not a usable nsd backup: {archive}: missing {name}")
    return head, checkpoint_name(txid), ckpt


class _Placer:
    """Blocks into the first disk tier with room (counting what the tier holds already)."""

    def __init__(self, specs: list[TierSpec], expected: int) -> None:
        self.tiers = [DiskTier(spec) for spec in specs]
        for tier in self.tiers:
            tier.prepare()
        self.used = [sum(size for size, _ in t.scan(remove_tmp=False).values()) for t in self.tiers]
        room = sum(max(0, t.capacity - u) for t, u in zip(self.tiers, self.used, strict=True))
        if expected > room:
            raise NoSpace(
                f"the backup holds {expected} bytes of unpersisted blocks but the cache tiers have room for "
                f"{room}: raise cache_disk_bytes or add cache_dirs (and pass the same --config to serve)"
            )

    def put(self, digest: str, data: bytes) -> Path | None:
        """Store a block; its path, or None when a tier had it already (a shared cache_dirs)."""
        if any(t.path_of(digest).exists() for t in self.tiers):
            return None
        for i, tier in enumerate(self.tiers):
            if self.used[i] + len(data) <= tier.capacity:
                tier.write(digest, data)
                self.used[i] += len(data)
                return tier.path_of(digest)
        raise NoSpace(f"no cache tier has room for block {digest} ({len(data)} bytes)")


def _undo(target: DataDir, existed: bool, written: list[Path]) -> None:
    for path in written:
        with contextlib.suppress(OSError):
            path.unlink()
    if not target.path.exists():
        return
    if not existed:
        shutil.rmtree(target.path, ignore_errors=True)
        return
    for child in target.path.iterdir():
        with contextlib.suppress(OSError):
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
