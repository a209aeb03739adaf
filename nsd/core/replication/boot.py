"""A node's start in cluster mode: format the cluster in etcd or join it, and ready the data dir.

The cluster's shared facts (root under-storage, admin token, NFS handle key, the root's
attributes) come from etcd, so every node serves the same namespace with the same token and
handles. The local journal is only a working copy in cluster mode: it is rebuilt at every
start from the newest shared checkpoint (or checkpoint 0) and the log in etcd after it, so a
node never replays a record that etcd did not commit (a deposed leader's last batch, say).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time

from nsd.config import Config
from nsd.core.metastore import fold_namespace, initial_checkpoint
from nsd.core.replication.checkpoints import SharedCheckpoints
from nsd.core.replication.cluster import Cluster, ClusterMeta
from nsd.core.replication.etcd import Etcd
from nsd.datadir import DataDir, write_durably
from nsd.errors import Invalid
from nsd.journal.checkpoint import checkpoint_name

log = logging.getLogger("nsd.cluster")

CLUSTER_FILE = "cluster"  # in the data dir: the name of the cluster it belongs to


async def join(config: Config, datadir: DataDir, nfs_secret_file: str) -> Cluster:
    """Connect to etcd, format the cluster or join it, and ready the (locked) data dir."""
    if not config.root_ufs:
        raise Invalid("cluster mode needs root_ufs (NSD_ROOT_UFS): an under-storage every node reaches")
    checkpoints = SharedCheckpoints.open(config.cluster, config.checkpoint_uri, config.root_ufs)
    cluster = Cluster(
        Etcd(config.etcd_endpoints),
        config.cluster,
        config.node,
        lease_ttl=config.cluster_lease_ttl,
        checkpoints=checkpoints,
    )
    try:
        if datadir.is_formatted() and not (datadir.path / CLUSTER_FILE).exists():
            proposal, start = await _adopt(datadir, config, cluster, nfs_secret_file)
        else:
            proposal, start = _proposal(config), 0
        meta, formatted = await cluster.format_or_join(proposal, start)
        if not formatted and meta.root_ufs != config.root_ufs:
            raise Invalid(
                f"root_ufs {config.root_ufs} differs from cluster {config.cluster}'s root under-storage {meta.root_ufs}"
            )
        prepare_data_dir(datadir, config.cluster, meta, nfs_secret_file)
        newest = await cluster.newest_checkpoint()
        if newest:
            started = time.monotonic()
            await checkpoints.download(newest, datadir.journal)
            log.info("loaded checkpoint %s in %.2fs", checkpoints.where(newest), time.monotonic() - started)
    except BaseException:
        await checkpoints.close()
        await cluster.etcd.close()
        raise
    log.info("%s cluster %s as node %s", "formatted" if formatted else "joining", config.cluster, config.node)
    return cluster


def _proposal(config: Config) -> ClusterMeta:
    return ClusterMeta(
        root_ufs=config.root_ufs,
        admin_token=secrets.token_urlsafe(32),
        nfs_secret=secrets.token_hex(32),
        root_uid=os.getuid(),
        root_gid=os.getgid(),
        root_mode=0o755,
        root_time_ns=time.time_ns(),
    )


async def _adopt(datadir: DataDir, config: Config, cluster: Cluster, nfs_secret_file: str) -> tuple[ClusterMeta, int]:
    """A single node's data dir, started with --etcd for a cluster not formatted yet, becomes the
    cluster's first node: its namespace (as a checkpoint in shared storage), admin token and NFS
    handle key carry over, so its clients, handles and CLI keep working. Refused while it holds
    data no other node could reach: unpersisted files or staged writes."""
    name = config.cluster
    if await cluster.exists():
        raise Invalid(f"data dir {datadir.path} belongs to a single-node nsd; cluster {name} exists already: "
                      "use an empty data dir to join it")  # fmt: skip
    datadir.check_version()
    if datadir.root_ufs != config.root_ufs:
        raise Invalid(f"root_ufs {config.root_ufs} differs from this data dir's root under-storage {datadir.root_ufs}")
    staging = datadir.path / "staging"
    if staging.is_dir() and any(staging.iterdir()):
        raise Invalid(f"{staging} holds staged writes: start the single node once without --etcd and stop it cleanly")
    txid, unpersisted = await asyncio.to_thread(fold_namespace, datadir.journal)
    if unpersisted:
        raise Invalid(f"{unpersisted} file(s) exist only in this node's cache: run `nsd persist -r /` on the "
                      "single node first")  # fmt: skip
    assert cluster.checkpoints is not None
    await cluster.checkpoints.upload(txid, datadir.journal / checkpoint_name(txid))
    secret = datadir.path / nfs_secret_file
    meta = _proposal(config)
    meta = ClusterMeta(
        **{**meta.__dict__, "admin_token": datadir.read_token(),
           "nfs_secret": secret.read_text().strip() if secret.exists() else meta.nfs_secret}
    )  # fmt: skip
    write_durably(datadir.path / CLUSTER_FILE, name.encode() + b"\n")
    log.info("single-node data dir %s becomes cluster %s from txid %d", datadir.path, name, txid)
    return meta, txid


def prepare_data_dir(datadir: DataDir, cluster: str, meta: ClusterMeta, nfs_secret_file: str) -> None:
    """Format an empty data dir for `cluster` (refusing one of another cluster or a single node),
    write the cluster's token and handle key into it and start its journal over at checkpoint 0."""
    marker = datadir.path / CLUSTER_FILE
    if datadir.is_formatted():
        datadir.check_version()
        owner = marker.read_text().strip() if marker.exists() else None
        if owner != cluster:
            what = f"cluster {owner}" if owner else "a single-node nsd"
            raise Invalid(f"data dir {datadir.path} belongs to {what}, not cluster {cluster}; use an empty data dir")
    else:
        datadir.path.mkdir(parents=True, exist_ok=True)
        write_durably(marker, cluster.encode() + b"\n")  # before VERSION, which ends the format
        datadir.format(meta.root_ufs)
    write_durably(datadir.token_file, meta.admin_token.encode() + b"\n", mode=0o600)
    os.chmod(datadir.token_file, 0o600)
    write_durably(datadir.path / nfs_secret_file, meta.nfs_secret.encode() + b"\n", mode=0o600)
    for old in datadir.journal.iterdir():
        old.unlink()
    initial_checkpoint(
        datadir.journal,
        root_uid=meta.root_uid,
        root_gid=meta.root_gid,
        root_mode=meta.root_mode,
        time_ns=meta.root_time_ns,
    )
