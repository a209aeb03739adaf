"""Taking a backup from the running daemon (the archive format is backup.py's).

Theory of operation. `prepare()` asks for a checkpoint: the writer rolls and the log is folded
at some txid T, so the backup is exactly the namespace as of T whatever writes continue. The
blocks it must carry are those of files unpersisted at T, known only once the checkpoint is
read back; meanwhile such a file may be persisted and its blocks evicted. So the cache's
`capture()` holds every unpersisted file's blocks from before the checkpoint is asked for until
the checkpoint has been read, and the blocks it names then stay held until the backup ends.
The checkpoint file is opened as soon as it exists, so a later checkpoint's purge cannot take
it away. `stream()` then writes the archive piece by piece (gzip in a worker thread): memory
is one block and one compressed piece, whatever the size of the backup.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from nsd.journal.checkpoint import checkpoint_name, read_checkpoint
from nsd.namespace.layouts import image_unpersisted_blocks
from nsd.ops import backup

if TYPE_CHECKING:
    from nsd.core.cache.service import Cache
    from nsd.datadir import DataDir
    from nsd.vfs import Vfs

log = logging.getLogger("nsd.backup")

PIECE = 1 << 20  # checkpoint bytes per read; compressed output is sent as it comes

Write = Callable[[bytes], Awaitable[None]]


def _needed_blocks(path: Path, ckpt: BinaryIO) -> dict[str, int]:
    """The blocks unpersisted files name in the checkpoint (read whole once, then let go)."""
    _, chunks = read_checkpoint(path, ckpt.read())
    return image_unpersisted_blocks(chunks)


class LiveBackup:
    """One backup: prepared (checkpoint written, blocks held), streamed once, then closed."""

    def __init__(self, cache: Cache | None, txid: int, ckpt: BinaryIO, blocks: dict[str, int], lost: set[str]) -> None:
        self.cache = cache
        self.txid = txid
        self._ckpt = ckpt
        self.blocks = blocks  # present at prepare: digest -> size
        self.lost = lost  # named by an unpersisted file at T, already gone at prepare
        self.identity: dict[str, bytes] = {}
        self.config: dict[str, Any] = {}
        self.lost_late: list[str] = []

    @classmethod
    async def prepare(cls, vfs: Vfs, datadir: DataDir, config: dict[str, Any]) -> LiveBackup:
        cache = vfs.cache
        holding: contextlib.AbstractContextManager[set[str]]
        holding = cache.capture() if cache is not None else contextlib.nullcontext(set())
        with holding as captured:
            txid = await vfs.store.checkpoint()
            path = datadir.journal / checkpoint_name(txid)
            ckpt = open(path, "rb")  # noqa: SIM115 - kept open until close(): see the module docstring
            try:
                needed = await asyncio.to_thread(_needed_blocks, path, ckpt)
            except BaseException:
                ckpt.close()
                raise
            has = cache.blocks.has if cache is not None else (lambda d: False)
            present = {d: size for d, size in needed.items() if has(d)}
            if cache is not None:
                cache.hold(present)  # before the capture lets go
            stray = [d for d in present if d not in captured]
            if stray:  # cannot happen if every layout change reaches the cache; say so if it does
                log.warning("backup: %d blocks of unpersisted files were not captured", len(stray))
        job = cls(cache, txid, ckpt, present, set(needed) - set(present))
        job.config = config
        for name in backup.IDENTITY_FILES:
            with contextlib.suppress(FileNotFoundError):
                job.identity[name] = (datadir.path / name).read_bytes()
        if job.lost:
            log.warning("backup of txid %d: %d blocks of unpersisted files are already lost", txid, len(job.lost))
        return job

    def raw_size(self) -> int:
        """The uncompressed archive's size, near enough for a progress bar."""
        sizes = [4096, os.fstat(self._ckpt.fileno()).st_size, *map(len, self.identity.values())]
        return backup.archive_size([*sizes, *self.blocks.values(), 4096])

    async def stream(self, write: Write) -> dict[str, Any]:
        """Write the whole archive through `write`; returns the end member's summary."""
        out = backup.ArchiveWriter()

        async def send(piece: bytes) -> None:
            if piece:
                await write(piece)

        head = backup.manifest(self.txid, self.config, self.blocks, self.lost)
        await send(out.member(backup.MANIFEST, json.dumps(head, indent=2).encode()))
        size = os.fstat(self._ckpt.fileno()).st_size
        await send(out.header(f"journal/{checkpoint_name(self.txid)}", size))
        self._ckpt.seek(0)
        left = size
        while left:
            piece = await asyncio.to_thread(self._ckpt.read, min(PIECE, left))
            if not piece:
                raise OSError(f"checkpoint {self.txid} shrank while it was backed up")
            left -= len(piece)
            await send(await asyncio.to_thread(out.data, piece))
        for name, data in self.identity.items():
            await send(out.member(name, data))
        written = 0
        for digest in sorted(self.blocks):
            assert self.cache is not None
            blob = await self.cache.blocks.get(digest, count=False)
            if blob is None or len(blob) != self.blocks[digest]:
                self.lost_late.append(digest)  # found corrupt (and dropped) as it was read
                continue
            await send(out.header(backup.block_member(digest), len(blob)))
            await send(await asyncio.to_thread(out.data, blob))
            written += len(blob)
        end = {"blocks": len(self.blocks) - len(self.lost_late), "block_bytes": written, "lost_blocks": self.lost_late}
        await send(out.member(backup.END, json.dumps(end).encode()))
        await send(await asyncio.to_thread(out.close))
        if self.lost_late:
            log.warning("backup of txid %d: %d blocks were corrupt when read", self.txid, len(self.lost_late))
        return end

    def close(self) -> None:
        if self.cache is not None:
            self.cache.release(self.blocks)
            self.blocks = {}
        self._ckpt.close()
