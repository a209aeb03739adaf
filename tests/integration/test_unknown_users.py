"""Hadoop users the nsd machine has never heard of, as HDFS's simple authentication takes them: a
job running as `etl` on another cluster works, its files are owned by `etl` over WebHDFS and by
the id `etl` was given over NFS, and that id survives restarts and checkpoints. Real clients:
Hadoop's FsShell, HdfsCLI, fsspec, nfs-ls, and the nsd CLI."""

from __future__ import annotations

import json
import pwd
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
import requests
from daemon import Daemon, nsd, start
from fsspec.implementations.webhdfs import WebHDFS
from hadoopshell import Hadoop
from hdfs import InsecureClient
from hdfs.util import HdfsError

LOW = 300000  # auto_id_range of these daemons


def unknown(name: str) -> str:
    with pytest.raises(KeyError):
        pwd.getpwnam(name)  # the point: nobody on this machine has this name
    return name


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = start(tmp_path_factory.mktemp("unknown") / "data", env={"NSD_AUTO_ID_RANGE": f"{LOW}-{LOW + 99}"})
    ok = nsd("mkdir", "/shared", daemon=d)
    assert ok.returncode == 0
    assert nsd("chmod", "1777", "/shared", daemon=d).returncode == 0
    yield d
    d.stop()


@pytest.fixture(scope="module")
def conf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    conf = tmp_path_factory.mktemp("conf")
    (conf / "core-site.xml").write_text('<?xml version="1.0"?>\n<configuration></configuration>\n')
    return conf


def users(d: Daemon) -> dict[str, dict[str, object]]:
    out = nsd("users", "ls", "--json", daemon=d)
    assert out.returncode == 0, out.stderr
    return {u["name"]: u for u in json.loads(out.stdout)}


def nfs_ls(d: Daemon, path: str) -> dict[str, list[str]]:
    out = subprocess.run(["nfs-ls", d.nfs_url(path)], capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return {line.split()[-1]: line.split() for line in out.stdout.decode().splitlines() if line.strip()}


def test_fsshell_as_a_user_nobody_here_knows(server: Daemon, conf_dir: Path, tmp_path: Path) -> None:
    etl = unknown("etl")
    hadoop = Hadoop(server, conf_dir, user=etl)
    (tmp_path / "part-0000").write_text("a,b\n")
    hadoop("-mkdir", "-p", "/shared/etl/out")
    hadoop("-put", str(tmp_path / "part-0000"), "/shared/etl/out/")
    listing = hadoop("-ls", "/shared/etl/out").stdout
    row = next(line for line in listing.splitlines() if line.endswith("part-0000"))
    assert row.split()[2:4] == ["etl", "etl"]  # owner, and the same-named group, as Hadoop shows it
    given = users(server)["etl"]
    assert given["source"] == "auto" and LOW <= int(given["uid"]) < LOW + 100 and given["gid"] == given["uid"]
    # the same file over NFS: owned by the id etl was given
    assert nfs_ls(server, "/shared/etl/out")["part-0000"][2:4] == [str(given["uid"])] * 2
    # and through the CLI, by name
    long = nsd("ls", "-l", "/shared/etl/out", daemon=server).stdout.decode()
    assert long.split()[2:4] == ["etl", "etl"]


def test_hdfscli_and_fsspec_as_unknown_users_and_permissions_between_them(server: Daemon) -> None:
    bob, carol = unknown("bob-from-spark"), unknown("carol-from-presto")
    hdfscli = InsecureClient(server.url, user=bob)
    hdfscli.makedirs("/shared/bob", permission="755")
    hdfscli.write("/shared/bob/private", data=b"bob's", permission="600")
    url = urlparse(server.url)
    fs = WebHDFS(host=url.hostname, port=url.port, user=carol, skip_instance_cache=True)
    with fs.open("/shared/carol.txt", "wb") as f:
        f.write(b"carol's")
    assert fs.info("/shared/carol.txt")["owner"] == carol
    assert hdfscli.status("/shared/bob/private")["owner"] == bob
    # two unknown users are two users: carol may not read bob's 600 file nor write in his 755 dir
    with pytest.raises(PermissionError):
        fs.cat("/shared/bob/private")
    with pytest.raises(PermissionError):
        fs.pipe("/shared/bob/intruder", b"x")
    with hdfscli.read("/shared/bob/private") as reader:
        assert reader.read() == b"bob's"
    with pytest.raises(HdfsError, match=r"Permission denied|AccessControl"):
        InsecureClient(server.url, user=carol).delete("/shared/bob/private")
    ids = users(server)
    assert ids[bob]["uid"] != ids[carol]["uid"]


def test_chown_to_unknown_names_through_the_cli(server: Daemon) -> None:
    assert nsd("touch", "/shared/handed-over", daemon=server).returncode == 0
    out = nsd("chown", "--json", "dataops:analysts", "/shared/handed-over", daemon=server)
    assert out.returncode == 0, out.stderr
    reply = json.loads(out.stdout)
    assert (reply["owner"], reply["group"]) == ("dataops", "analysts")
    ids = users(server)
    assert reply["uid"] == ids["dataops"]["uid"] and reply["gid"] == ids["analysts"]["gid"]
    assert nsd("chgrp", "dataops", "/shared/handed-over", daemon=server).returncode == 0
    status = requests.get(
        f"{server.url}/webhdfs/v1/shared/handed-over", params={"op": "GETFILESTATUS", "user.name": "x"}
    ).json()["FileStatus"]
    assert (status["owner"], status["group"]) == ("dataops", "dataops")


def test_given_ids_survive_a_restart_and_a_checkpoint(tmp_path: Path) -> None:
    data = tmp_path / "data"
    d = start(data, env={"NSD_AUTO_ID_RANGE": f"{LOW}-{LOW + 99}"})
    try:
        assert nsd("mkdir", "/drop", daemon=d).returncode == 0
        assert nsd("chmod", "1777", "/drop", daemon=d).returncode == 0
        InsecureClient(d.url, user="etl-nightly").write("/drop/from-etl", data=b"x")
        before = users(d)["etl-nightly"]
    finally:
        assert d.stop() == 0  # a clean stop writes a checkpoint
    d = start(data, env={"NSD_AUTO_ID_RANGE": f"{LOW}-{LOW + 99}"})
    try:
        assert users(d)["etl-nightly"] == before
        assert InsecureClient(d.url, user="etl-nightly").status("/drop/from-etl")["owner"] == "etl-nightly"
        InsecureClient(d.url, user="someone-new").status("/")  # the next name gets the next id
        assert users(d)["someone-new"]["uid"] == int(before["uid"]) + 1  # type: ignore[call-overload]
    finally:
        d.stop()


def test_refuse_mode_names_the_setting(tmp_path: Path) -> None:
    d = start(tmp_path / "data", env={"NSD_UNKNOWN_USERS": "refuse"})
    try:
        r = requests.get(f"{d.url}/webhdfs/v1/", params={"op": "GETFILESTATUS", "user.name": "nobody-knows-me"})
        assert r.status_code == 403
        assert r.json()["RemoteException"] == {
            "exception": "AccessControlException",
            "javaClassName": "org.apache.hadoop.security.AccessControlException",
            "message": "Unknown user: nobody-knows-me (unknown_users = refuse)",
        }
        assert users(d) == {}
    finally:
        d.stop()
