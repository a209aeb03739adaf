"""kill -9 of cluster nodes (the leader or a follower) under mixed NFS + WebHDFS load through all
nodes, a few rounds (the long run is tools/crash_cluster.py). See tests/clustercrash.py."""

from __future__ import annotations

import os
from pathlib import Path

from clustercrash import ClusterCrashRun

KILLS = int(os.environ.get("NSD_CLUSTER_CRASH_KILLS", "4"))


def test_nothing_acknowledged_is_lost_when_cluster_nodes_are_killed_under_load(tmp_path: Path) -> None:
    run = ClusterCrashRun(tmp_path, workers=3, seed=20261205, leader_share=0.75).run(KILLS)
    stats = run.stats
    assert stats.kills == KILLS and stats.fsck_clean == KILLS
    assert stats.acked > KILLS * 10, stats  # real work between kills, through every node
    assert run.failovers, "at least one round killed the leader"
    assert max(run.failovers) < 10, run.failovers  # a follower took over within 10 s
    assert not stats.unexpected, stats.unexpected[:5]
