"""WebHDFS through the real Python clients (HdfsCLI and fsspec), against a real daemon."""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import stat
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from daemon import Daemon, nsd, start
from fsspec.implementations.webhdfs import WebHDFS
from hdfs import HdfsError, InsecureClient
from hdfs_reference import reference_checksum

ME = pwd.getpwuid(os.getuid()).pw_name


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = start(tmp_path_factory.mktemp("webhdfs") / "data")
    yield d
    d.stop()


@pytest.fixture
def client(server: Daemon) -> InsecureClient:
    return InsecureClient(server.url, user=ME)


@pytest.fixture
def fs(server: Daemon) -> WebHDFS:
    url = urlsplit(server.url)
    return WebHDFS(host=url.hostname, port=url.port, user=ME, skip_instance_cache=True)


# ---- HdfsCLI ----------------------------------------------------------------------------------


def test_hdfscli_upload_download_and_ranged_read(client: InsecureClient, tmp_path: Path) -> None:
    payload = os.urandom(5 * (1 << 20) + 123)
    (tmp_path / "in.bin").write_bytes(payload)
    client.makedirs("/cli/up")
    assert client.upload("/cli/up/blob", str(tmp_path / "in.bin")) == "/cli/up/blob"
    out = client.download("/cli/up/blob", str(tmp_path / "out.bin"))
    assert hashlib.sha256(Path(out).read_bytes()).digest() == hashlib.sha256(payload).digest()
    with client.read("/cli/up/blob", offset=1_000_000, length=4096) as r:
        assert r.read() == payload[1_000_000:1_004_096]
    with client.read("/cli/up/blob", offset=len(payload) - 10) as r:
        assert r.read() == payload[-10:]


def test_hdfscli_write_append_status_and_list(client: InsecureClient) -> None:
    client.write("/cli/w/log.txt", data=b"line 1\n")
    client.write("/cli/w/log.txt", data=b"line 2\n", append=True)
    client.write("/cli/w/log.txt", data=(c for c in [b"line ", b"3\n"]), append=True)  # chunked
    with client.read("/cli/w/log.txt") as r:
        assert r.read() == b"line 1\nline 2\nline 3\n"
    st = client.status("/cli/w/log.txt")
    assert st["type"] == "FILE" and st["length"] == 21 and st["owner"] == ME and st["permission"] == "644"
    assert st["pathSuffix"] == "" and st["replication"] == 1 and st["blockSize"] > 0
    assert client.status("/cli/w/none", strict=False) is None
    client.makedirs("/cli/w/sub", permission="750")
    assert client.list("/cli/w") == ["log.txt", "sub"]
    listed = dict(client.list("/cli/w", status=True))
    assert listed["sub"]["type"] == "DIRECTORY" and listed["sub"]["permission"] == "750"
    # LISTSTATUS of a file gives that one file with pathSuffix "", which HdfsCLI recognises.
    with pytest.raises(HdfsError, match="is not a directory"):
        client.list("/cli/w/log.txt")
    with pytest.raises(HdfsError, match="already exists"):
        client.write("/cli/w/log.txt", data=b"x", overwrite=False)
    client.write("/cli/w/log.txt", data=b"new", overwrite=True)
    assert client.status("/cli/w/log.txt")["length"] == 3


def test_hdfscli_walk_content_checksum(client: InsecureClient) -> None:
    data = os.urandom(700_000)
    client.write("/cli/t/a/one", data=data)
    client.write("/cli/t/a/b/two", data=b"22")
    client.makedirs("/cli/t/empty")
    walked = [(root, sorted(dirs), sorted(files)) for root, dirs, files in client.walk("/cli/t")]
    assert walked == [
        ("/cli/t", ["a", "empty"], []),
        ("/cli/t/a", ["b"], ["one"]),
        ("/cli/t/a/b", [], ["two"]),
        ("/cli/t/empty", [], []),
    ]
    summary = client.content("/cli/t")
    assert (summary["length"], summary["fileCount"], summary["directoryCount"]) == (700_002, 2, 4)
    checksum = client.checksum("/cli/t/a/one")
    algorithm, raw = reference_checksum(data, 128 << 20)
    assert checksum == {"algorithm": algorithm, "bytes": raw.hex(), "length": 28}


def test_hdfscli_rename_delete_and_attributes(client: InsecureClient) -> None:
    client.write("/cli/r/f", data=b"x")
    client.makedirs("/cli/r/d")
    client.rename("/cli/r/f", "/cli/r/d")  # into the directory
    assert client.list("/cli/r/d") == ["f"]
    client.write("/cli/r/g", data=b"gg")
    with pytest.raises(HdfsError, match="Unable to rename"):
        client.rename("/cli/r/g", "/cli/r/d/f")  # onto an existing file: false, as FileSystem.rename
    assert client.status("/cli/r/d/f")["length"] == 1
    client.set_permission("/cli/r/d", permission="700")
    client.set_times("/cli/r/d/f", modification_time=1_600_000_000_000, access_time=1_600_000_000_500)
    client.set_replication("/cli/r/d/f", 3)
    st = client.status("/cli/r/d/f")
    assert st["modificationTime"] == 1_600_000_000_000 and st["accessTime"] == 1_600_000_000_500
    assert client.status("/cli/r/d")["permission"] == "700"
    with pytest.raises(HdfsError, match="is non empty"):
        client.delete("/cli/r/d")
    assert client.delete("/cli/r/d", recursive=True) is True
    assert client.delete("/cli/r/d") is False
    with pytest.raises(HdfsError, match="does not exist"):
        client.status("/cli/r/d")


# ---- fsspec -----------------------------------------------------------------------------------


def test_fsspec_write_read_ranges(fs: WebHDFS) -> None:
    payload = os.urandom(3 * (1 << 20) + 77)
    fs.mkdir("/fss")
    # A small block size makes fsspec send CREATE and then several APPENDs to one Location.
    with fs.open("/fss/data.bin", "wb", block_size=1 << 20) as f:
        for i in range(0, len(payload), 300_000):
            f.write(payload[i : i + 300_000])
    assert fs.info("/fss/data.bin")["size"] == len(payload)
    with fs.open("/fss/data.bin", "rb", block_size=256 * 1024) as f:
        f.seek(1_500_000)
        assert f.read(100_000) == payload[1_500_000:1_600_000]
        f.seek(len(payload) - 5)
        assert f.read() == payload[-5:]
    assert fs.cat_file("/fss/data.bin", start=10, end=20) == payload[10:20]
    assert fs.cat("/fss/data.bin") == payload


def test_fsspec_ls_info_mv_rm(fs: WebHDFS) -> None:
    fs.mkdir("/fsl/d")
    fs.pipe("/fsl/a.txt", b"hello")
    names = sorted(e["name"] for e in fs.ls("/fsl", detail=True))
    assert names == ["/fsl/a.txt", "/fsl/d"]
    info = fs.info("/fsl/a.txt")
    assert info["type"] == "file" and info["size"] == 5 and info["owner"] == ME
    assert fs.info("/fsl/d")["type"] == "directory"
    fs.mv("/fsl/a.txt", "/fsl/d/b.txt")
    assert not fs.exists("/fsl/a.txt") and fs.cat("/fsl/d/b.txt") == b"hello"
    fs.rm("/fsl", recursive=True)
    assert not fs.exists("/fsl")
    with pytest.raises(FileNotFoundError):
        fs.info("/fsl")


# ---- one namespace, several doors -------------------------------------------------------------


def test_cli_written_file_has_same_attributes_over_webhdfs(
    server: Daemon, client: InsecureClient, tmp_path: Path
) -> None:
    (tmp_path / "f").write_bytes(b"from the cli")
    assert nsd("mkdir", "-p", "/doors", daemon=server).returncode == 0
    assert nsd("put", str(tmp_path / "f"), "/doors/f", daemon=server).returncode == 0
    cli = json.loads(nsd("stat", "--json", "/doors/f", daemon=server).stdout)
    web = client.status("/doors/f")
    assert web["length"] == cli["size"] == 12
    assert web["modificationTime"] == cli["mtime_ns"] // 1_000_000
    assert web["accessTime"] == cli["atime_ns"] // 1_000_000
    assert web["owner"] == pwd.getpwuid(cli["uid"]).pw_name
    assert web["permission"] == format(cli["mode"], "o")
    assert web["fileId"] == cli["ino"]
    with client.read("/doors/f") as r:
        assert r.read() == b"from the cli"


def test_webhdfs_written_file_is_visible_to_the_cli(server: Daemon, client: InsecureClient) -> None:
    client.write("/doors2/w", data=b"from webhdfs", permission="600")
    assert nsd("cat", "/doors2/w", daemon=server).stdout == b"from webhdfs"
    cli = json.loads(nsd("stat", "--json", "/doors2/w", daemon=server).stdout)
    assert cli["uid"] == os.getuid() and cli["mode"] == 0o600 and cli["size"] == 12
    assert stat.S_IMODE(cli["mode"]) == int(client.status("/doors2/w")["permission"], 8)
