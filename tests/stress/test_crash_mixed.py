"""SIGKILL under mixed NFS + WebHDFS load, a dozen times (the long run is tools/crash_long.py).

After every kill: the journal verifies; after every restart on the same ports: every
acknowledged change is there byte for byte (read through a door chosen at random), every
unacknowledged one left its path as before or as after and nothing else, directories list
exactly the model, and `nsd fsck` is clean. See tests/crashload.py for what counts as an ack.
"""

from __future__ import annotations

import os
from pathlib import Path

from crashload import CrashRun

KILLS = int(os.environ.get("NSD_CRASH_KILLS", "12"))


def test_acknowledged_changes_survive_sigkill_under_nfs_and_webhdfs_load(tmp_path: Path) -> None:
    run = CrashRun(tmp_path, workers=4, seed=20260301)
    stats = run.run(KILLS)
    assert stats.kills == KILLS and stats.fsck_clean == KILLS
    assert stats.acked > KILLS * 20, stats  # real work between kills, through both doors
    assert stats.readbacks > stats.kills * 10, stats
    assert stats.in_flight_at_kill > 0, "some kills landed in the middle of a change"
    assert list((tmp_path / "data" / "journal").glob("*.ckpt")), "checkpoints ran during the run"
