"""A Vfs with a block store in-process: a memory:// root (faults, out-of-band changes) or a
local one, tiny blocks, and helpers to reopen it as a restart would."""

from __future__ import annotations

import secrets
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from nsd.blockstore import BlockStore, TierSpec
from nsd.core.cache.policy import ReadType, WriteType
from nsd.core.cache.service import CacheSettings
from nsd.core.metastore import MetaStore, initial_checkpoint
from nsd.core.mounttable import MountTable
from nsd.daemon import assemble_vfs
from nsd.ops.ttl import TtlEnforcer
from nsd.ufs.adapters import memory
from nsd.vfs import SYSTEM, Vfs

ME = SYSTEM  # permissions are tested elsewhere; these tests act as the operator
BS = 64 * 1024
TTLS: weakref.WeakKeyDictionary[Vfs, TtlEnforcer] = weakref.WeakKeyDictionary()


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for p in parts:
        yield p


async def read_all(vfs: Vfs, path: str, read_type: ReadType | None = None) -> bytes:
    return b"".join([c async for c in vfs.read(path, caller=ME, read_type=read_type)])


@dataclass
class Env:
    """Everything a restart keeps: the data dir and the memory store's name."""

    tmp: Path
    store_name: str
    write_type: WriteType = WriteType.THROUGH
    read_type: ReadType = ReadType.CACHE
    disk_bytes: int = 64 << 20
    memory_bytes: int = 0
    block_size: int = BS
    root_options: dict[str, str] | None = None
    persist_delay: float = 0.0
    read_ahead_blocks: int = 4

    @property
    def ufs(self) -> memory.MemoryStore:
        return memory.store(self.store_name)

    async def open(self) -> Vfs:
        journal = self.tmp / "journal"
        if not journal.exists():
            journal.mkdir(parents=True)
            initial_checkpoint(journal, root_uid=0, root_gid=0)
        store = await MetaStore.open(journal, fsync=False)
        options = {"retries": "1", **(self.root_options or {})}
        mounts = MountTable(store.ns, f"memory://{self.store_name}", options)
        blocks = BlockStore(
            memory_bytes=self.memory_bytes,
            tiers=[TierSpec(self.tmp / "blocks", self.disk_bytes)],
            fsync=False,
            high_watermark=0.9,
            low_watermark=0.5,
        )
        await blocks.open()
        settings = CacheSettings(
            block_size=self.block_size,
            read_type=self.read_type,
            write_type=self.write_type,
            persist_delay=self.persist_delay,
            persist_retry_max=0.2,
            ttl_interval=0.05,
            read_ahead_blocks=self.read_ahead_blocks,
        )
        vfs = assemble_vfs(
            store, mounts, self.tmp / "staging", idle_seal_seconds=0.2, blocks=blocks, cache_settings=settings
        )
        ttl = TTLS[vfs] = TtlEnforcer(vfs, interval=settings.ttl_interval)
        vfs.start()
        ttl.start()
        return vfs


def new_env(tmp: Path, **kw: object) -> Env:
    return Env(tmp, "cache-" + secrets.token_hex(4), **kw)  # type: ignore[arg-type]


def ttl_of(vfs: Vfs) -> TtlEnforcer:
    """The TTL enforcer the daemon would run beside `vfs`."""
    return TTLS[vfs]


async def close(vfs: Vfs, *, checkpoint: bool = False) -> None:
    await ttl_of(vfs).close()
    await vfs.close()
    assert vfs.cache is not None
    await vfs.cache.blocks.close()
    await vfs.mounts.close()
    await vfs.store.close(checkpoint=checkpoint)


async def crash(vfs: Vfs) -> None:
    """Stop as a kill would leave things: background tasks gone, stages unsealed, no checkpoint
    (the journal records already written stay, as they would on disk after fsync)."""
    assert vfs.persister is not None and vfs.cache is not None
    await vfs.persister.close()
    await ttl_of(vfs).close()
    await vfs.cache.blocks.close()
    await vfs.mounts.close()
    await vfs.store.close(checkpoint=False)
