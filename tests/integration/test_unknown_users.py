"""Hadoop users the machine has never heard of, as HDFS takes them: each name gets an id of its own
(unknown_users = map, the default), shown by name over WebHDFS and the CLI and by number over NFS.
Real clients throughout: Hadoop's FsShell, HdfsCLI, fsspec, libnfs-utils and the `nsd` CLI."""

from __future__ import annotations

import json
import pwd
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from daemon import Daemon, nsd, start
from fsspec.implementations.webhdfs import WebHDFS
from hadoop_shell import Hadoop, conf_dir
from hdfs import InsecureClient

FIRST, LAST = 200000, 299999  # the default auto_id_range


def ok(result: subprocess.CompletedProcess[bytes]) -> str:
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


def shared_dir(d: Daemon, path: str) -> None:
    """`path` made by the admin (the superuser), open to everyone."""
    ok(nsd("mkdir", path, daemon=d))
    ok(nsd("fs", "chmod", "777", path, daemon=d))


def auto_ids(d: Daemon) -> dict[str, int]:
    """name -> uid of every name the daemon gave an id, from `nsd users ls --json`."""
    reply = json.loads(ok(nsd("users", "ls", "--json", daemon=d)))
    assert all(u["gid"] == u["uid"] and u["group"] == u["name"] for u in reply["users"])
    return {u["name"]: u["uid"] for u in reply["users"]}


def nfs_owners(d: Daemon, path: str) -> dict[str, list[str]]:
    """name -> [uid, gid] of each entry of directory `path`, as libnfs-utils' nfs-ls lists them."""
    out = subprocess.run(["nfs-ls", d.nfs_url(path)], capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr
    rows = [line.split() for line in out.stdout.decode().splitlines() if line.strip()]
    return {row[-1]: row[2:4] for row in rows}


def nfs_put(d: Daemon, local: Path, path: str, uid: int) -> subprocess.CompletedProcess[bytes]:
    """nfs-cp `local` to `path` as AUTH_SYS uid = gid = `uid`."""
    return subprocess.run(["nfs-cp", str(local), f"{d.nfs_url(path)}&uid={uid}&gid={uid}"], capture_output=True)


def unknown_here(*names: str) -> None:
    for name in names:
        with pytest.raises(KeyError):
            pwd.getpwnam(name)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = start(tmp_path_factory.mktemp("unknown") / "data")
    shared_dir(d, "/shared")
    yield d
    assert d.stop() == 0


@pytest.fixture(scope="module")
def hadoop_conf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return conf_dir(tmp_path_factory.mktemp("conf"))


def test_fsshell_as_etl_mkdir_put_ls(server: Daemon, hadoop_conf: Path, tmp_path: Path) -> None:
    unknown_here("etl")
    hadoop = Hadoop(server, hadoop_conf, user="etl")  # HADOOP_USER_NAME=etl, as a Spark job would run
    hadoop("-ls", "/")  # even the first call, GETFILESTATUS of /, works
    hadoop("-mkdir", "-p", "/shared/etl/in")
    (tmp_path / "part-00000").write_text("a,b\n")
    hadoop("-put", str(tmp_path / "part-00000"), "/shared/etl/in/")
    row = next(line for line in hadoop("-ls", "/shared/etl/in").stdout.splitlines() if line.endswith("part-00000"))
    assert row.split()[2:4] == ["etl", "etl"]

    uid = auto_ids(server)["etl"]
    assert FIRST <= uid <= LAST
    assert nfs_owners(server, "/shared/etl/in")["part-00000"] == [str(uid), str(uid)]
    long = ok(nsd("ls", "-l", "/shared/etl/in", daemon=server)).split()
    assert long[2:4] == ["etl", "etl"]  # the CLI shows names as WebHDFS does


def test_hdfscli_and_fsspec_users_are_kept_apart_as_known_ones(server: Daemon) -> None:
    unknown_here("bob", "carol")
    bob = InsecureClient(server.url, user="bob")
    bob.makedirs("/shared/bob", permission="755")
    bob.write("/shared/bob/private", data=b"bob's", permission="640")
    status = bob.status("/shared/bob/private")
    assert (status["owner"], status["group"]) == ("bob", "bob")

    url = urlsplit(server.url)
    carol = WebHDFS(host=url.hostname, port=url.port, user="carol", skip_instance_cache=True)
    carol.mkdir("/shared/carol")
    carol.pipe_file("/shared/carol/notes", b"carol's")
    info = carol.info("/shared/carol/notes")
    assert (info["owner"], info["group"]) == ("carol", "carol")
    with pytest.raises(PermissionError, match="user=carol, access=READ"):
        carol.cat_file("/shared/bob/private")
    with pytest.raises(PermissionError, match=r'user=carol, access=WRITE.*inode="/shared/bob":bob:bob:drwxr-xr-x'):
        carol.pipe_file("/shared/bob/intruder", b"no")
    with bob.read("/shared/bob/private") as r:
        assert r.read() == b"bob's"
    with bob.read("/shared/carol/notes") as r:  # 0644: others may read
        assert r.read() == b"carol's"

    ids = auto_ids(server)
    assert ids["bob"] != ids["carol"] and {ids["bob"], ids["carol"]} <= set(range(FIRST, LAST + 1))
    owners = nfs_owners(server, "/shared")
    assert owners["bob"] == [str(ids["bob"])] * 2 and owners["carol"] == [str(ids["carol"])] * 2


def test_nfs_callers_with_the_allocated_uid_act_as_that_user(server: Daemon, tmp_path: Path) -> None:
    unknown_here("dana", "erin")
    InsecureClient(server.url, user="dana").makedirs("/shared/dana", permission="755")
    InsecureClient(server.url, user="erin").makedirs("/shared/erin", permission="755")
    ids = auto_ids(server)
    local = tmp_path / "f"
    local.write_bytes(b"from nfs\n")
    assert nfs_put(server, local, "/shared/dana/from-nfs", ids["dana"]).returncode == 0
    status = InsecureClient(server.url, user="dana").status("/shared/dana/from-nfs")
    assert (status["owner"], status["group"]) == ("dana", "dana")
    refused = nfs_put(server, local, "/shared/dana/from-erin", ids["erin"])
    assert refused.returncode != 0 and "from-erin" not in nfs_owners(server, "/shared/dana")


def test_cli_chown_sends_names_the_daemon_resolves(server: Daemon, tmp_path: Path) -> None:
    unknown_here("frank")
    shared_dir(server, "/shared/cli")
    (tmp_path / "f").write_bytes(b"x")
    ok(nsd("put", str(tmp_path / "f"), "/shared/cli/f", daemon=server))
    ok(nsd("fs", "chown", "frank:frank", "/shared/cli/f", daemon=server))  # frank was never seen before
    assert ok(nsd("ls", "-l", "/shared/cli", daemon=server)).split()[2:4] == ["frank", "frank"]
    status = InsecureClient(server.url, user="frank").status("/shared/cli/f")
    assert (status["owner"], status["group"]) == ("frank", "frank")
    human = ok(nsd("users", "ls", daemon=server))
    assert human.startswith(f"# unknown_users = map, auto_id_range = {FIRST}-{LAST}\nNAME")
    uid = auto_ids(server)["frank"]
    assert [line.split() for line in human.splitlines() if line.startswith("frank ")] == [
        ["frank", str(uid), str(uid), "frank"]
    ]
    bad = nsd("fs", "chown", "no such user", "/shared/cli/f", daemon=server)
    assert bad.returncode == 1 and len(bad.stderr.decode().splitlines()) == 1
    assert "invalid user name 'no such user'" in bad.stderr.decode()


def test_ids_survive_a_crash_a_restart_and_a_backup(tmp_path: Path) -> None:
    d = start(tmp_path / "data")
    try:
        shared_dir(d, "/s")
        for name in ("etl", "bob"):
            InsecureClient(d.url, user=name).write(f"/s/{name}.txt", data=name.encode())
        before = auto_ids(d)
        d.kill()  # no checkpoint: the ids come back from the journal alone
        d = start(tmp_path / "data")
        assert auto_ids(d) == before
        assert d.stop() == 0  # a checkpoint (image version 5) holds them now
        d = start(tmp_path / "data")
        assert auto_ids(d) == before
        InsecureClient(d.url, user="carol").write("/s/carol.txt", data=b"c")
        after = auto_ids(d)
        assert after.keys() == {"etl", "bob", "carol"} and after["carol"] not in before.values()
        ok(nsd("journal", "backup", "-q", str(tmp_path / "b.tgz"), daemon=d))
    finally:
        d.stop()
    ok(nsd("journal", "restore", str(tmp_path / "b.tgz"), "--data-dir", str(tmp_path / "restored")))
    d = start(tmp_path / "restored")
    try:
        assert auto_ids(d) == after
        assert InsecureClient(d.url, user="bob").status("/s/bob.txt")["owner"] == "bob"
        assert nfs_owners(d, "/s")["bob.txt"] == [str(after["bob"])] * 2
    finally:
        assert d.stop() == 0
