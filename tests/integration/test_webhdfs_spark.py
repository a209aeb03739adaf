"""Spark (pyspark, local mode) reading and writing through webhdfs:// on a real daemon: listing,
block locations for splits, ranged reads of Parquet footers, and the output committer's
temporary directories and renames."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import requests
from daemon import Daemon

SCRIPT = """
import sys
from pyspark.sql import SparkSession
root = sys.argv[1]
s = SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false").getOrCreate()
df = s.read.option("header", True).csv(root + "/in/")
print("ROWS", sorted(tuple(int(v) for v in r) for r in df.collect()))
df.write.mode("overwrite").parquet(root + "/out/")
print("BACK", sorted(tuple(int(v) for v in r) for r in s.read.parquet(root + "/out/").collect()))
s.stop()
"""


def test_spark_csv_in_parquet_out(daemon: Daemon, tmp_path: Path) -> None:
    web = daemon.url + "/webhdfs/v1"
    for name, body in (("a.csv", b"x,y\n1,2\n3,4\n"), ("b.csv", b"x,y\n5,6\n")):
        r = requests.put(f"{web}/in/{name}", params={"op": "CREATE", "user.name": "root"}, data=body)
        assert r.status_code == 201, r.text  # requests follows the 307 with the body
    (tmp_path / "job.py").write_text(SCRIPT)
    root = "webhdfs://" + daemon.url.split("://", 1)[1]
    result = subprocess.run(
        [sys.executable, str(tmp_path / "job.py"), root], capture_output=True, text=True, timeout=400
    )
    assert result.returncode == 0, result.stderr[-4000:]
    lines = {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in result.stdout.splitlines() if " " in line}
    assert lines["ROWS"] == "[(1, 2), (3, 4), (5, 6)]"
    assert lines["BACK"] == "[(1, 2), (3, 4), (5, 6)]"
    listing = requests.get(f"{web}/out", params={"op": "LISTSTATUS"}).json()["FileStatuses"]["FileStatus"]
    names = [e["pathSuffix"] for e in listing]
    assert "_SUCCESS" in names and "_temporary" not in names
    assert any(n.endswith(".parquet") for n in names)
