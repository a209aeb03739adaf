"""Cluster mode: three nodes over one shared under-storage, the journal replicated through a real etcd."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from clusterenv import Nodes, applied, running
from daemon import Daemon, nsd, start
from etcdserver import start_etcd
from hdfs import HdfsError, InsecureClient
from rpcclient import RpcClient, create_file, lookup_path, read_status, write_status


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Nodes]:
    with running(tmp_path) as nodes:
        yield nodes


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
    # each node's own part: /metrics, the status page and nsd report cluster
    follower = next(n for n in cluster.nodes if n != leader)
    for name in (leader, follower):
        text = requests.get(cluster.nodes[name].url + "/metrics", timeout=10).text
        assert f"nsd_cluster_leader {1.0 if name == leader else 0.0}" in text
        assert "nsd_cluster_lag_txids 0.0" in text and "nsd_cluster_etcd_up 1.0" in text
        count = re.search(r"^nsd_cluster_etcd_rtt_seconds_count (\S+)", text, re.M)
        assert count is not None and float(count.group(1)) > 0
    replicated = re.search(
        r"^nsd_cluster_replicated_batches_total (\S+)",
        requests.get(cluster.nodes[leader].url + "/metrics", timeout=10).text,
        re.M,
    )
    assert replicated is not None and float(replicated.group(1)) >= 1
    page = requests.get(cluster.nodes[follower].url + "/", timeout=10).text
    assert "Cluster c1" in page and f"{follower} / follower" in page
    mine = json.loads(nsd("report", "cluster", "--json", daemon=cluster.nodes[follower]).stdout)["cluster"]
    assert mine["role"] == "follower" and mine["leader"] == leader and mine["lag"] == 0


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
    # the new leader's first id is above every id the dead one reserved (it may have shown some)
    dump = nsd("journal", "dump", "--json", "--data-dir", str(cluster.nodes[leader].data_dir))
    records = [json.loads(line) for line in dump.stdout.splitlines()]
    limit = max(r["fields"]["limit"] for r in records if r.get("op") == "ReserveInodes")
    live = InsecureClient(cluster.nodes[new].url, user="root")
    first, last, after = (live.status(name)["fileId"] for name in ("/k0", "/k19", "/after"))
    assert first < last < limit <= after
    # the old leader comes back as a follower of the new one, with everything
    back = cluster.start(leader)
    deadline = time.monotonic() + 10
    while "after" not in InsecureClient(back.url, user="root").list("/") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert cluster.status(leader)["leader"] == new
    assert sorted(InsecureClient(back.url, user="root").list("/")) == sorted(["after", *(f"k{i}" for i in range(20))])


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


def nfs_cat(d: Daemon, path: str) -> bytes:
    got = subprocess.run(["nfs-cat", d.nfs_url(path)], capture_output=True, timeout=60)
    assert got.returncode == 0, got.stderr
    return got.stdout


def test_nfs_writes_through_every_node_are_read_on_every_node(cluster: Nodes, tmp_path: Path) -> None:
    leader = cluster.wait_leader(["n0", "n1", "n2"])
    InsecureClient(cluster.nodes[leader].url, user="root").makedirs("/nfs")  # nfs-cp creates only the file
    for name, d in cluster.nodes.items():
        src = tmp_path / f"{name}.bin"
        src.write_bytes(f"nfs through {name}\n".encode() * 200_000)  # several WRITEs and a COMMIT
        put = subprocess.run(["nfs-cp", str(src), d.nfs_url(f"/nfs/{name}.bin")], capture_output=True, timeout=60)
        assert put.returncode == 0, put.stderr
        assert nfs_cat(d, f"/nfs/{name}.bin") == src.read_bytes()  # read-your-writes on the node written to
    for d in cluster.nodes.values():  # the same handles and bytes on every node
        for name in cluster.nodes:
            assert nfs_cat(d, f"/nfs/{name}.bin") == (tmp_path / f"{name}.bin").read_bytes()
    assert sorted(p.name for p in (cluster.ufs / "nfs").iterdir()) == sorted(f"{n}.bin" for n in cluster.nodes)
    # a file only the under-storage has, looked up first through a follower (its discovery is journaled by the leader)
    (cluster.ufs / "from-ufs").mkdir()
    (cluster.ufs / "from-ufs" / "f.txt").write_bytes(b"put there directly\n")
    follower = next(d for n, d in cluster.nodes.items() if n != leader)
    assert nfs_cat(follower, "/from-ufs/f.txt") == b"put there directly\n"
    (cluster.ufs / "from-ufs" / "g.txt").write_bytes(b"listed\n")
    listed = subprocess.run(["nfs-ls", follower.nfs_url("/from-ufs")], capture_output=True, timeout=60, text=True)
    assert listed.returncode == 0 and "g.txt" in listed.stdout and "f.txt" in listed.stdout


def etcd_log_keys(cluster: Nodes) -> int:
    """How many journal batches etcd holds for cluster c1 (straight from etcd's JSON gateway)."""
    import base64

    prefix = b"/nsd/c1/log/"
    body = {
        "key": base64.b64encode(prefix).decode(),
        "range_end": base64.b64encode(prefix[:-1] + bytes([prefix[-1] + 1])).decode(),
        "count_only": True,
    }
    reply = requests.post(cluster.etcd.endpoints.split(",")[0] + "/v3/kv/range", json=body, timeout=10).json()
    return int(reply.get("count", 0))


def test_checkpoints_go_to_shared_storage_and_etcd_keeps_only_the_tail(tmp_path: Path) -> None:
    etcd = start_etcd(tmp_path / "etcd")
    cluster = Nodes(tmp_path, etcd)
    cluster.env["NSD_CHECKPOINT_ENTRIES"] = "40"
    try:
        for name in ("n0", "n1", "n2"):
            cluster.start(name)
        leader = cluster.wait_leader(["n0", "n1", "n2"])
        client = InsecureClient(cluster.nodes[leader].url, user="root")
        paused = next(n for n in ("n0", "n1", "n2") if n != leader)
        cluster.nodes[paused].proc.send_signal(signal.SIGSTOP)  # it will miss the log a checkpoint drops
        for i in range(150):
            client.makedirs(f"/ck/d{i:03d}")
        deadline = time.monotonic() + 20
        while cluster.status(leader)["checkpoint_txid"] < 100 and time.monotonic() < deadline:
            client.makedirs(f"/ck/more{time.monotonic_ns()}")  # the checkpoint is taken at a change
            time.sleep(0.2)
        published = cluster.status(leader)["checkpoint_txid"]
        assert published >= 100
        assert etcd_log_keys(cluster) < 80  # 150+ changes made, the log before the checkpoint dropped
        shared = sorted((cluster.ufs / ".nsd-system" / "c1" / "checkpoints").iterdir())
        assert shared and shared[-1].name == f"{published:016x}.ckpt"
        # nsd's own directory is never part of the namespace
        assert ".nsd-system" not in client.list("/")
        assert client.status("/.nsd-system", strict=False) is None
        with pytest.raises(HdfsError):
            client.makedirs("/.nsd-system/x")
        # the paused follower catches up (from its watch's backlog, or from the checkpoint if it lost it)
        cluster.nodes[paused].proc.send_signal(signal.SIGCONT)
        assert applied(cluster, paused) >= cluster.status(leader)["txid"]
        assert len(InsecureClient(cluster.nodes[paused].url, user="root").list("/ck")) >= 150
        # a new node and a wiped node start from the shared checkpoint plus etcd's tail
        cluster.start("n3")
        follower = next(n for n in ("n0", "n1", "n2") if n != leader)
        cluster.nodes[follower].kill()
        shutil.rmtree(tmp_path / follower)
        cluster.start(follower)
        for name in ("n3", follower):
            assert "loaded checkpoint" in cluster.nodes[name].log.read_text()
            names = InsecureClient(cluster.nodes[name].url, user="root").list("/ck")
            assert [f"d{i:03d}" for i in range(150)] == [n for n in names if n.startswith("d")]
        # the whole cluster stopped and started again keeps everything
        for d in cluster.nodes.values():
            assert d.stop() == 0
        for name in list(cluster.nodes):
            cluster.start(name)
        leader = cluster.wait_leader(list(cluster.nodes))
        for d in cluster.nodes.values():
            names = InsecureClient(d.url, user="root").list("/ck")
            assert len([n for n in names if n.startswith("d")]) == 150
        InsecureClient(cluster.nodes[leader].url, user="root").makedirs("/after-restart")
    finally:
        for d in cluster.nodes.values():
            if d.proc.poll() is None:
                d.kill()
        etcd.stop_all()


def test_nfs_handles_outlive_the_node_that_gave_them(cluster: Nodes) -> None:
    leader = cluster.wait_leader(["n0", "n1", "n2"])
    first, second = [n for n in cluster.nodes if n != leader]
    InsecureClient(cluster.nodes[leader].url, user="root").makedirs("/h")
    with RpcClient(cluster.nodes[first].nfs_port) as c:
        directory = lookup_path(c, "/h")
        handle = create_file(c, directory, "moved")  # CREATE and WRITE relayed to the leader
        assert write_status(c, handle, 0, b"written via a follower") == 0
    cluster.nodes[first].kill()
    # the client moves on to another node with the handles it holds: no ESTALE, same bytes
    with RpcClient(cluster.nodes[second].nfs_port) as c:
        assert read_status(c, handle, 0, 100) == (0, b"written via a follower")
        assert write_status(c, handle, 0, b"WRITTEN") == 0
    cluster.nodes[leader].kill()
    assert cluster.wait_leader([second], timeout=15) == second
    with RpcClient(cluster.nodes[second].nfs_port) as c:
        assert read_status(c, handle, 0, 100) == (0, b"WRITTEN via a follower")
        assert write_status(c, handle, 22, b"!") == 0  # now the leader itself
        assert read_status(c, handle, 0, 100) == (0, b"WRITTEN via a follower!")


def test_a_single_node_becomes_the_first_node_of_a_cluster(tmp_path: Path) -> None:
    etcd = start_etcd(tmp_path / "etcd")
    cluster = Nodes(tmp_path, etcd)
    try:
        single = start(tmp_path / "n0", env={"NSD_ROOT_UFS": cluster.ufs.as_uri(), "NSD_FSYNC": "false"})
        client = InsecureClient(single.url, user="root")
        client.makedirs("/old/dir")
        client.write("/old/f.txt", data=b"from the single node")
        with RpcClient(single.nfs_port) as c:
            handle = lookup_path(c, "/old/f.txt")
        token = (tmp_path / "n0" / "admin.token").read_text()
        assert single.stop() == 0
        # the same data dir started as a cluster node: the cluster is formatted from it
        n0 = cluster.start("n0")
        n1 = cluster.start("n1")  # a new node joins from the shared checkpoint
        assert "becomes cluster c1" in n0.log.read_text()
        leader = cluster.wait_leader(["n0", "n1"])
        for d in (n0, n1):
            with InsecureClient(d.url, user="root").read("/old/f.txt") as r:
                assert r.read() == b"from the single node"
            with RpcClient(d.nfs_port) as c:  # NFS clients' handles and the admin token carry over
                assert read_status(c, handle, 0, 100) == (0, b"from the single node")
            assert (d.data_dir / "admin.token").read_text() == token
        InsecureClient(cluster.nodes[leader].url, user="root").write("/new.txt", data=b"after")
        assert nsd("ls", "/", daemon=n1).stdout.decode().split() == ["new.txt", "old"]
        # a single node holding data only its cache has cannot become a cluster node
        cached = start(tmp_path / "solo", env={"NSD_ROOT_UFS": (tmp_path / "solo-ufs").as_uri(),
                                                "NSD_WRITE_TYPE": "MUST_CACHE"})  # fmt: skip
        InsecureClient(cached.url, user="root").write("/only-cached", data=b"x")
        assert cached.stop() == 0
        with pytest.raises(RuntimeError, match=r"1 file\(s\) exist only in this node's cache"):
            start(tmp_path / "solo", "--etcd", etcd.endpoints, "--cluster", "c2", "--node", "a",
                  env={"NSD_ROOT_UFS": (tmp_path / "solo-ufs").as_uri()})  # fmt: skip
        # and a single node cannot join a cluster that exists already
        other = start(tmp_path / "other", env={"NSD_ROOT_UFS": cluster.ufs.as_uri()})
        assert other.stop() == 0
        with pytest.raises(RuntimeError, match="cluster c1 exists already: use an empty data dir"):
            start(tmp_path / "other", "--etcd", etcd.endpoints, "--cluster", "c1", "--node", "x",
                  env={"NSD_ROOT_UFS": cluster.ufs.as_uri()})  # fmt: skip
    finally:
        for d in cluster.nodes.values():
            if d.proc.poll() is None:
                d.kill()
        etcd.stop_all()


def test_a_stopped_node_is_listed_down_until_removed(cluster: Nodes) -> None:
    leader = cluster.wait_leader(["n0", "n1", "n2"])
    gone = next(n for n in ("n0", "n1", "n2") if n != leader)
    asker = cluster.nodes[leader]
    assert cluster.nodes[gone].stop() == 0  # SIGTERM: its lease goes with it
    status = json.loads(nsd("cluster", "status", "--json", daemon=asker).stdout)
    states = {n["name"]: n["state"] for n in status["nodes"]}
    assert states[gone] == "down" and list(states.values()).count("live") == 2
    human = nsd("cluster", "status", daemon=asker).stdout.decode()
    assert re.search(rf"{gone}\W+follower\W+down", human)
    live = next(n for n in ("n0", "n1", "n2") if n not in (leader, gone))
    refused = nsd("cluster", "remove", live, daemon=asker)
    assert refused.returncode == 1 and b"is live: stop it first" in refused.stderr
    assert nsd("cluster", "remove", gone, daemon=asker).stdout.decode() == ""
    assert nsd("cluster", "remove", "nobody", "--json", daemon=asker).returncode == 1
    status = json.loads(nsd("cluster", "status", "--json", daemon=asker).stdout)
    assert [n["name"] for n in status["nodes"]] == sorted([leader, live])
    cluster.start(gone)  # it may come back: it joins again
    names = {n["name"] for n in json.loads(nsd("cluster", "status", "--json", daemon=asker).stdout)["nodes"]}
    assert names == {"n0", "n1", "n2"}
    assert cluster.nodes[gone].stop() == 0
    removed = nsd("cluster", "remove", "--json", gone, daemon=asker)
    assert json.loads(removed.stdout) == {"removed": gone}


def test_leader_killed_and_started_at_once_does_not_follow_itself(tmp_path: Path) -> None:
    # (from the benchmark helper's branch) its killed run's leader key outlives the restart: it
    # must not take itself for the leader and send changes on to itself, hop after hop
    with running(tmp_path, env={"NSD_CLUSTER_LEASE_TTL": "6"}) as cluster:
        leader = cluster.wait_leader(list(cluster.nodes))
        cluster.nodes[leader].kill()
        back = cluster.start(leader)
        assert cluster.status(leader)["leader"] == leader  # its dead run's key, on a lease still alive
        assert cluster.status(leader)["node_leader"] is None  # not itself: nobody to send changes to yet
        r = requests.put(f"{back.url}/webhdfs/v1/early?op=MKDIRS&user.name=root", timeout=30)
        assert r.status_code == 200, r.text  # held until another node leads, then made by it
        new = cluster.wait_leader(list(cluster.nodes), timeout=20)
        assert new != leader or cluster.status(leader)["node_leader"] == leader
        assert "early" in InsecureClient(back.url, user="root").list("/")
