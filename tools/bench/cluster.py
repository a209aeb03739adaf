"""Cluster mode benchmark (issue 16): real etcd and three nsd nodes on loopback, against a
single-node nsd in the same run. Prints figures, asserts nothing.

    python tools/bench/cluster.py [--rounds 3] [--callers 64] [--ops 3000] [--kills 20] [--quick]

- Creates/s (WebHDFS MKDIRS of new directories, `--callers` at once) through the leader,
  through a follower (which has the leader make each change and answers once it applied it)
  and against single-node nsd; medians of `--rounds`. Goal: leader >= 0.5x single node.
- Follower lag: from a change acknowledged by the leader until a follower has applied it
  (its txid from the reply's X-Nsd-Txid; p50/p99 of 200, polled every half millisecond).
- etcd bytes per change: journal bytes the leader put in etcd / changes.
- Failover: kill -9 of the leader, time until a change succeeds again through a survivor
  (p50/p99/max over `--kills`); the killed node is started again as a follower each time.
Every node fsyncs its journal (as in production); etcd runs with its defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))

from clusterenv import Nodes, change_goes_through, running
from daemon import start

USER = "root" if os.getuid() == 0 else os.environ.get("USER", "nobody")
ENV = {"NSD_FSYNC": "true", "NSD_LOG_LEVEL": "warning"}


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p * len(values)))]


async def creates(base: str, prefix: str, ops: int, callers: int) -> float:
    """MKDIRS of `ops` new directories from `callers` concurrent clients; ops/s."""
    todo = iter(range(ops))

    async def caller(session: aiohttp.ClientSession) -> None:
        for i in todo:
            url = f"{base}/webhdfs/v1{prefix}/d{i}"
            async with session.put(url, params={"op": "MKDIRS", "user.name": USER}) as r:
                r.raise_for_status()
                await r.read()

    connector = aiohttp.TCPConnector(limit=callers)
    async with aiohttp.ClientSession(connector=connector) as s:
        t0 = time.perf_counter()
        await asyncio.gather(*(caller(s) for _ in range(callers)))
        return ops / (time.perf_counter() - t0)


def bench_creates(cluster: Nodes, single_url: str, leader: str, follower: str, args: argparse.Namespace) -> None:
    print(f"\n== creates/s (MKDIRS), {args.callers} callers, {args.ops} per round, medians of {args.rounds}")
    targets = {
        "single-node nsd": single_url,
        f"cluster, through the leader ({leader})": cluster.nodes[leader].url,
        f"cluster, through a follower ({follower})": cluster.nodes[follower].url,
    }
    results: dict[str, list[float]] = {k: [] for k in targets}
    for r in range(args.rounds):
        for label, base in targets.items():
            prefix = f"/bench/r{r}-{abs(hash(label)) % 10_000}"
            results[label].append(asyncio.run(creates(base, prefix, args.ops, args.callers)))
    single = statistics.median(results["single-node nsd"])
    for label, values in results.items():
        med = statistics.median(values)
        print(f"  {label:<42} {med:8.0f} ops/s  ratio to single node {med / single:.2f}  {[round(v) for v in values]}")


def bench_lag(cluster: Nodes, leader: str, follower: str, samples: int = 200) -> None:
    """The leader's reply carries X-Nsd-Txid; the follower's /api/v1/status its last applied txid."""
    lead, follow = cluster.nodes[leader].url, cluster.nodes[follower].url
    lags = []
    with requests.Session() as s:
        for i in range(samples):
            r = s.put(f"{lead}/webhdfs/v1/lag/p{i}", params={"op": "MKDIRS", "user.name": USER})
            r.raise_for_status()
            acked, txid = time.perf_counter(), int(r.headers["X-Nsd-Txid"])
            while s.get(f"{follow}/api/v1/status").json()["last_txid"] < txid:
                time.sleep(0.0005)
            lags.append(time.perf_counter() - acked)
    print(f"\n== follower lag (change acknowledged by the leader -> applied on a follower), {samples} samples")
    print(f"  p50 {1000 * pct(lags, 0.5):.1f} ms, p99 {1000 * pct(lags, 0.99):.1f} ms, max {1000 * max(lags):.1f} ms")
    print("  (includes one status round trip to the follower, ~0.5-1 ms here)")


def metric(url: str, name: str) -> float:
    found = re.search(rf"^{name} (\S+)", requests.get(url + "/metrics", timeout=10).text, re.M)
    return float(found.group(1)) if found else 0.0


def bench_etcd_bytes(cluster: Nodes, leader: str) -> None:
    url = cluster.nodes[leader].url
    before = metric(url, "nsd_cluster_replicated_bytes_total")
    txid0 = metric(url, "nsd_cluster_applied_txid")
    with requests.Session() as s:
        for i in range(500):
            s.put(f"{url}/webhdfs/v1/bytes/d{i}", params={"op": "MKDIRS", "user.name": USER}).raise_for_status()
    changes = metric(url, "nsd_cluster_applied_txid") - txid0
    sent = metric(url, "nsd_cluster_replicated_bytes_total") - before
    print("\n== etcd bytes per change (500 MKDIRS one at a time)")
    print(
        f"  {sent / max(changes, 1):.0f} journal bytes per record put in etcd ({changes:.0f} records, {sent:.0f} bytes)"
    )


def bench_failover(cluster: Nodes, kills: int) -> None:
    times = []
    for _ in range(kills):
        leader = cluster.wait_leader(list(cluster.nodes), timeout=30)
        cluster.nodes[leader].kill()
        killed = time.monotonic()
        rest = [d.url for n, d in cluster.nodes.items() if n != leader]
        if not change_goes_through(rest, killed + 60):
            print("  no change went through within 60 s of a kill")
            return
        times.append(time.monotonic() - killed)
        cluster.start(leader)  # back as a follower, same name and ports
    print(f"\n== failover (kill -9 of the leader until a change goes through a survivor), {kills} kills")
    print(
        f"  p50 {pct(times, 0.5):.2f} s, p99 {pct(times, 0.99):.2f} s, max {max(times):.2f} s "
        f"(lease TTL {cluster.env.get('NSD_CLUSTER_LEASE_TTL', '2')} s)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--callers", type=int, default=64)
    ap.add_argument("--ops", type=int, default=3000)
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument(
        "--lease-ttl", type=float, default=2.0, help="cluster_lease_ttl of the nodes (default 5 in production)"
    )
    ap.add_argument("--quick", action="store_true", help="small sizes, one round (a smoke run)")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.ops, args.kills, args.callers = 1, 300, 2, 16
    with tempfile.TemporaryDirectory(prefix="nsd-bench-cluster-") as tmp:
        root = Path(tmp)
        single = start(root / "single", env={**ENV, "NSD_ROOT_UFS": (root / "single-ufs").as_uri()})
        (root / "single-ufs").mkdir(exist_ok=True)
        try:
            env = {**ENV, "NSD_CLUSTER_LEASE_TTL": str(args.lease_ttl)}
            with running(root / "c", env=env) as cluster:
                leader = cluster.wait_leader(list(cluster.nodes))
                follower = next(n for n in cluster.nodes if n != leader)
                bench_creates(cluster, single.url, leader, follower, args)
                bench_lag(cluster, leader, follower, 50 if args.quick else 200)
                bench_etcd_bytes(cluster, leader)
                bench_failover(cluster, args.kills)
        finally:
            single.stop()


if __name__ == "__main__":
    main()
