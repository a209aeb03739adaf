"""Cluster cache benchmark (issue 17): real etcd and nsd nodes on loopback over one shared local
under-storage directory. Prints figures, asserts nothing.

    python tools/bench/cluster_cache.py [--rounds 3] [--node-cache-mib 128] [--quick]

- Second pass: a working set of 1.5x one node's cache, read twice through rotating nodes: bytes
  from the under-storage and the hit ratio of each pass (goal: the second takes almost nothing).
- Cached read of one file through one node of three (about 2/3 of its blocks come from their
  owners over HTTP) against the same file cached on a single-node nsd (all local), same run.
- Ownership moved when a node joins (3 -> 4) or leaves (3 -> 2): the daemon's own ring over
  100,000 random digests (ideal: 1/4 and 1/3).
- Aggregate cached-read throughput with 1, 2 and 3 nodes, one reader per node, and the bytes each
  node served. On a 2-core machine this is CPU-bound: more nodes share the same two cores, so the
  spread (bytes per node) shows the placement, not the scaling.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from clusterenv import Nodes, running
from daemon import Daemon, start

from nsd.core.cache.ring import Ring

MIB = 1 << 20
BLOCK = 4 * MIB
USER = "root" if os.getuid() == 0 else os.environ.get("USER", "nobody")


def env(cache_mib: int) -> dict[str, str]:
    return {
        "NSD_BLOCK_SIZE": str(BLOCK),
        "NSD_CACHE_MEMORY_BYTES": "0",
        "NSD_CACHE_DISK_BYTES": str(cache_mib * MIB),
        "NSD_LOG_LEVEL": "warning",
    }


async def read_file(session: aiohttp.ClientSession, base: str, path: str) -> int:
    """The whole file through `base` (the data step there: no redirect to another node)."""
    n = 0
    async with session.get(f"{base}/webhdfs/v1{path}", params={"op": "OPEN", "user.name": USER, "data": "true"}) as r:
        r.raise_for_status()
        async for chunk in r.content.iter_chunked(4 * MIB):
            n += len(chunk)
    return n


async def read_through(bases: list[str], paths: list[str], shift: int = 0) -> tuple[int, float]:
    """Every file once, file i through node (i + shift) % len(bases), one at a time."""
    t0 = time.perf_counter()
    n = 0
    async with aiohttp.ClientSession() as s:
        for i, path in enumerate(paths):
            n += await read_file(s, bases[(i + shift) % len(bases)], path)
    return n, time.perf_counter() - t0


async def parallel_readers(bases: list[str], paths: list[str]) -> tuple[int, float]:
    """One reader per node, each reading every file through its node, all at once."""

    async def reader(base: str) -> int:
        async with aiohttp.ClientSession() as s:
            return sum([await read_file(s, base, p) for p in paths])

    t0 = time.perf_counter()
    counts = await asyncio.gather(*(reader(b) for b in bases))
    return sum(counts), time.perf_counter() - t0


def report(d: Daemon) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "nsd.cli", "report", "--json"],
        capture_output=True,
        env={**os.environ, "NSD_SERVER": d.url, "NSD_DATA_DIR": str(d.data_dir)},
        check=True,
    )
    data = json.loads(out.stdout)
    return {**data["cache"], **data.get("cluster", {}).get("cache", {})}


def wait_settled(cluster: Nodes, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(report(d).get("members") == len(cluster.nodes) for d in cluster.nodes.values()):
            return
        time.sleep(0.3)
    raise RuntimeError("the nodes' rings did not settle")


def write_files(ufs: Path, total_mib: int, file_mib: int) -> list[str]:
    (ufs / "bench").mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(max(1, total_mib // file_mib)):
        (ufs / "bench" / f"f{i:03d}").write_bytes(os.urandom(file_mib * MIB))
        paths.append(f"/bench/f{i:03d}")
    return paths


def second_pass(root: Path, cache_mib: int) -> None:
    working = cache_mib * 3 // 2
    print(f"\n== second pass: working set {working} MiB, each node's cache {cache_mib} MiB, 3 nodes")
    with running(root, env=env(cache_mib)) as cluster:
        cluster.wait_leader(list(cluster.nodes))
        wait_settled(cluster)
        paths = write_files(cluster.ufs, working, 8)
        bases = [d.url for d in cluster.nodes.values()]
        before = {n: report(d) for n, d in cluster.nodes.items()}
        for shift in (0, 1):
            n, seconds = asyncio.run(read_through(bases, paths, shift))
            time.sleep(1.0)  # cache facts reach the leader and come back with the log
            after = {name: report(d) for name, d in cluster.nodes.items()}
            ufs = sum(after[k]["bytes_from_ufs"] - before[k]["bytes_from_ufs"] for k in after)
            peers = sum(after[k]["bytes_from_peers"] - before[k]["bytes_from_peers"] for k in after)
            print(
                f"  pass {shift + 1}: {n / MIB:.0f} MiB in {seconds:.2f} s ({n / MIB / seconds:.0f} MiB/s); "
                f"from the under-storage {ufs / MIB:.0f} MiB ({100 * ufs / n:.0f}%), from peers {peers / MIB:.0f} MiB, "
                f"hit ratio {100 * (1 - ufs / n):.0f}%"
            )
            before = after
        for name, r in before.items():
            print(
                f"  {name}: {r['tiers'][-1]['blocks']} blocks stored, {r['bytes_served'] / MIB:.0f} MiB served to peers"
            )


def peer_vs_local(root: Path, size_mib: int, rounds: int) -> None:
    print(
        f"\n== cached read of one {size_mib} MiB file: through one node of 3 vs single-node nsd (medians of {rounds})"
    )
    results: dict[str, list[float]] = {"single-node nsd (all local)": [], "cluster, through one node": []}
    root.mkdir(parents=True, exist_ok=True)
    single = start(root / "single", env={**env(size_mib * 2), "NSD_ROOT_UFS": (root / "single-ufs").as_uri()})
    try:
        (root / "single-ufs" / "bench").mkdir(parents=True, exist_ok=True)
        (root / "single-ufs" / "bench" / "big").write_bytes(os.urandom(size_mib * MIB))
        asyncio.run(read_through([single.url], ["/bench/big"]))  # into the cache
        for _ in range(rounds):
            n, seconds = asyncio.run(read_through([single.url], ["/bench/big"]))
            results["single-node nsd (all local)"].append(n / MIB / seconds)
    finally:
        single.stop()
    with running(root / "c", env=env(size_mib * 2)) as cluster:
        cluster.wait_leader(list(cluster.nodes))
        wait_settled(cluster)
        cluster.ufs.joinpath("bench").mkdir()
        cluster.ufs.joinpath("bench", "big").write_bytes(os.urandom(size_mib * MIB))
        first = next(iter(cluster.nodes.values()))
        asyncio.run(read_through([first.url], ["/bench/big"]))  # blocks go to their owners
        time.sleep(1.0)
        base = report(first)
        for _ in range(rounds):
            n, seconds = asyncio.run(read_through([first.url], ["/bench/big"]))
            results["cluster, through one node"].append(n / MIB / seconds)
        peers = report(first)["bytes_from_peers"] - base["bytes_from_peers"]
        ufs = report(first)["bytes_from_ufs"] - base["bytes_from_ufs"]
    local = statistics.median(results["single-node nsd (all local)"])
    for label, values in results.items():
        med = statistics.median(values)
        each = [round(v) for v in values]
        print(f"  {label:<32} {med:7.0f} MiB/s  (ratio to single node {med / local:.2f}; rounds {each})")
    total = rounds * size_mib * MIB
    print(
        f"  through one node: {100 * peers / total:.0f}% of the bytes from peers, {100 * ufs / total:.0f}% from the UFS"
    )


def ownership_moved() -> None:
    print("\n== ownership moved (the daemon's ring, 100,000 random digests)")
    digests = [secrets.token_hex(32) for _ in range(100_000)]
    three = Ring(["n0", "n1", "n2"])
    for label, other, ideal in (
        ("join 3 -> 4", Ring(["n0", "n1", "n2", "n3"]), 1 / 4),
        ("leave 3 -> 2", Ring(["n0", "n2"]), 1 / 3),
    ):
        moved = sum(three.owners(d)[0] != other.owners(d)[0] for d in digests) / len(digests)
        print(f"  {label}: {100 * moved:.1f}% of blocks change owner (ideal {100 * ideal:.1f}%)")
    counts = {n: 0 for n in three.nodes}
    for d in digests:
        counts[three.owners(d)[0]] += 1
    print("  share per node with 3: " + ", ".join(f"{n} {100 * c / len(digests):.1f}%" for n, c in counts.items()))


def aggregate(root: Path, total_mib: int, rounds: int) -> None:
    print(f"\n== aggregate cached read, one reader per node, {total_mib} MiB per reader (medians of {rounds})")
    print("   (2 cores: CPU-bound; more nodes share the same cores, see the bytes served per node)")
    for count in (1, 2, 3):
        names = tuple(f"n{i}" for i in range(count))
        with running(root / f"agg{count}", names=names, env=env(total_mib * 2)) as cluster:
            cluster.wait_leader(list(cluster.nodes))
            wait_settled(cluster)
            paths = write_files(cluster.ufs, total_mib, 16)
            bases = [d.url for d in cluster.nodes.values()]
            asyncio.run(read_through(bases, paths))  # warm: every block at its owner
            time.sleep(1.0)
            before = {n: report(d)["bytes_served"] for n, d in cluster.nodes.items()}
            rates = []
            for _ in range(rounds):
                n, seconds = asyncio.run(parallel_readers(bases, paths))
                rates.append(n / MIB / seconds)
            served = {n: (report(d)["bytes_served"] - before[n]) / MIB for n, d in cluster.nodes.items()}
            print(
                f"  {count} node(s): {statistics.median(rates):6.0f} MiB/s in all; served to peers: "
                + ", ".join(f"{n} {v:.0f} MiB" for n, v in served.items())
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--node-cache-mib", type=int, default=128)
    ap.add_argument("--quick", action="store_true", help="small sizes, one round (a smoke run)")
    args = ap.parse_args()
    cache = 32 if args.quick else args.node_cache_mib
    rounds = 1 if args.quick else args.rounds
    with tempfile.TemporaryDirectory(prefix="nsd-bench-cluster-cache-") as tmp:
        root = Path(tmp)
        second_pass(root / "pass", cache)
        peer_vs_local(root / "peer", 32 if args.quick else 256, rounds)
        ownership_moved()
        aggregate(root / "agg", 32 if args.quick else 128, rounds)


if __name__ == "__main__":
    main()
