"""Load: N concurrent mixed NFS + WebHDFS clients against one daemon for T seconds. Prints numbers.

    .venv/bin/python tools/bench/load.py [--clients 200] [--seconds 60] [--processes 2] [--dir DIR]

Half the clients speak NFS (own TCP connection; GETATTR, LOOKUP, READ, CREATE + FILE_SYNC
WRITE, REMOVE), half WebHDFS (own keep-alive connection; GETFILESTATUS, OPEN, LISTSTATUS,
CREATE, APPEND, DELETE), each in its own directory (tests/loadgen.py). Prints ops/s overall and
per operation with p50/p99 latency, errors (with samples), and the daemon's RSS before, at peak
and after. The generator shares the machine with the daemon: on a small machine the numbers
are the pair's, not the daemon's alone. Asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))

from daemon import start
from loadgen import percentile, run_load


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--processes", type=int, default=2, help="load generator processes")
    ap.add_argument("--dir", type=Path, default=None)
    args = ap.parse_args()
    base = args.dir or Path(tempfile.mkdtemp(prefix="nsd-load-"))
    d = start(base / "data", env={"NSD_LOG_LEVEL": "warning"})
    try:
        d.session().post(f"{d.url}/api/v1/fs/mkdir", json={"path": "/load"}).raise_for_status()
        proc = psutil.Process(d.proc.pid)
        rss_before = proc.memory_info().rss
        peak = [rss_before]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.5):
                peak[0] = max(peak[0], proc.memory_info().rss)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        res, wall = run_load(d.url, d.nfs_port, args.clients, args.seconds, args.processes)
        done.set()
        sampler.join()
        time.sleep(1)
        rss_after = proc.memory_info().rss
    finally:
        rc = d.stop()
    mib = 1 << 20
    print(
        f"{args.clients} clients ({args.clients // 2} NFS, {args.clients - args.clients // 2} WebHDFS), "
        f"{args.seconds:g} s, {args.processes} generator processes, daemon exit {rc}"
    )
    print(
        f"total: {res.total_ops:,} ops in {wall:.1f} s = {res.total_ops / wall:,.0f} ops/s, {res.total_errors} errors"
    )
    print(f"{'operation':<22} {'ops':>9} {'ops/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for op, lat in sorted(res.ops.items()):
        print(
            f"{op:<22} {len(lat):>9,} {len(lat) / wall:>9,.0f} {percentile(lat, 50) * 1e3:>8.2f} "
            f"{percentile(lat, 99) * 1e3:>8.2f}"
        )
    every = [x for lat in res.ops.values() for x in lat]
    print(
        f"{'all':<22} {len(every):>9,} {len(every) / wall:>9,.0f} {percentile(every, 50) * 1e3:>8.2f} "
        f"{percentile(every, 99) * 1e3:>8.2f}"
    )
    print(
        f"daemon RSS: before {rss_before / mib:.0f} MiB, peak {peak[0] / mib:.0f} MiB, after {rss_after / mib:.0f} MiB"
    )
    for line in res.samples:
        print(f"  error: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
