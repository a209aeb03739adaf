"""A cluster node applying etcd's log (real etcd on loopback): gaps are never skipped."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from etcdserver import EtcdCluster, start_etcd

from nsd.core.metastore import MetaStore, initial_checkpoint
from nsd.core.replication.cluster import Behind, Cluster
from nsd.core.replication.etcd import Etcd
from nsd.journal.ops import IntentDone
from nsd.journal.record import encode_record


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    cluster = start_etcd(tmp_path_factory.mktemp("etcd"))
    yield cluster
    cluster.stop_all()


async def test_a_log_that_resumes_past_the_applied_txid_makes_the_node_start_over(
    etcd: EtcdCluster, tmp_path: Path
) -> None:
    initial_checkpoint(tmp_path, root_uid=0, root_gid=0)
    store = await MetaStore.open(tmp_path, fsync=False)
    cluster = Cluster(Etcd(etcd.endpoints.split(",")), "gap", "a")
    cluster.attach(store)
    try:
        op = IntentDone(1)
        # txids 1..4 were cut away by a checkpoint this node never loaded
        await cluster.etcd.put(cluster.log_key(5), encode_record(5, op.CODE, op.encode()))
        with pytest.raises(Behind, match="at txid 0 but etcd's log resumes at 5"):
            await cluster.catch_up()
        assert store.writer.last_txid == 0  # nothing applied out of order
    finally:
        await cluster.etcd.close()
        await store.close(checkpoint=False)
