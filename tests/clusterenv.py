"""Several nsd nodes of one cluster on loopback, over a real etcd and a shared under-storage directory."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
from daemon import Daemon, free_ports, start
from etcdserver import EtcdCluster, start_etcd

LEASE_TTL = "2"


class Nodes:
    def __init__(self, root: Path, etcd: EtcdCluster) -> None:
        self.root, self.etcd = root, etcd
        self.ufs = root / "ufs"
        self.ufs.mkdir()
        self.nodes: dict[str, Daemon] = {}
        self.env: dict[str, str] = {}
        self.ports: dict[str, tuple[int, int]] = {}  # a node started again comes back on its ports

    def start(self, name: str) -> Daemon:
        env = {"NSD_ROOT_UFS": self.ufs.as_uri(), "NSD_CLUSTER_LEASE_TTL": LEASE_TTL, "NSD_FSYNC": "false", **self.env}
        args = ("--etcd", self.etcd.endpoints, "--cluster", "c1", "--node", name)
        # fixed ports: a deposed leader restarts itself in place and must come back on them
        if name not in self.ports:
            http, nfs = free_ports(2)
            self.ports[name] = (http, nfs)
        http, nfs = self.ports[name]
        self.nodes[name] = start(self.root / name, *args, env=env, http_port=http, nfs_port=nfs)
        return self.nodes[name]

    def status(self, name: str) -> dict:
        return requests.get(self.nodes[name].url + "/api/v1/cluster", timeout=10).json()

    def wait_leader(self, among: list[str], timeout: float = 10.0) -> str:
        """The leader, once one of `among` leads and every node of `among` knows it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen = {self.status(name)["node_leader"] for name in among}
            if len(seen) == 1 and (leader := seen.pop()) in among:
                return str(leader)
            time.sleep(0.1)
        raise AssertionError(f"no leader among {among} within {timeout} s")


def applied(cluster: Nodes, name: str, timeout: float = 30.0) -> int:
    """`name`'s applied txid once it stopped growing and matches the leader's (or at the timeout)."""
    deadline = time.monotonic() + timeout
    last = -1
    while time.monotonic() < deadline:
        try:
            st = cluster.status(name)
            me = next(n for n in st["nodes"] if n["name"] == name)
            if me["applied_txid"] == last and me["applied_txid"] >= st["txid"]:
                return last
            last = me["applied_txid"]
        except (requests.RequestException, ValueError, StopIteration):
            pass  # restarting
        time.sleep(0.3)
    return last


@contextmanager
def running(
    root: Path, names: tuple[str, ...] = ("n0", "n1", "n2"), env: dict[str, str] | None = None
) -> Iterator[Nodes]:
    """etcd and `names` started (with `env`), all killed at the end."""
    etcd = start_etcd(root / "etcd")
    nodes = Nodes(root, etcd)
    nodes.env.update(env or {})
    try:
        for name in names:
            nodes.start(name)
        yield nodes
    finally:
        for d in nodes.nodes.values():
            if d.proc.poll() is None:
                d.kill()
        etcd.stop_all()


def change_goes_through(urls: list[str], deadline: float) -> bool:
    """Retry a MKDIRS (a new name each time) through `urls` in turn until one is acknowledged."""
    i = 0
    while time.monotonic() < deadline:
        url = urls[i % len(urls)]
        i += 1
        try:
            r = requests.put(
                f"{url}/webhdfs/v1/failover-probe/{time.monotonic_ns()}",
                params={"op": "MKDIRS", "user.name": "root"},
                timeout=2,
            )
            if r.status_code == 200:
                return True
        except requests.RequestException:
            pass
        time.sleep(0.02)
    return False
