"""The long crash run: SIGKILL nsd hundreds of times under mixed NFS + WebHDFS load.

    .venv/bin/python tools/crash_long.py --kills 200 [--workers 4] [--seed N] [--dir DIR]

Same driver and checks as tests/stress/test_crash_mixed.py (see tests/crashload.py): after every
kill the journal verifies; after every restart every acknowledged change is read back byte for
byte, unacknowledged ones are before-or-after, listings match, `nsd fsck` is clean. Prints a line
per kill and the totals; exits 1 at the first violation (the data dir is kept for a post-mortem).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from crashload import CrashRun


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=200)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--dir", type=Path, help="where the data dir goes (default: a new temporary directory)")
    args = ap.parse_args()
    base = args.dir or Path(tempfile.mkdtemp(prefix="nsd-crash-"))
    print(f"seed {args.seed}, data under {base}", flush=True)
    run = CrashRun(base, workers=args.workers, seed=args.seed, log=lambda line: print(line, flush=True))
    started = time.monotonic()
    try:
        stats = run.run(args.kills)
    except AssertionError as e:
        print(f"FAILED after {run.stats.kills} kills: {e}\ndata dir kept: {base}", flush=True)
        return 1
    minutes = (time.monotonic() - started) / 60
    print(
        f"\n{stats.kills} kills survived in {minutes:.1f} min: {stats.acked} acknowledged changes "
        f"({stats.begun} begun), {stats.readbacks} read-backs, {stats.in_flight_at_kill} changes in flight "
        f"at a kill, fsck clean {stats.fsck_clean} times, 0 lost"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
