"""Crash under load, cluster edition: the workers of tests/crashload.py spread over three nodes
(NFS and WebHDFS through whichever node they were given, followers relaying changes to the
leader), and each round ends with kill -9 of the leader or of a follower.

Used by tests/stress/test_crash_cluster.py (a few rounds) and tools/crash_cluster.py (hundreds).
The model and its checks are crashload's: every acknowledged change read back byte for byte,
every unacknowledged one before-or-after, listings exact, `nsd fsck` clean; here also on every
node (each must have applied everything before the checks), and the time from a leader's kill
until a change goes through a survivor is recorded (failover).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

import requests
from clusterenv import Nodes, change_goes_through
from crashload import DIR, ENV, CrashRun, _web_read, webhdfs
from daemon import Daemon
from etcdserver import start_etcd

NAMES = ["n0", "n1", "n2"]
CAUGHT_UP_SECONDS = 20.0


class ClusterCrashRun(CrashRun):
    def __init__(
        self,
        base: Path,
        *,
        workers: int = 4,
        seed: int = 1,
        leader_share: float = 0.5,
        log: Callable[[str], None] = print,
    ) -> None:
        super().__init__(base, workers=workers, seed=seed, log=log)
        self.base = base
        self.leader_share = leader_share
        self.failovers: list[float] = []
        self.victim = ""
        self.cluster: Nodes | None = None

    def run(self, kills: int, *, load_seconds: tuple[float, float] = (0.5, 2.5)) -> ClusterCrashRun:  # type: ignore[override]
        etcd = start_etcd(self.base / "etcd")
        self.cluster = cluster = Nodes(self.base, etcd)
        cluster.env.update(ENV)
        try:
            for name in NAMES:
                cluster.start(name)
            leader = cluster.wait_leader(NAMES)
            web = webhdfs(cluster.nodes[leader].url)
            for root in self.roots:
                web.makedirs(root)
                self.model.state[root] = DIR
            for _ in range(kills):
                self._round(cluster.nodes[leader], load_seconds)
                d = self._restart()
                self._check(d)
        finally:
            for d in cluster.nodes.values():
                if d.proc.poll() is None:
                    d.kill()
            etcd.stop_all()
        return self

    def _doors(self, d: Daemon) -> list[Daemon]:
        assert self.cluster is not None
        nodes = list(self.cluster.nodes.values())
        first = self.rng.randrange(len(nodes))
        return [nodes[(first + i) % len(nodes)] for i in range(self.workers)]

    def _kill(self, d: Daemon) -> None:
        assert self.cluster is not None
        cluster = self.cluster
        leader = cluster.wait_leader(list(cluster.nodes), timeout=30)
        followers = [n for n in cluster.nodes if n != leader]
        self.victim = leader if self.rng.random() < self.leader_share else self.rng.choice(followers)
        cluster.nodes[self.victim].kill()
        if self.victim == leader:
            killed = time.monotonic()
            if not change_goes_through([cluster.nodes[n].url for n in followers], killed + 60):
                self.stats.unexpected.append(f"no change went through within 60 s of killing leader {leader}")
            self.failovers.append(time.monotonic() - killed)

    def _verify_killed(self) -> None:
        pass  # a node's local journal is a working copy, rebuilt from etcd at its next start

    def _restart(self) -> Daemon:
        assert self.cluster is not None
        self.cluster.start(self.victim)
        self.cluster.wait_leader(list(self.cluster.nodes), timeout=30)
        _settled(self.cluster)
        _caught_up(self.cluster)
        return self.cluster.nodes[self.rng.choice(list(self.cluster.nodes))]

    def _check(self, d: Daemon) -> None:
        super()._check(d)  # through one node: model, listings, fsck
        assert self.cluster is not None
        for other in self.cluster.nodes.values():  # and every file on every other node
            if other is d:
                continue
            web = webhdfs(other.url)
            for path, s in sorted(self.model.state.items()):
                if isinstance(s, bytes):
                    got = _web_read(web, path)
                    self.stats.readbacks += 1
                    assert got == s, f"{path} on {other.url}: {None if got is None else len(got)} bytes, acked {len(s)}"

    def summary(self) -> str:
        f = sorted(self.failovers)
        timing = (
            f"failover p50 {statistics.median(f):.2f} s, p99 {f[min(len(f) - 1, int(0.99 * len(f)))]:.2f} s, "
            f"max {f[-1]:.2f} s over {len(f)} leader kills"
            if f
            else "no leader kills"
        )
        return (
            f"{self.stats.kills} kills: {self.stats.acked} changes acknowledged, 0 lost "
            f"(every one read back on every node: {self.stats.readbacks} reads), "
            f"{self.stats.in_flight_at_kill} in flight at kills, fsck clean {self.stats.fsck_clean} times; {timing}"
        )


def _settled(cluster: Nodes) -> None:
    """Until no node holds staged writes. A follower killed between relaying an NFS UNSTABLE WRITE
    and its COMMIT leaves the write staged at the leader, which seals it when it has been idle
    (IDLE_SEAL_SECONDS): an unacknowledged change taking effect after the kill, as NFS allows.
    The checks start once it has."""
    deadline = time.monotonic() + CAUGHT_UP_SECONDS
    while time.monotonic() < deadline:
        try:
            staged = sum(requests.get(d.url + "/api/v1/report", timeout=5).json()["summary"]["staged_files"]
                         for d in cluster.nodes.values())  # fmt: skip
        except requests.RequestException:
            staged = -1
        if staged == 0:
            return
        time.sleep(0.2)
    raise AssertionError("staged writes were not sealed")


def _caught_up(cluster: Nodes) -> None:
    """Until every node has applied the same txid (followers apply within milliseconds)."""
    deadline = time.monotonic() + CAUGHT_UP_SECONDS
    while time.monotonic() < deadline:
        try:
            txids = {
                requests.get(d.url + "/api/v1/status", timeout=5).json()["last_txid"] for d in cluster.nodes.values()
            }
        except requests.RequestException:
            txids = set()
        if len(txids) == 1:
            return
        time.sleep(0.05)
    raise AssertionError("the nodes did not catch up with each other")
