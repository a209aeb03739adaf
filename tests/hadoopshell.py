"""Hadoop's own FsShell (`hadoop fs`) from the Hadoop client jars PyPI's pyspark ships, run on the
machine's Java against a daemon's WebHDFS."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pyspark
from daemon import Daemon

JARS = Path(pyspark.__file__).parent / "jars"


class Hadoop:
    def __init__(self, server: Daemon, conf: Path, user: str | None = None) -> None:
        self.root = "webhdfs://" + server.url.split("://", 1)[1]
        self.conf = conf
        self.env = {**os.environ, "HADOOP_USER_NAME": user} if user else None  # simple auth's user.name

    def __call__(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        """`hadoop fs ARGS`; a leading "/" in an argument means a path on nsd."""
        argv = [self.root + a if a.startswith("/") else a for a in args]
        cmd = ["java", "-cp", f"{self.conf}:{JARS}/*", "org.apache.hadoop.fs.FsShell", *argv]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=self.env)
        if ok:
            assert result.returncode == 0, f"hadoop fs {' '.join(args)}: {result.stderr[-3000:]}"
        return result
