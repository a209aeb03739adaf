"""fsck's cache checks in-process: lost blocks, wrong sizes, reference counts, garbage."""

from __future__ import annotations

import os
from pathlib import Path

from cachevfs import BS, ME, chunks, close, new_env, read_all

from nsd.core.cache.policy import WriteType
from nsd.journal.ops import CacheBlock
from nsd.ops.fsck import fsck


def kinds(result: dict) -> dict[str, bool]:  # type: ignore[type-arg]
    return {p["kind"]: p["repaired"] for p in result["problems"]}


async def test_fsck_finds_and_repairs_what_is_safe(tmp_path: Path) -> None:
    env = new_env(tmp_path, write_type=WriteType.MUST_CACHE)
    env.ufs.put("ufs", os.urandom(2 * BS))
    vfs = await env.open()
    try:
        assert vfs.cache is not None
        blocks = vfs.cache.blocks
        await vfs.write_file("/mine", chunks(os.urandom(2 * BS)), caller=ME)
        await read_all(vfs, "/ufs")
        assert (await fsck(vfs, "/"))["clean"]

        lost = vfs.ns.resolve("/mine").layout[1][2]  # type: ignore[attr-defined]
        await blocks.remove(lost)  # the only copy of unpersisted data
        stray = await blocks.put(b"nobody's block")
        blocks.ref(vfs.ns.resolve("/ufs").layout[0][2])  # type: ignore[attr-defined]
        ufs = vfs.ns.resolve("/ufs")
        other = await blocks.put(os.urandom(100))
        vfs.store.record(lambda ns: CacheBlock(ufs.ino, 0, BS, other, ufs.fingerprint))  # wrong length
        result = await fsck(vfs, "/")
        assert not result["clean"]
        assert kinds(result) == {
            "missing_block": False,
            "block_size_mismatch": False,
            "refcount_mismatch": False,
        }
        assert result["garbage_blocks"]["blocks"] >= 1 and not result["garbage_blocks"]["removed"]
        repaired = await fsck(vfs, "/", repair=True)
        assert kinds(repaired) == {
            "missing_block": False,  # nothing to repair it from
            "block_size_mismatch": True,
            "refcount_mismatch": True,
        }
        assert repaired["garbage_blocks"]["removed"]
        assert not blocks.has(stray)
        # The layout dropped by the repair left its blocks unnamed: the same pass removed them.
        assert kinds(await fsck(vfs, "/")) == {"missing_block": False}
        assert kinds(await fsck(vfs, "/ufs")) == {}  # store-wide checks only for the whole namespace
        blocks.check()
    finally:
        await close(vfs)
