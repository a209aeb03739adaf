"""How long the event loop stalls while a local mount's listing helper starts, in a daemon of a
given size: prints figures, asserts nothing.

    python tools/bench/helper_spawn.py [--rss-mib 100,2000] [--rounds 5]

For each size the process first allocates and touches that much memory (a daemon with millions
of inodes), then starts a `Lister` `--rounds` times on the running loop (uvloop, the daemon's
default) while a 1 ms ticker measures the loop's longest stall. The peer is the spawn nsd used
before (uvloop's own, which forks and so copies the page tables), run in the same process.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from nsd.ufs.adapters import local_scan
from nsd.ufs.adapters.lister import Lister


async def longest_stall(start: Callable[[], Awaitable[None]]) -> float:
    """Milliseconds: the loop's longest stall past a 1 ms tick while `start()` runs to its end."""
    lag, stop = 0.0, False

    async def ticker() -> None:
        nonlocal lag
        last = time.perf_counter()
        while not stop:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            lag, last = max(lag, now - last - 0.001), now

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.05)
    await start()
    await asyncio.sleep(0.05)
    stop = True
    await task
    return lag * 1000


async def with_lister() -> None:
    lister = Lister("/tmp", ".nsd-tmp-")
    lister.start()
    while not lister.free():
        await asyncio.sleep(0.001)
    await lister.close()


async def with_uvloop_spawn() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-I", "-S", local_scan.__file__, "/tmp", ".nsd-tmp-", stdin=asyncio.subprocess.PIPE
    )
    assert proc.stdin is not None
    proc.stdin.close()
    await proc.wait()


async def main(sizes: list[int], rounds: int) -> None:
    held: list[bytearray] = []
    print(f"{'RSS MiB':>8} {'Lister (Popen) ms':>28} {'uvloop spawn ms':>28}")
    for size in sizes:
        while len(held) < size:
            block = bytearray(1 << 20)
            block[::4096] = b"x" * len(block[::4096])  # touched: resident, as a daemon's inodes are
            held.append(block)
        ours = [await longest_stall(with_lister) for _ in range(rounds)]
        peer = [await longest_stall(with_uvloop_spawn) for _ in range(rounds)]
        print(
            f"{size:>8} {statistics.median(ours):>10.1f} (max {max(ours):5.1f})"
            f"{'':>7} {statistics.median(peer):>10.1f} (max {max(peer):5.1f})"
        )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rss-mib", default="100,2000", help="process sizes to measure at, in MiB")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    uvloop.run(main([int(s) for s in args.rss_mib.split(",")], args.rounds))
