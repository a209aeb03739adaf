"""Write the golden files under tests/golden/. Run only on purpose:

    .venv/bin/python tests/golden/make_golden.py              # writes the missing files only
    .venv/bin/python tests/golden/make_golden.py --overwrite  # rewrites them all

These files pin the on-disk formats. If a test fails against them, the format changed: that
needs a new format version (and a reader for the old one), not a quietly regenerated file.
A new op code or image version needs a value below (SAMPLE_OPS, IMAGE_RECIPES) and one run
without --overwrite, which writes just its file. The values below are what the tests expect
to decode from the files:

- journal/: a segment of GOLDEN_OPS and a checkpoint of GOLDEN_CHUNKS (tests/unit/journal);
- ops/{code:03d}-{Op}.rec: one framed journal record per op code, SAMPLE_OPS[code]
  (tests/unit/journal/test_golden_ops.py);
- image/v{version}.ckpt: a checkpoint holding the namespace image built by IMAGE_RECIPES[version]
  (tests/unit/namespace/test_golden_images.py).
"""

from __future__ import annotations

import argparse
import asyncio
import stat
import sys
import tempfile
from pathlib import Path
from typing import Any

from nsd.journal.checkpoint import write_checkpoint
from nsd.journal.ops import (
    OPS,
    AddMount,
    AllocateIds,
    CacheBlock,
    DropLayout,
    IntentDone,
    Link,
    MkNode,
    Op,
    Persisted,
    RemoveMount,
    RemoveXAttr,
    Rename,
    RequestPersist,
    ReserveInodes,
    Rmdir,
    SetAttr,
    SetContent,
    SetPin,
    SetTtl,
    SetXAttr,
    UfsIntent,
    UfsSync,
    Unlink,
)
from nsd.journal.record import encode_record
from nsd.journal.writer import JournalWriter
from nsd.namespace import Namespace

HERE = Path(__file__).resolve().parent
GOLDEN_DIR = HERE / "journal"
OPS_DIR = HERE / "ops"
IMAGE_DIR = HERE / "image"
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

# ---- one record per op code ------------------------------------------------------------------

A, B, C = "a" * 64, "b" * 64, "c" * 64
FP: list[Any] = [5, T0, "etag-1"]

# A representative value of every op, each field set (None only where that is the common case
# worth pinning too), with non-ASCII names, big ints and bytes where a field allows them.
SAMPLE_OPS: dict[int, Op] = {
    op.CODE: op
    for op in (
        MkNode(2, "résumé.txt", 3, 0o100644, 1000, 100, T0, None),
        Link(1, "hard", 3, T0 + 1),
        Unlink(1, "hard", T0 + 2),
        Rmdir(1, "tmp", T0 + 3),
        Rename(2, "latest", 1, "link", T0 + 4),
        SetAttr(3, 0o100600, 2**32 - 2, None, 4096, None, T0 + 5, T0 + 5),
        SetContent(3, 10, T0 + 6, None, [[0, 4, A], [4, 6, B]]),
        UfsSync(
            10,
            [["a.csv", 11, 0o100644, 0, 0, 5, T0, FP], ["sub", 12, 0o040755, 0, 0, 0, T0, None]],
            [["b.csv", 7, T0 + 7, [7, T0 + 7, "etag-2"]]],
            ["gone"],
            T0 + 7,
        ),
        AddMount(1, 1, "data", 10, "s3://bucket/prefix", True, {"region": "eu-west-1"}, 0, 0, T0 + 8),
        RemoveMount(1, T0 + 9),
        CacheBlock(11, 0, 5, C, FP),
        DropLayout(11),
        SetPin(11, True),
        Persisted(3, "0123456789abcdef0123456789abcdef", [10, T0 + 10, "etag-3"]),
        RequestPersist(3),
        SetTtl(11, 2**63 - 1, "delete"),
        ReserveInodes(3, 2**64 - 1),
        SetXAttr(3, "user.note", b"\x00\xffhi", T0 + 11),
        RemoveXAttr(3, "user.note", T0 + 12),
        UfsIntent(1, "rename", [10, "a.csv", 10, "b.csv"]),
        IntentDone(1),
        AllocateIds([["etl", 200000], ["spark-user", 200001]]),
    )
}


def op_file_name(code: int) -> str:
    return f"{code:03d}-{OPS[code].__name__}.rec"


def op_record(code: int) -> bytes:
    """The golden record of op `code`: SAMPLE_OPS[code] framed as a journal record with txid = code."""
    op = SAMPLE_OPS[code]
    return encode_record(code, op.CODE, op.encode())


# ---- one image per image version ---------------------------------------------------------------

IMAGE_CHECKPOINT_TXID = 42
IMAGE_CHUNK_SIZE = 4  # small, so a directory's entries are split over records too
FILE, DIR, LINK, FIFO = stat.S_IFREG | 0o644, stat.S_IFDIR | 0o755, stat.S_IFLNK | 0o777, stat.S_IFIFO | 0o600

# Version 1: directories, an unpersisted file with a hard link, a symlink, a FIFO, a directory of
# seven entries, a mount with what its UFS showed, a cached block of a UFS-backed file, a pin.
_V1: list[Op] = [
    MkNode(1, "docs", 2, DIR, 1000, 100, T0),
    MkNode(2, "résumé.txt", 3, FILE, 1000, 100, T0 + 1),
    SetContent(3, 10, T0 + 2, None, [[0, 4, A], [4, 6, B]]),
    MkNode(2, "latest", 4, LINK, 1000, 100, T0 + 3, "résumé.txt"),
    Link(1, "hard", 3, T0 + 4),
    MkNode(2, "fifo", 5, FIFO, 0, 0, T0 + 5),
    *[MkNode(2, f"f{i}", 5 + i, FILE, 1000, 100, T0 + 5 + i) for i in range(1, 5)],
    AddMount(1, 1, "data", 10, "file:///srv/data", False, {"secret_key": "s3cr3t"}, 0, 0, T0 + 10),
    UfsSync(10, [["a.csv", 11, FILE, 0, 0, 5, T0, FP], ["sub", 12, DIR, 0, 0, 0, T0, None]], [], [], T0 + 11),
    CacheBlock(11, 0, 5, C, FP),
    SetPin(11, True),
    SetAttr(6, 0o100600, None, 2000, None, None, None, T0 + 12),
]
_V2 = [*_V1, SetXAttr(3, "user.note", b"\x00\xffhi", T0 + 20), SetXAttr(2, "user.a", b"", T0 + 21)]
_V3 = [*_V2, RequestPersist(3), SetTtl(11, T0 + 10**12, "free")]
_V4 = [*_V3, UfsIntent(1, "content", [11]), UfsIntent(2, "rename", [10, "a.csv", 10, "b.csv"]), IntentDone(1)]

# version -> the ops that build a namespace whose image is of that version
_V5 = [*_V4, AllocateIds([["etl", 200000]]), AllocateIds([["spark-user", 200001]])]
INO_LIMIT = 13 + (1 << 20)
_V6 = [*_V5, ReserveInodes(13, INO_LIMIT)]
IMAGE_RECIPES: dict[int, list[Op]] = {1: _V1, 2: _V2, 3: _V3, 4: _V4, 5: _V5, 6: _V6}


def image_file_name(version: int) -> str:
    return f"v{version}.ckpt"


def build_namespace(version: int) -> Namespace:
    ns = Namespace(time_ns=T0)
    for op in IMAGE_RECIPES[version]:
        ns.apply(op)
    return ns


def image_checkpoint(ns: Namespace) -> bytes:
    """The bytes of the checkpoint a daemon would write of `ns` (with IMAGE_CHUNK_SIZE)."""
    with tempfile.TemporaryDirectory() as tmp:
        return write_checkpoint(Path(tmp), IMAGE_CHECKPOINT_TXID, ns.to_image(IMAGE_CHUNK_SIZE)).read_bytes()


# ---- writing -------------------------------------------------------------------------------------


async def _write_segment(dir: Path) -> None:
    w = JournalWriter(dir, 1, fsync=False)
    for txid, op in GOLDEN_OPS:
        assert w.append(op) == txid
    await w.close()


def _journal_files() -> dict[Path, bytes]:
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(_write_segment(Path(tmp)))
        write_checkpoint(Path(tmp), CHECKPOINT_TXID, GOLDEN_CHUNKS)
        return {GOLDEN_DIR / n: (Path(tmp) / n).read_bytes() for n in (SEGMENT_NAME, CHECKPOINT_NAME)}


def golden_files() -> dict[Path, Any]:
    """Every golden file -> a function giving its bytes."""
    out: dict[Path, Any] = {p: (lambda d=data: d) for p, data in _journal_files().items()}
    for code in SAMPLE_OPS:
        out[OPS_DIR / op_file_name(code)] = lambda c=code: op_record(c)
    for version in IMAGE_RECIPES:
        out[IMAGE_DIR / image_file_name(version)] = lambda v=version: image_checkpoint(build_namespace(v))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--overwrite", action="store_true", help="rewrite existing golden files too")
    args = parser.parse_args()
    for path, make in golden_files().items():
        if path.exists() and not args.overwrite:
            continue
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(make())
        print(f"wrote {path.relative_to(HERE)} ({path.stat().st_size} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
