"""Cluster mode, part 2: the nodes' block stores as one cache (placement by blake3 digest)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
from clusterenv import Nodes, running
from daemon import nsd
from hdfs import InsecureClient

BLOCK = 64 << 10
# one node's cache holds 32 blocks; the working set is 40 (more than one node, less than three)
ENV = {"NSD_BLOCK_SIZE": str(BLOCK), "NSD_CACHE_MEMORY_BYTES": "0", "NSD_CACHE_DISK_BYTES": str(32 * BLOCK)}
FILES = 10
BLOCKS_PER_FILE = 4


def cache_of(cluster: Nodes, name: str) -> dict:
    out = nsd("report", "--json", daemon=cluster.nodes[name])
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    return {**report["cache"], **report["cluster"]["cache"]}


def ufs_files(cluster: Nodes) -> dict[str, bytes]:
    """FILES files of BLOCKS_PER_FILE random blocks under /data, put straight into the under-storage."""
    (cluster.ufs / "data").mkdir()
    files = {}
    for i in range(FILES):
        files[f"/data/f{i}"] = os.urandom(BLOCKS_PER_FILE * BLOCK)
        (cluster.ufs / "data" / f"f{i}").write_bytes(files[f"/data/f{i}"])
    return files


def read_all(cluster: Nodes, files: dict[str, bytes], shift: int) -> None:
    names = sorted(cluster.nodes)
    for i, (path, data) in enumerate(sorted(files.items())):
        node = cluster.nodes[names[(i + shift) % len(names)]]
        with InsecureClient(node.url, user="root").read(path) as r:
            assert r.read() == data


def wait_settled(cluster: Nodes, timeout: float = 20.0) -> None:
    """Until every node has applied the same txid twice in a row (the cache facts are in)."""
    deadline = time.monotonic() + timeout
    last: set[int] = set()
    while time.monotonic() < deadline:
        seen = {n["applied_txid"] for name in cluster.nodes for n in cluster.status(name)["nodes"] if n["name"] == name}
        if len(seen) == 1 and seen == last:
            return
        last = seen
        time.sleep(0.5)
    raise AssertionError(f"nodes did not settle: {last}")


def wait_ring(cluster: Nodes, timeout: float = 10.0) -> None:
    """Until every node's ring spans every node (membership is refreshed every second)."""
    deadline = time.monotonic() + timeout
    while any(cache_of(cluster, n)["members"] != len(cluster.nodes) for n in cluster.nodes):
        assert time.monotonic() < deadline, "the nodes' rings did not settle"
        time.sleep(0.2)


@contextmanager
def ring_of_three(root: Path) -> Iterator[Nodes]:
    """Three nodes (ENV) with a leader, once every node's ring spans all three."""
    with running(root, env=ENV) as cluster:
        cluster.wait_leader(list(cluster.nodes))
        wait_ring(cluster)
        yield cluster


def test_a_second_pass_through_other_nodes_reads_from_the_owners_not_the_under_storage(tmp_path: Path) -> None:
    with ring_of_three(tmp_path) as cluster:
        files = ufs_files(cluster)
        read_all(cluster, files, shift=0)
        wait_settled(cluster)
        first = {name: cache_of(cluster, name) for name in cluster.nodes}
        from_ufs_first = sum(c["bytes_from_ufs"] for c in first.values())
        assert from_ufs_first == FILES * BLOCKS_PER_FILE * BLOCK  # each block read from the UFS once
        # every node now owns a share of the blocks: stored once in the cluster, not on the reader
        stored = {name: c["blocks_to_owners"] for name, c in first.items()}
        assert sum(stored.values()) > 0 and all(c["tiers"][-1]["blocks"] <= 32 for c in first.values())
        read_all(cluster, files, shift=1)  # through a different node than the first time
        second = {name: cache_of(cluster, name) for name in cluster.nodes}
        from_ufs_second = sum(c["bytes_from_ufs"] for c in second.values()) - from_ufs_first
        from_peers = sum(c["bytes_from_peers"] - first[n]["bytes_from_peers"] for n, c in second.items())
        served = sum(c["bytes_served"] - first[n]["bytes_served"] for n, c in second.items())
        total = FILES * BLOCKS_PER_FILE * BLOCK
        detail = {
            n: (c["tiers"][-1]["blocks"], c["peer_misses"], c["refetched_blocks"], c["misses"], c["evictions"])
            for n, c in second.items()
        }
        assert from_ufs_second <= total * 0.1, (from_ufs_second, total, detail)  # (almost) nothing from the UFS
        assert from_peers > 0 and served == from_peers  # what the reading node did not own came from its owner
        # nsd report cache: every node and the cluster
        report = json.loads(nsd("report", "cache", "--json", daemon=cluster.nodes["n1"]).stdout)["cluster_cache"]
        assert [r["node"] for r in report["nodes"]] == ["n0", "n1", "n2"]
        assert report["total"]["bytes_from_ufs"] == from_ufs_first + from_ufs_second
        assert report["total"]["bytes_served"] == sum(c["bytes_served"] for c in second.values())
        human = nsd("report", "cache", daemon=cluster.nodes["n2"]).stdout.decode()
        assert "cluster cache" in human and re.search(r"│ cluster +│", human), human
        metrics = requests.get(cluster.nodes["n0"].url + "/metrics", timeout=10).text
        assert "nsd_cluster_cache_bytes_from_peers_total" in metrics


def test_free_drops_the_copies_on_every_node(tmp_path: Path) -> None:
    with ring_of_three(tmp_path) as cluster:
        files = ufs_files(cluster)
        read_all(cluster, files, shift=0)
        wait_settled(cluster)
        assert sum(cache_of(cluster, n)["tiers"][-1]["blocks"] for n in cluster.nodes) == FILES * BLOCKS_PER_FILE
        out = nsd("free", "-r", "/data", "--json", daemon=cluster.nodes["n1"])
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["freed_bytes"] == FILES * BLOCKS_PER_FILE * BLOCK
        assert [cache_of(cluster, n)["tiers"][-1]["blocks"] for n in cluster.nodes] == [0, 0, 0]
        read_all(cluster, files, shift=1)  # and reads simply go to the under-storage again


def test_node_to_node_block_calls_need_the_token_and_matching_bytes(tmp_path: Path) -> None:
    with running(tmp_path, names=("n0",), env=ENV) as cluster:
        url = cluster.nodes["n0"].url + "/api/v1/cluster/blocks/" + "ab" * 32
        assert requests.get(url, timeout=10).status_code == 403  # blocks are data: no anonymous reads
        token = (cluster.nodes["n0"].data_dir / "admin.token").read_text().strip()
        auth = {"Authorization": f"Bearer {token}"}
        assert requests.get(url, headers=auth, timeout=10).status_code == 404
        bad = requests.put(url, data=b"not these bytes", headers=auth, timeout=10)
        assert bad.status_code == 400 and "do not match" in bad.json()["error"]["message"]
        from blake3 import blake3

        data = os.urandom((1 << 20) + 1000)  # larger than the JSON body limit (1 MiB)
        good = cluster.nodes["n0"].url + "/api/v1/cluster/blocks/" + blake3(data).hexdigest()
        assert requests.put(good, data=data, headers=auth, timeout=10).status_code == 200
        got = requests.get(good, headers=auth, timeout=10)
        assert got.status_code == 200 and got.content == data
        facts = requests.post(cluster.nodes["n0"].url + "/api/v1/cluster/facts", json=[[11, "!!"]], headers=auth)
        assert facts.status_code == 400


def test_open_redirects_to_the_node_holding_the_data_and_block_locations_name_it(tmp_path: Path) -> None:
    with ring_of_three(tmp_path) as cluster:
        (cluster.ufs / "spread").mkdir()
        for i in range(30):
            (cluster.ufs / "spread" / f"f{i}").write_bytes(f"file {i}\n".encode() * 1000)
        entry = cluster.nodes["n0"]
        user = {"user.name": "root"}
        targets = set()
        for i in range(30):
            path = f"/webhdfs/v1/spread/f{i}"
            where = requests.get(entry.url + path, params={"op": "GETFILEBLOCKLOCATIONS", **user}, timeout=10).json()
            (block,) = where["BlockLocations"]["BlockLocation"]
            located = requests.get(entry.url + path, params={"op": "GET_BLOCK_LOCATIONS", **user}, timeout=10).json()
            assert located["LocatedBlocks"]["locatedBlocks"][0]["locations"][0]["name"] == block["names"][0]
            first = requests.get(entry.url + path, params={"op": "OPEN", **user}, allow_redirects=False, timeout=10)
            assert first.status_code == 307
            location = first.headers["Location"]
            assert location.startswith(f"http://{block['names'][0]}/")  # where Spark would have scheduled it
            targets.add(location.split("/webhdfs/")[0])
            data = requests.get(location, timeout=10)  # the data step, at the node named
            assert data.status_code == 200 and data.content == f"file {i}\n".encode() * 1000
        assert targets == {d.url for d in cluster.nodes.values()}  # spread over every node


def test_open_stops_redirecting_to_a_killed_node_before_its_lease_runs_out(tmp_path: Path) -> None:
    """A node killed -9 stays a member until its lease runs out (10 s here); within a couple of
    seconds the others find it does not take connections and OPEN sends no client there."""
    with running(tmp_path, env={**ENV, "NSD_CLUSTER_LEASE_TTL": "10"}) as cluster:
        cluster.wait_leader(list(cluster.nodes))
        wait_ring(cluster)
        (cluster.ufs / "spread").mkdir()
        for i in range(30):
            (cluster.ufs / "spread" / f"f{i}").write_bytes(f"file {i}\n".encode() * 1000)
        entry, victim = cluster.nodes["n0"], cluster.nodes["n2"]
        user = {"user.name": "root"}

        def open_all() -> set[str]:
            went = set()
            for i in range(30):
                path = f"/webhdfs/v1/spread/f{i}"
                first = requests.get(entry.url + path, params={"op": "OPEN", **user}, allow_redirects=False, timeout=10)
                assert first.status_code == 307
                went.add(first.headers["Location"].split("/webhdfs/")[0])
                data = requests.get(first.headers["Location"], timeout=10)
                assert data.status_code == 200 and data.content == f"file {i}\n".encode() * 1000
            return went

        assert victim.url in open_all()  # its share of the files, while it lives
        cluster.nodes.pop("n2").kill()
        time.sleep(2.5)
        seen = cache_of(cluster, "n0")
        assert seen["members"] == 3 and seen["unreachable"] == ["n2"]  # still a member: its lease lives on
        metrics = requests.get(entry.url + "/metrics", timeout=10).text
        assert "nsd_cluster_cache_members_unreachable 1.0" in metrics
        assert victim.url not in open_all()


def test_node_loss_and_a_node_joining_a_warm_cluster(tmp_path: Path) -> None:
    with ring_of_three(tmp_path) as cluster:
        files = ufs_files(cluster)
        read_all(cluster, files, shift=0)
        wait_settled(cluster)
        # kill -9 of a node: every file still reads through the others (its blocks from the UFS)
        cluster.nodes.pop("n2").kill()
        for path, data in files.items():  # at once, before its lease runs out: its blocks from the UFS
            got = subprocess.run(["nfs-cat", cluster.nodes["n0"].nfs_url(path)], capture_output=True, timeout=60)
            assert got.returncode == 0 and got.stdout == data, got.stderr
        survivors = sorted(cluster.nodes)
        cluster.wait_leader(survivors, timeout=15)
        wait_ring(cluster, timeout=15)  # its lease ran out: the ring has settled without it
        read_all(cluster, files, shift=0)
        # a node joins the warm cluster: ownership moves to it, reads keep hitting the caches
        cluster.start("n3")
        wait_ring(cluster, timeout=15)
        before = sum(cache_of(cluster, n)["bytes_from_ufs"] for n in cluster.nodes)
        read_all(cluster, files, shift=1)
        after = sum(cache_of(cluster, n)["bytes_from_ufs"] for n in cluster.nodes)
        total = FILES * BLOCKS_PER_FILE * BLOCK
        assert after - before <= total * 0.6, (after - before, total)  # only what moved to n3 is read again
        read_all(cluster, files, shift=2)
        assert sum(cache_of(cluster, n)["bytes_from_ufs"] for n in cluster.nodes) - after <= total * 0.1


def test_data_only_in_caches_is_on_two_nodes_and_comes_back_to_two_after_a_death(tmp_path: Path) -> None:
    # one node's cache holds every block here: after two deaths the last node has them all
    with running(tmp_path, env={**ENV, "NSD_CACHE_DISK_BYTES": str(64 * BLOCK)}) as cluster:
        leader = cluster.wait_leader(list(cluster.nodes))
        wait_ring(cluster)
        a, b = sorted(n for n in cluster.nodes if n != leader)
        (tmp_path / "cached").mkdir()
        out = nsd("mount", "add", "/mc", (tmp_path / "cached").as_uri(), "-o", "write_type=MUST_CACHE",
                  daemon=cluster.nodes[a])  # fmt: skip
        assert out.returncode == 0, out.stderr
        writer = InsecureClient(cluster.nodes[a].url, user="root")
        files = {f"/mc/f{i}": os.urandom(BLOCKS_PER_FILE * BLOCK) for i in range(FILES)}
        for path, data in files.items():
            writer.write(path, data=data)
        assert not any((tmp_path / "cached").iterdir())  # in no under-storage: only in caches
        # the writer dies: at once, every file still reads through the others, from the blocks' owners
        cluster.nodes.pop(a).kill()
        for name in (leader, b):
            for path, data in files.items():
                got = subprocess.run(["nfs-cat", cluster.nodes[name].nfs_url(path)], capture_output=True, timeout=60)
                assert got.returncode == 0 and got.stdout == data, got.stderr
        # the ring settles without it and the survivors bring every block back to two copies
        wait_ring(cluster, timeout=15)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            repaired = sum(cache_of(cluster, n)["repaired"] for n in cluster.nodes)
            stored = [cache_of(cluster, n)["tiers"][-1]["blocks"] for n in cluster.nodes]
            if repaired and min(stored) >= FILES * BLOCKS_PER_FILE:
                break
            time.sleep(0.5)
        assert min(stored) >= FILES * BLOCKS_PER_FILE, (repaired, stored)
        fsck = json.loads(nsd("fsck", "/", "--json", daemon=cluster.nodes[b]).stdout)
        assert fsck["clean"] and fsck["files_checked"] >= FILES, fsck["problems"][:3]
        # so losing one more node still loses nothing: the last one holds every block
        cluster.nodes.pop(b).kill()
        for path, data in files.items():
            got = subprocess.run(["nfs-cat", cluster.nodes[leader].nfs_url(path)], capture_output=True, timeout=60)
            assert got.returncode == 0 and got.stdout == data, got.stderr


def test_async_through_is_persisted_by_the_leader(tmp_path: Path) -> None:
    with running(tmp_path, env=ENV) as cluster:
        leader = cluster.wait_leader(list(cluster.nodes))
        follower = next(n for n in cluster.nodes if n != leader)
        (tmp_path / "async").mkdir()
        out = nsd("mount", "add", "/as", (tmp_path / "async").as_uri(), "-o", "write_type=ASYNC_THROUGH",
                  daemon=cluster.nodes[follower])  # fmt: skip
        assert out.returncode == 0, out.stderr
        data = os.urandom(3 * BLOCK + 5)
        InsecureClient(cluster.nodes[follower].url, user="root").write("/as/later.bin", data=data)
        deadline = time.monotonic() + 20
        while not (tmp_path / "async" / "later.bin").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert (tmp_path / "async" / "later.bin").read_bytes() == data


def test_the_same_bytes_under_two_mounts_are_stored_once_in_the_cluster(tmp_path: Path) -> None:
    with ring_of_three(tmp_path) as cluster:
        data = os.urandom(BLOCKS_PER_FILE * BLOCK)
        for name in ("one", "two"):
            (tmp_path / name).mkdir()
            (tmp_path / name / "same.bin").write_bytes(data)
            out = nsd("mount", "add", f"/{name}", (tmp_path / name).as_uri(), daemon=cluster.nodes["n0"])
            assert out.returncode == 0, out.stderr
        read_all(cluster, {"/one/same.bin": data, "/two/same.bin": data}, shift=0)  # through two nodes
        wait_settled(cluster)
        stored = sum(cache_of(cluster, n)["tiers"][-1]["blocks"] for n in cluster.nodes)
        assert stored == BLOCKS_PER_FILE  # one copy of each block, cluster-wide
