"""The long cluster crash run: kill -9 of the leader or a follower, hundreds of times, under mixed
NFS + WebHDFS load through all three nodes (real etcd, loopback).

    .venv/bin/python tools/crash_cluster.py --kills 100 [--workers 3] [--leader-share 0.5] [--seed N]

Same driver and checks as tests/stress/test_crash_cluster.py (tests/clustercrash.py): after every
kill and restart every acknowledged change is read back byte for byte on every node, unacknowledged
ones are before-or-after, listings match, `nsd fsck` is clean. Prints a line per kill and the totals
(acknowledged, lost, failover p50/p99); exits 1 at the first violation.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from clustercrash import ClusterCrashRun


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=100)
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--leader-share", type=float, default=0.5, help="share of kills that hit the leader")
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--dir", type=Path, help="where the data dirs go (default: a new temporary directory)")
    args = ap.parse_args()
    base = args.dir or Path(tempfile.mkdtemp(prefix="nsd-crash-cluster-"))
    print(f"seed {args.seed}, data under {base}")
    run = ClusterCrashRun(base, workers=args.workers, seed=args.seed, leader_share=args.leader_share)
    started = time.monotonic()
    try:
        run.run(args.kills)
    except AssertionError as e:
        print(f"VIOLATION after {run.stats.kills} kills: {e}")
        return 1
    print(run.summary())
    print(f"{time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
