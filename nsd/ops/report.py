"""The daemon's state as one JSON-able report (`nsd report`, the status page)."""

from __future__ import annotations

import shutil
import time
from typing import TYPE_CHECKING, Any

from nsd import __version__
from nsd.ops import clients

if TYPE_CHECKING:
    from nsd.ops.metrics import Metrics
    from nsd.vfs import Vfs

SECTIONS = ("summary", "capacity", "mounts", "cache", "journal", "clients", "cluster")


def event_loop_name() -> str:
    """uvloop or asyncio: which event loop the daemon runs on (the `event_loop` setting)."""
    import asyncio  # here: the CLI imports this module for SECTIONS alone

    return type(asyncio.get_running_loop()).__module__.split(".")[0]


def build_report(vfs: Vfs, metrics: Metrics) -> dict[str, Any]:
    """Every section. Cost: a stat per journal segment, a look at each open connection; no walk
    of the namespace."""
    from nsd.journal.segment import list_segments  # here: the CLI imports SECTIONS, not the journal

    store = vfs.store
    w = store.writer
    segments = list_segments(store.journal_dir)
    segment_bytes = sum(p.stat().st_size for _, p in segments if p.exists())
    disk = shutil.disk_usage(store.journal_dir)
    staged = sum(s.size for s in vfs.stager.stages.values())
    cache = cache_report(vfs)
    tiers = cache.get("tiers", [])
    report: dict[str, Any] = {
        "summary": {
            "version": __version__,
            "uptime_s": time.monotonic() - vfs.started,
            "event_loop": event_loop_name(),
            "inodes": len(store.ns.inodes),
            "mounts": len(store.ns.mounts) + 1,
            "staged_files": len(vfs.stager.stages),
        },
        "capacity": {
            "data_dir_disk": {"total": disk.total, "used": disk.used, "free": disk.free},
            "journal_bytes": segment_bytes,
            "staged_bytes": staged,
            "cache_capacity_bytes": sum(t["capacity"] for t in tiers if t["tier"] != "memory"),
            "cache_used_bytes": sum(t["used"] for t in tiers if t["tier"] != "memory"),
            "cache_memory_bytes": {t["tier"]: t["capacity"] for t in tiers}.get("memory", 0),
        },
        "mounts": [m.to_json() for m in vfs.mount_table()],
        "cache": cache,
        "journal": {
            "last_txid": w.last_txid,
            "durable_txid": w.durable_txid,
            "checkpoint_txid": store.checkpoint_txid,
            "checkpoint_seconds": store.last_checkpoint_seconds,
            "appends": w.stats.appends,
            "fsyncs": w.stats.fsyncs,
            "max_batch_records": w.stats.max_batch_records,
            "max_fsync_seconds": w.stats.max_fsync_seconds,
            "segments": len(segments),
            "segment_bytes": segment_bytes,
        },
        "clients": clients.report(metrics.http_clients, metrics.rpc_servers),
    }
    if metrics.cluster is not None:
        report["cluster"] = metrics.cluster.snapshot()
        if metrics.cluster_cache is not None:
            report["cluster"]["cache"] = metrics.cluster_cache.snapshot()
    return report


def cache_report(vfs: Vfs) -> dict[str, Any]:
    """Tiers (capacity, used), logical vs physical bytes, hits, misses, evictions, bytes from the
    cache vs the UFS, pending persists, corrupt blocks. Cost: O(referenced blocks)."""
    if vfs.cache is None:
        return {"enabled": False}
    out: dict[str, Any] = {"enabled": True, **vfs.cache.report()}
    if vfs.persister is not None:
        status = vfs.persister.status()
        out["persists_done"] = status["persisted"]
        out["persist_failures"] = status["failures"]
    return out


def cache_line(vfs: Vfs, peers: dict[str, int]) -> dict[str, Any]:
    """This node's line of `nsd report cache` in a cluster (`peers`: its cluster-cache counters)."""
    if vfs.cache is None:
        return {}
    r = vfs.cache.report()
    tiers = r.get("tiers", [])
    return {
        "capacity": sum(t["capacity"] for t in tiers),
        "used": sum(t["used"] for t in tiers),
        "blocks": sum(t["blocks"] for t in tiers if t["tier"] != "memory"),
        "hits": r["hits"],
        "misses": r["misses"],
        "hit_ratio": r["hit_ratio"],
        "bytes_from_ufs": r["bytes_from_ufs"],
        "bytes_from_peers": peers.get("bytes_from_peers", 0),
        "bytes_served": peers.get("bytes_served", 0),
    }
