"""The `nsd` CLI against a real daemon, as a user runs it."""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import re
import signal
import time
import urllib.request
from pathlib import Path

from daemon import Daemon, nsd, start


def ok(result) -> str:  # type: ignore[no-untyped-def]
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


def test_put_get_cat_round_trip(daemon: Daemon, tmp_path: Path) -> None:
    local = tmp_path / "in.bin"
    payload = os.urandom(3 * (1 << 20) + 17)  # several upload chunks, odd tail
    local.write_bytes(payload)
    ok(nsd("mkdir", "-p", "/data/raw", daemon=daemon))
    ok(nsd("put", str(local), "/data/raw/blob", daemon=daemon))
    out = tmp_path / "out.bin"
    ok(nsd("get", "/data/raw/blob", str(out), daemon=daemon))
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(payload).digest()
    assert nsd("cat", "/data/raw/blob", daemon=daemon).stdout == payload
    # File data reaches the root under-storage (write-through).
    assert (daemon.data_dir / "ufs" / "data" / "raw" / "blob").read_bytes() == payload


def test_ls_and_stat_in_both_output_modes(daemon: Daemon, tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"hello")
    ok(nsd("mkdir", "/d", daemon=daemon))
    ok(nsd("put", str(tmp_path / "f"), "/d/b.txt", daemon=daemon))
    ok(nsd("mkdir", "/d/a", daemon=daemon))
    assert ok(nsd("ls", "/d", daemon=daemon)).split() == ["a", "b.txt"]
    long = ok(nsd("ls", "-l", "/d", daemon=daemon)).splitlines()
    assert long[0].startswith("drwxr-xr-x") and long[0].endswith(" a")
    assert long[1].startswith("-rw-r--r--") and " 5 " in long[1] and long[1].endswith(" b.txt")
    entries = json.loads(ok(nsd("ls", "--json", "/d", daemon=daemon)))
    assert [(e["name"], e["type"], e["size"]) for e in entries] == [("a", "dir", 0), ("b.txt", "file", 5)]
    info = json.loads(ok(nsd("stat", "--json", "/d/b.txt", daemon=daemon)))
    assert info["size"] == 5 and info["type"] == "file" and info["mode"] == 0o644 and info["nlink"] == 1
    assert info["uid"] == os.getuid()
    human = ok(nsd("stat", "/d/b.txt", daemon=daemon))
    assert "size: 5" in human and "-rw-r--r--" in human
    assert f"owner: {pwd.getpwuid(os.getuid()).pw_name} ({os.getuid()})" in human
    assert re.search(r"data: P-. \(persisted True, pinned False, ", human)  # what ls -l abbreviates


def test_mv_rm_and_their_errors(daemon: Daemon, tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x")
    ok(nsd("mkdir", "-p", "/a/b", daemon=daemon))
    ok(nsd("put", str(tmp_path / "f"), "/a/f", daemon=daemon))
    ok(nsd("mv", "/a/f", "/a/b", daemon=daemon))  # into the directory, like mv(1)
    assert ok(nsd("ls", "/a/b", daemon=daemon)).split() == ["f"]
    ok(nsd("mv", "/a/b/f", "/a/g", daemon=daemon))
    assert (daemon.data_dir / "ufs" / "a" / "g").read_bytes() == b"x"

    not_empty = nsd("rm", "/a", daemon=daemon)
    assert not_empty.returncode == 1 and "not empty" in not_empty.stderr.decode()
    ok(nsd("rm", "-r", "/a", daemon=daemon))
    missing = nsd("cat", "/a/g", daemon=daemon)
    assert missing.returncode == 1
    assert len(missing.stderr.decode().strip().splitlines()) == 1
    assert "/a" in missing.stderr.decode()
    assert not (daemon.data_dir / "ufs" / "a").exists()


def test_put_refuses_to_overwrite_without_force(daemon: Daemon, tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"one")
    ok(nsd("put", str(tmp_path / "f"), "/f", daemon=daemon))
    (tmp_path / "f").write_bytes(b"two!")
    again = nsd("put", str(tmp_path / "f"), "/f", daemon=daemon)
    assert again.returncode == 1 and "exists" in again.stderr.decode()
    ok(nsd("put", "-f", str(tmp_path / "f"), "/f", daemon=daemon))
    assert nsd("cat", "/f", daemon=daemon).stdout == b"two!"


def test_hostile_names_get_clear_errors(daemon: Daemon) -> None:
    for path, words in [
        ("/x/../etc", "'..'"),
        ("/" + "n" * 256, "too long"),
        ("/a\x00b", "NUL"),
        ("relative", "absolute"),
    ]:
        body = {"path": path}
        response = daemon.session().post(f"{daemon.url}/api/v1/fs/mkdir", json=body)
        assert response.status_code == 400, (path, response.text)
        assert words in response.json()["error"]["message"], (path, response.text)
    deep = "/" + "/".join(["d" * 200] * 21)  # > 4096 bytes
    response = daemon.session().post(f"{daemon.url}/api/v1/fs/mkdir", json={"path": deep, "parents": True})
    assert response.status_code == 400 and "too long" in response.json()["error"]["message"]


def test_mutations_need_the_token(daemon: Daemon) -> None:
    import requests

    anonymous = requests.post(f"{daemon.url}/api/v1/fs/mkdir", json={"path": "/x"})
    assert anonymous.status_code == 401
    wrong = requests.post(
        f"{daemon.url}/api/v1/fs/mkdir", json={"path": "/x"}, headers={"Authorization": "Bearer nope"}
    )
    assert wrong.status_code == 401
    assert requests.get(f"{daemon.url}/api/v1/fs/stat", params={"path": "/x"}).status_code == 404
    assert (daemon.data_dir / "admin.token").stat().st_mode & 0o777 == 0o600


def test_unreachable_daemon_exits_3() -> None:
    result = nsd("--server", "http://127.0.0.1:1", "ls", "/")
    assert result.returncode == 3
    assert "cannot reach" in result.stderr.decode()


def test_second_daemon_on_same_dir_refuses(daemon: Daemon) -> None:
    second = nsd("serve", "--data-dir", str(daemon.data_dir), "--http-port", "0")
    assert second.returncode == 1
    assert "in use by another nsd" in second.stderr.decode()


def test_sigterm_checkpoints_and_restart_serves_the_same_tree(tmp_path: Path) -> None:
    data = tmp_path / "data"
    d = start(data)
    (tmp_path / "f").write_bytes(b"kept")
    ok(nsd("mkdir", "-p", "/keep/me", daemon=d))
    ok(nsd("put", str(tmp_path / "f"), "/keep/me/f", daemon=d))
    ok(nsd("mv", "/keep/me", "/keep/moved", daemon=d))
    before = json.loads(ok(nsd("stat", "--json", "/keep/moved/f", daemon=d)))
    assert d.stop(signal.SIGTERM) == 0
    ckpts = sorted((data / "journal").glob("*.ckpt"))
    assert ckpts and int(ckpts[-1].stem, 16) > 0  # a checkpoint beyond the format's

    d2 = start(data)
    try:
        after = json.loads(ok(nsd("stat", "--json", "/keep/moved/f", daemon=d2)))
        assert after == before
        assert nsd("cat", "/keep/moved/f", daemon=d2).stdout == b"kept"
    finally:
        assert d2.stop() == 0


def test_offline_journal_tools(tmp_path: Path) -> None:
    data = tmp_path / "data"
    d = start(data)
    ok(nsd("mkdir", "-p", "/j/k", daemon=d))
    running = nsd("journal", "verify", "--data-dir", str(data))
    assert running.returncode == 1 and "in use" in running.stderr.decode()
    d.kill()  # no shutdown checkpoint: the records stay in the log

    dump = ok(nsd("journal", "dump", "--data-dir", str(data)))
    assert "MkNode" in dump and "'k'" in dump
    records = [json.loads(line) for line in ok(nsd("journal", "dump", "--json", "--data-dir", str(data))).splitlines()]
    names = [r["fields"]["name"] for r in records if r.get("op") == "MkNode"]
    assert names == ["j", "k"]
    ops = [r for r in records if "op" in r]
    assert [r["op"] for r in ops] == ["ReserveInodes", "MkNode", "MkNode"]  # the ids "j" and "k" took, ahead
    assert "ok" in ok(nsd("journal", "verify", "--data-dir", str(data)))
    assert f"checkpoint at txid {ops[-1]['txid']}" in ok(nsd("journal", "checkpoint", "--data-dir", str(data)))
    d2 = start(data)
    try:
        assert ok(nsd("ls", "/j", daemon=d2)).split() == ["k"]
    finally:
        d2.stop()


def test_version_from_the_cli_and_the_daemon_agree(daemon: Daemon) -> None:
    from importlib.metadata import version

    out = ok(nsd("--version"))
    assert out.strip() == f"nsd {version('nsd')}"
    summary = json.loads(ok(nsd("report", "summary", "--json", daemon=daemon)))
    assert summary["summary"]["version"] == version("nsd")
    with urllib.request.urlopen(daemon.url + "/api/v1/status") as answer:
        assert json.load(answer)["version"] == version("nsd")


def test_hdfs_dfs_habits_globs_recursion_several_paths_and_stdio(daemon: Daemon, tmp_path: Path) -> None:
    (tmp_path / "x").write_bytes(b"hello\n")
    ok(nsd("mkdir", "-p", "/data/2026/a", "/data/2026/b", "/logs", daemon=daemon))
    ok(nsd("put", str(tmp_path / "x"), "/data/2026/a/x.csv", daemon=daemon))
    ok(nsd("put", str(tmp_path / "x"), "/data/2026/b/y.csv", daemon=daemon))
    ok(nsd("put", "-", "/data/s.txt", daemon=daemon, input=b"from stdin"))
    rows = ok(nsd("ls", "-l", "-h", "/data/2026/*/*.csv", daemon=daemon)).splitlines()
    assert [r.split()[-1] for r in rows] == ["/data/2026/a/x.csv", "/data/2026/b/y.csv"]
    assert all(" 6 B " in r and " P-- " in r for r in rows)  # size in binary units, data persisted
    tree = ok(nsd("ls", "-R", "/data", daemon=daemon)).split("\n\n")
    assert [block.splitlines()[0] for block in tree] == ["/data:", "/data/2026:", "/data/2026/a:", "/data/2026/b:"]
    assert ok(nsd("ls", "-d", "/data", "/logs", daemon=daemon)).split() == ["/data", "/logs"]
    assert nsd("ls", "/data/*.parquet", daemon=daemon).returncode == 1  # a glob that matches nothing
    assert nsd("test", "-d", "/data", daemon=daemon).returncode == 0
    assert nsd("test", "-f", "/data", daemon=daemon).returncode == 1
    assert nsd("test", "-e", "/nope", daemon=daemon).returncode == 1
    assert nsd("get", "/data/s.txt", "-", daemon=daemon).stdout == b"from stdin"
    ok(nsd("rm", "-f", "/nope", "/data/s.txt", daemon=daemon))
    assert nsd("rm", "/nope", daemon=daemon).returncode == 1
    ok(nsd("mv", "/data/2026/a/x.csv", "/data/2026/b/y.csv", "/logs", daemon=daemon))
    assert ok(nsd("ls", "/logs", daemon=daemon)).split() == ["x.csv", "y.csv"]


def test_get_keeps_local_files_as_put_keeps_remote_ones(daemon: Daemon, tmp_path: Path) -> None:
    (tmp_path / "src").write_bytes(b"remote bytes")
    ok(nsd("put", str(tmp_path / "src"), "/f", daemon=daemon))
    (tmp_path / "into").mkdir()
    ok(nsd("get", "/f", str(tmp_path / "into"), daemon=daemon))  # into an existing directory
    assert (tmp_path / "into" / "f").read_bytes() == b"remote bytes"
    (tmp_path / "into" / "f").write_bytes(b"mine")
    kept = nsd("get", "/f", str(tmp_path / "into" / "f"), daemon=daemon)
    assert kept.returncode == 1 and "use -f" in kept.stderr.decode() and kept.stderr.decode().count("\n") == 1
    assert (tmp_path / "into" / "f").read_bytes() == b"mine"
    ok(nsd("get", "-f", "/f", str(tmp_path / "into" / "f"), daemon=daemon))
    assert (tmp_path / "into" / "f").read_bytes() == b"remote bytes"
    missing = nsd("get", "/f", str(tmp_path / "no" / "such" / "x"), daemon=daemon)
    assert missing.returncode == 1 and "no such local directory" in missing.stderr.decode()
    assert not (tmp_path / "no").exists()
    # whole directories, both ways, as hdfs dfs -put / -get take them
    tree = tmp_path / "tree"
    (tree / "sub" / "deeper").mkdir(parents=True)
    (tree / "top.txt").write_bytes(b"top")
    (tree / "sub" / "deeper" / "leaf.bin").write_bytes(os.urandom(70_000))
    ok(nsd("mkdir", "/up", daemon=daemon))
    ok(nsd("put", str(tree), "/up", daemon=daemon))  # into the existing directory
    assert ok(nsd("find", "/up", daemon=daemon)).split() == [
        "/up",
        "/up/tree",
        "/up/tree/sub",
        "/up/tree/sub/deeper",
        "/up/tree/sub/deeper/leaf.bin",
        "/up/tree/top.txt",
    ]
    ok(nsd("get", "/up/tree", str(tmp_path / "back"), daemon=daemon))
    for f in ("top.txt", "sub/deeper/leaf.bin"):
        assert (tmp_path / "back" / f).read_bytes() == (tree / f).read_bytes()


def test_ttl_takes_units(daemon: Daemon) -> None:
    ok(nsd("mkdir", "/t", daemon=daemon))
    reply = json.loads(ok(nsd("ttl", "set", "/t", "1d", "--json", daemon=daemon)))
    assert abs(reply["expires_ns"] / 1e9 - (time.time() + 86400)) < 60
    bad = nsd("ttl", "set", "/t", "12x", daemon=daemon)
    assert bad.returncode == 2 and "expected a duration" in bad.stderr.decode()
    ok(nsd("mkdir", "/u", daemon=daemon))
    ok(nsd("ttl", "set", "/u", "2h", "--action", "delete", daemon=daemon))
    listed = json.loads(ok(nsd("ttl", "ls", "--json", daemon=daemon)))
    assert [(t["path"], t["action"]) for t in listed] == [("/u", "delete"), ("/t", "free")]  # soonest first
    rows = ok(nsd("ttl", "ls", daemon=daemon)).splitlines()
    assert rows[0].split()[-2:] == ["delete", "/u"] and rows[1].split()[-2:] == ["free", "/t"]


def test_cp_chmod_chown_checksum_xattrs_truncate_find_du(daemon: Daemon, tmp_path: Path) -> None:
    from hdfs import InsecureClient

    other = tmp_path / "other-store"
    other.mkdir()
    ok(nsd("mount", "add", "/other", other.as_uri(), daemon=daemon))
    payload = os.urandom(3 * (1 << 20) + 11)
    (tmp_path / "p").write_bytes(payload)
    ok(nsd("mkdir", "-p", "/src/deep", daemon=daemon))
    ok(nsd("put", str(tmp_path / "p"), "/src/deep/data.bin", daemon=daemon))
    ok(nsd("put", str(tmp_path / "p"), "/src/top.bin", daemon=daemon))
    # cp -r across mounts: the tree arrives in the other store
    ok(nsd("cp", "-r", "/src", "/other", daemon=daemon))
    assert (other / "src" / "deep" / "data.bin").read_bytes() == payload
    assert nsd("cp", "/src", "/other/x", daemon=daemon).returncode == 2  # a directory needs -r
    # checksum: the value Hadoop's clients get from WebHDFS for the same file
    line = ok(nsd("checksum", "/src/top.bin", daemon=daemon)).split("\t")
    hdfscli = InsecureClient(daemon.url, user="root").checksum("/src/top.bin")
    assert line[1:] == [hdfscli["algorithm"], hdfscli["bytes"] + "\n"]
    # chmod -R with a symbolic mode: X gives search to directories only
    ok(nsd("chmod", "-R", "go-rwx,u=rwX", "/src", daemon=daemon))
    modes = {e["name"]: e["mode"] for e in json.loads(ok(nsd("ls", "--json", "/src", daemon=daemon)))}
    assert modes == {"deep": 0o700, "top.bin": 0o600}
    ok(nsd("chmod", "+t,a+r", "/src", daemon=daemon))
    assert json.loads(ok(nsd("stat", "--json", "/src", daemon=daemon)))["mode"] == 0o1744
    assert nsd("chmod", "u+q", "/src", daemon=daemon).returncode == 2
    ok(nsd("chown", "-R", "hive:hadoop", "/src", daemon=daemon))
    owners = {(e["owner"], e["group"]) for e in json.loads(ok(nsd("ls", "--json", "/src/deep", daemon=daemon)))}
    assert owners == {("hive", "hadoop")}
    ok(nsd("setfattr", "-n", "user.origin", "-v", "s3 import", "/src/top.bin", daemon=daemon))
    assert json.loads(ok(nsd("getfattr", "--json", "/src/top.bin", daemon=daemon))) == {"user.origin": "s3 import"}
    ok(nsd("setfattr", "-x", "-n", "user.origin", "/src/top.bin", daemon=daemon))
    assert ok(nsd("getfattr", "/src/top.bin", daemon=daemon)).strip() == ""
    ok(nsd("truncate", "-s", "5", "/src/top.bin", daemon=daemon))
    assert nsd("cat", "/src/top.bin", daemon=daemon).stdout == payload[:5]
    assert ok(nsd("find", "/src", "-name", "*.bin", daemon=daemon)).split() == ["/src/deep/data.bin", "/src/top.bin"]
    assert ok(nsd("du", "-s", "-h", "/src", daemon=daemon)).split() == ["3.0", "MiB", "/src"]


def test_tail_follow_prints_what_is_appended(daemon: Daemon, tmp_path: Path) -> None:
    import subprocess
    import sys

    ok(nsd("put", "-", "/log", daemon=daemon, input=b"first\n"))
    env = {**os.environ, "NSD_SERVER": daemon.url, "NSD_DATA_DIR": str(daemon.data_dir)}
    follower = subprocess.Popen(
        [sys.executable, "-m", "nsd.cli", "tail", "-f", "--interval", "0.2", "/log"], stdout=subprocess.PIPE, env=env
    )
    try:
        assert follower.stdout is not None
        assert follower.stdout.readline() == b"first\n"
        requests_append(daemon, "/log", b"second\n")
        assert follower.stdout.readline() == b"second\n"
    finally:
        follower.kill()
        follower.wait(10)


def requests_append(daemon: Daemon, path: str, data: bytes) -> None:
    """An APPEND through WebHDFS, as a Hadoop writer would add to a log."""
    import requests

    r = requests.post(f"{daemon.url}/webhdfs/v1{path}", params={"op": "APPEND", "user.name": "root"}, data=data)
    assert r.status_code == 200, r.text
