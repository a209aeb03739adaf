"""Hadoop clients configured for HA against a cluster keep working through a leader's kill -9:
Hadoop's own FsShell with an HA nameservice over the nodes, and HdfsCLI given every node's URL."""

from __future__ import annotations

import os
from pathlib import Path

from clusterenv import running
from hadoopshell import Hadoop
from hdfs import InsecureClient


def ha_conf(conf: Path, addresses: dict[str, str]) -> None:
    """core-site.xml and hdfs-site.xml for a nameservice `nsd` over `addresses` (node -> host:port)."""
    conf.mkdir(parents=True, exist_ok=True)
    props = {
        "dfs.nameservices": "nsd",
        "dfs.ha.namenodes.nsd": ",".join(addresses),
        **{f"dfs.namenode.http-address.nsd.{name}": addr for name, addr in addresses.items()},
        "dfs.client.failover.proxy.provider.nsd": (
            "org.apache.hadoop.hdfs.server.namenode.ha.ConfiguredFailoverProxyProvider"
        ),
        "dfs.http.client.failover.sleep.base.millis": "200",
        "dfs.http.client.failover.sleep.max.millis": "2000",
    }
    body = "".join(f"<property><name>{k}</name><value>{v}</value></property>" for k, v in props.items())
    (conf / "hdfs-site.xml").write_text(f'<?xml version="1.0"?>\n<configuration>{body}</configuration>\n')
    (conf / "core-site.xml").write_text('<?xml version="1.0"?>\n<configuration></configuration>\n')


def test_fsshell_with_an_ha_nameservice_and_hdfscli_with_every_url_survive_a_leader_kill(tmp_path: Path) -> None:
    with running(tmp_path / "c") as cluster:
        leader = cluster.wait_leader(list(cluster.nodes))
        # the leader first: the clients start with it, and must move on once it is gone
        order = [leader, *(n for n in cluster.nodes if n != leader)]
        addresses = {name: cluster.nodes[name].url.split("://", 1)[1] for name in order}
        ha_conf(tmp_path / "conf", addresses)
        hadoop = Hadoop(cluster.nodes[leader], tmp_path / "conf")
        hadoop.root = "webhdfs://nsd"  # the nameservice, not one node
        payload = os.urandom(3 << 20)
        (tmp_path / "a.bin").write_bytes(payload)
        hdfscli = InsecureClient(";".join(cluster.nodes[name].url for name in order), user="root")

        hadoop("-mkdir", "-p", "/ha/in")
        hadoop("-put", str(tmp_path / "a.bin"), "/ha/in/a.bin")
        hdfscli.write("/ha/in/cli-before.txt", data=b"before")

        cluster.nodes[leader].kill()  # kill -9 of the leader; the clients are not told

        hadoop("-put", str(tmp_path / "a.bin"), "/ha/in/after.bin")
        hadoop("-get", "/ha/in/a.bin", str(tmp_path / "back.bin"))
        assert (tmp_path / "back.bin").read_bytes() == payload
        hdfscli.write("/ha/in/cli-after.txt", data=b"after")
        with hdfscli.read("/ha/in/after.bin") as r:
            assert r.read() == payload
        listed = {line.rsplit("/", 1)[-1] for line in hadoop("-ls", "/ha/in").stdout.splitlines() if "/" in line}
        assert listed == {"a.bin", "after.bin", "cli-before.txt", "cli-after.txt"}
        assert cluster.wait_leader([n for n in cluster.nodes if n != leader], timeout=15) != leader


def test_fsshell_through_a_follower(tmp_path: Path) -> None:
    # a follower sends each change on to the leader and relays the reply as it came: with no
    # Content-Type on JSON, which Hadoop's shaded client cannot parse (rename then "fails")
    with running(tmp_path / "c") as cluster:
        leader = cluster.wait_leader(list(cluster.nodes))
        follower = next(d for n, d in cluster.nodes.items() if n != leader)
        conf = tmp_path / "conf"
        conf.mkdir()
        (conf / "core-site.xml").write_text('<?xml version="1.0"?>\n<configuration></configuration>\n')
        hadoop = Hadoop(follower, conf)
        (tmp_path / "f.txt").write_text("through a follower\n")
        hadoop("-mkdir", "-p", "/via/follower")
        hadoop("-put", str(tmp_path / "f.txt"), "/via/follower/f.txt")  # CREATE, then RENAME of _COPYING_
        hadoop("-mv", "/via/follower/f.txt", "/via/follower/g.txt")
        assert hadoop("-cat", "/via/follower/g.txt").stdout == "through a follower\n"
        hadoop("-rm", "-skipTrash", "/via/follower/g.txt")
        assert hadoop("-ls", "/via/follower").stdout.strip() == ""


def test_hdfscli_with_every_url_right_after_a_leader_kill(tmp_path: Path) -> None:
    # HdfsCLI tries each URL once: the followers must carry a change over the leaderless moment
    # (they wait for the next leader) rather than answer 503 while the dead one's lease runs out
    with running(tmp_path / "c") as cluster:
        leader = cluster.wait_leader(list(cluster.nodes))
        order = [leader, *(n for n in cluster.nodes if n != leader)]
        client = InsecureClient(";".join(cluster.nodes[n].url for n in order), user="root")
        client.write("/cli/before.txt", data=b"before the kill")
        cluster.nodes[leader].kill()  # no node leads for a lease's time
        client.makedirs("/cli/after")
        client.write("/cli/after/f.txt", data=b"after the kill")
        client.rename("/cli/before.txt", "/cli/after/moved.txt")
        assert sorted(client.list("/cli/after")) == ["f.txt", "moved.txt"]
        with client.read("/cli/after/moved.txt") as r:
            assert r.read() == b"before the kill"
        new = cluster.wait_leader([n for n in cluster.nodes if n != leader], timeout=15)
        assert sorted(InsecureClient(cluster.nodes[new].url, user="root").list("/cli/after")) == ["f.txt", "moved.txt"]
