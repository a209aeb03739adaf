"""What nsd counts and how it is read: request counters and latencies per protocol and op,
plus gauges read from the running parts at scrape time (journal, checkpoints, namespace,
mounts, staging, connections). Also holds who the clients are (`nsd report clients`).
Rendered in the Prometheus text format by prometheus_client.
"""

from __future__ import annotations

import bisect
import collections
import gc
import itertools
import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, SummaryMetricFamily
from prometheus_client.registry import Collector

from nsd.gcpause import PAUSES, GcPauses
from nsd.ops.clients import HttpClients, RpcListenerView
from nsd.ufs.wrap.health import UNREACHABLE

if TYPE_CHECKING:
    from aiohttp import web

    from nsd.vfs import Vfs

LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
RECENT_ERRORS = 20


class RecentErrors(logging.Handler):
    """The last few warnings and errors, for the status page."""

    def __init__(self, keep: int = RECENT_ERRORS) -> None:
        super().__init__(logging.WARNING)
        self.records: collections.deque[tuple[float, str, str]] = collections.deque(maxlen=keep)

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.created, record.levelname.lower(), record.getMessage()))


class HttpOverloadView(Protocol):
    """What the HTTP limits turned away (protocols.http.limits.Overload)."""

    refused_connections: int
    busy_replies: int
    stalled_uploads: int


class BusyPollView(Protocol):
    idle_seconds: float


class NfsListenerView(RpcListenerView, Protocol):
    @property
    def poller(self) -> BusyPollView | None: ...


class ClusterView(Protocol):
    def snapshot(self) -> dict[str, Any]: ...


class AnswersView(Protocol):
    def answers_sent_again(self) -> dict[str, int]: ...


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = _Requests()
        self.registry.register(self.requests)
        self.started = time.time()
        self.recent_errors = RecentErrors()
        self.http_clients = HttpClients()
        self.rpc_servers: list[NfsListenerView] = []  # NFS/MOUNT (and portmap) listeners, for connection counts
        self.nfs_answers: AnswersView | None = None  # NFS answers sent again as kept (replies, pages)
        self.http_server: web.Server | None = None
        self.http_overload: HttpOverloadView | None = None  # what the HTTP limits turned away
        self.cluster: ClusterView | None = None  # cluster mode: this node's part
        self.cluster_cache: ClusterView | None = None  # cluster mode: blocks to and from other nodes

    def observe(self, protocol: str, op: str, seconds: float, error: str | None = None) -> None:
        self.requests.observe(protocol, op, seconds, error)

    def watch(self, vfs: Vfs) -> None:
        """Read the running parts at scrape time (no bookkeeping on the hot paths)."""
        self.registry.register(_StateCollector(vfs, self))

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _gc_metrics(pauses: GcPauses) -> Iterator[Any]:
    yield counter("nsd_gc_full_collections", "Full runs of Python's cyclic garbage collector.", pauses.full_collections)
    yield gauge("nsd_gc_longest_full_seconds", "Longest full garbage collection (a pause of the loop).", pauses.longest)
    yield gauge("nsd_gc_frozen_objects", "Objects left out of garbage collection (nsd.gcpause).", gc.get_freeze_count())


def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


class LatencyRow:
    """Calls of one (protocol, operation): how many, their total seconds, and one count per
    latency bucket. A server keeps the row of each operation it routes and adds to it directly."""

    __slots__ = ("buckets", "count", "seconds")

    def __init__(self) -> None:
        self.count = 0
        self.seconds = 0.0
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)

    def add(self, seconds: float) -> None:
        self.count += 1
        self.seconds += seconds
        self.buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1  # le: the first bound >= seconds


class _Requests(Collector):
    """Requests, errors and latencies per (protocol, operation), the numbers behind
    nsd_requests_total, nsd_request_errors_total and the nsd_request_seconds histogram.

    Added to once per request on the event loop, so it keeps plain ints and floats (a
    LatencyRow per label pair, which an RPC server looks up once per route, not per call) and
    builds the Prometheus families only when scraped: prometheus_client's own Counter and
    Histogram take a lock and walk the buckets on every call, a sizeable share of a GETATTR.
    """

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], LatencyRow] = {}
        self._errors: collections.Counter[tuple[str, str, str]] = collections.Counter()

    def row(self, protocol: str, op: str) -> LatencyRow:
        row = self._rows.get((protocol, op))
        if row is None:
            row = self._rows[protocol, op] = LatencyRow()
        return row

    def error(self, protocol: str, op: str, error: str) -> None:
        self._errors[protocol, op, error] += 1

    def observe(self, protocol: str, op: str, seconds: float, error: str | None = None) -> None:
        self.row(protocol, op).add(seconds)
        if error is not None:
            self.error(protocol, op, error)

    def collect(self) -> Iterator[Any]:
        labels = ["protocol", "op"]
        requests = CounterMetricFamily("nsd_requests", "Requests served, by protocol and operation.", labels=labels)
        latency = HistogramMetricFamily(
            "nsd_request_seconds", "Request latency, by protocol and operation.", labels=labels
        )
        for key, row in sorted(self._rows.items()):
            requests.add_metric(list(key), row.count)
            cumulative = list(itertools.accumulate(row.buckets))
            bounds = [*(_le(b) for b in LATENCY_BUCKETS), "+Inf"]
            latency.add_metric(list(key), list(zip(bounds, cumulative, strict=True)), sum_value=row.seconds)
        errors = CounterMetricFamily(
            "nsd_request_errors",
            "Requests answered with an error, by protocol, operation and error.",
            labels=["protocol", "op", "error"],
        )
        for key3, n in sorted(self._errors.items()):
            errors.add_metric(list(key3), n)
        yield requests
        yield errors
        yield latency


def _le(bound: float) -> str:
    return repr(float(bound))  # as prometheus_client writes bucket bounds: 0.0001, 1.0, 2.5


class _StateCollector(Collector):
    def __init__(self, vfs: Vfs, metrics: Metrics) -> None:
        self.vfs = vfs
        self.metrics = metrics
        self.started = metrics.started

    def collect(self) -> Iterator[Any]:
        store = self.vfs.store
        w = store.writer.stats
        yield gauge("nsd_uptime_seconds", "Seconds since the daemon started.", time.time() - self.started)
        yield gauge("nsd_inodes", "Inodes in the namespace.", len(store.ns.inodes))
        yield gauge("nsd_mounts", "Mounts, the root mount included.", len(store.ns.mounts) + 1)
        yield from _mount_metrics(self.vfs.mount_table())
        yield gauge("nsd_journal_last_txid", "Last journal transaction id appended.", store.writer.last_txid)
        yield gauge("nsd_journal_durable_txid", "Last journal transaction id on disk.", store.writer.durable_txid)
        yield counter("nsd_journal_appends", "Journal records appended.", w.appends)
        yield counter("nsd_journal_fsyncs", "Journal fsyncs (one per group commit).", w.fsyncs)
        yield gauge("nsd_journal_last_batch_records", "Records in the last group commit.", w.last_batch_records)
        yield gauge("nsd_journal_max_batch_records", "Largest group commit so far.", w.max_batch_records)
        yield gauge("nsd_journal_last_fsync_seconds", "Duration of the last journal fsync.", w.last_fsync_seconds)
        yield gauge("nsd_journal_max_fsync_seconds", "Longest journal fsync so far.", w.max_fsync_seconds)
        yield gauge("nsd_checkpoint_txid", "Transaction id of the newest checkpoint.", store.checkpoint_txid)
        yield gauge(
            "nsd_checkpoint_duration_seconds", "How long the last checkpoint took.", store.last_checkpoint_seconds
        )
        open_now = GaugeMetricFamily("nsd_open_connections", "Open client connections.", labels=["protocol"])
        open_now.add_metric(["nfs"], sum(len(s.connections) for s in self.metrics.rpc_servers))
        http = self.metrics.http_server
        open_now.add_metric(["http"], len(http.connections) if http is not None else 0)
        yield open_now
        turned = CounterMetricFamily(
            "nsd_overload", "Work turned away by a limit, by protocol and what happened.", labels=["protocol", "reason"]
        )
        servers, ho = self.metrics.rpc_servers, self.metrics.http_overload
        turned.add_metric(["nfs", "connection_refused"], sum(s.refused_connections for s in servers))
        turned.add_metric(["nfs", "jukebox"], sum(s.busy_replies for s in servers))
        turned.add_metric(["nfs", "idle_closed"], sum(s.closed_idle for s in servers))
        turned.add_metric(["nfs", "slow_client_aborted"], sum(s.aborted_slow for s in servers))
        if ho is not None:
            turned.add_metric(["http", "connection_refused"], ho.refused_connections)
            turned.add_metric(["http", "busy_503"], ho.busy_replies)
            turned.add_metric(["http", "stalled_upload_408"], ho.stalled_uploads)
        yield turned
        pollers = [s.poller for s in servers if s.poller is not None]
        yield counter(
            "nsd_nfs_busy_poll_idle_seconds",
            "Seconds the NFS loop spent polling after traffic with no call arriving (nfs_busy_poll_us).",
            sum(p.idle_seconds for p in pollers),
        )
        if self.metrics.nfs_answers is not None:
            again = CounterMetricFamily(
                "nsd_nfs_answers_sent_again",
                "NFS answers sent as kept while the namespace did not change: whole GETATTR, LOOKUP and "
                "ACCESS replies (reply), READDIR(PLUS) pages (page).",
                labels=["kind"],
            )
            for kind, count in self.metrics.nfs_answers.answers_sent_again().items():
                again.add_metric([kind], count)
            yield again
        yield gauge("nsd_staged_files", "Files with staged, unsealed writes.", len(self.vfs.stager.stages))
        yield from _gc_metrics(PAUSES)
        yield counter("nsd_ufs_listings", "Directory listings fetched from under-storage.", self.vfs.discovery.listings)
        yield counter("nsd_ufs_stats", "Single-object lookups sent to under-storage.", self.vfs.discovery.stats)
        if self.vfs.cache is not None:
            yield from _cache_metrics(self.vfs.cache.report(), len(self.vfs.ns.persist_pending))
        if self.metrics.cluster is not None:
            yield from _cluster_metrics(self.metrics.cluster.snapshot())
        if self.metrics.cluster_cache is not None:
            c = self.metrics.cluster_cache.snapshot()
            yield gauge("nsd_cluster_cache_members", "Nodes the block ring spans.", c["members"])
            yield gauge(
                "nsd_cluster_cache_members_unreachable",
                "Members whose HTTP port takes no connection (no reads or redirects go there).",
                len(c["unreachable"]),
            )
            yield counter(
                "nsd_cluster_cache_bytes_from_peers", "Block bytes fetched from their owners.", c["bytes_from_peers"]
            )
            yield counter("nsd_cluster_cache_bytes_served", "Block bytes served to other nodes.", c["bytes_served"])
            yield counter(
                "nsd_cluster_cache_bytes_to_owners", "Block bytes sent to their owners.", c["bytes_to_owners"]
            )
            yield counter("nsd_cluster_cache_peer_misses", "Blocks their owner did not have.", c["peer_misses"])


def _cluster_metrics(c: dict[str, Any]) -> Iterator[Any]:
    """Cluster mode: role, lag behind etcd's log, failovers, replication and etcd round trips."""
    yield gauge("nsd_cluster_leader", "1 while this node leads the cluster, else 0.", c["role"] == "leader")
    yield gauge("nsd_cluster_applied_txid", "Last journal txid this node applied.", c["applied_txid"])
    yield gauge("nsd_cluster_lag_txids", "Records etcd's log holds that this node has not applied.", c["lag"])
    yield counter("nsd_cluster_failovers", "Leader changes this node saw.", c["failovers"])
    yield counter("nsd_cluster_became_leader", "Times this node became the leader.", c["became_leader"])
    yield counter("nsd_cluster_replicated_batches", "Journal batches this node put in etcd.", c["batches_replicated"])
    yield counter("nsd_cluster_replicated_bytes", "Journal bytes this node put in etcd.", c["bytes_replicated"])
    yield counter("nsd_cluster_etcd_retries", "etcd calls retried because etcd was unreachable.", c["etcd_retries"])
    yield gauge("nsd_cluster_etcd_up", "1 if the last etcd call reached an endpoint.", c["etcd_healthy"])
    yield gauge("nsd_cluster_checkpoint_txid", "Newest checkpoint in shared storage.", c["checkpoint_txid"])
    rtt = SummaryMetricFamily(
        "nsd_cluster_etcd_rtt_seconds",
        "Round trips of successful etcd calls.",
        count_value=c["etcd_calls"],
        sum_value=c["etcd_rtt_seconds_total"],
    )
    yield rtt


def _mount_metrics(views: list[Any]) -> Iterator[Any]:
    """Per mount: is its store reachable (alert on 0), and since when its state holds."""
    up = GaugeMetricFamily(
        "nsd_mount_up",
        "1 while a mount's under-storage answers (or was not needed yet), 0 while it is unreachable.",
        labels=["mount", "kind"],
    )
    since = GaugeMetricFamily(
        "nsd_mount_state_since_seconds", "Unix time of a mount's last change of state.", labels=["mount", "kind"]
    )
    for v in views:
        up.add_metric([v.path, v.kind], 0 if v.state == UNREACHABLE else 1)
        if v.since is not None:
            since.add_metric([v.path, v.kind], v.since)
    yield up
    yield since


def _cache_metrics(r: dict[str, Any], pending: int) -> Iterator[Any]:
    """The block cache: per tier capacity/used/blocks, hits by tier, and the totals of `nsd report cache`."""
    per_tier = {
        "capacity": GaugeMetricFamily("nsd_cache_capacity_bytes", "Capacity of a cache tier.", labels=["tier"]),
        "used": GaugeMetricFamily("nsd_cache_used_bytes", "Bytes of blocks in a cache tier.", labels=["tier"]),
        "blocks": GaugeMetricFamily("nsd_cache_blocks", "Blocks in a cache tier.", labels=["tier"]),
    }
    for t in r["tiers"]:
        for key, family in per_tier.items():
            family.add_metric([t["tier"]], t[key])
    yield from per_tier.values()
    hits = CounterMetricFamily("nsd_cache_hits", "Block reads served from the cache, by tier.", labels=["tier"])
    hits.add_metric(["memory"], r["hits_memory"])
    hits.add_metric(["disk"], r["hits_disk"])
    yield hits
    evictions = CounterMetricFamily("nsd_cache_evictions", "Blocks evicted, by tier.", labels=["tier"])
    evictions.add_metric(["memory"], r["memory_evictions"])
    evictions.add_metric(["disk"], r["evictions"])
    yield evictions
    served = CounterMetricFamily("nsd_cache_read_bytes", "Bytes read, by where they came from.", labels=["source"])
    served.add_metric(["cache"], r["bytes_from_cache"])
    served.add_metric(["ufs"], r["bytes_from_ufs"])
    yield served
    yield counter("nsd_cache_lookups_hit", "Block lookups of reads that found the block cached.", r["hits"])
    yield counter("nsd_cache_misses", "Block lookups of reads that went to the under-storage.", r["misses"])
    yield gauge("nsd_cache_hit_ratio", "Hits / (hits + misses) of block lookups since start.", r["hit_ratio"])
    yield gauge("nsd_cache_logical_bytes", "Bytes of cached file ranges, summed over files.", r["logical_bytes"])
    yield gauge("nsd_cache_physical_bytes", "Bytes of blocks stored, each block once.", r["physical_bytes"])
    yield gauge("nsd_cache_dedup_ratio", "Logical / physical bytes (0 when empty).", r["dedup_ratio"])
    yield counter("nsd_cache_corrupt_blocks", "Blocks found not to match their name (dropped).", r["corrupt_blocks"])
    yield counter(
        "nsd_cache_refetched_blocks", "Cached blocks lost (evicted, corrupt) and read again.", r["refetched_blocks"]
    )
    yield counter(
        "nsd_cache_read_ahead_blocks", "Blocks fetched from the UFS ahead of sequential reads.", r["read_ahead_blocks"]
    )
    yield gauge("nsd_cache_pending_persists", "Files waiting for a background persist.", pending)
    yield gauge("nsd_cache_pinned_files", "Pinned files.", r["pinned_files"])
