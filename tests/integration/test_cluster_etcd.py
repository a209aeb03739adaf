"""Cluster mode when etcd is in trouble: one of three members lost changes nothing; etcd gone
refuses changes with a clear, retryable error while reads go on, and writes resume by themselves
when it is back."""

from __future__ import annotations

import time
from pathlib import Path

import requests
from clusterenv import Nodes, running
from hdfs import InsecureClient
from rpcclient import SATTR_NONE, RpcClient, dirop, lookup_path

USER = {"user.name": "root"}
JUKEBOX = 10008


def mkdirs(base: str, path: str, timeout: float = 10) -> requests.Response:
    return requests.put(f"{base}/webhdfs/v1{path}", params={"op": "MKDIRS", **USER}, timeout=timeout)


def eventually_mkdirs(cluster: Nodes, name: str, path: str, within: float) -> float:
    """Seconds until a MKDIRS through node `name` is acknowledged."""
    started = time.monotonic()
    while True:
        try:
            if mkdirs(cluster.nodes[name].url, path, timeout=5).status_code == 200:
                return time.monotonic() - started
        except requests.RequestException:
            pass
        assert time.monotonic() - started < within, f"{path} not made within {within} s"
        time.sleep(0.2)


def test_etcd_down_refuses_changes_reads_go_on_and_writes_resume(tmp_path: Path) -> None:
    with running(tmp_path) as cluster:
        leader = cluster.wait_leader(list(cluster.nodes))
        follower = next(n for n in cluster.nodes if n != leader)
        InsecureClient(cluster.nodes[leader].url, user="root").write("/before.txt", data=b"written before")
        time.sleep(0.3)  # followers apply within milliseconds
        (member,) = cluster.etcd.members
        member.kill()
        # changes: refused with a retryable error, at the leader and through a follower
        deadline = time.monotonic() + 15
        refused = None
        while time.monotonic() < deadline:
            try:
                r = mkdirs(cluster.nodes[follower].url, f"/during-{time.monotonic_ns()}", timeout=5)
            except requests.Timeout:
                continue  # the change in flight when etcd went waits for it
            if r.status_code == 503:
                refused = r
                break
            time.sleep(0.2)
        assert refused is not None, "changes were not refused while etcd was down"
        error = refused.json()["RemoteException"]
        assert error["exception"] == "RetriableException" and "etcd" in error["message"]
        r = mkdirs(cluster.nodes[leader].url, "/at-the-leader", timeout=10)
        assert r.status_code == 503 and "etcd is unreachable" in r.json()["RemoteException"]["message"]
        admin = requests.post(
            cluster.nodes[leader].url + "/api/v1/fs/mkdir",
            json={"path": "/admin-during"},
            headers={"Authorization": f"Bearer {(cluster.nodes[leader].data_dir / 'admin.token').read_text().strip()}"},
            timeout=10,
        )
        assert admin.status_code == 503
        with RpcClient(cluster.nodes[leader].nfs_port) as c:  # NFS: JUKEBOX, the client retries later
            root = lookup_path(c, "/")
            u = c.nfs(9, dirop(root, b"nfs-during") + SATTR_NONE)  # MKDIR
            assert u.uint32() == JUKEBOX
        # reads go on, on every node
        for d in cluster.nodes.values():
            with InsecureClient(d.url, user="root").read("/before.txt") as f:
                assert f.read() == b"written before"
            assert requests.get(f"{d.url}/webhdfs/v1/", params={"op": "LISTSTATUS", **USER}, timeout=10).ok
        # etcd back: writes resume by themselves, through every node
        cluster.etcd.start(member)
        cluster.etcd.wait_healthy(member)
        for name in cluster.nodes:
            eventually_mkdirs(cluster, name, f"/after-{name}", within=30)
        assert cluster.wait_leader(list(cluster.nodes), timeout=30)
        for d in cluster.nodes.values():
            client = InsecureClient(d.url, user="root")
            names = client.list("/")
            assert {"after-n0", "after-n1", "after-n2", "before.txt"} <= set(names)


def test_losing_one_of_three_etcd_members_changes_nothing(tmp_path: Path) -> None:
    from etcdserver import start_etcd

    etcd = start_etcd(tmp_path / "etcd", size=3)
    cluster = Nodes(tmp_path, etcd)
    try:
        for name in ("n0", "n1", "n2"):
            cluster.start(name)
        leader = cluster.wait_leader(list(cluster.nodes))
        client = InsecureClient(cluster.nodes[leader].url, user="root")
        client.write("/one.txt", data=b"1")
        etcd.members[0].kill()  # the member every node talks to first
        took = [eventually_mkdirs(cluster, name, f"/after-{name}", within=10) for name in cluster.nodes]
        assert max(took) < 5, took  # the next endpoint answers at once
        assert cluster.wait_leader(list(cluster.nodes)) == leader  # no failover: nothing changed
        status = requests.get(cluster.nodes[leader].url + "/api/v1/cluster", timeout=10).json()
        health = {e["endpoint"]: e["health"] for e in status["etcd"]}
        assert health[etcd.members[0].url] == "down" and list(health.values()).count("ok") == 2
        for d in cluster.nodes.values():
            names = InsecureClient(d.url, user="root").list("/")
            assert {"one.txt", "after-n0", "after-n1", "after-n2"} <= set(names)
    finally:
        for d in cluster.nodes.values():
            if d.proc.poll() is None:
                d.kill()
        etcd.stop_all()
