"""The PyPI `libnfs` bindings (SWIG over Debian's libnfs) against a real nsd: metadata calls."""

from __future__ import annotations

import errno
import json
import stat
from collections.abc import Iterator
from pathlib import Path

import libnfs  # type: ignore[import-untyped]
import libnfs.libnfs as raw  # type: ignore[import-untyped]
import pytest
from daemon import Daemon, nsd, start


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = start(tmp_path_factory.mktemp("nfs") / "data")
    yield d
    assert d.stop() == 0


@pytest.fixture
def nfs(server: Daemon) -> libnfs.NFS:
    return libnfs.NFS(server.nfs_url("/"))


def write(nfs: libnfs.NFS, path: str, data: bytes) -> None:
    f = nfs.open(path, "wb")
    f.write(bytearray(data))
    f.close()


def read(nfs: libnfs.NFS, path: str) -> bytes:
    f = nfs.open(path, "rb")
    data = bytes(f.read())
    f.close()
    return data


def test_stat_and_mkdir(nfs: libnfs.NFS, server: Daemon) -> None:
    assert nfs.mkdir("/st") == 0
    write(nfs, "/st/f", b"12345")
    st = nfs.stat("/st/f")
    assert stat.S_ISREG(st["mode"]) and st["size"] == 5 and st["nlink"] == 1
    d = nfs.stat("/st")
    assert stat.S_ISDIR(d["mode"]) and d["nlink"] == 2
    # fileid is the inode id the admin API reports
    js = nsd("stat", "--json", "/st/f", daemon=server).stdout.decode()
    assert f'"ino": {st["ino"]}' in js
    assert nfs.mkdir("/st") == -errno.EEXIST
    with pytest.raises(IOError):
        nfs.stat("/st/missing")


def test_rename(nfs: libnfs.NFS) -> None:
    nfs.mkdir("/rn")
    write(nfs, "/rn/a", b"data")
    ino = nfs.stat("/rn/a")["ino"]
    assert raw.nfs_rename(nfs._nfs, "/rn/a", "/rn/b") == 0
    assert nfs.stat("/rn/b")["ino"] == ino  # fileid survives a rename
    assert read(nfs, "/rn/b") == b"data"
    with pytest.raises(IOError):
        nfs.stat("/rn/a")
    nfs.mkdir("/rn/d")
    assert raw.nfs_rename(nfs._nfs, "/rn/b", "/rn/d") < 0  # a file over a directory


def test_symlink(nfs: libnfs.NFS) -> None:
    nfs.mkdir("/sl")
    write(nfs, "/sl/target", b"pointed at")
    assert raw.nfs_symlink(nfs._nfs, "target", "/sl/link") == 0
    st = nfs.lstat("/sl/link")
    assert stat.S_ISLNK(st["mode"]) and st["size"] == len("target")
    buf = bytearray(64)
    assert raw.nfs_readlink(nfs._nfs, "/sl/link", buf, len(buf)) == 0
    assert bytes(buf).rstrip(b"\0") == b"target"
    assert read(nfs, "/sl/link") == b"pointed at"  # followed


def test_link(nfs: libnfs.NFS) -> None:
    nfs.mkdir("/hl")
    write(nfs, "/hl/a", b"shared")
    assert raw.nfs_link(nfs._nfs, "/hl/a", "/hl/b") == 0
    a, b = nfs.stat("/hl/a"), nfs.stat("/hl/b")
    assert a["ino"] == b["ino"] and b["nlink"] == 2
    assert nfs.unlink("/hl/a") == 0
    assert read(nfs, "/hl/b") == b"shared" and nfs.stat("/hl/b")["nlink"] == 1


def test_truncate(nfs: libnfs.NFS) -> None:
    nfs.mkdir("/tr")
    write(nfs, "/tr/f", b"0123456789")
    assert raw.nfs_truncate(nfs._nfs, "/tr/f", 4) == 0
    assert nfs.stat("/tr/f")["size"] == 4 and read(nfs, "/tr/f") == b"0123"
    assert raw.nfs_truncate(nfs._nfs, "/tr/f", 8) == 0
    assert read(nfs, "/tr/f") == b"0123\0\0\0\0"


def test_chmod(nfs: libnfs.NFS) -> None:
    nfs.mkdir("/cm")
    write(nfs, "/cm/f", b"x")
    before = nfs.stat("/cm/f")["ctime"]
    assert raw.nfs_chmod(nfs._nfs, "/cm/f", 0o640) == 0
    st = nfs.stat("/cm/f")
    assert stat.S_IMODE(st["mode"]) == 0o640 and stat.S_ISREG(st["mode"])
    assert (st["ctime"]["sec"], st["ctime"]["nsec"]) > (before["sec"], before["nsec"])


def test_utimes(nfs: libnfs.NFS) -> None:
    nfs.mkdir("/ut")
    write(nfs, "/ut/f", b"x")
    tv = raw.timeval()
    tv.tv_sec, tv.tv_usec = 1_000_000_000, 250_000
    # The binding passes one struct timeval (libnfs reads two): only atime is ours to check here.
    assert raw.nfs_utimes(nfs._nfs, "/ut/f", tv) == 0
    st = nfs.stat("/ut/f")
    assert st["atime"] == {"sec": 1_000_000_000, "nsec": 250_000_000}


def test_readdir_paging(nfs: libnfs.NFS, server: Daemon) -> None:
    nfs.mkdir("/pg")
    names = {f"file-with-a-longish-name-{i:04d}" for i in range(1500)}  # many READDIRPLUS replies
    for name in names:
        f = nfs.open(f"/pg/{name}", "wb")
        f.close()
    listed = nfs.listdir("/pg")
    assert sorted(listed) == sorted([*names, ".", ".."])
    for name in list(names)[:500]:
        assert nfs.unlink(f"/pg/{name}") == 0
    listed = nfs.listdir("/pg")
    assert sorted(listed) == sorted([*list(names)[500:], ".", ".."])


def test_mknod_fifo_and_socket_survive_a_restart(tmp_path: Path) -> None:
    """FIFOs and sockets live in the namespace only (as symlinks do): journaled, listed, renamed,
    removed; device files are refused (NOTSUPP)."""
    d = start(tmp_path / "data")
    try:
        nfs = libnfs.NFS(d.nfs_url("/"))
        nfs.mkdir("/sp")
        assert raw.nfs_mknod(nfs._nfs, "/sp/pipe", stat.S_IFIFO | 0o640, 0) == 0
        assert raw.nfs_mknod(nfs._nfs, "/sp/sock", stat.S_IFSOCK | 0o600, 0) == 0
        assert raw.nfs_mknod(nfs._nfs, "/sp/pipe", stat.S_IFIFO | 0o640, 0) == -errno.EEXIST
        assert raw.nfs_mknod(nfs._nfs, "/sp/tty", stat.S_IFCHR | 0o600, 0x0401) < 0
        assert raw.nfs_rename(nfs._nfs, "/sp/sock", "/sp/sock2") == 0
        kinds = {e["name"]: e["type"] for e in json.loads(nsd("ls", "--json", "/sp", daemon=d).stdout)}
        assert kinds == {"pipe": "fifo", "sock2": "socket"}
        assert nsd("ls", "-l", "/sp", daemon=d).stdout.decode().splitlines()[0].startswith("prw-r-----")
    finally:
        assert d.stop() == 0
    d = start(tmp_path / "data")
    try:
        nfs = libnfs.NFS(d.nfs_url("/"))
        pipe = nfs.lstat("/sp/pipe")
        assert stat.S_ISFIFO(pipe["mode"]) and stat.S_IMODE(pipe["mode"]) == 0o640 and pipe["size"] == 0
        assert stat.S_ISSOCK(nfs.lstat("/sp/sock2")["mode"])
        assert nfs.unlink("/sp/pipe") == 0 and nfs.unlink("/sp/sock2") == 0
        assert not set(nfs.listdir("/sp")) - {".", ".."}
        assert nsd("fsck", daemon=d).returncode == 0
    finally:
        assert d.stop() == 0
