"""The daemon's state as one JSON-able report (`nsd report`, the status page)."""

from __future__ import annotations

import shutil
import time
from typing import TYPE_CHECKING, Any

from nsd import __version__, clients
from nsd.journal.segment import list_segments

if TYPE_CHECKING:
    from nsd.metrics import Metrics
    from nsd.vfs import Vfs

SECTIONS = ("summary", "capacity", "mounts", "journal", "clients")


def build_report(vfs: Vfs, metrics: Metrics) -> dict[str, Any]:
    """Every section. Cost: a stat per journal segment, a look at each open connection; no walk
    of the namespace."""
    store = vfs.store
    w = store.writer
    segments = list_segments(store.journal_dir)
    segment_bytes = sum(p.stat().st_size for _, p in segments if p.exists())
    disk = shutil.disk_usage(store.journal_dir)
    staged = sum(s.size for s in vfs.stager.stages.values())
    return {
        "summary": {
            "version": __version__,
            "uptime_s": time.monotonic() - vfs.started,
            "inodes": len(store.ns.inodes),
            "mounts": len(store.ns.mounts) + 1,
            "staged_files": len(vfs.stager.stages),
        },
        "capacity": {
            "data_dir_disk": {"total": disk.total, "used": disk.used, "free": disk.free},
            "journal_bytes": segment_bytes,
            "staged_bytes": staged,
        },
        "mounts": [m.to_json() for m in vfs.mount_table()],
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
