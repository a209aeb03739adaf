"""Hadoop's own Java client for tests: `hadoop fs` (FsShell) from the Hadoop client jars that
PyPI's pyspark ships, run on the machine's Java against a real daemon."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pyspark
from daemon import Daemon

JARS = Path(pyspark.__file__).parent / "jars"


def conf_dir(where: Path) -> Path:
    """An empty Hadoop configuration (core-site.xml) in `where`."""
    (where / "core-site.xml").write_text('<?xml version="1.0"?>\n<configuration></configuration>\n')
    return where


class Hadoop:
    def __init__(self, server: Daemon, conf: Path, user: str | None = None) -> None:
        """`user`: HADOOP_USER_NAME, the user.name FsShell sends (None: the user running the test)."""
        self.root = "webhdfs://" + server.url.split("://", 1)[1]
        self.conf = conf
        self.env = {**os.environ, "HADOOP_USER_NAME": user} if user else None

    def __call__(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        """`hadoop fs ARGS`; a leading "/" in an argument means a path on nsd."""
        argv = [self.root + a if a.startswith("/") else a for a in args]
        cmd = ["java", "-cp", f"{self.conf}:{JARS}/*", "org.apache.hadoop.fs.FsShell", *argv]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=self.env)
        if ok:
            assert result.returncode == 0, f"hadoop fs {' '.join(args)}: {result.stderr}"
        return result
