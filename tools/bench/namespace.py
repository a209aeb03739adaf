"""Namespace and journal benchmark: prints figures, asserts nothing.

    python tools/bench/namespace.py [--inodes 1000000] [--ops 20000] [--dir DIR] [--unique-names]

- creates/s and mkdirs/s through MetaStore (plan -> journal -> apply -> fsync) with 1 and 64
  concurrent callers;
- lookups/s (path resolution) in-process;
- readdir of a 100k-entry directory, by name pages and by NFS-style cookie pages;
- discovery: the first listing, through the vfs, of local directories of 10,000 files nsd has
  never seen (what an NFS READDIRPLUS or a WebHDFS LISTSTATUS of such a directory waits for:
  the under-storage listing, a UfsSync record per 1,000 entries, fsynced, the inodes made), with
  the daemon's collector settings: entries/s, and the share of it the garbage collector took;
- checkpoint write and load time, RSS and bytes of RSS per inode for N inodes (the load in a
  fresh process, as a daemon's start does: one that reuses the memory the built tree freed
  looks up to 20 bytes an inode smaller).

Goals (from the foundation issue): >= 20k creates/s at 64 callers, >= 200k lookups/s,
1M inodes loaded in <= 5 s; from issue 18: <= 200 bytes of RSS per inode built and after a
checkpoint load (the tree here repeats names and times across directories, which the load shares;
`--unique-names` gives every file a name and a time of its own, as Spark's part files with a job's
UUID in them have). `--discovered local|s3` makes the files as discovery finds them in an
under-storage: with a size, an mtime and a fingerprint (an S3 one with an ETag).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from nsd.core.metastore import MetaStore, initial_checkpoint
from nsd.core.mounttable import MountTable
from nsd.daemon import assemble_vfs
from nsd.gcpause import GcPauses
from nsd.journal.checkpoint import read_checkpoint, write_checkpoint
from nsd.journal.ops import MkNode
from nsd.namespace import Namespace
from nsd.namespace.mounts import plan_ufs_sync
from nsd.vfs import Caller

FILE = stat.S_IFREG | 0o644
DIR = stat.S_IFDIR | 0o755


def rss() -> int:
    gc.collect()
    return int(psutil.Process().memory_info().rss)


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p * len(values)))]


async def mutations(journal: Path, ops: int, callers: int, mode: int, label: str) -> None:
    store = await MetaStore.open(journal, fsync=True)
    parent = store.ns.resolve("/").ino
    latencies: list[float] = []
    counter = iter(range(ops))

    async def caller(cid: int) -> None:
        for i in counter:
            t0 = time.perf_counter()
            await store.mutate(
                lambda ns, i=i: ns.plan_mknod(parent, f"{label}-{callers}-{cid}-{i}", mode, 0, 0, store.now_ns())
            )
            latencies.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*(caller(c) for c in range(callers)))
    elapsed = time.perf_counter() - t0
    w = store.writer
    print(
        f"{label:>7}s  callers={callers:<3} {ops / elapsed:>9,.0f} ops/s   "
        f"p50 {pct(latencies, 0.5) * 1e3:6.2f} ms  p99 {pct(latencies, 0.99) * 1e3:6.2f} ms   "
        f"fsyncs={w.stats.fsyncs:,} ({ops / max(1, w.stats.fsyncs):.1f} records/fsync)"
    )
    await store.close(checkpoint=False)


def build_tree(n: int, files_per_dir: int = 1000, unique: bool = False, discovered: str | None = None) -> Namespace:
    """n inodes: directories of `files_per_dir` files each, applied through planned ops.
    `unique`: names and times differ across directories too (a job's UUID in each name).
    `discovered` ("local" or "s3"): each directory's files come as one discovery record, each
    with its own size and mtime and the fingerprint an under-storage of that kind gives."""
    ns = Namespace()
    t = time.time_ns()
    rng = random.Random(18)
    made = 1
    d = 0
    while made < n:
        mk = ns.plan_mknod(1, f"dir{d:06d}", DIR, 1000, 1000, t)
        ns.apply(mk)
        made += 1
        job = f"{rng.getrandbits(128):032x}"
        found = []
        for f in range(min(files_per_dir, n - made)):
            if unique:
                name, mtime = f"part-{f:05d}-{job}-c000.snappy.parquet", t + made * 1_000_003
            else:
                name, mtime = f"part-{f:05d}.parquet", t + f
            if discovered:
                size, mtime = rng.randrange(1 << 20, 1 << 28), t - rng.randrange(10**15)
                etag = f'"{rng.getrandbits(128):032x}"' if discovered == "s3" else None
                found.append([name, FILE, 1000, 1000, size, mtime, [size, mtime, etag]])
            else:
                ns.apply(ns.plan_mknod(mk.ino, name, FILE, 1000, 1000, mtime))
            made += 1
        if found:
            ns.apply(plan_ufs_sync(ns, mk.ino, found, [], [], t))
        d += 1
    return ns


def lookups(ns: Namespace, count: int) -> None:
    dirs = [name for name, _ in ns.list_names(1)]
    rng = random.Random(1)
    paths = [f"/{rng.choice(dirs)}/part-{rng.randrange(1000):05d}.parquet" for _ in range(count)]
    found = 0
    t0 = time.perf_counter()
    for p in paths:
        try:
            ns.resolve(p)
            found += 1
        except Exception:
            pass
    elapsed = time.perf_counter() - t0
    print(f" lookup  path resolve   {count / elapsed:>9,.0f} ops/s   ({found:,} hits of {count:,})")


def readdir(entries: int) -> None:
    ns = Namespace()
    t = time.time_ns()
    d = ns.plan_mknod(1, "big", DIR, 0, 0, t)
    ns.apply(d)
    for i in range(entries):
        ns.apply(MkNode(d.ino, f"file-{i:07d}", ns.next_ino, FILE, 0, 0, t))
    t0 = time.perf_counter()
    seen, after = 0, None
    while True:
        page = ns.list_names(d.ino, after, 1000)
        if not page:
            break
        seen += len(page)
        after = page[-1][0]
    by_name = time.perf_counter() - t0
    t0 = time.perf_counter()
    cookie, seen2, eof = 0, 0, False
    while not eof:
        batch, eof = ns.readdir(d.ino, cookie, 1000)
        seen2 += len(batch)
        if batch:
            cookie = batch[-1][0]
    by_cookie = time.perf_counter() - t0
    print(
        f"readdir  {entries:,} entries: by name {by_name * 1e3:7.1f} ms ({seen:,}), "
        f"by cookie {by_cookie * 1e3:7.1f} ms ({seen2:,}; first includes index build)"
    )


async def discovery(workdir: Path, entries: int, rounds: int) -> None:
    """First listings of `rounds` directories of `entries` empty local files, one at a time."""
    ufs, journal = workdir / "ufs", workdir / "journal"
    for r in range(rounds):
        where = ufs / f"d{r}"
        where.mkdir(parents=True)
        for i in range(entries):
            os.close(os.open(where / f"part-{i:05d}-c000.snappy.parquet", os.O_CREAT | os.O_WRONLY, 0o644))
    os.sync()
    journal.mkdir()
    initial_checkpoint(journal, root_uid=0, root_gid=0)
    store = await MetaStore.open(journal)
    vfs = assemble_vfs(store, MountTable(store.ns, ufs.as_uri()), workdir / "staging")
    root = Caller(0, 0)
    collecting = [0.0, 0.0]  # seconds in the collector, start of the running collection

    def timer(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collecting[1] = time.perf_counter()
        else:
            collecting[0] += time.perf_counter() - collecting[1]

    pauses = GcPauses()  # what the daemon installs, and freezes what is loaded
    pauses.install()
    gc.freeze()
    gc.callbacks.append(timer)
    took: list[float] = []
    try:
        for r in range(rounds):
            d = await vfs.resolve(f"/d{r}", caller=root)
            t0 = time.perf_counter()
            await vfs.readdir(d.ino, 0, 1, caller=root)
            took.append(time.perf_counter() - t0)
    finally:
        gc.callbacks.remove(timer)
        pauses.uninstall()
        gc.unfreeze()
        await vfs.close()
        await store.close(checkpoint=False)
    mid = sorted(took)[len(took) // 2]
    print(
        f"discover {entries:,} local files: {entries / mid:>9,.0f} entries/s ({mid * 1e3:.1f} ms, median of "
        f"{rounds}; {min(took) * 1e3:.1f}-{max(took) * 1e3:.1f}), collector {collecting[0] / sum(took):.0%} of it"
    )


def checkpoint_figures(n: int, workdir: Path, unique: bool, discovered: str | None) -> None:
    base = rss()
    t0 = time.perf_counter()
    ns = build_tree(n, unique=unique, discovered=discovered)
    built = time.perf_counter() - t0
    grown = rss() - base
    names = "unique names" if unique else "names shared across directories"
    kind = f", discovered in {discovered}" if discovered else ""
    print(f"   build  {n:,} inodes ({names}{kind}) in {built:.2f} s; ", end="")
    print(f"RSS +{grown / 2**20:,.0f} MiB = {grown / n:.0f} bytes/inode")
    t0 = time.perf_counter()
    path = write_checkpoint(workdir, 1, ns.to_image())
    written = time.perf_counter() - t0
    del ns
    loaded = subprocess.run([sys.executable, __file__, "--load", str(path)], capture_output=True, text=True, check=True)
    print(f"checkpt  write {written:.2f} s ({path.stat().st_size / 2**20:,.0f} MiB), {loaded.stdout.strip()}")


def load_figures(path: Path) -> None:
    """In a fresh process: the load's time and what it adds to RSS."""
    base = rss()
    t0 = time.perf_counter()
    _, chunks = read_checkpoint(path)
    loaded = Namespace.from_image(chunks)
    load_s = time.perf_counter() - t0
    del chunks
    grown = rss() - base
    per_inode = grown / len(loaded.inodes)
    print(f"load {load_s:.2f} s, RSS after load +{grown / 2**20:,.0f} MiB = {per_inode:.0f} bytes/inode")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inodes", type=int, default=1_000_000)
    parser.add_argument("--ops", type=int, default=20_000)
    parser.add_argument("--readdir", type=int, default=100_000)
    parser.add_argument("--discover", type=int, default=10_000, help="files per directory discovered")
    parser.add_argument("--discover-rounds", type=int, default=5, help="directories discovered")
    parser.add_argument("--dir", type=Path, default=None, help="where the journal goes (default: a temp dir)")
    parser.add_argument("--unique-names", action="store_true", help="no file name or time repeats in the tree")
    parser.add_argument("--discovered", choices=["local", "s3"], help="files as found in an under-storage")
    parser.add_argument("--load", type=Path, help=argparse.SUPPRESS)  # the fresh process of the load figures
    args = parser.parse_args()
    if args.load:
        load_figures(args.load)
        return
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        journal = Path(tmp) / "journal"
        journal.mkdir()
        initial_checkpoint(journal, root_uid=0, root_gid=0)
        print(f"nsd namespace benchmark  python {sys.version.split()[0]}  cpus={os.cpu_count()}  dir={tmp}")
        for callers in (1, 64):
            ops = args.ops if callers > 1 else max(200, args.ops // 20)
            await mutations(journal, ops, callers, FILE, "create")
            await mutations(journal, ops, callers, DIR, "mkdir")
        ns = build_tree(min(args.inodes, 200_000))
        lookups(ns, 200_000)
        del ns
        readdir(args.readdir)
        discovery_dir = Path(tmp) / "discovery"
        discovery_dir.mkdir()
        await discovery(discovery_dir, args.discover, args.discover_rounds)
        ckpt_dir = Path(tmp) / "ckpt"
        ckpt_dir.mkdir()
        checkpoint_figures(args.inodes, ckpt_dir, args.unique_names, args.discovered)


if __name__ == "__main__":
    asyncio.run(main())
