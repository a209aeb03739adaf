"""Faults injected into a running daemon, each with the outcome nsd promises (docs/architecture.md,
"Failure modes"): full disks (real tmpfs mounts), a damaged checkpoint, S3 going away under a
mount (moto's server stopped and started again), and an under-storage too slow to answer.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import libnfs  # type: ignore[import-untyped]
import pytest
import requests
from daemon import Daemon, nsd, start
from hdfs import InsecureClient
from hdfs.util import HdfsError
from rpcclient import RpcClient, create_file, lookup_path, read_status, write_status

from nsd.journal.checkpoint import list_checkpoints
from nsd.protocols.nfs3.const import Status

USER = "root" if os.getuid() == 0 else os.environ.get("USER", "nobody")


@contextlib.contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A real small file system (tmpfs) at `where`; root only (CI runs as root)."""
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("these tests mount tmpfs and must run as root in CI")
        pytest.skip("mounting tmpfs needs root; CI runs these")
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def fill(path: Path, leave: int) -> Path:
    """Write a filler file until about `leave` bytes are free (0: until the disk refuses)."""
    filler = path / "filler"
    with open(filler, "wb", buffering=0) as f:
        chunk = b"\0" * 65536
        try:
            while free_bytes(path) > leave + len(chunk):
                f.write(chunk)
            if leave == 0:
                while True:
                    f.write(b"\0" * 4096)
        except OSError as e:
            assert e.errno == errno.ENOSPC
    return filler


def webhdfs_put(d: Daemon, path: str, data: bytes) -> requests.Response:
    """CREATE in two steps, as a client does; the response of the data step."""
    url = f"{d.url}/webhdfs/v1{path}"
    r = requests.put(url, params={"op": "CREATE", "overwrite": "true", "user.name": USER}, allow_redirects=False)
    if r.status_code != 307:
        return r
    return requests.put(r.headers["Location"], data=data, timeout=60)


def remote(r: requests.Response) -> dict[str, str]:
    return r.json()["RemoteException"]


def doctor(d: Daemon) -> dict[str, dict[str, str]]:
    out = nsd("doctor", "--json", daemon=d)
    return {c["check"]: c for c in json.loads(out.stdout)}


def nfs_client(d: Daemon) -> libnfs.NFS:
    return libnfs.NFS(d.nfs_url("/"))


def nfs_write(nfs: libnfs.NFS, path: str, data: bytes) -> int:
    """Create and write with FILE_SYNC; 0 or the negative errno the server answered."""
    import libnfs.libnfs as raw  # type: ignore[import-untyped]

    fh = raw.new_NFSFileHandle()
    flags = os.O_WRONLY | os.O_CREAT | os.O_SYNC
    rc = raw.nfs_open(nfs._nfs, path, flags, fh)
    if rc == -errno.ENOENT:
        rc = raw.nfs_create(nfs._nfs, path, flags, 0o644, fh)
    if rc < 0:
        return int(rc)
    handle = raw.NFSFileHandle_value(fh)
    try:
        n = raw.nfs_write(nfs._nfs, handle, len(data), bytearray(data))
        return int(n) if n < 0 else 0
    finally:
        raw.nfs_close(nfs._nfs, handle)


def nfs_read(nfs: libnfs.NFS, path: str) -> bytes:
    f = nfs.open(path, "rb")
    try:
        return bytes(f.read())
    finally:
        f.close()


def wait_for(what: str, check: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


# ---- the journal's disk fills up -------------------------------------------------------------------


def test_journal_disk_full_refuses_changes_serves_reads_and_recovers(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "data", "24m") as data:
        ufs = tmp_path / "ufs"  # the under-storage is elsewhere: only the journal's disk fills
        ufs.mkdir()
        env = {"NSD_ROOT_UFS": ufs.as_uri(), "NSD_JOURNAL_RESERVE_BYTES": str(4 << 20)}
        d = start(data, env=env)
        try:
            assert webhdfs_put(d, "/kept", b"written before").status_code == 201
            nfs = nfs_client(d)
            assert nfs_write(nfs, "/kept-nfs", b"via nfs") == 0
            filler = fill(data, leave=2 << 20)
            time.sleep(0.3)  # free space is looked at every 0.25 s at most

            r = webhdfs_put(d, "/refused", b"x")
            assert r.status_code == 403, r.text
            assert "journal disk full" in remote(r)["message"]
            assert remote(r)["exception"] == "DSQuotaExceededException"
            assert nfs_write(nfs, "/refused-nfs", b"x") == -errno.ENOSPC
            assert nfs.mkdir("/refused-dir") == -errno.ENOSPC
            r = d.session().put(f"{d.url}/api/v1/fs/content", params={"path": "/refused-admin"}, data=b"x")
            assert r.status_code == 507 and "journal disk full" in r.json()["error"]["message"]

            # reads go on, through every door
            assert nfs_read(nfs, "/kept-nfs") == b"via nfs"
            assert InsecureClient(d.url, user=USER).read("/kept").__enter__().read() == b"written before"
            assert sorted(nsd("ls", "/", daemon=d).stdout.decode().split()) == ["kept", "kept-nfs"]
            # and everyone can tell why writes fail
            assert "journal disk full" in requests.get(f"{d.url}/api/v1/status").json()["writes_refused"]
            checks = doctor(d)
            assert checks["journal"]["status"] == "fail" and "journal disk full" in checks["journal"]["detail"]
            assert "refusing changes: journal disk full" in d.log.read_text()

            filler.unlink()  # space comes back: no restart needed
            wait_for("writes to be taken again", lambda: webhdfs_put(d, "/after", b"room again").status_code == 201)
            assert nfs_write(nfs, "/after-nfs", b"nfs again") == 0
            assert nfs_read(nfs, "/after") == b"room again"
            assert requests.get(f"{d.url}/api/v1/status").json()["writes_refused"] is None
            assert doctor(d)["journal"]["status"] == "ok"
            del nfs
        finally:
            assert d.stop() == 0
        verify = nsd("journal", "verify", "--data-dir", str(data))
        assert verify.returncode == 0, verify.stdout


def test_a_batch_the_disk_refuses_waits_for_room_and_is_not_lost(tmp_path: Path) -> None:
    """No reserve: the disk refuses the journal write itself (once the space the segment has
    allocated ahead, at most segment_bytes, is used up). That change waits, unacknowledged; later
    ones are refused at once; when room comes back the waiting one completes, and nothing
    acknowledged is lost across a restart."""
    with tmpfs(tmp_path / "data", "16m") as data:
        ufs = tmp_path / "ufs"
        ufs.mkdir()
        env = {"NSD_ROOT_UFS": ufs.as_uri(), "NSD_JOURNAL_RESERVE_BYTES": "0", "NSD_SEGMENT_BYTES": "65536"}
        d = start(data, env=env)
        acked: list[str] = []
        stop = threading.Event()

        def writer() -> None:
            for i in range(10_000):
                if stop.is_set():
                    return
                r = webhdfs_put(d, f"/w{i}", f"data {i}".encode())
                if r.status_code != 201:
                    return
                acked.append(f"/w{i}")

        try:
            filler = fill(data, leave=0)
            t = threading.Thread(target=writer)
            t.start()
            wait_for("the journal to report a full disk", lambda: doctor(d)["journal"]["status"] == "fail", 30)
            held = len(acked)
            time.sleep(0.5)
            assert len(acked) == held, "acknowledged while its record could not be written"
            r = webhdfs_put(d, "/refused", b"x")
            assert r.status_code == 403 and "journal disk full" in remote(r)["message"], r.text
            filler.unlink()
            wait_for("the held change to be acknowledged", lambda: len(acked) > held, 30)
            stop.set()
            t.join(30)
            assert "journal disk full" in d.log.read_text()
        finally:
            stop.set()
            assert d.stop() == 0
        d = start(data, env=env)
        try:
            web = InsecureClient(d.url, user=USER)
            for path in acked:
                with web.read(path) as f:
                    assert f.read() == f"data {path[2:]}".encode()
            assert web.status("/refused", strict=False) is None
        finally:
            assert d.stop() == 0
        assert nsd("journal", "verify", "--data-dir", str(data)).returncode == 0


# ---- the under-storage's disk fills up -------------------------------------------------------------


def test_ufs_disk_full_is_nospc_and_403_and_corrupts_nothing(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ufs", "512k") as ufs:
        d = start(tmp_path / "data", env={"NSD_ROOT_UFS": ufs.as_uri()})
        try:
            assert webhdfs_put(d, "/small", b"fits").status_code == 201
            r = webhdfs_put(d, "/big", os.urandom(2 << 20))
            assert r.status_code == 403, r.text
            assert remote(r)["exception"] == "DSQuotaExceededException"
            assert "No space left" in remote(r)["message"]
            with RpcClient(d.nfs_port) as c:  # on the wire: libnfs 4.0 turns every WRITE error into EFAULT
                handle = create_file(c, c.mount(), "big-nfs")
                assert write_status(c, handle, 0, os.urandom(800 << 10)) == Status.NOSPC
            nfs = nfs_client(d)
            assert nfs_write(nfs, "/big-nfs2", os.urandom(800 << 10)) < 0  # a real client sees the failure
            assert nfs_read(nfs, "/small") == b"fits"
            assert not [p.name for p in ufs.iterdir() if p.name.startswith(".nsd-tmp")]  # nothing half-written
            web = InsecureClient(d.url, user=USER)
            assert web.status("/big", strict=False) is None
            fsck = nsd("fsck", daemon=d)
            assert fsck.returncode == 0, fsck.stdout
            del nfs
        finally:
            assert d.stop() == 0


# ---- a damaged checkpoint ----------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["corrupt", "missing"])
def test_a_bad_newest_checkpoint_falls_back_to_the_previous_one(tmp_path: Path, damage: str) -> None:
    data = tmp_path / "data"
    d = start(data)
    try:
        s = d.session()
        for i in range(3):
            assert webhdfs_put(d, f"/f{i}", f"content {i}".encode()).status_code == 201
            assert s.post(f"{d.url}/api/v1/journal/checkpoint").status_code == 200
        assert webhdfs_put(d, "/after-last-checkpoint", b"tail").status_code == 201
    finally:
        assert d.stop() == 0  # a clean stop writes the newest checkpoint
    newest = list_checkpoints(data / "journal")[-1][1]
    if damage == "corrupt":
        raw = bytearray(newest.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        newest.write_bytes(bytes(raw))
    else:
        newest.unlink()
    verify = nsd("journal", "verify", "--data-dir", str(data))
    assert verify.returncode == 0, verify.stdout
    d = start(data)
    try:
        web = InsecureClient(d.url, user=USER)
        for i in range(3):
            with web.read(f"/f{i}") as f:
                assert f.read() == f"content {i}".encode()
        with web.read("/after-last-checkpoint") as f:
            assert f.read() == b"tail"
        if damage == "corrupt":
            assert f"skipped checkpoint {newest.name}" in d.log.read_text()
    finally:
        assert d.stop() == 0


# ---- S3 goes away under a mount ---------------------------------------------------------------------


def test_s3_down_under_a_mount_fails_fast_and_clearly_then_recovers(tmp_path: Path) -> None:
    import boto3
    from moto.server import ThreadedMotoServer

    keys = {"access_key": "AKIAFAULTTEST1234", "secret_key": "fault-test-Secret-Value"}
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    boto3.client(
        "s3",
        endpoint_url=f"http://{host}:{port}",
        aws_access_key_id=keys["access_key"],
        aws_secret_access_key=keys["secret_key"],
        region_name="us-east-1",
    ).create_bucket(Bucket="faults")
    d = start(tmp_path / "data")
    try:
        options = {
            "endpoint_override": f"{host}:{port}",
            "scheme": "http",
            **keys,
            "retries": "2",
            "retry_base_s": "0.05",
            "timeout_s": "3",
            "sdk_retries": "1",
            "down_probe_s": "0.5",  # while down, calls fail fast; one probe per half second
        }
        r = d.session().post(f"{d.url}/api/v1/mounts", json={"path": "/s3", "uri": "s3://faults", "options": options})
        assert r.status_code == 201, r.text
        assert webhdfs_put(d, "/s3/obj", b"in the bucket").status_code == 201
        moto.stop()
        try:
            started = time.monotonic()
            r = requests.get(f"{d.url}/webhdfs/v1/s3/obj", params={"op": "OPEN", "user.name": USER}, timeout=60)
            took = time.monotonic() - started
            assert r.status_code == 500 and "under-storage" in remote(r)["message"], r.text
            assert not remote(r)["message"].endswith(": obj")  # the URL names the object already: once
            assert keys["secret_key"] not in r.text
            assert took < 15, f"a read with S3 down took {took:.1f}s"
            started = time.monotonic()
            r = webhdfs_put(d, "/s3/new", b"while down")
            assert r.status_code == 500 and "under-storage" in remote(r)["message"], r.text
            assert time.monotonic() - started < 15
            # what the namespace knows is still answered
            st = requests.get(f"{d.url}/webhdfs/v1/s3/obj", params={"op": "GETFILESTATUS", "user.name": USER})
            assert st.status_code == 200 and st.json()["FileStatus"]["length"] == len(b"in the bucket")
            assert doctor(d)["mount /s3"]["status"] == "fail"
            assert mount_up(d, "/s3") == 0  # what an alert on the outage watches
        finally:
            moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
            moto.start()  # same process, same port: the bucket's objects are back too
        web = InsecureClient(d.url, user=USER)
        deadline = time.monotonic() + 10
        while True:  # the next probe after the store is back finds it
            try:
                with web.read("/s3/obj") as f:
                    assert f.read() == b"in the bucket"
                break
            except HdfsError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert webhdfs_put(d, "/s3/new", b"back up").status_code == 201
        with web.read("/s3/new") as f:
            assert f.read() == b"back up"
        assert doctor(d)["mount /s3"]["status"] == "ok"
        assert mount_up(d, "/s3") == 1 and mount_up(d, "/") == 1
        assert nsd("fsck", daemon=d).returncode == 0
    finally:
        assert d.stop() == 0
        moto.stop()


def mount_up(d: Daemon, path: str) -> float:
    """nsd_mount_up of a mount, from /metrics."""
    text = requests.get(f"{d.url}/metrics", timeout=30).text
    prefix = 'nsd_mount_up{kind="'
    for line in text.splitlines():
        if line.startswith(prefix) and f'mount="{path}"' in line:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no nsd_mount_up for {path} in /metrics")


# ---- a slow under-storage ----------------------------------------------------------------------------


def test_a_slow_ufs_gets_jukebox_over_nfs_and_a_timeout_over_webhdfs(tmp_path: Path) -> None:
    d = start(tmp_path / "data", env={"NSD_NFS_JUKEBOX_AFTER": "0.3"})
    try:
        options = {"fault_read_latency_s": "4", "timeout_s": "1", "retries": "1"}
        r = d.session().post(
            f"{d.url}/api/v1/mounts", json={"path": "/slow", "uri": "memory://slow-faults", "options": options}
        )
        assert r.status_code == 201, r.text
        assert webhdfs_put(d, "/slow/f", b"eventually").status_code == 201  # writes are not slow here
        with RpcClient(d.nfs_port) as c:
            handle = lookup_path(c, "/slow/f")
            started = time.monotonic()
            status, _ = read_status(c, handle, 0, 100)
            assert status == Status.JUKEBOX and time.monotonic() - started < 2.5
        started = time.monotonic()
        r = requests.get(f"{d.url}/webhdfs/v1/slow/f", params={"op": "OPEN", "user.name": USER}, timeout=30)
        assert r.status_code == 500 and "did not answer read within 1s" in remote(r)["message"], r.text
        assert time.monotonic() - started < 5, "a slow store must end in an error, not a hang"
        st = requests.get(f"{d.url}/webhdfs/v1/slow/f", params={"op": "GETFILESTATUS", "user.name": USER})
        assert st.status_code == 200  # metadata is served from the namespace meanwhile
    finally:
        assert d.stop() == 0
