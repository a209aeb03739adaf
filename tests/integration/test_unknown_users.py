"""Users the nsd machine has never heard of (issue 15, section 2), through real clients: HDFS
with simple authentication believes any user.name, and so does nsd (`unknown_users = map`):
such a user gets a journaled id of `auto_id_range` and owns its files at every door (FsShell's
side is in test_webhdfs_hadoop.py)."""

from __future__ import annotations

import concurrent.futures
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import libnfs  # type: ignore[import-untyped]
import pytest
from daemon import Daemon, nsd, start
from fsspec.implementations.webhdfs import WebHDFS
from hdfs import HdfsError, InsecureClient


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = start(tmp_path_factory.mktemp("strangers") / "data")
    d.session().post(f"{d.url}/api/v1/fs/mkdir", json={"path": "/shared", "mode": 0o1777}).raise_for_status()
    yield d
    assert d.stop() == 0


def fsspec_as(server: Daemon, user: str) -> WebHDFS:
    url = urlsplit(server.url)
    return WebHDFS(host=url.hostname, port=url.port, user=user, skip_instance_cache=True)


def mapped_ids(server: Daemon) -> dict[str, int]:
    out = nsd("users", "ls", "--json", daemon=server)
    assert out.returncode == 0, out.stderr
    reply = json.loads(out.stdout)
    assert (reply["unknown_users"], reply["auto_id_range"]) == ("map", "200000-299999")
    return {u["name"]: u["uid"] for u in reply["users"] if u["source"] == "mapped"}


def nfs_url(server: Daemon, path: str, uid: int | None = None) -> str:
    """A libnfs URL for `path`, as AUTH_SYS uid (and gid) `uid` when given."""
    url = server.nfs_url(path)
    return url if uid is None else f"{url}&uid={uid}&gid={uid}"


def nfs_ls(server: Daemon, path: str) -> dict[str, list[str]]:
    """nfs-ls rows by name: mode, nlink, uid, gid, size, name."""
    out = subprocess.run(["nfs-ls", nfs_url(server, path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return {line.split()[-1]: line.split() for line in out.stdout.splitlines() if line.strip()}


def test_hdfscli_and_fsspec_users_get_ids_and_own_their_files(server: Daemon, tmp_path: Path) -> None:
    bob = InsecureClient(server.url, user="bob")
    bob.makedirs("/shared/bob")
    bob.write("/shared/bob/notes.txt", data=b"by bob\n", permission="600")
    st = bob.status("/shared/bob/notes.txt")
    assert (st["owner"], st["group"], st["permission"]) == ("bob", "bob", "600")
    carol = fsspec_as(server, "carol")
    carol.mkdir("/shared/carol")
    carol.pipe_file("/shared/carol/data.csv", b"1,2\n")
    info = carol.info("/shared/carol/data.csv")
    assert (info["owner"], info["group"], info["size"]) == ("carol", "carol", 4)

    ids = mapped_ids(server)
    assert ids["bob"] != ids["carol"] and all(200000 <= ids[n] <= 299999 for n in ("bob", "carol"))
    # The same files over NFS: the allocated uid and gid.
    rows = nfs_ls(server, "/shared/bob")
    assert rows["notes.txt"][2:4] == [str(ids["bob"])] * 2
    st_nfs = libnfs.NFS(nfs_url(server, "/")).stat("/shared/carol/data.csv")
    assert (st_nfs["uid"], st_nfs["gid"]) == (ids["carol"], ids["carol"])

    # Between two unknown users the permissions are those between any two users.
    assert fsspec_as(server, "bob").cat_file("/shared/carol/data.csv") == b"1,2\n"  # 644
    with pytest.raises(PermissionError):
        carol.cat_file("/shared/bob/notes.txt")  # 600, bob's
    with pytest.raises(HdfsError, match="Permission denied: user=carol, access=WRITE"):
        InsecureClient(server.url, user="carol").write("/shared/bob/intruder", data=b"x")
    with pytest.raises(HdfsError, match="Permission denied by sticky bit: user=carol"):
        InsecureClient(server.url, user="carol").delete("/shared/bob", recursive=True)
    bob.set_permission("/shared/bob/notes.txt", "644")
    assert carol.cat_file("/shared/bob/notes.txt") == b"by bob\n"

    # NFS callers with those uids are the same users.
    src = tmp_path / "over-nfs.txt"
    src.write_bytes(b"nfs as bob\n")
    as_bob = subprocess.run(["nfs-cp", str(src), nfs_url(server, "/shared/bob/from-nfs", ids["bob"])], timeout=120)
    assert as_bob.returncode == 0
    assert (bob.status("/shared/bob/from-nfs")["owner"], bob.status("/shared/bob/from-nfs")["group"]) == ("bob", "bob")
    as_carol = subprocess.run(
        ["nfs-cp", str(src), nfs_url(server, "/shared/bob/from-carol", ids["carol"])], capture_output=True, timeout=120
    )
    assert as_carol.returncode != 0 and bob.status("/shared/bob/from-carol", strict=False) is None


def test_concurrent_first_calls_map_a_name_once(server: Daemon) -> None:
    fs = [fsspec_as(server, "dave") for _ in range(8)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda f: f.info("/"), fs))
    out = json.loads(nsd("users", "ls", "--json", daemon=server).stdout)["users"]
    assert [u["name"] for u in out].count("dave") == 1


def test_cli_chown_and_ls_use_the_daemons_map(server: Daemon) -> None:
    assert nsd("fs", "touch", "/shared/for-etl", daemon=server).returncode == 0
    out = nsd("fs", "chown", "etl:etl", "/shared/for-etl", daemon=server)  # no etl account here
    assert out.returncode == 0, out.stderr
    etl = mapped_ids(server)["etl"]
    line = next(
        row for row in nsd("ls", "-l", "/shared", daemon=server).stdout.decode().splitlines() if "for-etl" in row
    )
    assert line.split()[2:4] == ["etl", "etl"]
    assert nfs_ls(server, "/shared")["for-etl"][2:4] == [str(etl)] * 2
    status = InsecureClient(server.url, user="etl").status("/shared/for-etl")
    assert (status["owner"], status["group"]) == ("etl", "etl")
    bad = nsd("fs", "chown", ":no-such-group", "/shared/for-etl", daemon=server)
    assert bad.returncode == 1 and bad.stderr.decode().strip() == "nsd: unknown group: no-such-group"
    table = nsd("users", "ls", daemon=server).stdout.decode().splitlines()
    assert table[0].split() == ["NAME", "UID", "GID", "GROUPS", "SOURCE"]
    assert f"etl {etl} {etl} {etl} mapped" in [" ".join(row.split()) for row in table]
    assert table[-1] == "unknown_users = map, auto_id_range = 200000-299999"


def test_the_map_survives_restarts_checkpoints_and_backups(tmp_path: Path) -> None:
    d = start(tmp_path / "data", env={"NSD_AUTO_ID_RANGE": "300000-300001"})
    d.session().post(f"{d.url}/api/v1/fs/mkdir", json={"path": "/shared", "mode": 0o1777}).raise_for_status()
    InsecureClient(d.url, user="erin").write("/shared/erin.txt", data=b"e")
    assert d.stop() == 0
    d = start(tmp_path / "data", env={"NSD_AUTO_ID_RANGE": "300000-300001"})
    assert d.session().post(f"{d.url}/api/v1/journal/checkpoint").status_code == 200
    InsecureClient(d.url, user="frank").write("/shared/frank.txt", data=b"f")
    assert libnfs.NFS(nfs_url(d, "/")).stat("/shared/erin.txt")["uid"] == 300000
    assert libnfs.NFS(nfs_url(d, "/")).stat("/shared/frank.txt")["uid"] == 300001
    refused = InsecureClient(d.url, user="gina")
    with pytest.raises(HdfsError, match="auto_id_range 300000-300001 is used up"):
        refused.status("/")
    archive = tmp_path / "backup"
    assert nsd("journal", "backup", "-q", str(archive), daemon=d).returncode == 0
    assert d.stop() == 0
    restored = tmp_path / "restored"
    assert nsd("journal", "restore", str(archive), "--data-dir", str(restored)).returncode == 0
    d = start(restored)
    try:
        owners = {
            name: InsecureClient(d.url, user=name).status(f"/shared/{name}.txt")["owner"] for name in ("erin", "frank")
        }
        assert owners == {"erin": "erin", "frank": "frank"}
        users = json.loads(nsd("users", "ls", "--json", daemon=d).stdout)["users"]
        assert [(u["name"], u["uid"]) for u in users] == [("erin", 300000), ("frank", 300001)]
    finally:
        assert d.stop() == 0
