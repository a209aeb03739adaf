"""What the CLI shows people, through a real daemon and the `nsd` command: sizes in binary units
(reports, -h, progress bars on a terminal), TTLs given as durations and listed by `ttl ls`,
`journal dump` with paths and octal modes, a real time on object-store directories (CLI and
WebHDFS, across a restart), each mount's health in /metrics, and `serve --help`."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import requests
import typer.main
from daemon import Daemon, nsd, start
from doors import Doors
from prometheus_client.parser import text_string_to_metric_families
from s3server import MotoS3

from nsd.cli import app

MiB = 1 << 20
BINARY_SIZE = r"(\d+ B|\d+\.\d (KiB|MiB|GiB|TiB))"


def ok(result: subprocess.CompletedProcess[bytes]) -> str:
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


def refused(result: subprocess.CompletedProcess[bytes], code: int) -> str:
    """The one line a failing command writes to stderr."""
    assert result.returncode == code, (result.stdout, result.stderr)
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nsd: "), lines
    return lines[0]


def local_time(ns: int, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    return time.strftime(fmt, time.localtime(ns / 1e9))


# ---- serve --help ---------------------------------------------------------------------------


def test_serve_help_describes_every_flag() -> None:
    env = {**os.environ, "COLUMNS": "300"}  # one line per option: no wrapping to parse around
    out = subprocess.run(
        [sys.executable, "-m", "nsd.cli", "serve", "--help"], capture_output=True, env=env, timeout=60, text=True
    )
    assert out.returncode == 0, out.stderr
    helps: dict[str, str] = {}
    for line in out.stdout.splitlines():
        row = re.fullmatch(r"│ (--[\w-]+)(?:\s+--[\w-]+)?\s+<\w+>(.*)│", line.rstrip())
        if row:
            helps[row[1]] = row[2].strip()
    serve = typer.main.get_command(app).commands["serve"]  # type: ignore[attr-defined]
    flags = {opt for p in serve.params for opt in p.opts if opt.startswith("--")}
    assert set(helps) == flags | {"--help"}
    assert [flag for flag, text in helps.items() if not text] == []
    assert "NSD_HTTP_PORT" in helps["--http-port"] and "9870" in helps["--http-port"]


# ---- sizes ----------------------------------------------------------------------------------


def on_a_terminal(d: Daemon, *args: str) -> str:
    """Run `nsd ARGS` with its stderr on a pseudo-terminal (where progress bars show); what the
    terminal got."""
    master, slave = pty.openpty()
    got = bytearray()

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed its side
                return
            if not data:
                return
            got.extend(data)

    reader = threading.Thread(target=drain)
    reader.start()
    env = {**os.environ, "NSD_SERVER": d.url, "NSD_DATA_DIR": str(d.data_dir), "COLUMNS": "150", "TERM": "xterm"}
    try:
        result = subprocess.run([sys.executable, "-m", "nsd.cli", *args], stderr=slave, env=env, timeout=120)
    finally:
        os.close(slave)
    reader.join(30)
    os.close(master)
    assert result.returncode == 0, got.decode(errors="replace")
    return got.decode(errors="replace")


def test_sizes_read_in_binary_units_everywhere(tmp_path: Path) -> None:
    body = os.urandom(3 * MiB + 512 * 1024)
    (tmp_path / "big").write_bytes(body)
    d = start(tmp_path / "data", env={"NSD_BLOCK_SIZE": str(MiB)})
    try:
        ok(nsd("mkdir", "/d", daemon=d))
        bar = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", on_a_terminal(d, "put", str(tmp_path / "big"), "/d/big"))
        assert "3.5 MiB / 3.5 MiB" in bar and re.search(r"\d MiB/s|\d KiB/s|\d GiB/s", bar), bar
        assert not re.search(r"\d (kB|MB|GB)\b", bar), bar  # rich's decimal units
        ok(nsd("free", "/d/big", daemon=d))
        loaded = ok(nsd("load", "/d/big", daemon=d))
        assert "loaded 1 file, 3.5 MiB: 3.5 MiB from the under-storage, 0 B already cached" in loaded

        assert ok(nsd("fs", "du", "-h", "/d", daemon=d)).split() == ["3.5", "MiB", "/d"]
        assert ok(nsd("fs", "du", "/d", daemon=d)).split() == [str(len(body)), "/d"]
        assert ok(nsd("fs", "count", "-h", "/d", daemon=d)).split() == ["1", "1", "3.5", "MiB", "/d"]
        long = ok(nsd("ls", "-l", "-h", "/d", daemon=d))
        assert " 3.5 MiB " in long and long.rstrip().endswith(" big")

        report = ok(nsd("report", "cache", daemon=d))
        cells = re.findall(r"^│ ([a-z][a-z ]*?)\s+│\s+(.*?)\s+│$", report, re.M)
        rows = {k: v for k, v in cells if "bytes" in k.split() or k == "block size"}
        assert {"block size", "logical bytes", "bytes from ufs", "bytes from cache"} <= rows.keys(), report
        assert rows["block size"] == "1.0 MiB" and rows["bytes from ufs"] == "3.5 MiB"
        assert [k for k, v in rows.items() if not re.fullmatch(BINARY_SIZE, v)] == [], rows
        tiers = re.search(r"│ disk0 .*│", report)
        assert tiers and re.search(rf"{BINARY_SIZE}\s+│\s+{BINARY_SIZE}", tiers[0]), report
    finally:
        assert d.stop() == 0


# ---- TTLs -----------------------------------------------------------------------------------


def test_ttls_take_durations_and_ttl_ls_lists_them(daemon: Daemon, tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x")
    ok(nsd("mkdir", "/t", daemon=daemon))
    ok(nsd("mkdir", "/u", daemon=daemon))
    for path in ("/t/a", "/t/b", "/u/c"):
        ok(nsd("put", str(tmp_path / "f"), path, daemon=daemon))
    assert "free at" in ok(nsd("ttl", "set", "/t/a", "12h", daemon=daemon))
    assert "(in 1d)" in ok(nsd("ttl", "set", "/t/b", "1d", "--action", "delete", daemon=daemon))
    ok(nsd("cache", "ttl", "set", "/u/c", "90s", daemon=daemon))
    ok(nsd("ttl", "set", "/t", "2w", daemon=daemon))
    ttls = json.loads(ok(nsd("ttl", "ls", "--json", daemon=daemon)))
    expiries = {t["path"]: t["expires_ns"] for t in ttls}

    for junk in ("1y", "-5", "12 h", "h", "", "nan", "1d2h"):
        line = refused(nsd("ttl", "set", "/t/a", "--", junk, daemon=daemon), 2)  # "--": -5 is no option
        assert "not a duration" in line and "12h, 1d, 2w" in line
    after = json.loads(ok(nsd("ttl", "ls", "--json", daemon=daemon)))
    assert {t["path"]: t["expires_ns"] for t in after} == expiries  # nothing changed by a refusal

    assert [(t["path"], t["action"]) for t in ttls] == [
        ("/u/c", "free"),
        ("/t/a", "free"),
        ("/t/b", "delete"),
        ("/t", "free"),
    ]
    for t, seconds in zip(ttls, (90, 12 * 3600, 86400, 14 * 86400), strict=True):
        assert seconds - 120 < t["seconds_left"] <= seconds
    below_t = json.loads(ok(nsd("ttl", "ls", "/t", "--json", daemon=daemon)))
    assert [t["path"] for t in below_t] == ["/t/a", "/t/b", "/t"]

    human = ok(nsd("ttl", "ls", daemon=daemon)).splitlines()
    assert human[0].split() == ["EXPIRES", "LEFT", "ACTION", "PATH"]
    for line, t in zip(human[1:], ttls, strict=True):
        assert line.startswith(local_time(t["expires_ns"])) and line.split()[-2:] == [t["action"], t["path"]]
    assert re.search(r"\s(1m \d+s|1m|\d+s)\s+free\s+/u/c$", human[1])
    assert re.search(r"\s(11h \d+m|12h)\s+free\s+/t/a$", human[2])
    assert ok(nsd("cache", "ttl", "ls", daemon=daemon)).splitlines() == human

    assert "Superuser privilege is required" in refused(nsd("--token", "wrong", "ttl", "ls", daemon=daemon), 1)
    assert "no such file or directory" in refused(nsd("ttl", "ls", "/nowhere", daemon=daemon), 1)


# ---- journal dump ---------------------------------------------------------------------------


def dump(data: Path) -> tuple[list[str], list[dict[str, Any]]]:
    human = ok(nsd("journal", "dump", "--data-dir", str(data))).splitlines()
    js = [json.loads(line) for line in ok(nsd("journal", "dump", "--json", "--data-dir", str(data))).splitlines()]
    return human, js


def test_journal_dump_names_paths_and_shows_modes_in_octal(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"hello")
    data = tmp_path / "data"
    d = start(data)
    try:
        ok(nsd("mkdir", "-p", "/j/d", daemon=d))
        ok(nsd("put", str(tmp_path / "f"), "/j/d/f", daemon=d))
        ok(nsd("fs", "chmod", "640", "/j/d/f", daemon=d))
        ok(nsd("mv", "/j/d/f", "/j/g", daemon=d))
    finally:
        assert d.stop() == 0
    human, js = dump(data)
    records = [r for r in js if "txid" in r]
    assert all("path" in r for r in records if r["op"] in ("MkNode", "SetContent", "SetAttr", "Rename"))
    by_op = {(r["op"], r["path"]): r for r in records if "path" in r}
    assert ("MkNode", "/j/d/f") in by_op and ("SetAttr", "/j/d/f") in by_op
    assert by_op["Rename", "/j/d/f"]["to"] == "/j/g"
    assert by_op["SetAttr", "/j/d/f"]["fields"]["mode"] == 0o100640  # JSON keeps numbers
    assert any(re.fullmatch(r"\s*\d+ MkNode\s+/j/d  parent=\d+ name='d' .*mode=0o40755 .*", line) for line in human)
    assert any(re.fullmatch(r"\s*\d+ SetAttr\s+/j/d/f  ino=\d+ mode=0o100640 .*", line) for line in human)
    assert any(re.fullmatch(r"\s*\d+ Rename\s+/j/d/f -> /j/g  src_parent=.*", line) for line in human)

    # Once the log's start is gone, paths come from the oldest checkpoint the log continues.
    for session in range(2):
        d = start(data, env={"NSD_SEGMENT_BYTES": "256"})
        try:
            ok(nsd("mkdir", f"/j/s{session}", daemon=d))
            ok(nsd("mv", f"/j/s{session}", f"/j/d/moved{session}", daemon=d))
        finally:
            assert d.stop() == 0
    human, js = dump(data)
    first = next(r["txid"] for r in js if "txid" in r)
    base = min(r["checkpoint"] for r in js if "checkpoint" in r)
    assert first > 1 and base >= first - 1
    records = [r for r in js if "txid" in r and r["op"] in ("MkNode", "Rename")]
    assert all(("path" in r) == (r["txid"] > base) for r in records)
    assert [r["to"] for r in records if r["op"] == "Rename" and r["txid"] > base] == ["/j/d/moved1"]


# ---- object-store directories ---------------------------------------------------------------


def test_object_store_directories_show_when_they_were_found(tmp_path: Path) -> None:
    s3 = MotoS3()
    bucket = s3.bucket()
    s3.client().put_object(Bucket=bucket, Key="p/dir/x", Body=b"x")
    s3.client().put_object(Bucket=bucket, Key="p/dir/sub/y", Body=b"y")
    d = start(tmp_path / "data")
    try:
        ok(nsd("mount", "add", "/s3", f"s3://{bucket}/p", *s3.mount_options(), daemon=d))
        before = time.time_ns()
        long = ok(nsd("ls", "-l", "/s3", daemon=d))
        entries = json.loads(ok(nsd("ls", "--json", "/s3/dir", daemon=d)))
        after = time.time_ns()
        found = json.loads(ok(nsd("stat", "--json", "/s3/dir", daemon=d)))["mtime_ns"]
        assert before - 10**9 <= found <= after
        assert re.search(rf" {re.escape(local_time(found, '%Y-%m-%d %H:%M'))} dir$", long, re.M), long
        assert "1970-01-01" not in long
        sub = next(e for e in entries if e["name"] == "sub")
        assert before - 10**9 <= sub["mtime_ns"] <= after
        status = Doors(d).hdfs_status("/s3/dir")
        assert status is not None and status["modificationTime"] == found // 10**6
    finally:
        assert d.stop() == 0
    d = start(tmp_path / "data")  # the time was journaled with the listing: the same after a restart
    try:
        assert json.loads(ok(nsd("stat", "--json", "/s3/dir", daemon=d)))["mtime_ns"] == found
        again = ok(nsd("ls", "-l", "/s3", daemon=d))
        assert [line.split()[5:] for line in again.splitlines()] == [line.split()[5:] for line in long.splitlines()]
    finally:
        assert d.stop() == 0
        s3.stop()


# ---- /metrics -------------------------------------------------------------------------------


def mount_metrics(d: Daemon) -> dict[tuple[str, str], dict[str, float]]:
    """(metric, mount) -> labels' store and value, from a real scrape parsed by prometheus_client."""
    out: dict[tuple[str, str], dict[str, float]] = {}
    text = requests.get(f"{d.url}/metrics", timeout=30).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in ("nsd_mount_up", "nsd_mount_errors_total"):
                out[sample.name, sample.labels["mount"]] = {sample.labels["store"]: sample.value}
    return out


def test_metrics_show_each_mounts_store_up_or_down(tmp_path: Path) -> None:
    faults = tmp_path / "faults.json"
    faults.write_text("{}")
    d = start(tmp_path / "data")
    try:
        options = ["-o", f"faults_file={faults}", "-o", "retries=1", "-o", "down_probe_s=60", "-o", "sync_interval=0"]
        ok(nsd("mount", "add", "/mem", "memory://cli-output-metrics", *options, daemon=d))
        ok(nsd("mkdir", "/mem/d", daemon=d))
        m = mount_metrics(d)
        assert m["nsd_mount_up", "/mem"] == {"memory://cli-output-metrics": 1.0}
        assert m["nsd_mount_errors_total", "/mem"] == {"memory://cli-output-metrics": 0.0}
        assert m["nsd_mount_up", "/"] == {(tmp_path / "data" / "ufs").as_uri(): 1.0}

        tmp = faults.with_suffix(".tmp")
        tmp.write_text(json.dumps({"down": True}))
        tmp.replace(faults)
        assert "store is down" in refused(nsd("stat", "/mem/a", daemon=d), 1)  # reached the store
        for name in ("b", "c"):
            assert "unreachable" in refused(nsd("stat", f"/mem/{name}", daemon=d), 1)  # failed fast
        m = mount_metrics(d)
        assert m["nsd_mount_up", "/mem"] == {"memory://cli-output-metrics": 0.0}
        assert m["nsd_mount_errors_total", "/mem"] == {"memory://cli-output-metrics": 3.0}
        assert m["nsd_mount_up", "/"] == {(tmp_path / "data" / "ufs").as_uri(): 1.0}
        assert json.loads(ok(nsd("mount", "ls", "--json", daemon=d)))[1]["state"] == "unreachable"
    finally:
        assert d.stop() == 0
