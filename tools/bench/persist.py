"""ASYNC_THROUGH persist queue benchmark, in-process (the vfs over a local under-storage, the
journal fsynced): prints figures, asserts nothing.

    python tools/bench/persist.py [--files 40000] [--step 10000] [--dir /var/tmp]
                                  [--remote-files 1000] [--ufs-latency-ms 20] [--rounds 3]

- creates/s of empty files (32 in flight) with a persist delay longer than the run, each step of
  `--step` files, with the pending queue's size at its end: a write's cost must not grow with
  the files waiting for their upload;
- then the delay ended (`nsd persist` of the directory, as an operator would): files persisted
  per second into the local under-storage (each a write, fsync, rename and directory fsync, and a
  journal record);
- the background persister, no delay, into a memory store whose calls wait `--ufs-latency-ms`
  (an object store's round trip): `--remote-files` files of 4 KiB written, seconds until none is
  pending; PERSISTS_IN_FLIGHT at once vs one at a time (the peer: the same nsd), alternating.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from nsd.blockstore import BlockStore, TierSpec
from nsd.core.cache import persister
from nsd.core.cache.policy import WriteType
from nsd.core.cache.service import CacheSettings
from nsd.core.metastore import MetaStore, initial_checkpoint
from nsd.core.mounttable import MountTable
from nsd.daemon import assemble_vfs
from nsd.ops.cache.controls import persist_path
from nsd.ufs.adapters import memory
from nsd.vfs import SYSTEM

IN_FLIGHT = 32


async def run(base: Path, files: int, step: int) -> None:
    journal = base / "journal"
    journal.mkdir()
    initial_checkpoint(journal, root_uid=0, root_gid=0)
    (base / "ufs").mkdir()
    store = await MetaStore.open(journal, fsync=True)
    blocks = BlockStore(memory_bytes=0, tiers=[TierSpec(base / "blocks", 1 << 30)], fsync=True)
    await blocks.open()
    settings = CacheSettings(write_type=WriteType.ASYNC_THROUGH, persist_delay=86400.0)
    vfs = assemble_vfs(
        store, MountTable(store.ns, (base / "ufs").as_uri()), base / "staging", blocks=blocks, cache_settings=settings
    )
    vfs.start()
    try:
        await vfs.mkdir("/d", caller=SYSTEM)
        d = vfs.ns.resolve("/d").ino
        print(f"creates with a persist delay longer than the run ({IN_FLIGHT} in flight)")
        made = 0
        while made < files:
            n = min(step, files - made)
            t0, c0 = time.perf_counter(), time.process_time()
            for first in range(made, made + n, IN_FLIGHT):
                names = [f"f{i}" for i in range(first, min(first + IN_FLIGHT, made + n))]
                await asyncio.gather(*(vfs.create(d, name, caller=SYSTEM) for name in names))
            seconds = time.perf_counter() - t0
            cpu = (time.process_time() - c0) / n * 1e6
            made += n
            pending = len(vfs.ns.persist_pending)
            print(f"  pending {pending:>8,}: {n / seconds:>9,.0f} creates/s, {cpu:5.0f} us of CPU each")
        t0 = time.perf_counter()
        got = await persist_path(vfs, "/d", recursive=True)
        seconds = time.perf_counter() - t0
        done = got["persisted"]
        print(f"nsd persist -r /d: {done:,} files in {seconds:.1f} s, {done / seconds:,.0f} files/s")
    finally:
        await vfs.close()
        await store.close(checkpoint=False)
        await blocks.close()


async def background(base: Path, files: int, latency_ms: float, in_flight: int) -> float:
    """Seconds from the first of `files` ASYNC_THROUGH writes to none pending, into a memory store."""
    persister.PERSISTS_IN_FLIGHT = in_flight
    journal = base / "journal"
    journal.mkdir(parents=True)
    initial_checkpoint(journal, root_uid=0, root_gid=0)
    name = "bench-" + secrets.token_hex(4)
    store = await MetaStore.open(journal, fsync=True)
    blocks = BlockStore(memory_bytes=0, tiers=[TierSpec(base / "blocks", 1 << 30)], fsync=True)
    await blocks.open()
    settings = CacheSettings(write_type=WriteType.ASYNC_THROUGH, persist_delay=0.0)
    options = {"fault_latency_s": str(latency_ms / 1000)}
    mounts = MountTable(store.ns, f"memory://{name}", options)
    vfs = assemble_vfs(store, mounts, base / "staging", blocks=blocks, cache_settings=settings)
    vfs.start()
    try:
        await vfs.mkdir("/d", caller=SYSTEM)
        t0 = time.perf_counter()
        for i in range(0, files, IN_FLIGHT):
            names = [f"/d/f{j}" for j in range(i, min(i + IN_FLIGHT, files))]
            await asyncio.gather(*(vfs.write_file(n, one_chunk(b"x" * 4096), caller=SYSTEM) for n in names))
        while vfs.ns.persist_pending:
            await asyncio.sleep(0.01)
        return time.perf_counter() - t0
    finally:
        await vfs.close()
        await store.close(checkpoint=False)
        await blocks.close()
        memory.drop_store(name)


async def one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def remote(args: argparse.Namespace) -> None:
    default = persister.PERSISTS_IN_FLIGHT
    took: dict[int, list[float]] = {default: [], 1: []}
    for _ in range(args.rounds):
        for n in (default, 1):
            base = Path(tempfile.mkdtemp(prefix="nsd-bench-persist-", dir=args.dir))
            try:
                took[n].append(await background(base, args.remote_files, args.ufs_latency_ms, n))
            finally:
                shutil.rmtree(base, ignore_errors=True)
    persister.PERSISTS_IN_FLIGHT = default
    many, one = statistics.median(took[default]), statistics.median(took[1])
    print(
        f"background persist of {args.remote_files:,} files of 4 KiB, {args.ufs_latency_ms:g} ms a UFS call "
        f"({args.rounds} rounds, medians): {default} at once {args.remote_files / many:,.0f} files/s, "
        f"one at a time {args.remote_files / one:,.0f} files/s, {one / many:.2f}x"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=40000)
    ap.add_argument("--step", type=int, default=10000)
    ap.add_argument("--dir", default=None, help="work dir (journal, blocks and the under-storage)")
    ap.add_argument("--remote-files", type=int, default=1000)
    ap.add_argument("--ufs-latency-ms", type=float, default=20)
    ap.add_argument("--rounds", type=int, default=3, help="of the background persist")
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="nsd-bench-persist-", dir=args.dir))
    try:
        asyncio.run(run(base, args.files, args.step))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    asyncio.run(remote(args))


if __name__ == "__main__":
    main()
