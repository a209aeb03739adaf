"""`nsd mount` and `nsd sync` against a real daemon."""

from __future__ import annotations

import json
import re
from pathlib import Path

from daemon import Daemon, nsd, start


def ok(result) -> str:  # type: ignore[no-untyped-def]
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


def test_mount_add_ls_sync_rm(daemon: Daemon, tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    (store / "seen.txt").write_bytes(b"from the store")
    uri = store.as_uri()
    typo = nsd("mount", "add", "/ext", uri, "-o", "secret_key=hunter2", daemon=daemon)  # a local store takes no keys
    assert typo.returncode == 2 and typo.stderr.decode().count("\n") == 1
    assert "unknown option 'secret_key' for a file:// mount" in typo.stderr.decode()
    assert "hunter2" not in typo.stderr.decode()
    ok(nsd("mount", "add", "/ext", uri, "-o", "sync_interval=-1", daemon=daemon))
    human = ok(nsd("mount", "ls", daemon=daemon))
    assert re.search(rf"^/ext\s+rw\s+unused\s+never\s+{re.escape(uri)}\s", human, re.M)
    assert "sync_interval=-1" in human
    table = json.loads(ok(nsd("mount", "ls", "--json", daemon=daemon)))
    assert [(m["path"], m["readonly"]) for m in table] == [("/", False), ("/ext", False)]
    assert nsd("cat", "/ext/seen.txt", daemon=daemon).stdout == b"from the store"
    assert ok(nsd("ls", "/ext", daemon=daemon)).split() == ["seen.txt"]

    (store / "later.txt").write_bytes(b"later")
    assert ok(nsd("ls", "/ext", daemon=daemon)).split() == ["seen.txt"]  # never re-checked by itself
    assert "1 directories listed" in ok(nsd("sync", "-r", "/ext", daemon=daemon))
    assert ok(nsd("ls", "/ext", daemon=daemon)).split() == ["later.txt", "seen.txt"]

    bad = nsd("mount", "add", "/ext", uri, daemon=daemon)
    assert bad.returncode == 1 and "already mounted" in bad.stderr.decode()
    usage = nsd("mount", "add", "/x", uri, "-o", "novalue", daemon=daemon)
    assert usage.returncode == 2 and "KEY=VALUE" in usage.stderr.decode()
    root = nsd("mount", "rm", "/", daemon=daemon)
    assert root.returncode == 2 and "root mount cannot be unmounted" in root.stderr.decode()  # not a valid request

    ok(nsd("mount", "rm", "/ext", daemon=daemon))
    assert nsd("stat", "/ext", daemon=daemon).returncode == 1
    assert (store / "seen.txt").exists()  # unmount never touches the under-storage


def test_mounts_survive_restart_and_readonly_refuses_writes(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    (store / "f").write_bytes(b"ro data")
    (tmp_path / "local").write_bytes(b"x")
    data = tmp_path / "data"
    d = start(data)
    ok(nsd("mount", "add", "--readonly", "/ro", store.as_uri(), daemon=d))
    assert d.stop() == 0
    d2 = start(data)
    try:
        assert re.search(r"^/ro\s+ro\s", ok(nsd("mount", "ls", daemon=d2)), re.M)
        assert nsd("cat", "/ro/f", daemon=d2).stdout == b"ro data"
        refused = nsd("put", str(tmp_path / "local"), "/ro/new", daemon=d2)
        assert refused.returncode == 1 and "read-only mount" in refused.stderr.decode()
        assert not (store / "new").exists()
    finally:
        d2.stop()
