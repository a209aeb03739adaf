"""The etcd client against a real etcd (Debian's etcd-server) on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from etcdserver import EtcdCluster, start_etcd

from nsd.core.replication.etcd import Etcd, EtcdUnavailable, compare_created, op_get, op_put


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    cluster = start_etcd(tmp_path_factory.mktemp("etcd"))
    yield cluster
    cluster.stop_all()


async def test_put_range_and_prefix(etcd: EtcdCluster) -> None:
    client = Etcd(etcd.endpoints.split(","))
    try:
        await client.put(b"/t1/a", b"1")
        await client.put(b"/t1/b", b"2")
        await client.put(b"/t10", b"other")
        got = await client.range(b"/t1/", prefix=True)
        assert [(kv.key, kv.value) for kv in got.kvs] == [(b"/t1/a", b"1"), (b"/t1/b", b"2")]
        assert (await client.get(b"/t1/missing")) is None
        limited = await client.range(b"/t1/", prefix=True, limit=1)
        assert len(limited.kvs) == 1 and limited.more
    finally:
        await client.close()


async def test_txn_compares_create_revision(etcd: EtcdCluster) -> None:
    client = Etcd(etcd.endpoints.split(","))
    try:
        ok, _ = await client.txn([compare_created(b"/t2/leader", 0)], [op_put(b"/t2/leader", b"me")])
        assert ok
        leader = await client.get(b"/t2/leader")
        assert leader is not None and leader.value == b"me"
        again, reply = await client.txn(
            [compare_created(b"/t2/leader", 0)], [op_put(b"/t2/leader", b"you")], [op_get(b"/t2/leader")]
        )
        assert not again
        assert "response_range" in reply["responses"][0]
        fenced, _ = await client.txn([compare_created(b"/t2/leader", leader.create_revision)], [op_put(b"/t2/x", b"1")])
        assert fenced
    finally:
        await client.close()


async def test_lease_keys_go_with_the_lease(etcd: EtcdCluster) -> None:
    client = Etcd(etcd.endpoints.split(","))
    try:
        lease = await client.grant(5)
        await client.put(b"/t3/node", b"up", lease=lease)
        assert await client.keepalive(lease) > 0
        await client.revoke(lease)
        assert (await client.get(b"/t3/node")) is None
        assert await client.keepalive(lease) == 0
    finally:
        await client.close()


async def test_watch_streams_puts_in_order(etcd: EtcdCluster) -> None:
    client = Etcd(etcd.endpoints.split(","))
    try:
        start = (await client.range(b"/t4/", prefix=True)).revision + 1
        for i in range(3):
            await client.put(f"/t4/{i}".encode(), str(i).encode())

        async def first(n: int) -> list[bytes]:
            seen = []
            async for event in client.watch(b"/t4/", prefix=True, start_revision=start):
                seen.append(event.kv.value)
                if len(seen) == n:
                    return seen
            return seen

        watching = asyncio.create_task(first(4))
        await asyncio.sleep(0.2)
        await client.put(b"/t4/3", b"3")
        assert await asyncio.wait_for(watching, 10) == [b"0", b"1", b"2", b"3"]
    finally:
        await client.close()


async def test_unreachable_endpoint_is_skipped_then_all_down_is_unavailable(etcd: EtcdCluster, tmp_path: Path) -> None:
    dead = "http://127.0.0.1:9"  # discard port: nobody listens
    client = Etcd([dead, *etcd.endpoints.split(",")], call_timeout=1)
    try:
        await client.put(b"/t5", b"ok")
        assert client.endpoint != dead
    finally:
        await client.close()
    nobody = Etcd([dead], call_timeout=1)
    try:
        with pytest.raises(EtcdUnavailable, match="etcd unreachable"):
            await nobody.get(b"/t5")
        assert not nobody.healthy
    finally:
        await nobody.close()
