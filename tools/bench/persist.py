"""ASYNC_THROUGH persist queue benchmark, in-process (the vfs over a local under-storage, the
journal fsynced): prints figures, asserts nothing.

    python tools/bench/persist.py [--files 40000] [--step 10000] [--dir /var/tmp]

- creates/s of empty files (32 in flight) with a persist delay longer than the run, each step of
  `--step` files, with the pending queue's size at its end: a write's cost must not grow with
  the files waiting for their upload;
- then the delay ended (`nsd persist` of the directory, as an operator would): files persisted
  per second into the local under-storage (each a write, fsync, rename and directory fsync, and a
  journal record).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from nsd.blockstore import BlockStore, TierSpec
from nsd.core.cache.policy import WriteType
from nsd.core.cache.service import CacheSettings
from nsd.core.metastore import MetaStore, initial_checkpoint
from nsd.core.mounttable import MountTable
from nsd.daemon import assemble_vfs
from nsd.ops.cache.controls import persist_path
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=40000)
    ap.add_argument("--step", type=int, default=10000)
    ap.add_argument("--dir", default=None, help="work dir (journal, blocks and the under-storage)")
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="nsd-bench-persist-", dir=args.dir))
    try:
        asyncio.run(run(base, args.files, args.step))
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
