"""A short mixed load (tools/bench/load.py measures the long one): behaviour only, no timings.

40 clients, half NFS and half WebHDFS, for a few seconds: every operation succeeds, every client
gets work done, the daemon's memory stays bounded, and the namespace is clean afterwards.
"""

from __future__ import annotations

from pathlib import Path

import psutil
from daemon import fsck_problems, start
from loadgen import run_load

CLIENTS = 40
SECONDS = 8.0


def test_mixed_load_has_no_errors_and_bounded_memory(tmp_path: Path) -> None:
    d = start(tmp_path / "data")
    try:
        d.session().post(f"{d.url}/api/v1/fs/mkdir", json={"path": "/load"}).raise_for_status()
        proc = psutil.Process(d.proc.pid)
        rss_before = proc.memory_info().rss
        res, _ = run_load(d.url, d.nfs_port, CLIENTS, SECONDS)
        rss_after = proc.memory_info().rss
        assert res.total_errors == 0, res.samples
        assert {op.split()[0] for op in res.ops} == {"nfs", "webhdfs"}
        assert res.total_ops > CLIENTS * 5, res.total_ops  # everyone got work done
        assert rss_after - rss_before < 200 << 20, f"RSS grew {(rss_after - rss_before) >> 20} MiB"
        listed = d.session().get(f"{d.url}/api/v1/fs/list", params={"path": "/load"}).json()["entries"]
        assert len(listed) == CLIENTS  # one directory per client, through both doors
        assert not fsck_problems(d)
    finally:
        assert d.stop() == 0
