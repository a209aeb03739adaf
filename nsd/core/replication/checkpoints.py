"""Cluster checkpoints in shared storage, so etcd need keep only the journal since the newest.

The leader uploads each checkpoint it writes to `<checkpoint_uri>/<cluster>/` (default: the
root under-storage's `.nsd-system/<cluster>/checkpoints/`, a directory nsd never shows), then
records its txid in etcd; a starting node downloads the newest and replays etcd's tail after it.
A checkpoint file carries its own CRCs and footer, so a damaged or partial download fails
recovery instead of loading. The upload is the under-storage's atomic write (all or nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

from nsd import errors
from nsd.journal.checkpoint import checkpoint_name
from nsd.ufs import Ufs, open_ufs
from nsd.ufs.base import SYSTEM_DIR

log = logging.getLogger("nsd.cluster")

PIECE = 4 << 20
KEEP = 2  # checkpoints kept in shared storage (the newest is named in etcd; one older in case)


class SharedCheckpoints:
    def __init__(self, ufs: Ufs, directory: str) -> None:
        self.ufs = ufs
        self.directory = directory

    @classmethod
    def open(cls, cluster: str, checkpoint_uri: str, root_ufs: str) -> SharedCheckpoints:
        if checkpoint_uri:
            return cls(open_ufs(checkpoint_uri), cluster)
        return cls(open_ufs(root_ufs), f"{SYSTEM_DIR}/{cluster}/checkpoints")

    def where(self, txid: int) -> str:
        return f"{self.ufs.uri.rstrip('/')}/{self.directory}/{checkpoint_name(txid)}"

    async def upload(self, txid: int, local: Path) -> None:
        """Put the local checkpoint file for `txid` into shared storage (whole or not at all)."""
        await self._mkdirs()

        async def pieces() -> AsyncIterator[bytes]:
            with open(local, "rb") as f:
                while piece := await asyncio.to_thread(f.read, PIECE):
                    yield piece

        await self.ufs.write(f"{self.directory}/{checkpoint_name(txid)}", pieces())

    async def download(self, txid: int, journal_dir: Path) -> Path:
        """Fetch the checkpoint for `txid` into `journal_dir` (a .tmp first, renamed when whole)."""
        path = f"{self.directory}/{checkpoint_name(txid)}"
        size = (await self.ufs.stat(path)).size
        final = journal_dir / checkpoint_name(txid)
        tmp = final.with_name(final.name + ".tmp")
        with open(tmp, "wb") as out:
            offset = 0
            while offset < size:
                piece = await self.ufs.read(path, offset, min(PIECE, size - offset))
                if not piece:
                    raise errors.Corrupt(f"checkpoint {self.where(txid)} ended at {offset} of {size} bytes")
                await asyncio.to_thread(out.write, piece)
                offset += len(piece)
            out.flush()
            await asyncio.to_thread(os.fsync, out.fileno())
        tmp.rename(final)
        return final

    async def prune(self, newest: int) -> None:
        """Delete all but the KEEP newest checkpoints up to `newest`."""
        names = sorted([s.name async for s in self.ufs.list(self.directory) if s.name.endswith(".ckpt")], reverse=True)
        for name in [n for n in names if n <= checkpoint_name(newest)][KEEP:]:
            with contextlib.suppress(errors.NotFound):
                await self.ufs.delete(f"{self.directory}/{name}")

    async def close(self) -> None:
        await self.ufs.close()

    async def _mkdirs(self) -> None:
        parts = self.directory.split("/")
        for i in range(1, len(parts) + 1):
            with contextlib.suppress(errors.Exists):
                await self.ufs.mkdir("/".join(parts[:i]))
