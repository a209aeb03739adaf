"""The block cache in a real daemon, through real doors: WebHDFS OPEN, NFS (libnfs-utils),
HdfsCLI, the admin API; local directories and S3 (moto's server) as under-storage."""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from daemon import Daemon, nsd, start
from hdfs import InsecureClient
from prometheus_client.parser import text_string_to_metric_families as parse
from s3server import MotoS3

MiB = 1 << 20
ME = pwd.getpwuid(os.getuid()).pw_name
FAST = {"NSD_BLOCK_SIZE": str(MiB), "NSD_PERSIST_RETRY_MAX": "0.5", "NSD_TTL_CHECK_INTERVAL": "0.2"}


@pytest.fixture(scope="module")
def s3() -> Iterator[MotoS3]:
    server = MotoS3()
    yield server
    server.stop()


@pytest.fixture
def fast(tmp_path: Path) -> Iterator[Daemon]:
    d = start(tmp_path / "data", env=FAST)
    yield d
    if d.proc.poll() is None:
        d.kill()


def ok(result: subprocess.CompletedProcess[bytes]) -> str:
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


def cache_report(d: Daemon) -> dict[str, Any]:
    return requests.get(f"{d.url}/api/v1/report", timeout=60).json()["cache"]


def open_(d: Daemon, path: str) -> bytes:
    """WebHDFS OPEN, following the redirect as clients do."""
    r = requests.get(f"{d.url}/webhdfs/v1{path}", params={"op": "OPEN", "user.name": ME}, timeout=300)
    assert r.status_code == 200, r.text
    return r.content


def info(d: Daemon, path: str) -> dict[str, Any]:
    return json.loads(ok(nsd("stat", "--json", path, daemon=d)))


def wait_for(cond: Any, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def mount_dir(d: Daemon, point: str, directory: Path, *options: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    args = [a for o in options for a in ("-o", o)]
    ok(nsd("mount", "add", point, directory.as_uri(), *args, daemon=d))


def test_dedup_two_mounts_one_64mib_file_is_stored_once(daemon: Daemon, tmp_path: Path) -> None:
    data = os.urandom(64 * MiB)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "big.bin").write_bytes(data)
        ok(nsd("mount", "add", f"/{name}", (tmp_path / name).as_uri(), daemon=daemon))
    digest = hashlib.sha256(data).digest()
    assert hashlib.sha256(open_(daemon, "/a/big.bin")).digest() == digest
    assert hashlib.sha256(open_(daemon, "/b/big.bin")).digest() == digest
    c = cache_report(daemon)
    assert c["physical_bytes"] == 64 * MiB  # one copy
    assert c["logical_bytes"] == 128 * MiB and c["dedup_ratio"] == 2.0
    assert c["bytes_from_ufs"] == 128 * MiB  # each mount read its UFS once...
    assert hashlib.sha256(open_(daemon, "/b/big.bin")).digest() == digest
    assert cache_report(daemon)["bytes_from_ufs"] == 128 * MiB  # ...and never again
    blocks = list((daemon.data_dir / "blocks").glob("*/*"))
    assert len(blocks) == 16 and sum(b.stat().st_size for b in blocks) == 64 * MiB


def test_eviction_stays_under_capacity_and_spares_pinned_files(tmp_path: Path) -> None:
    env = {**FAST, "NSD_CACHE_DISK_BYTES": str(12 * MiB), "NSD_CACHE_MEMORY_BYTES": "0"}
    d = start(tmp_path / "data", env=env)
    try:
        ufs = tmp_path / "ufs"
        mount_dir(d, "/m", ufs)
        keep = os.urandom(4 * MiB)
        (ufs / "keep").write_bytes(keep)
        for i in range(8):
            (ufs / f"f{i}").write_bytes(os.urandom(3 * MiB))
        ok(nsd("load", "/m/keep", daemon=d))
        ok(nsd("pin", "/m/keep", daemon=d))
        for i in range(8):
            open_(d, f"/m/f{i}")
            disk = cache_report(d)["tiers"][1]
            assert disk["used"] <= disk["capacity"] == 12 * MiB
        assert cache_report(d)["evictions"] > 0
        assert info(d, "/m/keep")["cached_bytes"] == 4 * MiB and info(d, "/m/keep")["pinned"]
        before = cache_report(d)["bytes_from_ufs"]
        assert open_(d, "/m/keep") == keep
        assert cache_report(d)["bytes_from_ufs"] == before  # served from the cache
    finally:
        d.stop()


def test_a_corrupted_block_file_is_detected_counted_and_fetched_again(fast: Daemon, tmp_path: Path) -> None:
    ufs = tmp_path / "ufs"
    mount_dir(fast, "/m", ufs)
    data = os.urandom(3 * MiB)
    (ufs / "f").write_bytes(data)
    assert open_(fast, "/m/f") == data
    assert fast.stop() == 0
    victim = sorted((fast.data_dir / "blocks").glob("*/*"))[0]
    good = victim.read_bytes()
    with victim.open("r+b") as f:
        f.seek(12345)
        f.write(bytes([good[12345] ^ 0x5A]))
    d = start(fast.data_dir, env=FAST)
    try:
        assert open_(d, "/m/f") == data
        c = cache_report(d)
        assert (c["corrupt_blocks"], c["refetched_blocks"], c["bytes_from_ufs"]) == (1, 1, MiB)
        assert victim.read_bytes() == good  # stored again, whole
        assert "nsd_cache_corrupt_blocks_total 1.0" in requests.get(f"{d.url}/metrics", timeout=30).text
    finally:
        d.stop()


def test_no_stale_read_after_an_out_of_band_overwrite(fast: Daemon, tmp_path: Path) -> None:
    ufs = tmp_path / "ufs"
    mount_dir(fast, "/m", ufs, "sync_interval=0")
    (ufs / "f").write_bytes(b"A" * (2 * MiB))
    assert open_(fast, "/m/f") == b"A" * (2 * MiB)
    (ufs / "f").write_bytes(b"B" * (2 * MiB))  # same size, new mtime
    assert open_(fast, "/m/f") == b"B" * (2 * MiB)
    (ufs / "f").write_bytes(b"C" * 10)
    assert open_(fast, "/m/f") == b"C" * 10


def test_first_reads_over_nfs_and_webhdfs_fetch_blocks_ahead_once(fast: Daemon, tmp_path: Path) -> None:
    ufs = tmp_path / "ufs"
    mount_dir(fast, "/m", ufs)
    over_nfs, over_webhdfs = os.urandom(24 * MiB + 5), os.urandom(24 * MiB)
    (ufs / "a").write_bytes(over_nfs)
    (ufs / "b").write_bytes(over_webhdfs)
    back = tmp_path / "back"
    subprocess.run(["nfs-cp", fast.nfs_url("/m/a"), str(back)], check=True, capture_output=True, timeout=300)
    assert back.read_bytes() == over_nfs
    assert open_(fast, "/m/b") == over_webhdfs
    c = cache_report(fast)
    total = len(over_nfs) + len(over_webhdfs)
    assert (c["bytes_from_ufs"], c["misses"]) == (total, 25 + 24)  # each block fetched once
    assert c["read_ahead_blocks"] >= 30  # most: a read that comes first fetches its block itself
    text = requests.get(f"{fast.url}/metrics", timeout=30).text
    assert f"nsd_cache_read_ahead_blocks_total {float(c['read_ahead_blocks'])}" in text
    assert open_(fast, "/m/a") == over_nfs and cache_report(fast)["bytes_from_ufs"] == total


def test_s3_read_through_cache_hits_and_no_stale_read(fast: Daemon, s3: MotoS3) -> None:
    bucket = s3.bucket()
    client = s3.client()
    first = os.urandom(3 * MiB + 5)
    client.put_object(Bucket=bucket, Key="data/f", Body=first)
    ok(nsd("mount", "add", "/s3", f"s3://{bucket}/data", *s3.mount_options(sync_interval="0"), daemon=fast))
    assert open_(fast, "/s3/f") == first
    assert cache_report(fast)["bytes_from_ufs"] == len(first)
    assert open_(fast, "/s3/f") == first
    assert cache_report(fast)["bytes_from_ufs"] == len(first)  # the second read came from the cache
    # pyarrow reports S3 mtimes in whole seconds: an overwrite is seen once the second has turned.
    time.sleep(1.1)
    second = os.urandom(len(first))
    client.put_object(Bucket=bucket, Key="data/f", Body=second)
    assert open_(fast, "/s3/f") == second


def test_async_through_persist_completes_after_kill_9_and_restart(tmp_path: Path, s3: MotoS3) -> None:
    bucket = s3.bucket()
    d = start(tmp_path / "data", env=FAST)
    data = os.urandom(2 * MiB + 3)
    try:
        options = s3.mount_options(write_type="ASYNC_THROUGH", retries="1")  # each try fails at once
        ok(nsd("mount", "add", "/s3", f"s3://{bucket}", *options, daemon=d))
        ok(nsd("mkdir", "/s3/out", daemon=d))
        s3.stop()  # the store is down: the write is acknowledged, the persist cannot finish
        (tmp_path / "in").write_bytes(data)
        ok(nsd("put", str(tmp_path / "in"), "/s3/out/f", daemon=d))
        assert info(d, "/s3/out/f")["persist_pending"] is True
        assert nsd("cat", "/s3/out/f", daemon=d).stdout == data
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait(30)
    finally:
        s3.restart()
    d = start(tmp_path / "data", env=FAST)
    try:
        wait_for(lambda: info(d, "/s3/out/f")["persisted"], what="the persist after the restart")
        body = s3.client().get_object(Bucket=bucket, Key="out/f")["Body"].read()
        assert body == data
        assert cache_report(d)["pending_persists"] == 0
    finally:
        d.stop()


def test_must_cache_over_nfs_is_readable_and_nsd_persist_puts_it_in_the_ufs(fast: Daemon, tmp_path: Path) -> None:
    ufs = tmp_path / "ufs"
    mount_dir(fast, "/m", ufs, "write_type=MUST_CACHE")
    ok(nsd("mkdir", "/m/d", daemon=fast))
    src = tmp_path / "src"
    src.write_bytes(os.urandom(5 * MiB + 17))
    subprocess.run(["nfs-cp", str(src), fast.nfs_url("/m/d/f")], check=True, capture_output=True, timeout=300)
    back = tmp_path / "back"
    subprocess.run(["nfs-cp", fast.nfs_url("/m/d/f"), str(back)], check=True, capture_output=True, timeout=300)
    assert back.read_bytes() == src.read_bytes()
    assert not (ufs / "d" / "f").exists()
    stat = info(fast, "/m/d/f")
    assert stat["persisted"] is False and stat["size"] == src.stat().st_size
    assert json.loads(ok(nsd("persist", "--json", "/m/d/f", daemon=fast)))["persisted"] == 1
    assert (ufs / "d" / "f").read_bytes() == src.read_bytes()
    assert info(fast, "/m/d/f")["persisted"] is True


def test_async_through_with_a_persist_delay_over_nfs(tmp_path: Path) -> None:
    """ASYNC_THROUGH with persist_delay: files created and removed over NFS by libnfs's C client
    (32 CREATE+REMOVE pairs in flight) never reach the under-storage; a file copied in with
    nfs-cp does once the delay is over, and `nsd persist` need not wait for it."""
    d = start(tmp_path / "data", env={**FAST, "NSD_WRITE_TYPE": "ASYNC_THROUGH", "NSD_PERSIST_DELAY": "3"})
    try:
        ufs = tmp_path / "data" / "ufs"
        ok(nsd("mkdir", "/tmp", daemon=d))
        src = tmp_path / "src"
        src.write_bytes(os.urandom(MiB + 3))
        for name in ("kept", "now"):
            subprocess.run(
                ["nfs-cp", str(src), d.nfs_url(f"/tmp/{name}")], check=True, capture_output=True, timeout=300
            )
        binary = tmp_path / "nfsops"
        source = Path(__file__).resolve().parents[2] / "tools" / "bench" / "nfsops.c"
        subprocess.run(["cc", "-O2", "-o", str(binary), str(source), "-lnfs"], check=True, timeout=120)
        port = str(d.nfs_port)
        pairs = [str(binary), "127.0.0.1", port, port, "/tmp", "kept", "create", "32", "0.5"]
        out = subprocess.run(pairs, check=True, capture_output=True, timeout=120).stdout.decode()
        assert int(dict(field.split("=") for field in out.split())["calls"]) > 32, out
        assert info(d, "/tmp/kept")["persisted"] is False and list((ufs / "tmp").iterdir()) == []
        assert json.loads(ok(nsd("persist", "--json", "/tmp/now", daemon=d)))["persisted"] == 1
        assert sorted(p.name for p in (ufs / "tmp").iterdir()) == ["now"]
        wait_for(lambda: info(d, "/tmp/kept")["persisted"], timeout=30, what="the delayed persist")
        assert sorted(p.name for p in (ufs / "tmp").iterdir()) == ["kept", "now"]
        assert (ufs / "tmp" / "kept").read_bytes() == (ufs / "tmp" / "now").read_bytes() == src.read_bytes()
        listed = json.loads(ok(nsd("ls", "--json", "/tmp", daemon=d)))
        assert sorted(e["name"] for e in listed) == ["kept", "now"]
    finally:
        assert d.stop() == 0


def test_must_cache_over_webhdfs_with_appends_then_persist(fast: Daemon, tmp_path: Path) -> None:
    ufs = tmp_path / "ufs"
    mount_dir(fast, "/w", ufs, "write_type=MUST_CACHE")
    client = InsecureClient(fast.url, user=ME)
    head = os.urandom(MiB + 100)
    client.write("/w/f", data=head)
    tail = b"".join(os.urandom(1000) for _ in range(3))
    for i in range(3):
        client.write("/w/f", data=tail[i * 1000 : (i + 1) * 1000], append=True)
    with client.read("/w/f") as r:
        assert r.read() == head + tail
    assert not (ufs / "f").exists() and info(fast, "/w/f")["persisted"] is False
    ok(nsd("persist", "/w/f", daemon=fast))
    assert (ufs / "f").read_bytes() == head + tail


def test_cache_commands_in_both_output_modes(fast: Daemon, tmp_path: Path) -> None:
    ufs = tmp_path / "ufs"
    mount_dir(fast, "/m", ufs)
    (ufs / "d").mkdir()
    (ufs / "d" / "a").write_bytes(os.urandom(2 * MiB))
    (ufs / "d" / "b").write_bytes(os.urandom(MiB + 1))
    total = 3 * MiB + 1

    refused = nsd("load", "/m/d", daemon=fast)
    assert refused.returncode == 2 and "-r" in refused.stderr.decode()  # a usage error
    human = ok(nsd("load", "-r", "/m/d", daemon=fast))
    assert "loaded 2 files" in human and "from the under-storage" in human
    summary = json.loads(ok(nsd("cache", "load", "-r", "--json", "/m/d", daemon=fast)))
    assert (summary["files"], summary["bytes"], summary["bytes_already_cached"]) == (2, total, total)
    assert info(fast, "/m/d/a")["cached_bytes"] == 2 * MiB

    assert "pinned 1 file" in ok(nsd("pin", "/m/d/a", daemon=fast))
    assert json.loads(ok(nsd("cache", "pin", "--json", "-r", "/m/d", daemon=fast)))["changed"] == 1
    freed = json.loads(ok(nsd("free", "--json", "-r", "/m/d", daemon=fast)))
    assert (freed["freed_files"], freed["skipped_pinned"]) == (0, 2)
    assert "unpinned 2 files" in ok(nsd("cache", "unpin", "-r", "/m/d", daemon=fast))
    assert "freed 1 file" in ok(nsd("free", "/m/d/b", daemon=fast))
    assert info(fast, "/m/d/b")["cached_bytes"] == 0
    assert json.loads(ok(nsd("cache", "free", "--json", "/m/d/a", daemon=fast)))["freed_bytes"] == 2 * MiB

    assert "persisted 0 files (1 already persisted)" in ok(nsd("persist", "/m/d/a", daemon=fast))
    assert json.loads(ok(nsd("cache", "persist", "--json", "-r", "/m/d", daemon=fast)))["already_persisted"] == 2

    assert "free at" in ok(nsd("ttl", "set", "/m/d/a", "3600", "--action", "free", daemon=fast))
    ttl = json.loads(ok(nsd("cache", "ttl", "set", "--json", "/m/d/b", "0", "--action", "delete", daemon=fast)))
    assert ttl["action"] == "delete"
    assert info(fast, "/m/d/a")["ttl"]["action"] == "free"
    assert "removed" in ok(nsd("ttl", "rm", "/m/d/a", daemon=fast))
    ok(nsd("ttl", "set", "/m/d/a", "60", daemon=fast))
    assert json.loads(ok(nsd("cache", "ttl", "rm", "--json", "/m/d/a", daemon=fast)))["removed"] is True
    missing = nsd("ttl", "rm", "/m/d/a", daemon=fast)
    assert missing.returncode == 1 and "no TTL" in missing.stderr.decode()
    bad = nsd("ttl", "set", "/m/d/a", "5", "--action", "shred", daemon=fast)
    assert bad.returncode == 2 and "action" in bad.stderr.decode()  # a usage error
    wait_for(lambda: not (ufs / "d" / "b").exists(), what="the delete TTL")

    report = json.loads(ok(nsd("report", "cache", "--json", daemon=fast)))["cache"]
    for key in ("tiers", "logical_bytes", "physical_bytes", "dedup_ratio", "hits", "misses", "evictions",
                "bytes_from_cache", "bytes_from_ufs", "pending_persists", "corrupt_blocks", "hit_ratio"):  # fmt: skip
        assert key in report, key
    assert [t["tier"] for t in report["tiers"]] == ["memory", "disk0"]
    human = ok(nsd("report", "cache", daemon=fast))
    assert "cache tiers" in human and "disk0" in human and "hit ratio" in human
    page = requests.get(f"{fast.url}/", timeout=30).text
    assert "<h2>Cache</h2>" in page and "hit ratio" in page

    text = requests.get(f"{fast.url}/metrics", timeout=30).text
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in parse(text) for s in f.samples}
    assert samples[("nsd_cache_capacity_bytes", (("tier", "disk0"),))] == 16 << 30
    assert samples[("nsd_cache_read_bytes_total", (("source", "ufs"),))] == total
    assert samples[("nsd_cache_misses_total", ())] == 4 and samples[("nsd_cache_pending_persists", ())] == 0
    assert ("nsd_cache_dedup_ratio", ()) in samples and ("nsd_cache_hit_ratio", ()) in samples
    for family in ("nsd_cache_hits_total", "nsd_cache_evictions_total"):
        assert {labels for name, labels in samples if name == family} == {(("tier", "memory"),), (("tier", "disk"),)}


def test_a_pinned_directory_pins_files_created_in_it_later_across_restarts(tmp_path: Path) -> None:
    env = {**FAST, "NSD_CACHE_DISK_BYTES": str(14 * MiB), "NSD_CACHE_MEMORY_BYTES": "0"}
    ufs = tmp_path / "ufs"
    d = start(tmp_path / "data", env=env)
    try:
        mount_dir(d, "/m", ufs, "write_type=CACHE_THROUGH")
        ok(nsd("mkdir", "/m/keep", daemon=d))
        assert "pinned 0 files in 1 directory" in ok(nsd("pin", "/m/keep", daemon=d))
        assert info(d, "/m/keep")["pinned"] is True
        first = os.urandom(4 * MiB)
        InsecureClient(d.url, user=ME).write("/m/keep/over-webhdfs", data=first)
    finally:
        assert d.stop() == 0
    d = start(tmp_path / "data", env=env)  # the directory's pin is journaled state
    try:
        src = tmp_path / "src"
        src.write_bytes(os.urandom(3 * MiB))
        subprocess.run(["nfs-cp", str(src), d.nfs_url("/m/keep/over-nfs")], check=True, capture_output=True)
        for name in ("over-webhdfs", "over-nfs"):
            stat = info(d, f"/m/keep/{name}")
            assert stat["pinned"] is True and stat["cached_bytes"] == stat["size"], name
        for i in range(6):  # twice the cache's capacity passes through it
            (ufs / f"f{i}").write_bytes(os.urandom(3 * MiB))
            open_(d, f"/m/f{i}")
        assert cache_report(d)["evictions"] > 0
        before = cache_report(d)["bytes_from_ufs"]
        assert open_(d, "/m/keep/over-webhdfs") == first and open_(d, "/m/keep/over-nfs") == src.read_bytes()
        assert cache_report(d)["bytes_from_ufs"] == before  # both still whole in the cache

        undone = json.loads(ok(nsd("unpin", "--json", "/m/keep", daemon=d)))
        assert (undone["files"], undone["directories"], undone["changed"]) == (2, 1, 2)
        ok(nsd("put", str(src), "/m/keep/after", daemon=d))
        assert info(d, "/m/keep/after")["pinned"] is False and info(d, "/m/keep")["pinned"] is False
    finally:
        assert d.stop() == 0


def test_doctor_checks_each_cache_tier_and_persists_that_keep_failing(tmp_path: Path, s3: MotoS3) -> None:
    t0, t1 = tmp_path / "t0", tmp_path / "t1"
    env = {**FAST, "NSD_CACHE_DIRS": f"{t0}:64M;{t1}:1T"}  # no temp dir has a free TiB
    d = start(tmp_path / "data", env=env)
    bucket = s3.bucket()

    def doctor() -> dict[str, dict[str, str]]:
        result = nsd("doctor", "--json", daemon=d)
        return {c["check"]: c for c in json.loads(result.stdout)}

    try:
        checks = doctor()
        assert checks["cache tier disk0"]["status"] == "ok" and str(t0) in checks["cache tier disk0"]["detail"]
        assert checks["cache tier disk1"]["status"] == "warn" and "may grow by" in checks["cache tier disk1"]["detail"]
        assert checks["cache tier memory"]["status"] == "ok"
        assert checks["pending persists"]["detail"] == "0 pending, none failing"

        options = s3.mount_options(write_type="ASYNC_THROUGH", retries="1")  # each try fails at once
        ok(nsd("mount", "add", "/s3", f"s3://{bucket}", *options, daemon=d))
        ok(nsd("mkdir", "/s3/out", daemon=d))
        s3.stop()
        (tmp_path / "in").write_bytes(os.urandom(MiB))
        ok(nsd("put", str(tmp_path / "in"), "/s3/out/f", daemon=d))
        checks: dict[str, dict[str, str]] = {}

        def failing_persist() -> bool:  # each doctor run waits up to 5 s on the S3 mount
            checks.update(doctor())
            return checks["pending persists"]["status"] == "warn"

        wait_for(failing_persist, what="three failed tries")
        detail = checks["pending persists"]["detail"]
        assert checks["pending persists"]["status"] == "warn", detail
        assert "1 of 1 keep failing" in detail and "/s3/out/f (" in detail and "tries)" in detail
        assert {name for name, c in checks.items() if c["status"] == "fail"} == {"mount /s3"}  # S3 is down

        t0.rename(tmp_path / "t0-gone")  # the tier's directory goes away under the daemon
        failing = nsd("doctor", daemon=d)
        assert failing.returncode == 1 and "cache tier disk0" in failing.stdout.decode()
        assert "pending persists" in failing.stdout.decode() and "is missing" in failing.stdout.decode()
        (tmp_path / "t0-gone").rename(t0)
    finally:
        s3.restart()
    try:
        wait_for(lambda: doctor()["pending persists"]["status"] == "ok", what="the persist once S3 is back")
        assert doctor()["pending persists"]["detail"] == "0 pending, none failing"
    finally:
        assert d.stop() == 0


def test_ttls_on_directories_free_or_delete_them_whole_through_the_cli(tmp_path: Path) -> None:
    """Alluxio's rule: a TTL on a directory acts on the directory, so on everything below it."""
    ufs = tmp_path / "ufs"
    for rel in ("keep/a", "keep/sub/b", "gone/x", "gone/sub/y", "later/z"):
        (ufs / rel).parent.mkdir(parents=True, exist_ok=True)
        (ufs / rel).write_bytes(os.urandom(MiB + len(rel)))
    d = start(tmp_path / "data", env=FAST)
    try:
        mount_dir(d, "/m", ufs)
        for top in ("keep", "gone", "later"):
            ok(nsd("load", "-r", f"/m/{top}", daemon=d))
        assert info(d, "/m/keep/sub/b")["cached_bytes"] == MiB + 10
        assert "free at" in ok(nsd("ttl", "set", "/m/keep", "1", "--action", "free", daemon=d))
        assert (
            json.loads(ok(nsd("ttl", "set", "--json", "/m/gone", "1", "--action", "delete", daemon=d)))["action"]
            == "delete"
        )
        assert info(d, "/m/gone")["ttl"]["action"] == "delete"
        wait_for(lambda: nsd("stat", "/m/gone", daemon=d).returncode == 1, what="the delete TTL")
        assert not (ufs / "gone").exists()
        wait_for(lambda: "ttl" not in info(d, "/m/keep"), what="the free TTL")
        for rel in ("keep/a", "keep/sub/b"):
            stat = info(d, f"/m/{rel}")
            assert stat["cached_bytes"] == 0 and (ufs / rel).exists(), rel
        assert open_(d, "/m/keep/sub/b") == (ufs / "keep/sub/b").read_bytes()  # read through again
        # long enough to outlast a stop and a start on a busy machine, so it fires after the restart
        ok(nsd("ttl", "set", "/m/later", "10", "--action", "delete", daemon=d))
    finally:
        assert d.stop() == 0
    d = start(tmp_path / "data", env=FAST)  # a TTL is journaled: it fires after a restart too
    try:
        assert info(d, "/m/later")["ttl"]["action"] == "delete"
        wait_for(lambda: not (ufs / "later").exists(), what="the TTL set before the restart")
        assert nsd("stat", "/m/later", daemon=d).returncode == 1
    finally:
        assert d.stop() == 0
