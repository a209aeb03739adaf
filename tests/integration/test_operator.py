"""Operator surfaces against a real daemon: /metrics, the status page, report, conf, fs commands."""

from __future__ import annotations

import getpass
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests
from daemon import Daemon, nsd
from prometheus_client.parser import text_string_to_metric_families


def ok(result) -> str:  # type: ignore[no-untyped-def]
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


def test_metrics_parse_and_count_requests(daemon: Daemon) -> None:
    ok(nsd("mkdir", "/m", daemon=daemon))
    assert nsd("stat", "/nope", daemon=daemon).returncode == 1
    requests.get(f"{daemon.url}/webhdfs/v1/m?op=GETFILESTATUS")
    for junk in ("NOSUCHOP1", "NOSUCHOP2"):  # client-chosen op names must not make new series
        assert requests.get(f"{daemon.url}/webhdfs/v1/m?op={junk}").status_code == 400
    text = requests.get(f"{daemon.url}/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in ("nsd_requests", "nsd_request_seconds", "nsd_journal_fsyncs", "nsd_inodes", "nsd_checkpoint_txid"):
        assert name in families, name
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    assert samples[("nsd_requests_total", (("op", "POST /fs/mkdir"), ("protocol", "admin")))] == 1
    assert samples[("nsd_request_errors_total", (("error", "404"), ("op", "GET /fs/stat"), ("protocol", "admin")))] == 1
    assert samples[("nsd_requests_total", (("op", "GETFILESTATUS"), ("protocol", "webhdfs")))] == 1
    assert samples[("nsd_request_errors_total", (("error", "400"), ("op", "other"), ("protocol", "webhdfs")))] == 2
    assert samples[("nsd_inodes", ())] == 2
    assert samples[("nsd_journal_appends_total", ())] >= 1
    # the namespace loaded at start is left out of the garbage collector's full walks (nsd.gcpause)
    assert samples[("nsd_gc_frozen_objects", ())] > 1000
    assert samples[("nsd_gc_full_collections_total", ())] >= 0 and samples[("nsd_gc_longest_full_seconds", ())] >= 0


def test_report_and_conf_in_both_modes(daemon: Daemon) -> None:
    ok(nsd("mkdir", "-p", "/a/b", daemon=daemon))
    data = json.loads(ok(nsd("report", "--json", daemon=daemon)))
    assert set(data) == {"summary", "capacity", "mounts", "cache", "journal", "clients"}
    assert data["summary"]["inodes"] == 3 and data["journal"]["last_txid"] >= 2
    assert data["mounts"][0]["path"] == "/"
    journal = json.loads(ok(nsd("report", "journal", "--json", daemon=daemon)))
    assert list(journal) == ["journal"]
    human = ok(nsd("report", daemon=daemon))
    assert "summary" in human and "last txid" in human and "mounts" in human
    bad = nsd("report", "nonsense", daemon=daemon)
    assert bad.returncode == 2 and "unknown section" in bad.stderr.decode()

    conf = json.loads(ok(nsd("conf", "show", "--json", daemon=daemon)))
    assert conf["http_port"] == {"value": 0, "source": "flag"}
    assert conf["fsync"]["source"] == "default"
    assert "http_port" in ok(nsd("conf", "show", daemon=daemon))


def test_fs_group_commands(daemon: Daemon, tmp_path: Path) -> None:
    local = tmp_path / "f"
    local.write_bytes(b"0123456789" * 10)
    ok(nsd("fs", "mkdir", "-p", "/d/e", daemon=daemon))
    ok(nsd("fs", "put", str(local), "/d/e/f", daemon=daemon))
    ok(nsd("fs", "put", str(local), "/d/g", daemon=daemon))
    assert nsd("fs", "head", "-c", "5", "/d/e/f", daemon=daemon).stdout == b"01234"
    assert nsd("fs", "tail", "-c", "3", "/d/e/f", daemon=daemon).stdout == b"789"
    assert ok(nsd("fs", "du", "/d", daemon=daemon)).split() == ["200", "/d"]
    counted = json.loads(ok(nsd("fs", "count", "--json", "/d", daemon=daemon)))
    assert counted == [{"path": "/d", "directories": 2, "files": 2, "bytes": 200}]
    ok(nsd("fs", "chmod", "600", "/d/g", daemon=daemon))
    ok(nsd("fs", "chown", f"{os.getuid()}:0", "/d/g", daemon=daemon))
    info = json.loads(ok(nsd("fs", "stat", "--json", "/d/g", daemon=daemon)))
    assert (info["mode"], info["uid"], info["gid"]) == (0o600, os.getuid(), 0)
    ok(nsd("fs", "touch", "/d/new", daemon=daemon))
    before = json.loads(ok(nsd("stat", "--json", "/d/new", daemon=daemon)))
    ok(nsd("fs", "touch", "/d/new", daemon=daemon))
    after = json.loads(ok(nsd("stat", "--json", "/d/new", daemon=daemon)))
    assert before["size"] == after["size"] == 0 and after["mtime_ns"] > before["mtime_ns"]
    assert nsd("fs", "chmod", "rwx", "/d/g", daemon=daemon).returncode == 2


@pytest.mark.skipif(
    shutil.which("chromium") is None and not os.environ.get("CI"),
    reason="needs Debian's chromium; .ci/run installs it, and in CI (CI set) a missing one fails",
)
def test_status_page_renders_in_headless_chromium(daemon: Daemon, tmp_path: Path) -> None:
    ok(nsd("mkdir", "/shown", daemon=daemon))
    (tmp_path / "f").write_bytes(os.urandom(5 << 20))
    ok(nsd("put", str(tmp_path / "f"), "/shown/f", daemon=daemon))
    ok(nsd("load", "/shown/f", daemon=daemon))  # two misses, from the under-storage
    requests.get(f"{daemon.url}/webhdfs/v1/shown/f?op=OPEN").raise_for_status()  # two hits
    cache = json.loads(ok(nsd("report", "cache", "--json", daemon=daemon)))["cache"]
    assert (cache["hits"], cache["misses"]) == (2, 2)
    page = requests.get(f"{daemon.url}/")
    assert page.status_code == 200 and "<h2>Mounts</h2>" in page.text and "last txid" in page.text

    def chromium(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                "chromium",
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={tmp_path / 'profile'}",
                *args,
                f"{daemon.url}/",
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        )

    shot = Path(os.environ.get("NSD_STATUS_SHOT", tmp_path / "status.png"))  # set it to keep the picture
    chromium(f"--screenshot={shot}", "--window-size=1000,1400")
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000  # a real page, not a blank image
    # What the browser built from the page: the cache's tiers and its hit ratio are there to read.
    dom = chromium("--dump-dom").stdout
    cache_part = dom[dom.index("<h2>Cache</h2>") :]
    for tier in ("memory", "disk0", str(daemon.data_dir / "blocks")):
        assert f"<td>{tier}</td>" in cache_part, tier
    assert "hit ratio" in cache_part and "50.0% (2 hits, 2 misses)" in cache_part


def test_fsck_finds_and_repairs_ufs_drift(daemon: Daemon, tmp_path: Path) -> None:
    local = tmp_path / "f"
    local.write_bytes(b"12345")
    for name in ("same", "shrunk", "gone"):
        ok(nsd("put", str(local), f"/{name}", daemon=daemon))
    clean = json.loads(ok(nsd("fsck", "--json", daemon=daemon)))
    assert clean["clean"] and clean["files_checked"] == 3 and clean["problems"] == []

    ufs = daemon.data_dir / "ufs"
    (ufs / "shrunk").write_bytes(b"12")
    (ufs / "gone").unlink()
    dirty = nsd("fsck", daemon=daemon)
    assert dirty.returncode == 1
    report = dirty.stdout.decode()
    assert "size_mismatch" in report and "/shrunk" in report and "missing_in_ufs" in report and "NOT clean" in report

    repaired = json.loads(ok(nsd("fsck", "--repair", "--json", "/", daemon=daemon)))
    assert repaired["clean"] and {p["kind"] for p in repaired["problems"]} == {"size_mismatch", "missing_in_ufs"}
    assert nsd("cat", "/shrunk", daemon=daemon).stdout == b"12"
    assert nsd("stat", "/gone", daemon=daemon).returncode == 1
    assert json.loads(ok(nsd("fsck", "--json", daemon=daemon)))["problems"] == []


def test_doctor_reports_every_mount(daemon: Daemon, tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    ok(nsd("mount", "add", "/ext", store.as_uri(), daemon=daemon))
    checks = json.loads(ok(nsd("doctor", "--json", daemon=daemon)))
    by_name = {c["check"]: c["status"] for c in checks}
    assert by_name["daemon reachable"] == "ok" and by_name["mount /ext"] == "ok" and by_name["journal"] == "ok"
    assert by_name["http port"] == "ok" and by_name["nfs port"] == "ok"
    store.rmdir()  # the store goes away under the mount
    failing = nsd("doctor", daemon=daemon)
    assert failing.returncode == 1 and "mount /ext" in failing.stdout.decode()
    unreachable = nsd("--server", "http://127.0.0.1:1", "doctor", "--json")
    assert unreachable.returncode == 1 and json.loads(unreachable.stdout)[0]["status"] == "fail"


def test_audit_log_names_who_what_and_where(tmp_path: Path) -> None:
    from daemon import start

    d = start(tmp_path / "data", env={"NSD_AUDIT_LOG": "true"})
    try:
        ok(nsd("mkdir", "/audited", daemon=d))
        ok(nsd("ls", "/", daemon=d))
    finally:
        d.stop()
    lines = [line for line in d.log.read_text().splitlines() if "nsd.audit" in line]
    assert len(lines) == 1, lines
    assert "remote=127.0.0.1" in lines[0] and "user=admin-token" in lines[0] and "POST /fs/mkdir" in lines[0]
    assert "target='/audited'" in lines[0]


def test_report_clients_shows_nfs_and_http_callers(daemon: Daemon) -> None:
    from rpcclient import AuthSys, RpcClient

    me = getpass.getuser()
    requests.get(f"{daemon.url}/webhdfs/v1/?op=LISTSTATUS&user.name={me}")
    requests.get(f"{daemon.url}/webhdfs/v1/nope?op=GETFILESTATUS&user.name={me}")
    with RpcClient(daemon.nfs_port, cred=AuthSys(0, b"tester", 1234, 1234, ())) as rpc:
        rpc.mount(b"/")
        rpc.nfs(0)  # NULL
        rows = json.loads(ok(nsd("report", "clients", "--json", daemon=daemon)))["clients"]
        human = ok(nsd("report", "clients", daemon=daemon))
    nfs = [r for r in rows if r["protocol"] == "nfs"]
    assert len(nfs) == 1 and nfs[0]["user"] == "uid:1234" and nfs[0]["connections"] == 1
    assert nfs[0]["requests"] == 2 and nfs[0]["host"] == "127.0.0.1"
    web = [r for r in rows if r["protocol"] == "webhdfs"]
    assert [(r["user"], r["requests"], r["errors"]) for r in web] == [(me, 2, 1)]
    assert "uid:1234" in human and me in human

    def open_nfs() -> float:
        families = text_string_to_metric_families(requests.get(f"{daemon.url}/metrics").text)
        samples = {(s.name, tuple(s.labels.items())): s.value for f in families for s in f.samples}
        return samples[("nsd_open_connections", (("protocol", "nfs"),))]

    with RpcClient(daemon.nfs_port) as rpc:
        rpc.nfs(0)
        assert open_nfs() == 1
    deadline = time.monotonic() + 10
    while open_nfs() != 0:  # the hang-up reaches the server a moment later
        assert time.monotonic() < deadline, "NFS connection still counted as open"
        time.sleep(0.05)
