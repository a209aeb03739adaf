"""Input checked where it is given: each mistake gets one line on stderr, the right exit code
(2 for usage, 1 for a failed operation) and nothing half done. The real CLI, a real daemon,
moto's real S3 endpoint."""

from __future__ import annotations

import http.server
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from daemon import Daemon, nsd
from s3server import KEYS, MotoS3


def one_line(result: subprocess.CompletedProcess[bytes]) -> str:
    err = result.stderr.decode()
    assert err.count("\n") == 1 and err.startswith("nsd: "), err
    return err


@pytest.fixture
def moto() -> Iterator[MotoS3]:
    s3 = MotoS3()
    yield s3
    s3.stop()


def test_serve_refuses_settings_that_cannot_be(tmp_path: Path) -> None:
    for args, what in (
        (["--http-port", "99999"], "http_port from flag: expected 0..65535, got 99999"),
        (["--nfs-port", "-1"], "nfs_port from flag: expected 0..65535"),
        (["--log-level", "verbose"], "log_level from flag: expected one of debug, info, warning, error"),
    ):
        result = nsd("serve", "--data-dir", str(tmp_path / "d"), *args)
        assert result.returncode == 2 and what in one_line(result)
    assert not (tmp_path / "d").exists()  # nothing was started, nothing formatted


def test_serve_on_a_busy_port_says_so_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        flags = ["--http-port", str(port), "--nfs-port", "0", "--log-level", "error"]
        serve = [sys.executable, "-m", "nsd.cli", "serve", "--data-dir", str(tmp_path / "d"), *flags]
        result = subprocess.run(serve, capture_output=True, timeout=60)
    assert result.returncode == 1
    assert f"nsd: HTTP: cannot listen on 127.0.0.1:{port}" in one_line(result)


def test_usage_errors_are_one_line_and_exit_2(daemon: Daemon) -> None:
    for args, what in (
        (["ls", "--bogus"], "No such option: --bogus"),
        (["nosuchcmd"], "No such command 'nosuchcmd'"),
        (["mount", "add", "/x"], "Missing argument"),
        (["ttl", "set", "/", "10", "--action", "nuke"], "action"),
        (["mount", "add", "/x", "file:///tmp", "-o", "sync_interval=abc"], "sync_interval"),
    ):
        result = nsd(*args, daemon=daemon)
        assert result.returncode == 2, (args, result.stderr)
        assert what in one_line(result)
    ok_dir = nsd("mkdir", "/dir", daemon=daemon)
    assert ok_dir.returncode == 0
    load = nsd("load", "/dir", daemon=daemon)  # a directory without -r
    assert load.returncode == 2 and "-r" in one_line(load)


def test_a_server_url_without_scheme_and_a_server_that_is_not_nsd(daemon: Daemon) -> None:
    result = nsd("--server", daemon.url.removeprefix("http://"), "ls", "/")
    assert result.returncode == 2 and "--server must be an http(s) URL" in one_line(result)

    class NotNsd(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(404)
            self.end_headers()
            self.wfile.write(b"<html>some other service</html>")

        def log_message(self, *args: object) -> None:
            pass

    other = http.server.HTTPServer(("127.0.0.1", 0), NotNsd)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        result = nsd("--server", f"http://127.0.0.1:{other.server_port}", "ls", "/")
        err = one_line(result)
        assert result.returncode == 1 and "is it an nsd?" in err and "<html>" not in err
    finally:
        other.shutdown()


def test_a_wrong_token_is_told_apart_from_a_missing_one(daemon: Daemon, tmp_path: Path) -> None:
    wrong = nsd("--token", "not-the-token", "mkdir", "/t", daemon=daemon)
    assert wrong.returncode == 1
    assert "admin token rejected" in (err := one_line(wrong)) and "--token / NSD_TOKEN" in err
    missing = nsd("--server", daemon.url, "--data-dir", str(tmp_path / "elsewhere"), "mkdir", "/t")
    err = one_line(missing)
    assert missing.returncode == 1 and "admin token required" in err and str(tmp_path / "elsewhere") in err
    assert nsd("stat", "/t", daemon=daemon).returncode == 1  # nothing was made


def test_mount_options_are_checked_per_store(daemon: Daemon, moto: MotoS3, tmp_path: Path) -> None:
    bucket = moto.bucket()
    typo = nsd("mount", "add", "/s3", f"s3://{bucket}", "-o", f"endpoint_overide={moto.endpoint}", daemon=daemon)
    assert typo.returncode == 2 and "did you mean 'endpoint_override'?" in one_line(typo)
    missing_dir = nsd("mount", "add", "/x", (tmp_path / "typo").as_uri(), daemon=daemon)
    assert missing_dir.returncode == 1 and "no such directory" in one_line(missing_dir)
    assert not (tmp_path / "typo").exists()
    assert nsd("stat", "/x", daemon=daemon).returncode == 1  # nothing half done

    # the URL form boto3, s3fs and MinIO's docs use: http:// sets the scheme
    url_form = [f"endpoint_override=http://{moto.endpoint}", *(f"{k}={v}" for k, v in KEYS.items())]
    args = [arg for option in url_form for arg in ("-o", option)]
    assert nsd("mount", "add", "/s3", f"s3://{bucket}", *args, daemon=daemon).returncode == 0
    (tmp_path / "f").write_bytes(b"via the URL form")
    assert nsd("put", str(tmp_path / "f"), "/s3/f", daemon=daemon).returncode == 0
    assert moto.client().get_object(Bucket=bucket, Key="f")["Body"].read() == b"via the URL form"

    nobucket = nsd("mount", "add", "/nb", "s3://no-such-bucket", *args, daemon=daemon)
    err = one_line(nobucket)
    assert nobucket.returncode == 1 and "bucket 'no-such-bucket' does not exist" in err
    assert "allow_bucket_creation" not in err


def test_webhdfs_names_an_unknown_op_as_hadoop_does(daemon: Daemon) -> None:
    r = requests.get(f"{daemon.url}/webhdfs/v1/?op=FROBNICATE&user.name=root")
    assert r.status_code == 400
    assert r.json()["RemoteException"]["exception"] == "IllegalArgumentException"
    assert r.json()["RemoteException"]["message"].startswith('Invalid value for webhdfs parameter "op"')


def test_a_reader_that_goes_away_is_no_error_and_a_default_start_is_quiet(daemon: Daemon, tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.write_bytes(b"x" * (48 << 20))
    assert nsd("put", str(big), "/big", daemon=daemon).returncode == 0
    env = {"NSD_SERVER": daemon.url, "NSD_DATA_DIR": str(daemon.data_dir), "PATH": "/usr/bin:/bin"}
    env["PYTHONPATH"] = ":".join(sys.path)
    piped = subprocess.run(
        f"{sys.executable} -m nsd.cli cat /big | head -c 10", shell=True, capture_output=True, env=env, timeout=60
    )
    assert piped.stdout == b"x" * 10 and b"Traceback" not in piped.stderr
    assert nsd("cat", "/big", daemon=daemon).stdout == big.read_bytes()  # the daemon serves on
    log = daemon.log.read_text()
    assert "ERROR" not in log and "Traceback" not in log
    assert "supergroup" not in log  # HDFS's default group name, unknown here: nothing to say


def test_a_slow_reader_that_resets_mid_reply_is_no_error(daemon: Daemon, tmp_path: Path) -> None:
    """A reader that stops reading pauses the reply; its reset then fails the pause (a plain
    ConnectionError, not a ConnectionResetError): still the client's doing, not the server's."""
    big = tmp_path / "big"
    big.write_bytes(b"y" * (16 << 20))
    assert nsd("put", str(big), "/big", daemon=daemon).returncode == 0
    host, port = daemon.url.removeprefix("http://").split(":")
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect((host, int(port)))
        s.sendall(f"GET /api/v1/fs/content?path=/big HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
        time.sleep(1.0)  # the server fills the socket's buffers and waits for the reader
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = reset
    time.sleep(0.5)
    assert nsd("cat", "/big", daemon=daemon).stdout == big.read_bytes()  # the daemon serves on
    log = daemon.log.read_text()
    assert "ERROR" not in log and "Traceback" not in log
