"""WebHDFS through Hadoop's own Java client: `hadoop fs` (FsShell) from the Hadoop 3.5 client
jars that PyPI's pyspark ships, on the machine's Java, against a real daemon."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon import Daemon, nsd, start
from hadoop_shell import Hadoop
from hadoop_shell import conf_dir as make_conf_dir
from hdfs_reference import reference_checksum


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = start(tmp_path_factory.mktemp("hadoop") / "data")
    yield d
    d.stop()


@pytest.fixture(scope="module")
def conf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_conf_dir(tmp_path_factory.mktemp("conf"))


@pytest.fixture
def hadoop(server: Daemon, conf_dir: Path) -> Hadoop:
    return Hadoop(server, conf_dir)


def test_mkdir_put_get_cat_ls(hadoop: Hadoop, server: Daemon, tmp_path: Path) -> None:
    payload = os.urandom(6 * (1 << 20) + 5)  # many 32 KiB chunks of a chunked upload
    (tmp_path / "big.bin").write_bytes(payload)
    hadoop("-mkdir", "-p", "/h/in/deep")
    hadoop("-put", str(tmp_path / "big.bin"), "/h/in/")
    hadoop("-get", "/h/in/big.bin", str(tmp_path / "back.bin"))
    assert (tmp_path / "back.bin").read_bytes() == payload
    assert (server.data_dir / "ufs" / "h" / "in" / "big.bin").read_bytes() == payload
    (tmp_path / "small.txt").write_text("hello hadoop\n")
    hadoop("-put", str(tmp_path / "small.txt"), "/h/in/deep/small.txt")
    assert hadoop("-cat", "/h/in/deep/small.txt").stdout == "hello hadoop\n"
    listing = hadoop("-ls", "-R", "/h").stdout.splitlines()
    paths = [line.rsplit(" ", 1)[-1].split("/h/", 1)[-1] for line in listing]
    assert paths == ["in", "in/big.bin", "in/deep", "in/deep/small.txt"]
    big = next(line for line in listing if line.endswith("big.bin"))
    assert big.startswith("-rw-r--r--") and f" {len(payload)} " in big
    # No _COPYING_ leftovers: -put writes dst._COPYING_ and renames it.
    assert "_COPYING_" not in " ".join(listing)


def test_mv_cp_rm_with_and_without_trash(hadoop: Hadoop) -> None:
    hadoop("-mkdir", "-p", "/m/d")
    hadoop("-touchz", "/m/a")
    hadoop("-mv", "/m/a", "/m/d")  # into the directory
    hadoop("-cp", "/m/d/a", "/m/b")
    names = {line.rsplit("/", 1)[-1] for line in hadoop("-ls", "-R", "/m").stdout.splitlines()}
    assert names == {"a", "b", "d"}
    assert "Deleted" in hadoop("-rm", "/m/b").stdout  # trash disabled by GETSERVERDEFAULTS
    assert "Deleted" in hadoop("-rm", "-skipTrash", "/m/d/a").stdout
    not_empty = hadoop("-rm", "-r", "/m")
    assert "Deleted" in not_empty.stdout
    missing = hadoop("-ls", "/m", ok=False)
    assert missing.returncode != 0 and "No such file or directory" in missing.stderr


def test_du_count_checksum(hadoop: Hadoop, tmp_path: Path) -> None:
    data = os.urandom(123_456)
    (tmp_path / "f").write_bytes(data)
    hadoop("-mkdir", "-p", "/c/sub")
    hadoop("-put", str(tmp_path / "f"), "/c/f")
    hadoop("-put", str(tmp_path / "f"), "/c/sub/g")
    du = {line.split()[-1].rsplit("/", 1)[-1]: line.split()[0] for line in hadoop("-du", "/c").stdout.splitlines()}
    assert du == {"f": "123456", "sub": "123456"}
    dirs, files, size, _ = hadoop("-count", "/c").stdout.split()
    assert (dirs, files, size) == ("2", "2", "246912")
    _, algorithm, value = hadoop("-checksum", "/c/f").stdout.split()
    want_algorithm, want = reference_checksum(data, 128 << 20)
    assert (algorithm, value) == (want_algorithm, want.hex())


def test_append_chmod_touch(hadoop: Hadoop, server: Daemon, tmp_path: Path) -> None:
    (tmp_path / "part").write_text("part\n")
    hadoop("-mkdir", "/a")
    hadoop("-touchz", "/a/log")
    hadoop("-appendToFile", str(tmp_path / "part"), "/a/log")
    hadoop("-appendToFile", str(tmp_path / "part"), "/a/log")
    assert hadoop("-cat", "/a/log").stdout == "part\npart\n"
    hadoop("-chmod", "640", "/a/log")
    hadoop("-touch", "/a/new")
    listing = hadoop("-ls", "/a").stdout
    assert "-rw-r-----" in listing and listing.rstrip().endswith("/a/new")
    # The same file, seen through the nsd CLI.
    assert nsd("cat", "/a/log", daemon=server).stdout == b"part\npart\n"
    existing = hadoop("-test", "-e", "/a/new", ok=False)
    missing = hadoop("-test", "-e", "/a/none", ok=False)
    assert (existing.returncode, missing.returncode) == (0, 1)
