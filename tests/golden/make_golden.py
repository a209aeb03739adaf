"""Regenerate the golden journal files under tests/golden/journal/. Run only on purpose:

    .venv/bin/python tests/golden/make_golden.py

These files pin the on-disk formats. If a test fails against them, the format changed: that
needs a new format version (and a reader for the old one), not a quietly regenerated file.
The values below are what tests/unit/journal expects to decode from the files.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

from nsd.journal.checkpoint import write_checkpoint
from nsd.journal.ops import AutoUser, Link, MkNode, Op, Rename, Rmdir, SetAttr, SetContent, Unlink
from nsd.journal.writer import JournalWriter

HERE = Path(__file__).resolve().parent
GOLDEN_DIR = HERE / "journal"
SEGMENT_NAME = "0000000000000001.wal"
CHECKPOINT_NAME = "0000000000000003.ckpt"
CHECKPOINT_TXID = 3

T0 = 1_700_000_000_123_456_789
GOLDEN_OPS: list[tuple[int, Op]] = [
    (1, MkNode(1, "docs", 2, 0o040755, 1000, 100, T0)),
    (2, MkNode(2, "résumé.txt", 3, 0o100644, 1000, 100, T0 + 1)),
    (3, MkNode(2, "latest", 4, 0o120777, 1000, 100, T0 + 2, target="résumé.txt")),
    (4, Link(1, "hard", 3, T0 + 3)),
    (5, SetAttr(3, 0o100600, None, None, 4096, None, T0 + 4, T0 + 4)),
    (6, SetContent(3, 4096, T0 + 5, [4096, T0 + 5, "etag-1"], [[0, 4096, bytes(range(32))]])),
    (7, Rename(2, "latest", 1, "link", T0 + 6)),
    (8, Unlink(1, "hard", T0 + 7)),
    (9, MkNode(1, "tmp", 5, 0o040700, 0, 0, T0 + 8)),
    (10, Rmdir(1, "tmp", T0 + 9)),
    (11, MkNode(1, "big", 0xFFFF_FFFF_FFFF_FFF0, 0o100644, 2**32 - 2, 2**32 - 2, 2**63 - 1)),
]

# Image chunks as a checkpoint reader returns them (msgpack turns tuples into lists).
GOLDEN_CHUNKS: list[Any] = [
    [[1, 1, 0o040755, 0, 0, 3, 0, T0, T0, T0], [2, 1, 0o040755, 1000, 100, 2, 0, T0, T0, T0]],
    [[3, 1, 0o100644, 1000, 100, 1, 0, T0, T0, T0, None, {"etag": "x", "size": 0}]],
    [],
    {"mounts": [["/", "file:///srv/data", {"read_only": False}]], "next_ino": 6, "blob": b"\x00\xff"},
]

# Ids given to unknown user names (op 32 AutoUser) and a namespace image holding them (version 5),
# in a directory of their own so that the journal above stays as it is.
AUTO_USER_DIR = GOLDEN_DIR / "auto_user"
AUTO_USER_OPS: list[tuple[int, Op]] = [(1, AutoUser("etl", 200000)), (2, AutoUser("bob", 200001))]
AUTO_USER_CHECKPOINT_TXID = 2
# Namespace(time_ns=T0) after AUTO_USER_OPS, as Namespace.to_image() writes it.
AUTO_USER_CHUNKS: list[Any] = [
    {
        "version": 5,
        "next_ino": 2,
        "inodes": 1,
        "pinned": [],
        "next_mount_id": 1,
        "mounts": [],
        "auto_users": [["etl", 200000], ["bob", 200001]],
    },
    [[1, 1, 0o040755, 0, 0, 2, 0, T0, T0, T0, 0, None, [[], []]]],
]


async def _write_segment(dir: Path, ops: list[tuple[int, Op]] = GOLDEN_OPS) -> None:
    w = JournalWriter(dir, 1, fsync=False)
    for txid, op in ops:
        assert w.append(op) == txid
    await w.close()


def main() -> None:
    GOLDEN_DIR.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(_write_segment(Path(tmp)))
        (GOLDEN_DIR / SEGMENT_NAME).write_bytes((Path(tmp) / SEGMENT_NAME).read_bytes())
    write_checkpoint(GOLDEN_DIR, CHECKPOINT_TXID, GOLDEN_CHUNKS)
    AUTO_USER_DIR.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(_write_segment(Path(tmp), AUTO_USER_OPS))
        (AUTO_USER_DIR / SEGMENT_NAME).write_bytes((Path(tmp) / SEGMENT_NAME).read_bytes())
    auto_user_checkpoint = write_checkpoint(AUTO_USER_DIR, AUTO_USER_CHECKPOINT_TXID, AUTO_USER_CHUNKS)
    for path in (GOLDEN_DIR / SEGMENT_NAME, GOLDEN_DIR / CHECKPOINT_NAME, AUTO_USER_DIR / SEGMENT_NAME):
        print(f"wrote {path} ({path.stat().st_size} bytes)", file=sys.stderr)
    print(f"wrote {auto_user_checkpoint} ({auto_user_checkpoint.stat().st_size} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
