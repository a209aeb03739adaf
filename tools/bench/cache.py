"""Block cache benchmark: prints figures, asserts nothing.

    python tools/bench/cache.py [--only store,local,s3,ahead,load,dedup,ingest] [--mib 256] [--block-mib 4]
                                [--dir DIR] [--rounds 5] [--ufs-latency-ms 20] [--small-files 512]

store  - the BlockStore alone: hashing (blake3, one thread and its pool); put throughput (hash +
         tmp -> fsync -> rename -> fsync(dir)), one at a time and as many at once as a Sealer
         stores, vs. a raw write with one fsync; get throughput from
         the memory tier and the disk tier (warm page cache, with and without re-hashing) next to
         a plain read of one file.
local, - through the vfs (what WebHDFS OPEN calls: read_at in 4 MiB pieces) on a local directory
s3       and on S3 (moto's server, in this process: it competes with nsd for the GIL, and is slow
         like a remote store): cold read (from the UFS), warm read from the disk tier (a restart
         empties memory; the page cache stays warm), read from the memory tier; GB/s, hit ratio,
         RSS; cached/UFS speed ratios; the peer: one direct pyarrow read of the same bytes (the
         object in one GET, the local file from the page cache) and nsd's speeds against it.
ahead  - first reads through the vfs with the sequential reader's missing blocks fetched from the
         UFS ahead of it, and without (the peer: the same nsd, rounds alternating): a local
         directory (bounded by writing the cache: each block put with its fsyncs) and a memory
         store whose reads wait --ufs-latency-ms first, as a remote store's first byte does.
load   - `nsd load -r` (controls.load_path) from the same remote-like memory store: many small files
         and one large file, LOADS_IN_FLIGHT blocks at once across files vs one at a time (the
         peer: the same nsd, rounds alternating); files/s and GB/s.
dedup  - the same file under two mounts read through the vfs: logical, physical, dedup ratio.
ingest - MUST_CACHE writes through the vfs (cut, blake3, put with fsync, journal) vs. a raw
         write of the same bytes with one fsync.

Goals (issue 4): cached >= 20x faster than the UFS (S3); >= 2 GB/s in-process from memory; disk
reads close to the page cache. The machine is shared: expect noise, run twice.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from nsd.blockstore import BlockStore, TierSpec, hash_block, split_blocks
from nsd.core.cache.ingest import PUTS_IN_FLIGHT

MiB = 1 << 20


def rate(nbytes: int, seconds: float) -> str:
    return f"{nbytes / seconds / 1e9:6.2f} GB/s"


async def timed(fn: Callable[[], Awaitable[object]]) -> float:
    t0 = time.perf_counter()
    await fn()
    return time.perf_counter() - t0


def raw_write(path: Path, blocks: list[bytes]) -> float:
    t0 = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for b in blocks:
            os.write(fd, b)
        os.fsync(fd)
    finally:
        os.close(fd)
    return time.perf_counter() - t0


def raw_read(path: Path, block: int) -> float:
    t0 = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while f.read(block):
            pass
    return time.perf_counter() - t0


async def bench_store(args: argparse.Namespace) -> None:
    total, block = args.mib * MiB, args.block_mib * MiB
    base = Path(tempfile.mkdtemp(prefix="nsd-bench-cache-", dir=args.dir))
    data = os.urandom(total)
    blocks = [data[off : off + n] for off, n in split_blocks(total, block)]
    print(f"{args.mib} MiB in {len(blocks)} blocks of {args.block_mib} MiB, in {base}")
    try:
        for threads, label in ((1 << 62, "one thread"), (1, "blake3 pool")):
            t0 = time.perf_counter()
            for b in blocks:
                hash_block(b, multithread_bytes=threads)
            print(f"hash ({label:>11})          {rate(total, time.perf_counter() - t0)}")

        raw = raw_write(base / "raw", blocks)
        print(f"raw write + 1 fsync            {rate(total, raw)}")
        for fsync in (True, False):
            shutil.rmtree(base / "t0", ignore_errors=True)
            store = BlockStore(memory_bytes=0, tiers=[TierSpec(base / "t0", 2 * total)], fsync=fsync)
            await store.open()

            async def put_all(store: BlockStore = store) -> None:
                for b in blocks:
                    await store.put(b)

            took = await timed(put_all)
            print(f"put (fsync={fsync!s:<5})             {rate(total, took)}   put/raw time {took / raw:5.2f}x")
            await store.close()
        shutil.rmtree(base / "t0", ignore_errors=True)
        store = BlockStore(memory_bytes=0, tiers=[TierSpec(base / "t0", 2 * total)])
        await store.open()

        async def put_window(store: BlockStore = store) -> None:  # as a Sealer stores blocks
            for k in range(0, len(blocks), PUTS_IN_FLIGHT):
                await asyncio.gather(*(store.put(b) for b in blocks[k : k + PUTS_IN_FLIGHT]))

        took = await timed(put_window)
        print(f"put, {PUTS_IN_FLIGHT} at once (fsync)        {rate(total, took)}   put/raw time {took / raw:5.2f}x")
        await store.close()

        for label, memory, verify in (
            ("memory tier", 2 * total, True),
            ("disk, re-hash", 0, True),
            ("disk, no re-hash", 0, False),
        ):
            store = BlockStore(memory_bytes=memory, tiers=[TierSpec(base / "t0", 2 * total)], verify_reads=verify)
            await store.open()
            digests = [hash_block(b) for b in blocks]
            for d in digests:  # warms the page cache, and fills the memory tier when there is one
                assert await store.get(d, promote=True) is not None

            async def get_all(store: BlockStore = store, digests: list[str] = digests) -> None:
                for _ in range(args.rounds):
                    for d in digests:
                        await store.get(d)

            took = await timed(get_all)
            print(f"get ({label:<16})        {rate(total * args.rounds, took)}")
            await store.close()
        raw_read(base / "raw", block)
        took = sum(raw_read(base / "raw", block) for _ in range(args.rounds))
        print(f"plain file read (page cache)   {rate(total * args.rounds, took)}")
    finally:
        shutil.rmtree(base, ignore_errors=True)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="store,local,s3,ahead,load,dedup,ingest", help="comma-separated sections")
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--block-mib", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=5, help="repetitions of each read pass")
    ap.add_argument("--dir", type=Path, default=None, help="where data goes (default: a tmp dir)")
    ap.add_argument("--ufs-latency-ms", type=float, default=20, help="ahead, load: the remote-like store's wait")
    ap.add_argument("--small-files", type=int, default=512, help="load: how many 64 KiB files")
    args = ap.parse_args()
    from cache_vfs import bench_ahead, bench_dedup, bench_ingest, bench_load, bench_vfs

    sections = {
        "store": bench_store,
        "local": lambda a: bench_vfs(a, "local"),
        "s3": lambda a: bench_vfs(a, "s3"),
        "ahead": bench_ahead,
        "load": bench_load,
        "dedup": bench_dedup,
        "ingest": bench_ingest,
    }
    for name in args.only.split(","):
        print(f"== {name}")
        await sections[name](args)


if __name__ == "__main__":
    asyncio.run(main())
