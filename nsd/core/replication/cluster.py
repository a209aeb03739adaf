"""One node of an nsd cluster: the journal replicated through etcd, one leader at a time.

Theory of operation. Keys live under /nsd/<cluster>/:

    meta               JSON, written once by the first node (format): root UFS, admin token,
                       NFS handle key, the root's attributes
    leader             the leader's name, on the leader's lease; its create_revision is the term
    nodes/<name>       JSON about a live node (addresses, role, applied txid), on its lease
    known/<name>       the same for every node that joined, without a lease: one missing from
                       nodes/ is shown "down" until `nsd cluster remove` forgets it
    log/<txid:016x>    a run of framed journal records, the first of them at txid
    checkpoint         JSON {"txid": T}: the newest checkpoint in shared storage; log keys
                       up to T are deleted once it is recorded (and etcd's history compacted)

The leader alone appends. The journal writer hands each group-commit batch to `replicate`
before it wakes any waiter; that puts the batch under log/ in ONE txn that holds only while
the leader key still has this node's term (and the batch's key is new), so a change is
acknowledged only after etcd committed it, and a deposed leader (its lease expired, another
took over) can never append again: its txn fails, the writer fails and the daemon restarts
itself as a follower (`Fenced`).

Followers watch log/ and apply each record through `MetaStore.apply_replicated` (the same
apply as recovery, at the same txid), so their writer's last txid is the txid applied. A
follower campaigns when the leader key is gone, in a txn that also requires log/<applied+1>
not to exist: only a follower that has applied everything etcd holds can win, so nothing
acknowledged is lost and nothing is applied twice.

A batch larger than etcd's request limit is put as several keys (one txn each, each fenced).

Checkpoints keep etcd small: when the leader has written a checkpoint at T (always the end
of one of its batches), it uploads the file to shared storage (`checkpoints.py`), records T
under `checkpoint` in a fenced txn, deletes the log keys up to T and compacts etcd's history.
A starting node loads the newest shared checkpoint and replays the log after it. A follower
that finds the log it still needs deleted (it lagged behind a whole checkpoint) restarts
itself the same way (`Behind`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nsd.core.metastore import MetaStore
from nsd.core.replication.checkpoints import SharedCheckpoints
from nsd.core.replication.etcd import (
    Compacted,
    Etcd,
    EtcdError,
    EtcdUnavailable,
    KeyValue,
    compare_created,
    op_delete,
    op_get,
    op_put,
    prefix_end,
)
from nsd.errors import NotFound, NotLeader, NotPermitted, NsdError, Unavailable
from nsd.journal.ops import CacheBlock, Op, decode_op
from nsd.journal.record import scan_all
from nsd.namespace import FileInode, Namespace

log = logging.getLogger("nsd.cluster")

MAX_PUT_BYTES = 1 << 20  # below etcd's default request limit (1.5 MiB) with room for the txn around it
CATCH_UP_PAGE = 64  # log keys per range while catching up
POLL_SECONDS = 0.25  # how often a follower looks for a missing leader
REPORT_SECONDS = 1.0  # how often a node refreshes nodes/<name> (addresses, role, applied txid)
RETRY_FIRST, RETRY_MAX = 0.05, 1.0


class Fenced(NsdError):
    """This node lost leadership while it meant to append: it may never append again."""


class Behind(Fenced):
    """This node needs log records etcd no longer holds: it starts over from the newest checkpoint."""


@dataclass(frozen=True)
class ClusterMeta:
    """What every node shares, fixed when the first node formats the cluster."""

    root_ufs: str
    admin_token: str
    nfs_secret: str  # hex
    root_uid: int
    root_gid: int
    root_mode: int
    root_time_ns: int

    def encode(self) -> bytes:
        return json.dumps({"version": 1, **self.__dict__}).encode()

    @classmethod
    def decode(cls, data: bytes) -> ClusterMeta:
        fields = json.loads(data)
        if fields.pop("version", None) != 1:
            raise NsdError("cluster metadata in etcd has a format this nsd does not read")
        return cls(**fields)


def split_batch(first: int, data: bytes, limit: int = MAX_PUT_BYTES) -> list[tuple[int, bytes]]:
    """Cut framed records into runs of at most `limit` bytes (a bigger single record stays whole),
    each with the txid of its first record."""
    records, stop = scan_all(data)
    if not stop.clean or (records and records[0].txid != first):
        raise ValueError(f"batch at txid {first} is not a clean run of records ({stop.describe()})")
    runs: list[tuple[int, bytes]] = []
    start = 0
    for rec in records:
        if rec.end - start > limit and rec.offset > start:
            runs.append((_txid_at(records, start), data[start : rec.offset]))
            start = rec.offset
    if start < len(data):
        runs.append((_txid_at(records, start), data[start:]))
    return runs


def _txid_at(records: list[Any], offset: int) -> int:
    return next(r.txid for r in records if r.offset == offset)


@dataclass
class ClusterStats:
    failovers: int = 0  # times this node saw the leader change
    became_leader: int = 0
    batches_replicated: int = 0
    bytes_replicated: int = 0
    etcd_retries: int = 0
    checkpoints_published: int = 0
    log_end: int = 0  # the last txid in etcd's log, as last looked at (followers, every REPORT_SECONDS)
    checkpoint_txid: int = 0  # the newest published (as this node last saw it)
    last_leader_change: float = field(default_factory=time.time)


class Cluster:
    """This node in the cluster `name`; `attach` it to the MetaStore before `start`."""

    def __init__(
        self,
        etcd: Etcd,
        cluster: str,
        node: str,
        *,
        lease_ttl: float = 5.0,
        checkpoints: SharedCheckpoints | None = None,
    ) -> None:
        self.etcd = etcd
        self.checkpoints = checkpoints
        self.cluster = cluster
        self.node = node
        self.lease_ttl = lease_ttl
        self.prefix = f"/nsd/{cluster}/".encode()
        self.role = "follower"
        self.term = 0  # create_revision of the leader key while this node leads
        self.leader: str | None = None
        self.leader_from = 0  # first txid this node appended as leader
        self.store: MetaStore | None = None
        self.addresses: dict[str, str] = {}
        self.stats = ClusterStats()
        self.lease = 0
        self._lease_renewed = 0.0
        self._applied = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._side_tasks: set[asyncio.Task[None]] = set()
        self._addresses_of: dict[str, dict[str, str]] = {}  # node name -> its doors' addresses
        self.on_leader: list[Callable[[], None]] = []  # called once this node leads
        # live nodes (their nodes/ keys: addresses, role, applied txid), refreshed every REPORT_SECONDS
        self.members: dict[str, dict[str, Any]] = {}
        self.on_members: list[Callable[[dict[str, dict[str, Any]]], None]] = []  # called when the set changes
        self.on_fenced: Callable[[BaseException], None] | None = None

    # -- keys ----------------------------------------------------------------------------

    def key(self, *parts: str) -> bytes:
        return self.prefix + "/".join(parts).encode()

    @property
    def log_prefix(self) -> bytes:
        return self.key("log/")

    def log_key(self, txid: int) -> bytes:
        return self.key(f"log/{txid:016x}")

    # -- format or join ------------------------------------------------------------------

    async def format_or_join(self, proposal: ClusterMeta, checkpoint: int = 0) -> tuple[ClusterMeta, bool]:
        """The cluster's metadata: `proposal` if this node formats the cluster now (True), else
        what the first node wrote (False). `checkpoint`: the txid of a checkpoint already in
        shared storage the new cluster starts from (a single node becoming a cluster)."""
        meta_key = self.key("meta")
        also = [op_put(self.key("checkpoint"), json.dumps({"txid": checkpoint}).encode())] if checkpoint else []
        created, reply = await self.etcd.txn(
            [compare_created(meta_key, 0)],
            [op_put(meta_key, proposal.encode()), *also],
            [op_get(meta_key)],
        )
        if created:
            log.info("formatted cluster %r in etcd (root under-storage %s)", self.cluster, proposal.root_ufs)
            return proposal, True
        kvs = reply["responses"][0]["response_range"].get("kvs", [])
        return ClusterMeta.decode(KeyValue.from_json(kvs[0]).value), False

    # -- attach and catch up -------------------------------------------------------------

    def attach(self, store: MetaStore) -> None:
        """Let this node decide when `store` may append, and replicate every batch it writes."""
        self.store = store
        store.append_refusal = self.append_refusal
        store.writer.sink = self.replicate
        if self.checkpoints is not None:
            store.on_checkpoint = self.publish_checkpoint

    @property
    def applied_txid(self) -> int:
        assert self.store is not None
        return self.store.writer.last_txid

    def append_refusal(self) -> NsdError | None:
        if self.role != "leader":
            if self.leader is None:
                return Unavailable("the cluster has no leader right now; retry in a few seconds")
            return NotLeader(f"node {self.node} is a follower; the leader is {self.leader}")
        if not self.etcd.healthy:
            return Unavailable("etcd is unreachable: changes are refused until it answers (reads go on)")
        return None

    async def catch_up(self) -> int:
        """Apply every record etcd holds past the applied txid; the etcd revision read at."""
        while True:
            start = self.log_key(self.applied_txid + 1)
            r = await self.etcd.range(start, prefix_end(self.log_prefix), limit=CATCH_UP_PAGE)
            for kv in r.kvs:
                self._apply_batch(kv.value)
            if not r.more:
                return r.revision

    def _apply_batch(self, data: bytes) -> None:
        assert self.store is not None
        records, stop = scan_all(data)
        if not stop.clean:
            raise EtcdError(f"a log batch in etcd is damaged ({stop.describe()})")
        for rec in records:
            if rec.txid <= self.applied_txid:
                continue  # already applied (a catch-up and the watch overlap)
            if rec.txid != self.applied_txid + 1:
                raise Behind(f"node {self.node} is at txid {self.applied_txid} but etcd's log resumes at {rec.txid}")
            self.store.apply_replicated(rec.txid, decode_op(rec.code, rec.payload))
        self._applied.set()
        self._applied = asyncio.Event()

    async def wait_applied(self, txid: int, timeout: float) -> None:
        """Return once this node has applied `txid`; Unavailable after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while self.applied_txid < txid:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Unavailable(f"node {self.node} has not applied txid {txid} yet (at {self.applied_txid})")
            try:
                await asyncio.wait_for(self._applied.wait(), left)
            except TimeoutError:
                continue

    # -- replication (leader) -----------------------------------------------------------

    async def replicate(self, first: int, last: int, data: bytes) -> None:
        """The writer's sink: put the batch in etcd under this node's term, or raise Fenced."""
        if self.term == 0 or last < self.leader_from:
            return  # records copied from etcd while following: already there
        if self.role != "leader":
            raise Fenced(f"node {self.node} is no longer the leader; txids {first}..{last} not replicated")
        for run_first, run in split_batch(first, data):
            await self._put_run(run_first, run)
        self.stats.batches_replicated += 1
        self.stats.bytes_replicated += len(data)

    async def _put_run(self, first: int, data: bytes) -> None:
        key = self.log_key(first)
        compare = [compare_created(self.key("leader"), self.term), compare_created(key, 0)]
        delay = RETRY_FIRST
        while True:
            try:
                ok, _ = await self.etcd.txn(compare, [op_put(key, data)])
                if ok:
                    return
                existing = await self.etcd.get(key)
                if existing is not None and existing.value == data:
                    return  # an earlier try went through; its reply was lost
                self._lose_leadership("its log txn failed the leader compare")
                raise Fenced(f"node {self.node} was deposed (term {self.term}); txid {first} not replicated")
            except EtcdUnavailable as e:
                self.stats.etcd_retries += 1
                log.warning("etcd unreachable putting txid %d; retrying: %s", first, e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)

    def take_facts(self, ops: list[CacheBlock]) -> int:
        """Leader: journal the cache facts a follower found, each only while its file still has
        the version it was read under; how many were taken."""
        if self.role != "leader" or self.store is None:
            raise NotLeader(f"node {self.node} is not the leader")

        def plan(ns: Namespace) -> list[Op]:
            return [
                op
                for op in ops
                if isinstance(live := ns.inodes.get(op.ino), FileInode) and live.fingerprint == op.fingerprint
            ]

        return len(self.store.record(plan))

    # -- checkpoints (leader) --------------------------------------------------------------

    async def publish_checkpoint(self, txid: int, path: Path) -> None:
        """The store's checkpoint hook: share the checkpoint at `txid`, then drop the log it covers.

        Only a leader checkpoint that ends one of its own batches (txid >= leader_from) may cut
        the log: an earlier one may end inside a batch the previous leader wrote. Failures are
        logged and leave etcd as it was; the next checkpoint tries again."""
        if self.role != "leader" or self.checkpoints is None or txid < self.leader_from:
            return
        started = time.monotonic()
        try:
            await self.checkpoints.upload(txid, path)
            ok, reply = await self.etcd.txn(
                [compare_created(self.key("leader"), self.term)],
                [op_put(self.key("checkpoint"), json.dumps({"txid": txid}).encode()),
                 op_delete(self.log_prefix, end=self.log_key(txid + 1))],
            )  # fmt: skip
            if not ok:
                log.warning("checkpoint at txid %d not recorded: node %s no longer leads", txid, self.node)
                return
            await self.etcd.compact(int(reply["header"]["revision"]))
            await self.checkpoints.prune(txid)
        except NsdError as e:
            log.warning("could not share the checkpoint at txid %d: %s; etcd keeps the log", txid, e.message)
            return
        self.stats.checkpoints_published += 1
        self.stats.checkpoint_txid = txid
        log.info(
            "checkpoint at txid %d shared (%s) and etcd's log before it dropped in %.2fs",
            txid,
            self.checkpoints.where(txid),
            time.monotonic() - started,
        )

    async def forget(self, name: str) -> None:
        """`nsd cluster remove NAME`: a node that is down leaves the list of nodes; Invalid if live."""
        if name == self.node or await self.etcd.get(self.key(f"nodes/{name}")) is not None:
            raise NotPermitted(f"node {name} is live: stop it first (SIGTERM), then remove it")
        if not await self.etcd.delete(self.key(f"known/{name}")):
            raise NotFound(f"cluster {self.cluster} has no node {name}")

    async def exists(self) -> bool:
        """Whether the cluster was formatted in etcd already."""
        return await self.etcd.get(self.key("meta")) is not None

    async def newest_checkpoint(self) -> int:
        """The txid of the newest shared checkpoint etcd names (0: none yet)."""
        kv = await self.etcd.get(self.key("checkpoint"))
        return int(json.loads(kv.value)["txid"]) if kv is not None else 0

    def _lose_leadership(self, why: str) -> None:
        if self.role == "leader":
            log.error("node %s lost leadership (term %d): %s", self.node, self.term, why)
        self.role = "follower"
        self.leader = None

    # -- life ------------------------------------------------------------------------------

    async def start(self, addresses: dict[str, str]) -> None:
        """Take a lease, say this node is up, and follow the leader (or become it)."""
        self.addresses = addresses
        await self._new_lease()
        await self._report()
        body = {"name": self.node, "applied_txid": 0, **addresses}
        await self.etcd.put(self.key(f"known/{self.node}"), json.dumps(body).encode())
        await self.refresh_members()
        current = await self.etcd.get(self.key("leader"))
        if current is not None:
            self._see_leader(current.value.decode())  # known before the first client asks
        self._tasks = [
            asyncio.create_task(self._keep_lease(), name="cluster-lease"),
            asyncio.create_task(self._follow(), name="cluster-follow"),
            asyncio.create_task(self._elect(), name="cluster-elect"),
            asyncio.create_task(self._report_loop(), name="cluster-report"),
        ]

    async def stop(self) -> None:
        """Stop following, campaigning and reporting (the lease is kept until `close`)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def close(self) -> None:
        """Leave: give up the lease (a leader's key goes with it, so a follower takes over at once)."""
        await self.stop()
        try:
            if self.lease:
                await self.etcd.revoke(self.lease)
        except NsdError as e:
            log.warning("could not give up the etcd lease: %s", e)
        await self.etcd.close()
        if self.checkpoints is not None:
            await self.checkpoints.close()

    async def _new_lease(self) -> None:
        self.lease = await self.etcd.grant(self.lease_ttl)
        self._lease_renewed = time.monotonic()

    async def _keep_lease(self) -> None:
        while True:
            await asyncio.sleep(self.lease_ttl / 3)
            try:
                left = await self.etcd.keepalive(self.lease)
            except NsdError as e:
                log.warning("cannot renew the etcd lease: %s", e)
                continue
            if left > 0:
                self._lease_renewed = time.monotonic()
                continue
            if self.role == "leader":
                self._fence(Fenced(f"node {self.node}'s etcd lease expired while it led (term {self.term})"))
                return
            log.warning("etcd lease of node %s expired; taking a new one", self.node)
            try:
                await self._new_lease()
                await self._report()
            except NsdError as e:
                log.warning("cannot take a new etcd lease: %s", e)

    def _fence(self, exc: Fenced) -> None:
        self._lose_leadership(exc.message)
        if self.on_fenced is not None:
            self.on_fenced(exc)

    async def _follow(self) -> None:
        """Apply the leader's records as they come (until this node leads)."""
        while self.role != "leader":
            try:
                revision = await self.catch_up()
                async for event in self.etcd.watch(self.log_prefix, prefix=True, start_revision=revision + 1):
                    if self.role == "leader":
                        return
                    if event.put:
                        self._apply_batch(event.kv.value)
            except Compacted:
                continue  # a checkpoint was published: catch up from the keys that are left
            except Behind as e:
                self._fence(e)
                return
            except (EtcdUnavailable, EtcdError) as e:
                log.warning("following the log: %s; retrying", e)
                await asyncio.sleep(RETRY_MAX)

    async def _elect(self) -> None:
        """Watch for a missing leader and campaign: only a node that applied everything can win."""
        while self.role != "leader":
            try:
                current = await self.etcd.get(self.key("leader"))
                if current is None:
                    await self._campaign()
                else:
                    self._see_leader(current.value.decode())
            except Behind as e:
                self._fence(e)
                return
            except (EtcdUnavailable, EtcdError) as e:
                log.debug("election: %s", e)
            await asyncio.sleep(POLL_SECONDS)

    def _see_leader(self, name: str | None) -> None:
        if name == self.node and self.role != "leader":
            name = None  # the key of this node's previous life (killed): nobody leads until its lease ends
        if name != self.leader:
            if self.leader is not None or name is not None:
                self.stats.failovers += 1 if self.leader is not None else 0
                self.stats.last_leader_change = time.time()
            log.info("leader of cluster %s: %s", self.cluster, name)
            self.leader = name
            self._addresses_of.clear()  # a node back under its name may listen elsewhere
            if self._tasks:  # a leader change often means a node is gone: see the members now
                task = asyncio.get_running_loop().create_task(self._refresh_quietly())
                self._side_tasks.add(task)
                task.add_done_callback(self._side_tasks.discard)

    async def _refresh_quietly(self) -> None:
        try:
            await self.refresh_members()
        except NsdError as e:
            log.debug("cannot read the members: %s", e)

    async def _campaign(self) -> None:
        await self.catch_up()
        assert self.store is not None
        nxt = self.applied_txid + 1
        ok, reply = await self.etcd.txn(
            [compare_created(self.key("leader"), 0), compare_created(self.log_key(nxt), 0)],
            [op_put(self.key("leader"), self.node.encode(), lease=self.lease)],
        )
        if not ok:
            return
        term = int(reply["header"]["revision"])
        await self.store.writer.sync(self.store.writer.last_txid)  # copied records on disk first
        self.term, self.leader_from = term, self.applied_txid + 1
        self.role = "leader"
        self._see_leader(self.node)
        self.stats.became_leader += 1
        log.info("node %s leads cluster %s from txid %d (term %d)", self.node, self.cluster, nxt, term)
        await self._report()
        for callback in self.on_leader:
            callback()

    async def _report(self) -> None:
        body = {"name": self.node, "role": self.role, "applied_txid": self.applied_txid, **self.addresses}
        await self.etcd.put(self.key(f"nodes/{self.node}"), json.dumps(body).encode(), lease=self.lease)

    async def _report_loop(self) -> None:
        while True:
            await asyncio.sleep(REPORT_SECONDS)
            try:
                if self.role != "leader":
                    self.stats.log_end = await self.log_end()
                await self._report()
                await self.refresh_members()
            except NsdError as e:
                log.debug("cannot report node state: %s", e)

    async def refresh_members(self) -> None:
        """Read the live nodes from etcd; tell `on_members` when the set of names changed."""
        r = await self.etcd.range(self.key("nodes/"), prefix=True)
        members = {m["name"]: m for m in (json.loads(kv.value) for kv in r.kvs)}
        changed = members.keys() != self.members.keys()
        self.members = members
        if changed:
            log.info("cluster %s members: %s", self.cluster, ", ".join(sorted(members)))
            for callback in self.on_members:
                callback(members)

    async def leader_http(self) -> str:
        """The leader's HTTP base URL; Unavailable while there is none."""
        return await self.leader_address("http")

    async def leader_address(self, door: str) -> str:
        """Where the leader serves `door` ("http": its base URL, "nfs": host:port), from its
        nodes/ key; Unavailable while there is no leader or it has not said yet."""
        leader = self.leader
        if leader is None:
            raise Unavailable("the cluster has no leader right now; retry in a few seconds")
        cached = self._addresses_of.get(leader) or self.members.get(leader)
        if cached is None:
            kv = await self.etcd.get(self.key(f"nodes/{leader}"))
            if kv is None:
                raise Unavailable(f"the leader {leader} has not said where it listens yet; retry")
            cached = self._addresses_of[leader] = json.loads(kv.value)
        return str(cached[door])

    async def log_end(self) -> int:
        """The last txid etcd's log holds now (what a change acknowledged before this call is within)."""
        r = await self.etcd.range(self.log_prefix, prefix=True, limit=1, last=True)
        if not r.kvs:
            return await self.newest_checkpoint()
        records, _ = scan_all(r.kvs[0].value)
        return records[-1].txid if records else 0

    # -- status ----------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """This node's view without asking etcd (metrics, the status page, `nsd report`)."""
        st = self.stats
        applied = self.applied_txid if self.store is not None else 0
        log_end = applied if self.role == "leader" else max(st.log_end, applied)
        return {
            "cluster": self.cluster,
            "node": self.node,
            "role": self.role,
            "leader": self.leader,
            "applied_txid": applied,
            "lag": log_end - applied,
            "failovers": st.failovers,
            "became_leader": st.became_leader,
            "batches_replicated": st.batches_replicated,
            "bytes_replicated": st.bytes_replicated,
            "etcd_retries": st.etcd_retries,
            "checkpoints_published": st.checkpoints_published,
            "checkpoint_txid": st.checkpoint_txid,
            "etcd_healthy": self.etcd.healthy,
            "etcd_calls": self.etcd.calls,
            "etcd_rtt_seconds_total": self.etcd.rtt_total,
            "etcd_last_rtt_seconds": self.etcd.last_rtt,
        }

    async def status(self) -> dict[str, Any]:
        """The cluster as etcd and this node see it (what `nsd cluster status` prints)."""
        leader: str | None = None
        nodes: list[dict[str, Any]] = []
        known: list[dict[str, Any]] = []
        error = None
        try:
            current = await self.etcd.get(self.key("leader"))
            leader = current.value.decode() if current is not None else None
            r = await self.etcd.range(self.key("nodes/"), prefix=True)
            nodes = [json.loads(kv.value) for kv in r.kvs]
            known = [json.loads(kv.value) for kv in (await self.etcd.range(self.key("known/"), prefix=True)).kvs]
            self.stats.checkpoint_txid = await self.newest_checkpoint()
        except NsdError as e:
            error = e.message
        cluster_txid = max([self.applied_txid, *(n.get("applied_txid", 0) for n in nodes if n["name"] == leader)])
        if self.role == "leader":
            cluster_txid = self.applied_txid
        live = {n["name"] for n in nodes}
        for n in nodes:
            n["state"] = "live"
            if n["name"] == self.node:
                n.update(role=self.role, applied_txid=self.applied_txid, **self.addresses)
            n["role"] = "leader" if n["name"] == leader else "follower"
            n["lag"] = max(0, cluster_txid - n["applied_txid"])
        if self.node not in live:
            nodes.append(
                {"name": self.node, "role": self.role, "state": "live", "applied_txid": self.applied_txid,
                 "lag": max(0, cluster_txid - self.applied_txid), **self.addresses}
            )  # fmt: skip
            live.add(self.node)
        for k in known:  # joined once, no lease now: dead, stopped, or removed without `cluster remove`
            if k["name"] not in live:
                nodes.append({**k, "role": "follower", "state": "down", "applied_txid": None, "lag": None})
        etcd = []
        for endpoint in self.etcd.endpoints:
            try:
                st = await self.etcd.status(endpoint)
                etcd.append({"endpoint": endpoint, "health": "ok", "version": st.get("version", ""),
                             "db_size": int(st.get("dbSize", 0))})  # fmt: skip
            except NsdError as e:
                etcd.append({"endpoint": endpoint, "health": "down", "error": e.message})
        return {
            "cluster": self.cluster,
            "node": self.node,
            "leader": leader,
            "node_leader": self.leader,  # the leader this node sends changes to
            "txid": cluster_txid,
            "nodes": sorted(nodes, key=lambda n: n["name"]),
            "etcd": etcd,
            "etcd_healthy": self.etcd.healthy and error is None,
            "etcd_rtt_seconds": self.etcd.last_rtt,
            "failovers": self.stats.failovers,
            "checkpoint_txid": self.stats.checkpoint_txid,  # newest shared checkpoint; etcd's log starts after it
            "error": error,
        }
