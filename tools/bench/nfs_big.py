"""A big namespace over NFS: nsd loaded with N inodes next to an nsd with a handful, same run.

    .venv/bin/python tools/bench/nfs_big.py [--inodes 20000000] [--rounds 3] [--dir /var/tmp]

Builds the data dir offline: a daemon formats it and makes /bench, then N inodes (directories
of 1,000 empty files, named as tools/bench/namespace.py names them) are added to its namespace
and written as the checkpoint at the journal's last txid, which a start loads. Prints the
checkpoint's size, the daemon's start-up (checkpoint load) time, its RSS and bytes of RSS per
inode once loaded (above an empty daemon's RSS), a first round of CREATE+REMOVE pairs (its p99
and slowest call: a garbage-collector pause would show there), then GETATTR and LOOKUP calls per
second at 1 and 32 in flight (tools/bench/nfsops.c) on both daemons, medians of --rounds, and the
big/small ratio: a big namespace should cost memory, not speed. Needs what tools/bench/nfs.py needs (libnfs-dev, gcc).
Asserts nothing.
"""

from __future__ import annotations

import argparse
import gc
import shutil
import stat
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import nfs as nfsbench  # tools/bench/nfs.py: the servers and nfsops

from nsd.datadir import DataDir
from nsd.journal.checkpoint import write_checkpoint
from nsd.journal.recovery import recover
from nsd.namespace import Namespace
from nsd.namespace.inode_ids import plan_reserve

FILE = stat.S_IFREG | 0o644
DIR = stat.S_IFDIR | 0o755
NAME = "bench-file-0"  # the file the calls name, in the export's root


def grow(data: Path, inodes: int) -> tuple[int, float]:
    """Add `inodes` inodes under /bench of the stopped daemon's data dir; the new checkpoint's
    size in bytes and the seconds the build and write took."""
    started = time.perf_counter()
    journal = DataDir(data).journal
    rec = recover(journal)
    ns = Namespace.from_image(rec.image) if rec.image is not None else Namespace()
    txid = rec.checkpoint_txid
    for op_txid, op in rec.ops:
        ns.apply(op)
        txid = op_txid
    # Ids are handed out only once reserved, from past the last reservation (what a start does).
    ns.apply(plan_reserve(ns, max(ns.next_ino, ns.ino_limit), inodes + 1))
    bench = ns.resolve("/bench")
    t = time.time_ns()
    ns.apply(ns.plan_mknod(bench.ino, NAME, FILE, 0, 0, t))
    made, d = len(ns.inodes), 0
    while made < inodes:
        mk = ns.plan_mknod(bench.ino, f"dir{d:06d}", DIR, 0, 0, t)
        ns.apply(mk)
        made += 1
        for f in range(min(1000, inodes - made)):
            ns.apply(ns.plan_mknod(mk.ino, f"part-{f:05d}.parquet", FILE, 0, 0, t + f))
            made += 1
        d += 1
    path = write_checkpoint(journal, txid, ns.to_image())
    del ns
    gc.collect()
    return path.stat().st_size, time.perf_counter() - started


def rss_of(pid: int) -> int:
    return int(psutil.Process(pid).memory_info().rss)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inodes", type=int, default=20_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--dir", default=None)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nsd-bench-big-", dir=a.dir))
    try:
        ops = nfsbench.build_nfsops(work)
        with nfsbench.nsd_server(work, "big"):
            pass  # formats the data dir and makes /bench
        size, built = grow(work / "big-data", a.inodes)
        print(f"built {a.inodes:,} inodes and wrote the checkpoint in {built:.0f} s: {size / 2**20:,.0f} MiB")
        t0 = time.perf_counter()
        with nfsbench.nsd_server(work, "big", reuse=True) as big:
            load = time.perf_counter() - t0
            rss = rss_of(big.pid)
            with nfsbench.nsd_server(work, "small") as small:
                base = rss_of(small.pid)  # a daemon with next to no namespace
                print(
                    f"start-up (checkpoint load) {load:.1f} s; RSS {rss / 2**30:.2f} GiB, "
                    f"{base / 2**20:.0f} MiB of it an empty daemon's: {(rss - base) / a.inodes:.0f} bytes/inode"
                )
                copy = ["nfs-cp", "/etc/hostname", nfsbench._url_for(small, NAME)]
                subprocess.run(copy, check=True, capture_output=True)
                # Changes right after the load: the first full garbage collection would walk every
                # inode loaded (nsd.gcpause); the slowest call shows it.
                for t in (big, small):
                    got = nfsbench.ops_per_second(ops, t.port, t.port, t.export, "create", 32, a.seconds, NAME)
                    print(
                        f"first CREATE+REMOVE round @32 on {t.name}: {got['ops_per_s']:,.0f} pairs/s, "
                        f"p99 {got['p99_us'] / 1000:.1f} ms, slowest {got['max_us'] / 1000:.1f} ms"
                    )
                samples: dict[tuple[str, str], list[float]] = {}
                for r in range(a.rounds):
                    for mode in ("getattr", "lookup"):
                        for n in (1, 32):
                            for t in (big, small) if r % 2 == 0 else (small, big):
                                got = nfsbench.ops_per_second(ops, t.port, t.port, t.export, mode, n, a.seconds, NAME)
                                samples.setdefault((t.name, f"{mode.upper()} ops/s @{n}"), []).append(got["ops_per_s"])
                print(f"{'':24}{'big':>12}{'small':>12}   big/small")
                for key in dict.fromkeys(k for _, k in samples):
                    b, s = statistics.median(samples["big", key]), statistics.median(samples["small", key])
                    print(f"{key:24}{b:12,.0f}{s:12,.0f}   {b / s:.2f}x")
            rss_after = rss_of(big.pid)
            print(f"RSS of the big daemon after the calls: {rss_after / 2**30:.2f} GiB")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
