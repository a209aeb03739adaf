"""A Vfs on a temp dir (journal, a local root UFS, staging) for the unit tests of the facade."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from nsd.core.metastore import MetaStore, initial_checkpoint
from nsd.core.mounttable import MountTable
from nsd.daemon import assemble_vfs
from nsd.vfs import Caller, Vfs

ME = Caller(1000, 1000)


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for p in parts:
        yield p


async def read_all(vfs: Vfs, path: str, offset: int = 0, length: int | None = None) -> bytes:
    return b"".join([c async for c in vfs.read(path, offset, length, caller=ME)])


async def open_vfs(tmp_path: Path, *, owner: Caller = ME, **options: Any) -> Vfs:
    """The vfs of `tmp_path`, formatted on first use with / owned by `owner`; `options` go to Vfs
    (idle stages are sealed after 0.2 s unless said otherwise)."""
    journal = tmp_path / "journal"
    if not journal.exists():
        journal.mkdir()
        initial_checkpoint(journal, root_uid=owner.uid, root_gid=owner.gid)
    (tmp_path / "ufs").mkdir(exist_ok=True)
    store = await MetaStore.open(journal, fsync=False)
    options.setdefault("idle_seal_seconds", 0.2)
    return assemble_vfs(store, MountTable(store.ns, (tmp_path / "ufs").as_uri()), tmp_path / "staging", **options)


async def close_vfs(vfs: Vfs) -> None:
    await vfs.close()
    await vfs.store.close(checkpoint=False)
