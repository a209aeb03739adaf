"""Cluster mode: three nodes over one shared under-storage, the journal replicated through a real etcd."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from daemon import Daemon, free_port, nsd, start
from etcdserver import EtcdCluster, start_etcd
from hdfs import InsecureClient

LEASE_TTL = "2"


class Nodes:
    def __init__(self, root: Path, etcd: EtcdCluster) -> None:
        self.root, self.etcd = root, etcd
        self.ufs = root / "ufs"
        self.ufs.mkdir()
        self.nodes: dict[str, Daemon] = {}

    def start(self, name: str) -> Daemon:
        env = {"NSD_ROOT_UFS": self.ufs.as_uri(), "NSD_CLUSTER_LEASE_TTL": LEASE_TTL, "NSD_FSYNC": "false"}
        args = ("--etcd", self.etcd.endpoints, "--cluster", "c1", "--node", name)
        # fixed ports: a deposed leader restarts itself in place and must come back on them
        self.nodes[name] = start(self.root / name, *args, env=env, http_port=free_port(), nfs_port=free_port())
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


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Nodes]:
    etcd = start_etcd(tmp_path / "etcd")
    nodes = Nodes(tmp_path, etcd)
    try:
        for name in ("n0", "n1", "n2"):
            nodes.start(name)
        yield nodes
    finally:
        for d in nodes.nodes.values():
            if d.proc.poll() is None:
                d.kill()
        etcd.stop_all()


def test_writes_through_followers_are_read_on_every_node(cluster: Nodes) -> None:
    leader = cluster.wait_leader(["n0", "n1", "n2"])
    followers = [n for n in cluster.nodes if n != leader]
    for i, name in enumerate(followers):
        client = InsecureClient(cluster.nodes[name].url, user="root")
        client.makedirs(f"/from-{name}")
        client.write(f"/from-{name}/f{i}.txt", data=f"written via {name}".encode())
        # the follower answered only once it applied the change: it reads its own write at once
        with client.read(f"/from-{name}/f{i}.txt") as r:
            assert r.read() == f"written via {name}".encode()
    for d in cluster.nodes.values():
        reader = InsecureClient(d.url, user="root")
        for i, name in enumerate(followers):
            with reader.read(f"/from-{name}/f{i}.txt") as r:
                assert r.read() == f"written via {name}".encode()
    assert (cluster.ufs / f"from-{followers[0]}" / "f0.txt").read_bytes() == f"written via {followers[0]}".encode()


def test_cluster_status_cli_lists_every_node(cluster: Nodes) -> None:
    leader = cluster.wait_leader(["n0", "n1", "n2"])
    InsecureClient(cluster.nodes[leader].url, user="root").makedirs("/d")
    time.sleep(1.5)  # nodes report their applied txid every second
    out = nsd("cluster", "status", "--json", daemon=cluster.nodes["n1"])
    assert out.returncode == 0, out.stderr
    status = json.loads(out.stdout)
    assert status["leader"] == leader and status["txid"] >= 1
    assert [n["name"] for n in status["nodes"]] == ["n0", "n1", "n2"]
    for n in status["nodes"]:
        assert n["role"] == ("leader" if n["name"] == leader else "follower")
        assert n["state"] == "live" and n["applied_txid"] == status["txid"] and n["lag"] == 0
        assert n["http"] == cluster.nodes[n["name"]].url
    assert status["etcd"][0]["health"] == "ok"
    human = nsd("cluster", "status", daemon=cluster.nodes["n2"])
    assert human.returncode == 0 and f"leader {leader}" in human.stdout.decode()


def test_kill_leader_a_follower_takes_over_with_nothing_lost(cluster: Nodes) -> None:
    leader = cluster.wait_leader(["n0", "n1", "n2"])
    client = InsecureClient(cluster.nodes[leader].url, user="root")
    for i in range(20):
        client.write(f"/k{i}", data=f"v{i}".encode())
    cluster.nodes[leader].kill()  # SIGKILL
    killed = time.monotonic()
    rest = [n for n in cluster.nodes if n != leader]
    new = cluster.wait_leader(rest, timeout=10)
    assert time.monotonic() - killed < 10
    for name in rest:
        reader = InsecureClient(cluster.nodes[name].url, user="root")
        assert sorted(reader.list("/")) == sorted(f"k{i}" for i in range(20))
        with reader.read("/k19") as r:
            assert r.read() == b"v19"
    follower = next(n for n in rest if n != new)
    InsecureClient(cluster.nodes[follower].url, user="root").write("/after", data=b"new leader")
    with InsecureClient(cluster.nodes[new].url, user="root").read("/after") as r:
        assert r.read() == b"new leader"
    # the old leader comes back as a follower of the new one, with everything
    back = cluster.start(leader)
    deadline = time.monotonic() + 10
    while "after" not in InsecureClient(back.url, user="root").list("/") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert cluster.status(leader)["leader"] == new
    assert sorted(InsecureClient(back.url, user="root").list("/")) == sorted(["after", *(f"k{i}" for i in range(20))])


def test_must_cache_and_async_through_are_refused(cluster: Nodes, tmp_path: Path) -> None:
    cluster.wait_leader(["n0", "n1", "n2"])
    other = tmp_path / "other"
    other.mkdir()
    out = nsd("mount", "add", "/m", other.as_uri(), "--option", "write_type=MUST_CACHE", daemon=cluster.nodes["n1"])
    assert out.returncode != 0
    assert b"MUST_CACHE is refused in cluster mode" in out.stderr
    with pytest.raises(RuntimeError, match="ASYNC_THROUGH is refused in cluster mode"):
        env_node = ("--etcd", cluster.etcd.endpoints, "--cluster", "c1", "--node", "n9")
        start(tmp_path / "n9", *env_node, env={"NSD_ROOT_UFS": cluster.ufs.as_uri(), "NSD_WRITE_TYPE": "ASYNC_THROUGH"})


def test_leader_paused_past_its_lease_is_fenced_and_follows(cluster: Nodes) -> None:
    leader = cluster.wait_leader(["n0", "n1", "n2"])
    old = cluster.nodes[leader]
    InsecureClient(old.url, user="root").write("/before", data=b"1")
    old.proc.send_signal(signal.SIGSTOP)
    try:
        rest = [n for n in cluster.nodes if n != leader]
        new = cluster.wait_leader(rest, timeout=10)
    finally:
        old.proc.send_signal(signal.SIGCONT)
    deadline = time.monotonic() + 20
    while "starting over as a follower" not in old.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    while time.monotonic() < deadline:
        try:
            if cluster.status(leader)["leader"] == new:
                break
        except requests.RequestException:
            pass  # restarting itself as a follower
        time.sleep(0.2)
    assert cluster.status(leader)["leader"] == new
    assert old.proc.poll() is None  # the same process, started over in place
    InsecureClient(old.url, user="root").write("/after", data=b"2")  # made by the new leader
    for d in cluster.nodes.values():
        reader = InsecureClient(d.url, user="root")
        assert sorted(reader.list("/")) == ["after", "before"]
    statuses = [cluster.status(n) for n in cluster.nodes]
    assert {s["leader"] for s in statuses} == {new}


def test_nfs_reads_on_every_node_and_writes_on_the_leader(cluster: Nodes, tmp_path: Path) -> None:
    leader = cluster.wait_leader(["n0", "n1", "n2"])
    src = tmp_path / "src.bin"
    src.write_bytes(b"nfs through the leader\n" * 1000)
    InsecureClient(cluster.nodes[leader].url, user="root").makedirs("/nfs")  # nfs-cp creates only the file
    target = cluster.nodes[leader].nfs_url("/nfs/n.bin")
    put = subprocess.run(["nfs-cp", str(src), target], capture_output=True, timeout=60)
    assert put.returncode == 0, put.stderr
    time.sleep(0.5)  # followers apply the leader's log within a moment
    for d in cluster.nodes.values():
        got = subprocess.run(["nfs-cat", d.nfs_url("/nfs/n.bin")], capture_output=True, timeout=60)
        assert got.returncode == 0 and got.stdout == src.read_bytes(), got.stderr
    follower = next(d for n, d in cluster.nodes.items() if n != leader)
    refused = subprocess.run(["nfs-cp", str(src), follower.nfs_url("/nfs/f.bin")], capture_output=True, timeout=60)
    assert refused.returncode != 0  # not forwarded yet: a follower refuses NFS changes (ROFS)
    assert InsecureClient(follower.url, user="root").list("/nfs") == ["n.bin"]
