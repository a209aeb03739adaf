"""Under-storage behaviour seen through a running nsd by every door (admin API and CLI, WebHDFS
through HdfsCLI, NFS through libnfs-utils), on a real S3 endpoint (moto's server, in this
process) and the fault-injecting memory store (driven through its `faults_file`):

- objects put, overwritten and deleted with a plain S3 client show up after the mount's
  sync_interval (at once with 0, never by themselves with -1);
- a store that is down or slow fails calls quickly with a clear error, what nsd already knows
  still answers, and everything works again once the store is back;
- a 20k-object directory is listed page by page (first page before the listing ends, one
  journal record per 1000 entries);
- leftover temporary objects are swept and never shown;
- `mount ls` shows each store's state and never a secret.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests
from daemon import Daemon, nsd, start
from doors import ME, Doors, same
from hdfs import HdfsError
from s3server import S3_KEYS, backend, make_bucket, s3_client, s3_options, start_moto


def opts(options: dict[str, str]) -> list[str]:
    return [arg for k, v in options.items() for arg in ("-o", f"{k}={v}")]


def ok(result: subprocess.CompletedProcess[bytes]) -> str:
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


def mount(d: Daemon, path: str, uri: str, options: dict[str, str]) -> None:
    ok(nsd("mount", "add", path, uri, *opts(options), daemon=d))


def mounts(d: Daemon) -> dict[str, dict[str, Any]]:
    return {m["path"]: m for m in json.loads(ok(nsd("mount", "ls", "--json", daemon=d)))}


def eventually(check: Any, timeout: float = 30.0) -> Any:
    """Poll `check()` until it returns something true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    server, endpoint = start_moto()
    yield endpoint
    server.stop()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = start(tmp_path_factory.mktemp("ufs") / "data")
    yield d
    assert d.stop() == 0


# ---- out-of-band changes -------------------------------------------------------------------


def test_out_of_band_s3_changes_follow_each_mounts_sync_interval(daemon: Daemon, moto: str) -> None:
    bucket = make_bucket(moto)
    s3 = s3_client(moto)
    s3.put_object(Bucket=bucket, Key="oob/f", Body=b"one")
    s3.put_object(Bucket=bucket, Key="oob/gone", Body=b"bye")
    interval = 8.0
    for path, sync in (("/never", "-1"), ("/always", "0"), ("/timed", f"{interval:g}")):
        mount(daemon, path, f"s3://{bucket}/oob", s3_options(moto, sync_interval=sync))
    doors = Doors(daemon)
    t0 = time.monotonic()  # /timed is listed and its files checked after this
    for m in ("/never", "/always", "/timed"):
        assert same(doors.names(m)) == ["f", "gone"]
        assert same(doors.contents(f"{m}/f")) == b"one"

    s3.put_object(Bucket=bucket, Key="oob/new", Body=b"new object")
    s3.put_object(Bucket=bucket, Key="oob/f", Body=b"two, longer")
    s3.delete_object(Bucket=bucket, Key="oob/gone")

    # sync_interval 0: every door sees every change at once, new bytes only
    assert same(doors.names("/always")) == ["f", "new"]
    assert same(doors.sizes("/always/f")) == 11
    assert same(doors.contents("/always/f")) == b"two, longer"
    assert same(doors.contents("/always/new")) == b"new object"
    assert doors.api("fs/stat", path="/always/gone").status_code == 404
    assert doors.hdfs_status("/always/gone") is None
    assert b"NFS3ERR_NOENT" in doors.nfs("nfs-cat", daemon.nfs_url("/always/gone")).stderr
    s3.put_object(Bucket=bucket, Key="oob/f", Body=b"TWO, LONGER")  # same size
    assert same(doors.contents("/always/f")) == b"TWO, LONGER"

    # within the interval nothing changes; after it, everything has
    assert doors.api_names("/timed") == ["f", "gone"] and doors.api_stat("/timed/f")["size"] == 3
    eventually(lambda: doors.api_names("/timed") == ["f", "new"])
    assert time.monotonic() - t0 >= interval
    assert same(doors.names("/timed")) == ["f", "new"]
    eventually(lambda: doors.api_stat("/timed/f")["size"] == 11)
    assert same(doors.sizes("/timed/f")) == 11
    assert same(doors.contents("/timed/f")) == b"TWO, LONGER"

    # -1: never by itself, whatever the doors ask; `nsd sync` brings it in line
    assert same(doors.names("/never")) == ["f", "gone"]
    assert same(doors.sizes("/never/f")) == 3
    assert "1 directories listed" in ok(nsd("sync", "-r", "/never", daemon=daemon))
    assert same(doors.names("/never")) == ["f", "new"]
    assert same(doors.contents("/never/f")) == b"TWO, LONGER"


# ---- a store that is down or slow -------------------------------------------------------------


def test_s3_down_fails_fast_known_metadata_answers_and_it_recovers(tmp_path: Path) -> None:
    server, endpoint = start_moto()
    port = endpoint.rsplit(":", 1)[1]
    bucket = make_bucket(endpoint)
    s3 = s3_client(endpoint)
    s3.put_object(Bucket=bucket, Key="p/f", Body=b"still here")
    s3.put_object(Bucket=bucket, Key="p/cold", Body=b"never read")
    s3.put_object(Bucket=bucket, Key="p/listed/x", Body=b"x")
    s3.put_object(Bucket=bucket, Key="p/unlisted/y", Body=b"y")
    d = start(tmp_path / "data")
    try:
        doors = Doors(d)
        options = s3_options(endpoint, sync_interval="0", retries="2", down_probe_s="1", tmp_sweep_s="-1")
        mount(d, "/s3", f"s3://{bucket}/p", options)
        assert mounts(d)["/s3"]["state"] == "unused"
        assert same(doors.names("/s3")) == ["cold", "f", "listed", "unlisted"]
        assert same(doors.names("/s3/listed")) == ["x"]
        assert same(doors.contents("/s3/f")) == b"still here"  # now in the block cache too
        assert mounts(d)["/s3"]["state"] == "connected"
        server.stop()

        # data never read fails with the store's error, in each door's own words; nothing hangs
        read = doors.api("fs/content", path="/s3/cold")
        assert read.status_code == 503 and read.json()["error"]["type"] == "UfsUnavailable"
        assert "connect" in read.json()["error"]["message"].lower()
        with pytest.raises(HdfsError) as e:
            doors.hdfs_read("/s3/cold")
        assert e.value.exception == "IOException"
        assert doors.nfs("nfs-cat", d.nfs_url("/s3/cold")).returncode != 0
        assert nfs_errors(d, "READ", "NFS3ERR_IO") >= 1
        never = doors.nfs("nfs-ls", d.nfs_url("/s3/unlisted"))
        assert b"NFS3ERR_IO" in never.stdout + never.stderr  # never listed: needs the store
        assert doors.api("fs/list", path="/s3/unlisted").status_code == 503
        unknown = doors.api("fs/stat", path="/s3/never-seen")
        assert unknown.status_code == 503 and "unreachable" in unknown.json()["error"]["message"]

        # what nsd knows still answers (sync_interval 0 would ask the store each time),
        # and data read before comes from the block cache
        assert same(doors.names("/s3")) == ["cold", "f", "listed", "unlisted"]
        assert same(doors.names("/s3/listed")) == ["x"]
        assert same(doors.sizes("/s3/f")) == 10
        assert same(doors.contents("/s3/f")) == b"still here"

        state = mounts(d)["/s3"]
        assert state["state"] == "unreachable" and "connect" in state["last_error"].lower()
        human = ok(nsd("mount", "ls", daemon=d))
        assert "unreachable" in human and "last error: under-storage s3" in human
        assert S3_KEYS["secret_key"] not in human + json.dumps(state)

        server, _ = start_moto(int(port))  # moto keeps its buckets in this process: all is back
        eventually(lambda: doors.api("fs/content", path="/s3/cold").status_code == 200, timeout=20)
        assert same(doors.contents("/s3/cold")) == b"never read"
        assert same(doors.names("/s3/unlisted")) == ["y"]
        assert mounts(d)["/s3"]["state"] == "connected"
    finally:
        d.stop()
        server.stop()
    assert S3_KEYS["secret_key"] not in d.log.read_text()


def write_faults(path: Path, **faults: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(faults))
    tmp.replace(path)  # a new inode: the store sees the change whatever the clock's grain


def nfs_errors(d: Daemon, op: str, error: str) -> float:
    """How many NFS `op` calls the daemon answered with `error`, from /metrics."""
    total = 0.0
    for line in requests.get(f"{d.url}/metrics", timeout=30).text.splitlines():
        m = re.fullmatch(r"nsd_request_errors_total\{(.*)\} (\S+)", line)
        if m and dict(re.findall(r'(\w+)="([^"]*)"', m[1])) == {"protocol": "nfs3", "op": op, "error": error}:
            total += float(m[2])
    return total


def test_slow_and_hanging_store(tmp_path: Path) -> None:
    faults = tmp_path / "faults.json"
    d = start(tmp_path / "data", env={"NSD_NFS_JUKEBOX_AFTER": "0.5"})
    try:
        doors = Doors(d)
        store = {"faults_file": str(faults), "timeout_s": "3", "retries": "1", "down_probe_s": "1"}
        mount(d, "/slow", "memory://through-nsd-slow", {**store, "sync_interval": "-1", "tmp_sweep_s": "-1"})
        doors.hdfs.makedirs("/slow/d")
        doors.hdfs.write("/slow/d/f", data=b"slow bytes")
        doors.hdfs.write("/slow/d/g", data=b"not read yet")

        # Slower than NFS's patience (0.5 s), within the store's timeout: READ answers JUKEBOX
        # and the read goes on; libnfs gives up on JUKEBOX (the kernel client waits and
        # retries), and the next try collects the finished read. HTTP just waits.
        write_faults(faults, latency=1.0)
        assert doors.nfs("nfs-cat", d.nfs_url("/slow/d/f")).returncode != 0
        assert nfs_errors(d, "READ", "NFS3ERR_JUKEBOX") == 1
        time.sleep(1.0)
        assert doors.nfs_cat("/slow/d/f") == b"slow bytes"
        assert nfs_errors(d, "READ", "NFS3ERR_JUKEBOX") == 1
        assert doors.hdfs_read("/slow/d/f") == b"slow bytes"

        # A store that does not answer: a clear error after timeout_s, then at once at every door
        # (NFS answers JUKEBOX first: its patience is shorter than the store's timeout).
        write_faults(faults, hang=True)
        read = doors.api("fs/content", path="/slow/d/g")
        assert read.status_code == 503 and "did not answer read within 3s" in read.json()["error"]["message"]
        with pytest.raises(HdfsError) as e:
            doors.hdfs_read("/slow/d/g")
        assert e.value.exception == "IOException" and "unreachable" in str(e.value)
        assert doors.nfs("nfs-cat", d.nfs_url("/slow/d/g")).returncode != 0
        assert same(doors.names("/slow/d")) == ["f", "g"]  # listed before: still answers
        assert doors.api_stat("/slow/d/g")["size"] == 12
        assert same(doors.contents("/slow/d/f")) == b"slow bytes"  # read before: from the cache
        assert mounts(d)["/slow"]["state"] == "unreachable"

        write_faults(faults)
        eventually(lambda: doors.api("fs/content", path="/slow/d/g").status_code == 200, timeout=20)
        assert same(doors.contents("/slow/d/g")) == b"not read yet"
        assert mounts(d)["/slow"]["state"] == "connected"
    finally:
        write_faults(faults)
        d.stop()


def test_with_the_default_settings_a_slow_read_waits_for_its_data(tmp_path: Path) -> None:
    # libnfs (nfs-cat, nfs-cp) fails a READ answered JUKEBOX; by default nsd never answers it
    faults = tmp_path / "faults.json"
    d = start(tmp_path / "data")
    try:
        doors = Doors(d)
        options = {"faults_file": str(faults), "timeout_s": "3", "retries": "1", "down_probe_s": "1"}
        mount(d, "/slow", "memory://through-nsd-patient", options)
        doors.hdfs.write("/slow/f", data=b"worth the wait")
        doors.hdfs.write("/slow/g", data=b"never read")
        write_faults(faults, latency=2.5)
        started = time.monotonic()
        assert doors.nfs_cat("/slow/f") == b"worth the wait"
        assert time.monotonic() - started >= 2.5  # it was read from the slow store, not a cache
        assert nfs_errors(d, "READ", "NFS3ERR_JUKEBOX") == 0

        # A store that does not answer: the READ fails after the mount's timeout, it never hangs
        write_faults(faults, hang=True)
        started = time.monotonic()
        assert doors.nfs("nfs-cat", d.nfs_url("/slow/g")).returncode != 0
        assert 3 <= time.monotonic() - started < 20
        assert nfs_errors(d, "READ", "NFS3ERR_JUKEBOX") == 0 and nfs_errors(d, "READ", "NFS3ERR_IO") == 1
    finally:
        write_faults(faults)
        d.stop()


# ---- a large directory -----------------------------------------------------------------------

# 20k objects, not 100k: moto scans every key of a bucket for each listing page, so a listing
# costs O(n^2) there (about 5 s for 20k, 75 s for 100k on this machine). tools/bench/ufs.py
# lists 100k through nsd and prints the figures.
BIG = 20_000


def test_a_large_s3_directory_is_listed_page_by_page(tmp_path: Path) -> None:
    server, endpoint = start_moto()
    d: Daemon | None = None
    try:
        bucket = make_bucket(endpoint)
        names = [f"obj-{i:06d}" for i in range(BIG)]
        for n in names:
            backend().put_object(bucket, f"big/{n}", b"0123456789")
        d = start(tmp_path / "data")
        # No temp sweep: a whole-bucket scan would compete with the listing on moto.
        mount(d, "/s3", f"s3://{bucket}", s3_options(endpoint, tmp_sweep_s="-1"))
        doors = Doors(d)
        assert doors.api_stat("/s3/big")["type"] == "dir"
        proc = psutil.Process(d.proc.pid)
        rss0 = proc.memory_info().rss
        txid0 = doors.api("status").json()["last_txid"]

        url = f"{d.url}/webhdfs/v1/s3/big"
        first = requests.get(url, params={"op": "LISTSTATUS_BATCH", "user.name": ME}, timeout=60).json()
        children_then = doors.api_stat("/s3/big")["children"]
        listing = first["DirectoryListing"]
        got = [s["pathSuffix"] for s in listing["partialListing"]["FileStatuses"]["FileStatus"]]
        assert got == names[: len(got)] and listing["remainingEntries"] > 0
        assert children_then < BIG  # the first batch came while the store was still being listed
        while listing["remainingEntries"]:
            params = {"op": "LISTSTATUS_BATCH", "user.name": ME, "startAfter": got[-1]}
            listing = requests.get(url, params=params, timeout=60).json()["DirectoryListing"]
            got += [s["pathSuffix"] for s in listing["partialListing"]["FileStatuses"]["FileStatus"]]
        assert got == names  # all of them, once each, in order
        rss_growth = proc.memory_info().rss - rss0

        records = doors.api("status").json()["last_txid"] - txid0
        assert records == BIG // 1000  # one UfsSync record per 1000 entries, none per entry
        admin = [e["name"] for e in nsd_list(d, "/s3/big")]
        assert admin == names
        assert len(doors.nfs_ls("/s3/big")) == BIG
        assert doors.api("status").json()["last_txid"] == txid0 + records  # listed once
        # The namespace's own entries plus allocator slack: ~800 B per entry measured here
        # (an inode is ~400 B; boto3 was loaded by the stat above). Keeping the listing's boto3
        # pages, or a second copy of the entries, would add 1 KiB or more per entry.
        assert rss_growth < BIG * 1536, f"RSS grew {rss_growth / BIG:.0f} B per entry"
        rss1 = proc.memory_info().rss
        assert "1 directories listed" in ok(nsd("sync", "/s3/big", daemon=d))
        assert doors.api("status").json()["last_txid"] == txid0 + records  # nothing changed: no record
        assert proc.memory_info().rss - rss1 < BIG * 256  # a second listing keeps nothing
    finally:
        if d is not None:
            d.stop()
        server.stop()
    dump = ok(nsd("journal", "dump", "--json", "--data-dir", str(tmp_path / "data")))
    syncs = [r["fields"] for r in map(json.loads, dump.splitlines()) if r.get("op") == "UfsSync"]
    assert [len(f["add"]) for f in syncs if len(f["add"]) > 1] == [1000] * (BIG // 1000)


def nsd_list(d: Daemon, path: str) -> list[dict[str, Any]]:
    """Every entry through the admin API, page by page as the CLI does."""
    out: list[dict[str, Any]] = []
    while True:
        params = {"path": path, "limit": 5000, **({"start_after": out[-1]["name"]} if out else {})}
        page = requests.get(f"{d.url}/api/v1/fs/list", params=params, timeout=60).json()
        out += page["entries"]
        if not page["more"]:
            return out


# ---- leftover temporary objects ---------------------------------------------------------------


def test_stale_temporary_objects_are_swept_and_never_shown(daemon: Daemon, moto: str) -> None:
    bucket = make_bucket(moto)
    s3 = s3_client(moto)
    old = ["t/.nsd-tmp.0001.a", "t/sub/.nsd-tmp.0002.b"]
    for key in [*old, "t/.nsd-tmp.0003.fresh", "t/sub/kept", "t/file"]:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    for key in old:
        backend().get_object(bucket, key).last_modified = datetime.now(UTC).replace(tzinfo=None) - timedelta(hours=2)
    mount(daemon, "/tmpsweep", f"s3://{bucket}/t", s3_options(moto, tmp_max_age_s="3600"))
    doors = Doors(daemon)
    assert same(doors.names("/tmpsweep")) == ["file", "sub"]  # opening the mount starts the sweep
    assert same(doors.names("/tmpsweep/sub")) == ["kept"]

    def keys() -> list[str]:
        return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"])

    eventually(lambda: not set(old) & set(keys()))
    assert keys() == ["t/.nsd-tmp.0003.fresh", "t/file", "t/sub/kept"]  # younger than an hour: kept
    hidden = "/tmpsweep/.nsd-tmp.0003.fresh"
    assert doors.api("fs/stat", path=hidden).status_code == 404
    assert doors.hdfs_status(hidden) is None
    assert b"NFS3ERR_NOENT" in doors.nfs("nfs-cat", daemon.nfs_url(hidden)).stderr
    with pytest.raises(HdfsError) as e:
        doors.hdfs.write("/tmpsweep/.nsd-tmp.mine", data=b"x")
    assert "reserved" in str(e.value) and e.value.exception == "IllegalArgumentException"


# ---- the mount table -------------------------------------------------------------------------


def test_mount_ls_describes_each_store_and_never_shows_secrets(daemon: Daemon, moto: str) -> None:
    bucket = make_bucket(moto)
    options = s3_options(moto, sync_interval="30", session_token="tok-Never-Show-1234")
    mount(daemon, "/described", f"s3://{bucket}/x", options)
    m = mounts(daemon)["/described"]
    assert (m["kind"], m["uri"], m["readonly"], m["sync_interval"], m["state"]) == (
        "s3",
        f"s3://{bucket}/x",
        False,
        30,
        "unused",
    )
    assert m["options"]["secret_key"] == "****" and m["options"]["session_token"] == "****"
    assert m["options"]["access_key"] == S3_KEYS["access_key"][:4] + "****"
    Doors(daemon).api_names("/described")
    m = mounts(daemon)["/described"]
    assert m["state"] == "connected" and m["last_error"] is None and m["since"] > 0
    assert m["retry"] == {"attempts": 3, "timeout_s": 30.0}
    human = ok(nsd("mount", "ls", daemon=daemon))
    assert re.search(rf"/described\s+rw\s+connected\s+30s\s+s3://{bucket}/x\s", human)
    shown = [
        human,
        ok(nsd("mount", "ls", "--json", daemon=daemon)),
        ok(nsd("report", "--json", daemon=daemon)),
        requests.get(f"{daemon.url}/", timeout=30).text,
    ]
    for secret in (S3_KEYS["secret_key"], S3_KEYS["access_key"], "tok-Never-Show-1234"):
        assert not any(secret in text for text in shown), secret


def test_object_store_directories_show_when_they_were_found_not_1970(tmp_path: Path, moto: str) -> None:
    bucket = make_bucket(moto)
    s3_client(moto).put_object(Bucket=bucket, Key="year=2026/month=12/part-0", Body=b"row")
    d = start(tmp_path / "data")
    try:
        before = time.time()
        mount(d, "/lake", f"s3://{bucket}", s3_options(moto))
        rows = ok(nsd("ls", "-l", "/lake", daemon=d)).splitlines()
        assert rows and "1970" not in rows[0] and rows[0].endswith("year=2026")
        status = requests.get(
            f"{d.url}/webhdfs/v1/lake/year=2026", params={"op": "GETFILESTATUS", "user.name": "root"}
        ).json()["FileStatus"]
        assert status["modificationTime"] / 1000 >= before - 2
        listed = json.loads(ok(nsd("stat", "--json", "/lake/year=2026", daemon=d)))["mtime_ns"]
    finally:
        assert d.stop() == 0
    d = start(tmp_path / "data")
    try:  # journaled with the listing: the same after a restart
        assert json.loads(ok(nsd("stat", "--json", "/lake/year=2026", daemon=d)))["mtime_ns"] == listed
    finally:
        assert d.stop() == 0
