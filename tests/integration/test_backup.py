"""Backups taken under write load restore to a data dir that serves the same tree and content."""

from __future__ import annotations

import tarfile
import threading
from pathlib import Path

import requests
from daemon import nsd, start


def test_backup_under_load_restores_the_same_tree(tmp_path: Path) -> None:
    d = start(tmp_path / "data")
    written: dict[str, bytes] = {}
    stop = threading.Event()

    def load() -> None:
        s = d.session()
        s.post(f"{d.url}/api/v1/fs/mkdir", json={"path": "/load"}).raise_for_status()
        i = 0
        while not stop.is_set():
            body = f"file {i}\n".encode() * (i % 50 + 1)
            s.put(f"{d.url}/api/v1/fs/content", params={"path": f"/load/f{i:05d}"}, data=body).raise_for_status()
            written[f"f{i:05d}"] = body
            i += 1

    writer = threading.Thread(target=load)
    writer.start()
    try:
        while len(written) < 30:
            stop.wait(0.05)
        acked_before = set(written)
        archive = tmp_path / "nsd.backup"
        result = nsd("journal", "backup", "-q", str(archive), daemon=d)
        assert result.returncode == 0, result.stderr.decode()
        while len(written) < len(acked_before) + 20:  # writes went on during and after the backup
            stop.wait(0.05)
    finally:
        stop.set()
        writer.join(30)
        assert d.stop() == 0
    assert archive.stat().st_mode & 0o777 == 0o600
    with tarfile.open(archive) as tar:
        assert {"nsd-backup.json", "root.uri"} <= set(tar.getnames())

    restored = tmp_path / "restored"
    out = nsd("journal", "restore", str(archive), "--data-dir", str(restored))
    assert out.returncode == 0, out.stderr.decode()
    again = nsd("journal", "restore", str(archive), "--data-dir", str(restored))
    assert again.returncode == 1 and "empty data dir" in again.stderr.decode()

    d2 = start(restored)
    try:
        entries = requests.get(f"{d2.url}/api/v1/fs/list", params={"path": "/load"}).json()["entries"]
        names = {e["name"] for e in entries}
        assert acked_before <= names <= set(written)
        for name in names:
            body = requests.get(f"{d2.url}/api/v1/fs/content", params={"path": f"/load/{name}"}).content
            assert body == written[name], name
    finally:
        assert d2.stop() == 0
    verify = nsd("journal", "verify", "--data-dir", str(restored))
    assert verify.returncode == 0, verify.stderr.decode()
