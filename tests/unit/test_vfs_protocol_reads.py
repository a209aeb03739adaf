"""The vfs's narrow reads for the protocols: peek, inode, inode_at, fs_stats, checkpoint."""

from __future__ import annotations

import pytest
from vfsenv import ME

from nsd import errors
from nsd.vfs import Vfs


async def test_reads_from_memory_and_counts(vfs: Vfs) -> None:
    before = vfs.fs_stats()
    d = await vfs.mkdir("/d", caller=ME)
    assert vfs.peek(d.ino) is d  # a directory never needs a re-check against its UFS
    assert vfs.inode(d.ino) is d
    assert vfs.inode_at("/d") is d
    after = vfs.fs_stats()
    assert after.inodes == before.inodes + 1
    assert after.mounts == before.mounts == 1
    assert after.last_txid > before.last_txid
    assert after.writes_refused is None
    txid = await vfs.checkpoint()
    assert vfs.fs_stats().checkpoint_txid == txid >= after.last_txid


async def test_unknown_inode_or_path(vfs: Vfs) -> None:
    with pytest.raises(errors.Stale):
        vfs.peek(999_999)
    with pytest.raises(errors.Stale):
        vfs.inode(999_999)
    with pytest.raises(errors.NotFound):
        vfs.inode_at("/nowhere")
