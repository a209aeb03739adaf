"""The NFS benchmarks under tools/bench still run, end to end, at a tiny size. They measure
nothing here (benchmarks are not timed tests); a bench that no longer runs is a bug nobody
sees until the numbers are wanted, as nfs_big.py's offline build was once inode ids had to be
reserved."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "tools" / "bench"


def run_bench(tmp_path: Path, script: str, *args: str) -> str:
    out = subprocess.run(
        [sys.executable, str(BENCH / script), "--dir", str(tmp_path), *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_nfs_big_builds_a_namespace_offline_and_compares_it_with_a_small_daemon(tmp_path: Path) -> None:
    # More ids than a daemon reserves at once (2**20): the build must reserve its own.
    out = run_bench(tmp_path, "nfs_big.py", "--inodes", "1100000", "--rounds", "1", "--seconds", "0.3")
    assert "built 1,100,000 inodes" in out
    rows = {line.split("  ")[0]: line.split() for line in out.splitlines() if line.startswith(("GETATTR", "LOOKUP"))}
    assert sorted(rows) == ["GETATTR ops/s @1", "GETATTR ops/s @32", "LOOKUP ops/s @1", "LOOKUP ops/s @32"]
    assert all(float(row[-1].rstrip("x")) > 0 for row in rows.values())  # big/small: both answered


def test_the_nfs_bench_runs_its_call_rows_against_nsd_alone(tmp_path: Path) -> None:
    out = run_bench(tmp_path, "nfs.py", "--calls-only", "--no-ganesha", "--ops-seconds", "0.3", "--size-mib", "1")
    for row in ("list entries/s, first", "GETATTR ops/s @32", "LOOKUP ops/s @1", "CREATE+REMOVE ops/s @32"):
        assert any(line.startswith(row) for line in out.splitlines()), (row, out)
