"""WebHDFS through Hadoop's own Java client: `hadoop fs` (FsShell) from the Hadoop 3.5 client
jars that PyPI's pyspark ships, on the machine's Java, against a real daemon."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pyspark
import pytest
from daemon import Daemon, nsd, start
from hdfs_reference import reference_checksum

JARS = Path(pyspark.__file__).parent / "jars"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = start(tmp_path_factory.mktemp("hadoop") / "data")
    yield d
    d.stop()


@pytest.fixture(scope="module")
def conf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    conf = tmp_path_factory.mktemp("conf")
    (conf / "core-site.xml").write_text('<?xml version="1.0"?>\n<configuration></configuration>\n')
    return conf


class Hadoop:
    def __init__(self, server: Daemon, conf: Path, user: str | None = None) -> None:
        self.root = "webhdfs://" + server.url.split("://", 1)[1]
        self.conf = conf
        self.env = None if user is None else {**os.environ, "HADOOP_USER_NAME": user}  # simple auth's user

    def __call__(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        """`hadoop fs ARGS`; a leading "/" in an argument means a path on nsd."""
        argv = [self.root + a if a.startswith("/") else a for a in args]
        cmd = ["java", "-cp", f"{self.conf}:{JARS}/*", "org.apache.hadoop.fs.FsShell", *argv]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=self.env)
        if ok:
            assert result.returncode == 0, f"hadoop fs {' '.join(args)}: {result.stderr}"
        return result


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


def test_users_the_machine_has_never_heard_of(hadoop: Hadoop, server: Daemon, conf_dir: Path, tmp_path: Path) -> None:
    """HADOOP_USER_NAME=etl with no etl account here works as on HDFS: etl gets an id of
    auto_id_range, owns what it writes (group etl), and is held to the permissions as anyone."""
    hadoop("-mkdir", "/jobs")
    hadoop("-chmod", "1777", "/jobs")
    etl, bob = Hadoop(server, conf_dir, user="etl"), Hadoop(server, conf_dir, user="bob")
    (tmp_path / "part-0000").write_text("a,b\n")
    etl("-mkdir", "-p", "/jobs/etl/out")
    etl("-put", str(tmp_path / "part-0000"), "/jobs/etl/out/")
    rows = [line.split() for line in etl("-ls", "-R", "/jobs/etl").stdout.splitlines()]
    assert [(r[2], r[3], r[-1].rsplit("/jobs/", 1)[-1]) for r in rows] == [
        ("etl", "etl", "etl/out"),
        ("etl", "etl", "etl/out/part-0000"),
    ]
    assert bob("-cat", "/jobs/etl/out/part-0000").stdout == "a,b\n"  # 644: others read
    denied = bob("-put", str(tmp_path / "part-0000"), "/jobs/etl/out/part-0001", ok=False)
    assert denied.returncode != 0 and "Permission denied: user=bob, access=WRITE" in denied.stderr
    sticky = bob("-rm", "-r", "-skipTrash", "/jobs/etl", ok=False)
    assert sticky.returncode != 0 and "Permission denied" in sticky.stderr
    mapped = {u["name"]: u["uid"] for u in json.loads(nsd("users", "ls", "--json", daemon=server).stdout)["users"]}
    assert {"etl", "bob"} <= mapped.keys() and all(200000 <= mapped[n] <= 299999 for n in ("etl", "bob"))
    st = json.loads(nsd("stat", "--json", "/jobs/etl/out/part-0000", daemon=server).stdout)
    assert (st["uid"], st["gid"], st["owner"], st["group"]) == (mapped["etl"], mapped["etl"], "etl", "etl")
