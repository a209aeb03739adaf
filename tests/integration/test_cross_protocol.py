"""One namespace, many doors: a file written through one protocol is read through the others
with the same bytes, size, mtime, owner and mode, and mkdir/rename/delete through one door is
seen at once through the others. Real clients only: HdfsCLI and fsspec (WebHDFS), nfs-cp and
nfs-cat from libnfs-utils and the PyPI libnfs bindings (NFS), and the `nsd` CLI."""

from __future__ import annotations

import grp
import hashlib
import json
import os
import pwd
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import libnfs  # type: ignore[import-untyped]
import libnfs.libnfs as raw  # type: ignore[import-untyped]
import pytest
from daemon import Daemon, nsd, start
from doors import ME, Doors
from fsspec.implementations.webhdfs import WebHDFS


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = start(tmp_path_factory.mktemp("cross") / "data")
    yield d
    assert d.stop() == 0


@pytest.fixture
def doors(server: Daemon) -> Doors:
    return Doors(server)


@pytest.fixture
def nfs(server: Daemon) -> libnfs.NFS:
    return libnfs.NFS(server.nfs_url("/"))


@pytest.fixture
def fs(server: Daemon) -> WebHDFS:
    url = urlsplit(server.url)
    return WebHDFS(host=url.hostname, port=url.port, user=ME, skip_instance_cache=True)


def cli_stat(d: Daemon, path: str) -> dict[str, Any]:
    out = nsd("fs", "stat", "--json", path, daemon=d)
    assert out.returncode == 0, out.stderr.decode()
    return dict(json.loads(out.stdout))


def attributes(d: Daemon, doors: Doors, nfs: libnfs.NFS, path: str) -> dict[str, dict[str, Any]]:
    """Size, mtime (ms: what WebHDFS can say), owner and group ids and permission bits, by door."""
    web = doors.hdfs_status(path)
    assert web is not None, path
    nf = nfs.stat(path)
    cli = cli_stat(d, path)
    return {
        "webhdfs": {
            "size": web["length"],
            "mtime_ms": web["modificationTime"],
            "uid": pwd.getpwnam(web["owner"]).pw_uid,
            "gid": grp.getgrnam(web["group"]).gr_gid,
            "mode": int(web["permission"], 8),
            "fileid": web["fileId"],
        },
        "nfs": {
            "size": nf["size"],
            "mtime_ms": (nf["mtime"]["sec"] * 10**9 + nf["mtime"]["nsec"]) // 10**6,
            "uid": nf["uid"],
            "gid": nf["gid"],
            "mode": stat.S_IMODE(nf["mode"]),
            "fileid": nf["ino"],
        },
        "cli": {
            "size": cli["size"],
            "mtime_ms": cli["mtime_ns"] // 10**6,
            "uid": cli["uid"],
            "gid": cli["gid"],
            "mode": cli["mode"],
            "fileid": cli["ino"],
        },
    }


def agree(attrs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    first = attrs["cli"]
    assert all(a == first for a in attrs.values()), attrs
    return first


def test_written_over_webhdfs_read_over_nfs_and_cli(server: Daemon, doors: Doors, nfs: libnfs.NFS) -> None:
    data = os.urandom(3 << 20) + b"tail"
    doors.hdfs.makedirs("/x/web")
    doors.hdfs.write("/x/web/f.bin", data=data, permission="640")
    assert doors.nfs_cat("/x/web/f.bin") == data
    assert doors.cli_cat("/x/web/f.bin") == data
    full_ns = cli_stat(server, "/x/web/f.bin")["mtime_ns"]
    nf = nfs.stat("/x/web/f.bin")
    assert nf["mtime"]["sec"] * 10**9 + nf["mtime"]["nsec"] == full_ns  # NFS carries the nanoseconds
    a = agree(attributes(server, doors, nfs, "/x/web/f.bin"))
    assert (a["size"], a["mode"], a["uid"]) == (len(data), 0o640, pwd.getpwnam(ME).pw_uid)


def test_written_over_nfs_read_over_webhdfs(
    server: Daemon, doors: Doors, nfs: libnfs.NFS, fs: WebHDFS, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.write_bytes(os.urandom(5 << 20) + b"end")
    nfs.mkdir("/x2")
    nfs.mkdir("/x2/nfs")
    out = doors.nfs("nfs-cp", str(src), server.nfs_url("/x2/nfs/g.bin"))
    assert out.returncode == 0, out.stderr.decode()
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    assert hashlib.sha256(doors.hdfs_read("/x2/nfs/g.bin")).hexdigest() == digest
    with fs.open("/x2/nfs/g.bin", "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == digest
        f.seek(1 << 20)
        assert f.read(100) == src.read_bytes()[1 << 20 : (1 << 20) + 100]
    assert fs.info("/x2/nfs/g.bin")["size"] == src.stat().st_size
    a = agree(attributes(server, doors, nfs, "/x2/nfs/g.bin"))
    assert a["size"] == src.stat().st_size and a["uid"] == os.getuid()  # AUTH_SYS identity of nfs-cp


def test_namespace_changes_are_seen_at_once_through_every_door(
    server: Daemon, doors: Doors, nfs: libnfs.NFS, fs: WebHDFS, tmp_path: Path
) -> None:
    # mkdir over NFS; seen by WebHDFS and the CLI
    assert nfs.mkdir("/ns") == 0
    assert nfs.mkdir("/ns/by-nfs") == 0
    assert doors.hdfs_status("/ns/by-nfs")["type"] == "DIRECTORY"
    assert cli_stat(server, "/ns/by-nfs")["type"] == "dir"
    # mkdir over WebHDFS, file over the CLI; seen by NFS and fsspec
    doors.hdfs.makedirs("/ns/by-web")
    (tmp_path / "local").write_bytes(b"cli bytes")
    put = nsd("fs", "put", str(tmp_path / "local"), "/ns/by-web/f", daemon=server)
    assert put.returncode == 0, put.stderr.decode()
    assert stat.S_ISDIR(nfs.stat("/ns/by-web")["mode"])
    assert doors.nfs_cat("/ns/by-web/f") == b"cli bytes"
    assert sorted(p.rsplit("/", 1)[-1] for p in fs.ls("/ns", detail=False)) == ["by-nfs", "by-web"]
    ino = nfs.stat("/ns/by-web/f")["ino"]

    # rename over WebHDFS; NFS and the CLI see the new name (same fileid) and not the old one
    doors.hdfs.rename("/ns/by-web/f", "/ns/by-nfs/moved")
    assert nfs.stat("/ns/by-nfs/moved")["ino"] == ino
    with pytest.raises(IOError):
        nfs.stat("/ns/by-web/f")
    assert cli_stat(server, "/ns/by-nfs/moved")["ino"] == ino
    # rename over NFS; WebHDFS and fsspec see it
    assert raw.nfs_rename(nfs._nfs, "/ns/by-nfs/moved", "/ns/by-nfs/again") == 0
    assert doors.hdfs_status("/ns/by-nfs/moved") is None
    assert doors.hdfs_read("/ns/by-nfs/again") == b"cli bytes"
    assert fs.info("/ns/by-nfs/again")["size"] == 9

    # delete over NFS; gone for WebHDFS and the CLI. Delete over the CLI; gone for NFS.
    assert nfs.unlink("/ns/by-nfs/again") == 0
    assert doors.hdfs_status("/ns/by-nfs/again") is None
    assert nsd("fs", "stat", "/ns/by-nfs/again", daemon=server).returncode == 1
    assert nsd("fs", "rm", "-r", "/ns/by-web", daemon=server).returncode == 0
    with pytest.raises(IOError):
        nfs.stat("/ns/by-web")
    assert not fs.exists("/ns/by-web")
    # delete over WebHDFS (fsspec); gone for NFS
    fs.rm("/ns/by-nfs", recursive=True)
    with pytest.raises(IOError):
        nfs.stat("/ns/by-nfs")
    assert doors.names("/ns") == {"admin": [], "webhdfs": [], "nfs": []}


def test_attributes_asked_again_over_nfs_follow_every_change_made_elsewhere(
    server: Daemon, doors: Doors, nfs: libnfs.NFS
) -> None:
    """The same LOOKUPs and GETATTRs again and again (replies nsd sends again while nothing
    changed), each change made through another door seen by the next one."""

    def asked() -> tuple[int, int, int]:
        seen = {
            (s["size"], stat.S_IMODE(s["mode"]), s["mtime"]["sec"]) for s in (nfs.stat("/again/f") for _ in range(3))
        }
        assert len(seen) == 1, seen
        return seen.pop()

    doors.hdfs.makedirs("/again")
    doors.hdfs.write("/again/f", data=b"one", permission="644")
    assert asked()[:2] == (3, 0o644)
    doors.hdfs.write("/again/f", data=b"two", append=True)
    assert asked()[0] == 6
    doors.hdfs.set_permission("/again/f", "600")
    assert asked()[1] == 0o600
    doors.hdfs.set_times("/again/f", modification_time=1_000_000_000_000)
    assert asked()[2] == 1_000_000_000
    assert nsd("fs", "rm", "/again/f", daemon=server).returncode == 0
    with pytest.raises(IOError):
        nfs.stat("/again/f")
    listed = doors.nfs("nfs-ls", server.nfs_url("/again"))
    assert listed.returncode == 0 and b" f\n" not in listed.stdout
