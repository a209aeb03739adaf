"""One running nsd seen through each of its doors, as a user would use them: the admin API and
the `nsd` CLI, WebHDFS through HdfsCLI, and NFS through libnfs-utils (nfs-ls, nfs-cat, nfs-cp).

Each call returns what the client got; helpers that expect success assert it.
"""

from __future__ import annotations

import os
import pwd
import subprocess
from typing import Any

import requests
from daemon import Daemon, nsd
from hdfs import InsecureClient

ME = pwd.getpwuid(os.getuid()).pw_name
TIMEOUT = 60  # a door that does not answer within this is a hang, and fails the test


class Doors:
    def __init__(self, daemon: Daemon) -> None:
        self.d = daemon
        self.hdfs = InsecureClient(daemon.url, user=ME, timeout=TIMEOUT)

    # ---- admin API and CLI ----------------------------------------------------------------

    def api(self, endpoint: str, **params: Any) -> requests.Response:
        return requests.get(f"{self.d.url}/api/v1/{endpoint}", params=params, timeout=TIMEOUT)

    def api_names(self, path: str) -> list[str]:
        r = self.api("fs/list", path=path)
        assert r.status_code == 200, r.text
        return [e["name"] for e in r.json()["entries"]]

    def api_stat(self, path: str) -> dict[str, Any]:
        r = self.api("fs/stat", path=path)
        assert r.status_code == 200, r.text
        return dict(r.json())

    def cli_cat(self, path: str) -> bytes:
        out = nsd("fs", "cat", path, daemon=self.d)
        assert out.returncode == 0, out.stderr.decode()
        return out.stdout

    # ---- WebHDFS (HdfsCLI) ----------------------------------------------------------------

    def hdfs_names(self, path: str) -> list[str]:
        return list(self.hdfs.list(path))

    def hdfs_read(self, path: str) -> bytes:
        with self.hdfs.read(path) as r:
            return bytes(r.read())

    def hdfs_status(self, path: str) -> dict[str, Any] | None:
        return self.hdfs.status(path, strict=False)

    # ---- NFS (libnfs-utils) ---------------------------------------------------------------

    def nfs(self, tool: str, *args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([tool, *args], capture_output=True, timeout=TIMEOUT)

    def nfs_ls(self, path: str) -> dict[str, tuple[str, int]]:
        """name -> (mode string, size) of each entry, from nfs-ls."""
        out = self.nfs("nfs-ls", self.d.nfs_url(path))
        assert out.returncode == 0, out.stdout.decode() + out.stderr.decode()
        entries = {}
        for line in out.stdout.decode().splitlines():
            mode, _nlink, _uid, _gid, size, name = line.split(maxsplit=5)
            entries[name] = (mode, int(size))
        return entries

    def nfs_names(self, path: str) -> list[str]:
        return sorted(self.nfs_ls(path))

    def nfs_cat(self, path: str) -> bytes:
        out = self.nfs("nfs-cat", self.d.nfs_url(path))
        assert out.returncode == 0, out.stderr.decode()
        return out.stdout

    # ---- all at once ----------------------------------------------------------------------

    def names(self, path: str) -> dict[str, list[str]]:
        """The directory's names as each door lists them."""
        return {
            "admin": sorted(self.api_names(path)),
            "webhdfs": sorted(self.hdfs_names(path)),
            "nfs": self.nfs_names(path),
        }

    def contents(self, path: str) -> dict[str, bytes]:
        """The file's bytes as each door reads them."""
        return {"cli": self.cli_cat(path), "webhdfs": self.hdfs_read(path), "nfs": self.nfs_cat(path)}

    def sizes(self, path: str) -> dict[str, int]:
        parent, name = path.rsplit("/", 1)
        status = self.hdfs_status(path)
        return {
            "admin": int(self.api_stat(path)["size"]),
            "webhdfs": -1 if status is None else int(status["length"]),
            "nfs": self.nfs_ls(parent)[name][1],
        }


def same(values: dict[str, Any]) -> Any:
    """The one value every door agrees on (fails showing each door's answer otherwise)."""
    distinct = {repr(v) for v in values.values()}
    assert len(distinct) == 1, values
    return next(iter(values.values()))
