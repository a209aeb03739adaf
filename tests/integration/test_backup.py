"""Backups taken under write load restore to a data dir that serves the same tree and content."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import tarfile
import threading
import time
from pathlib import Path
from typing import Any

import requests
from daemon import Daemon, nsd, start
from hdfs import InsecureClient


def test_backup_under_load_restores_the_same_tree(tmp_path: Path) -> None:
    d = start(tmp_path / "data")
    written: dict[str, bytes] = {}
    stop = threading.Event()

    def load() -> None:
        s = d.session()
        s.post(f"{d.url}/api/v1/fs/mkdir", json={"path": "/load"}).raise_for_status()
        i = 0
        while not stop.is_set():
            body = f"file {i}\n".encode() * (i % 50 + 1)
            s.put(f"{d.url}/api/v1/fs/content", params={"path": f"/load/f{i:05d}"}, data=body).raise_for_status()
            written[f"f{i:05d}"] = body
            i += 1

    writer = threading.Thread(target=load)
    writer.start()
    try:
        while len(written) < 30:
            stop.wait(0.05)
        acked_before = set(written)
        archive = tmp_path / "nsd.ops.backup"
        result = nsd("journal", "backup", "-q", str(archive), daemon=d)
        assert result.returncode == 0, result.stderr.decode()
        while len(written) < len(acked_before) + 20:  # writes went on during and after the backup
            stop.wait(0.05)
    finally:
        stop.set()
        writer.join(30)
        assert d.stop() == 0
    assert archive.stat().st_mode & 0o777 == 0o600
    with tarfile.open(archive) as tar:
        assert {"nsd-backup.json", "root.uri"} <= set(tar.getnames())

    restored = tmp_path / "restored"
    out = nsd("journal", "restore", str(archive), "--data-dir", str(restored))
    assert out.returncode == 0, out.stderr.decode()
    again = nsd("journal", "restore", str(archive), "--data-dir", str(restored))
    assert again.returncode == 1 and "empty data dir" in again.stderr.decode()

    d2 = start(restored)
    try:
        entries = requests.get(f"{d2.url}/api/v1/fs/list", params={"path": "/load"}).json()["entries"]
        names = {e["name"] for e in entries}
        assert acked_before <= names <= set(written)
        for name in names:
            body = requests.get(f"{d2.url}/api/v1/fs/content", params={"path": f"/load/{name}"}).content
            assert body == written[name], name
    finally:
        assert d2.stop() == 0
    verify = nsd("journal", "verify", "--data-dir", str(restored))
    assert verify.returncode == 0, verify.stderr.decode()


MiB = 1 << 20
ME = pwd.getpwuid(os.getuid()).pw_name
FAST = {"NSD_BLOCK_SIZE": str(MiB)}


def ok(result: subprocess.CompletedProcess[bytes]) -> str:
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


def nfs_cp(src: str, dst: str) -> None:
    subprocess.run(["nfs-cp", src, dst], check=True, capture_output=True, timeout=300)


def test_backup_carries_unpersisted_must_cache_blocks(tmp_path: Path) -> None:
    """MUST_CACHE data lives only in the cache: written over WebHDFS (HdfsCLI) and NFS (nfs-cp)
    under write load, it must come back from a backup whole, and still persist after."""
    ufs = tmp_path / "ufs"
    ufs.mkdir()
    d = start(tmp_path / "data", env=FAST)
    hdfs = InsecureClient(d.url, user=ME)
    acked: dict[str, bytes] = {}  # path -> content, for every write acknowledged before the backup
    late: dict[str, bytes] = {}  # writes that may land on either side of the backup's txid
    try:
        ok(nsd("mount", "add", "/m", ufs.as_uri(), "-o", "write_type=MUST_CACHE", daemon=d))
        for sub in ("hdfs", "nfs", "load"):
            ok(nsd("mkdir", f"/m/{sub}", daemon=d))
        for i in range(4):
            body = os.urandom(i * MiB + 1000 * i + 7)
            hdfs.write(f"/m/hdfs/f{i}", data=body)
            acked[f"/m/hdfs/f{i}"] = body
        for i in range(2):
            src = tmp_path / f"src{i}"
            src.write_bytes(os.urandom(3 * MiB + 17 * i))
            nfs_cp(str(src), d.nfs_url(f"/m/nfs/n{i}"))
            acked[f"/m/nfs/n{i}"] = src.read_bytes()

        stop = threading.Event()
        errors: list[BaseException] = []

        def over_webhdfs() -> None:
            i = 0
            while not stop.is_set():
                body = os.urandom(MiB // 2 + i * 4097)
                path = f"/m/load/w{i:04d}"
                late[path] = body
                hdfs.write(path, data=body)
                i += 1

        def over_nfs() -> None:
            i = 0
            while not stop.is_set():
                src = tmp_path / f"load{i}"
                src.write_bytes(os.urandom(MiB + i))
                late[f"/m/load/n{i:04d}"] = src.read_bytes()
                nfs_cp(str(src), d.nfs_url(f"/m/load/n{i:04d}"))
                i += 1

        def guarded(fn: Any) -> Any:
            def run() -> None:
                try:
                    fn()
                except BaseException as e:  # the test fails below, with the error
                    errors.append(e)

            return run

        writers = [threading.Thread(target=guarded(fn)) for fn in (over_webhdfs, over_nfs)]
        for w in writers:
            w.start()
        while len(late) < 4:
            stop.wait(0.05)
        archive = tmp_path / "nsd.ops.backup"
        made = json.loads(ok(nsd("journal", "backup", "-q", "--json", str(archive), daemon=d)))
        while len(late) < 8:  # the writes go on after the backup
            stop.wait(0.05)
        stop.set()
        for w in writers:
            w.join(120)
        assert not errors, errors
    finally:
        assert d.stop() == 0
    assert made["blocks"] >= sum(-(-len(b) // MiB) for b in acked.values())
    assert made["block_bytes"] >= sum(map(len, acked.values())) and made["lost_blocks"] == 0
    assert not [p for p in ufs.rglob("*") if p.is_file()]  # none of it reached the UFS

    restored = tmp_path / "restored"
    restored.mkdir()  # empty, as an operator would prepare it
    back = json.loads(ok(nsd("journal", "restore", "--json", str(archive), "--data-dir", str(restored))))
    assert (back["blocks"], back["block_bytes"], back["lost_blocks"]) == (made["blocks"], made["block_bytes"], 0)
    blocks = [p for p in (restored / "blocks").glob("*/*")]
    assert len(blocks) == made["blocks"]

    d2 = start(restored, env=FAST)
    try:
        for path, body in acked.items():
            with hdfs_at(d2).read(path) as r:
                assert r.read() == body, path
        out = tmp_path / "out"
        nfs_cp(d2.nfs_url("/m/nfs/n1"), str(out))
        assert out.read_bytes() == acked["/m/nfs/n1"]
        listed = {
            e["name"]
            for e in d2.session().get(f"{d2.url}/api/v1/fs/list", params={"path": "/m/load"}).json()["entries"]
        }
        assert listed and listed <= {p.rsplit("/", 1)[1] for p in late}
        for name in listed:
            got = d2.session().get(f"{d2.url}/api/v1/fs/content", params={"path": f"/m/load/{name}"}).content
            # A file mid-copy over NFS at the backup's txid was created but had no data sealed yet.
            assert got == late[f"/m/load/{name}"] or (name.startswith("n") and got == b""), name
        fsck = json.loads(ok(nsd("fsck", "--json", daemon=d2)))
        assert fsck["clean"], fsck["problems"]
        persisted = json.loads(ok(nsd("persist", "-r", "--json", "/m", daemon=d2)))
        assert persisted["persisted"] == len(acked) + len(listed)
        for path, body in acked.items():
            assert (ufs / path.removeprefix("/m/")).read_bytes() == body, path
        assert json.loads(ok(nsd("stat", "--json", "/m/hdfs/f3", daemon=d2)))["persisted"] is True
    finally:
        assert d2.stop() == 0


def hdfs_at(d: Daemon) -> InsecureClient:
    return InsecureClient(d.url, user=ME)


def test_a_backup_stream_cut_short_is_an_error_and_writes_nothing(tmp_path: Path) -> None:
    """A daemon that breaks off mid-stream (as nsd does when a backup fails after its headers
    went out) must not leave a file that looks like a backup."""
    import gzip
    import http.server

    whole = gzip.compress(os.urandom(1 << 16))

    class Cut(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.send_response(200)
            self.send_header("X-Nsd-Txid", "7")
            self.end_headers()
            self.wfile.write(whole[: len(whole) // 2])
            self.close_connection = True

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Cut)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        out = tmp_path / "b.tgz"
        url = f"http://127.0.0.1:{server.server_address[1]}"
        result = nsd("--server", url, "--token", "t", "journal", "backup", "-q", str(out))
        assert result.returncode == 1 and "cut short" in result.stderr.decode()
        assert list(tmp_path.iterdir()) == []
    finally:
        server.shutdown()


def test_async_through_data_pending_for_a_down_s3_survives_backup_and_restore(tmp_path: Path) -> None:
    """ASYNC_THROUGH data whose persist has not finished exists only in the cache: restored from a
    backup, the new daemon finishes the persist once the store is back."""
    from s3server import MotoS3

    s3 = MotoS3()
    try:
        bucket = s3.bucket()
        d = start(tmp_path / "data", env={**FAST, "NSD_PERSIST_RETRY_MAX": "0.5"})
        bodies = {f"out/f{i}": os.urandom(i * MiB + 333) for i in range(1, 4)}
        try:
            options = s3.mount_options(write_type="ASYNC_THROUGH", retries="1")
            ok(nsd("mount", "add", "/s3", f"s3://{bucket}", *options, daemon=d))
            ok(nsd("mkdir", "/s3/out", daemon=d))
            s3.stop()
            for key, body in bodies.items():
                hdfs_at(d).write(f"/s3/{key}", data=body)
            assert json.loads(ok(nsd("report", "cache", "--json", daemon=d)))["cache"]["pending_persists"] == 3
            archive = tmp_path / "b.tgz"
            made = json.loads(ok(nsd("journal", "backup", "-q", "--json", str(archive), daemon=d)))
            assert made["blocks"] == sum(-(-len(b) // MiB) for b in bodies.values())
        finally:
            d.kill()  # the old daemon never gets to persist anything
        restored = tmp_path / "restored"
        ok(nsd("journal", "restore", str(archive), "--data-dir", str(restored)))
        s3.restart()
        d2 = start(restored, env={**FAST, "NSD_PERSIST_RETRY_MAX": "0.5"})
        try:
            deadline = time.monotonic() + 60
            while json.loads(ok(nsd("report", "cache", "--json", daemon=d2)))["cache"]["pending_persists"]:
                assert time.monotonic() < deadline, "the restored daemon did not finish the persists"
                time.sleep(0.2)
            for key, body in bodies.items():
                assert s3.client().get_object(Bucket=bucket, Key=key)["Body"].read() == body, key
            assert json.loads(ok(nsd("fsck", "--json", daemon=d2)))["clean"]
        finally:
            assert d2.stop() == 0
    finally:
        s3.stop()
