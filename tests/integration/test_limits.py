"""Graceful limits on a live daemon: each setting, pushed past, gives an error and keeps memory bounded.

NFS: connections, calls in flight over the server (JUKEBOX) and per connection, idle and
slow-client timeouts. HTTP: connections, requests in flight (503 + Retry-After), header and
body sizes, idle connections, stalled uploads (408).
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import requests
from daemon import Daemon, start
from rpcclient import NFS, RpcClient, fh, lookup_path

from nsd.protocols.nfs3.const import Proc, Status
from nsd.protocols.rpc import oncrpc

USER = "root"
SLOW = {"fault_read_latency_s": "1.5", "timeout_s": "30"}


def mount_slow(d: Daemon, path: str = "/slow", name: str = "slow-limits") -> None:
    r = d.session().post(f"{d.url}/api/v1/mounts", json={"path": path, "uri": f"memory://{name}", "options": SLOW})
    assert r.status_code == 201, r.text


def put(d: Daemon, path: str, data: bytes) -> None:
    r = d.session().put(f"{d.url}/api/v1/fs/content", params={"path": path, "overwrite": "true"}, data=data)
    assert r.status_code == 201, r.text


def closed_by_server(sock: socket.socket, within: float) -> bool:
    """True if the server closes `sock` (EOF or reset) within `within` seconds."""
    sock.settimeout(within)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def metric(d: Daemon, series: str) -> float:
    for line in requests.get(f"{d.url}/metrics").text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    raise AssertionError(f"no {series} in /metrics")


def null_call(c: RpcClient) -> bool:
    reply = c.call(NFS, 3, 0)
    return reply.accepted and reply.stat == oncrpc.SUCCESS


def read_call(xid: int, handle: bytes, count: int) -> bytes:
    return oncrpc.encode_call(
        xid, NFS, 3, Proc.READ, fh(handle) + struct.pack(">QI", 0, count), cred=oncrpc.AuthSys(0, b"t", 0, 0, ())
    )


@pytest.fixture
def nfs_limited(tmp_path: Path) -> Iterator[Daemon]:
    env = {
        "NSD_NFS_MAX_CONNECTIONS": "3",
        "NSD_NFS_MAX_INFLIGHT": "2",
        "NSD_NFS_MAX_INFLIGHT_PER_CONNECTION": "2",
        "NSD_NFS_IDLE_TIMEOUT": "1.5",
        "NSD_NFS_SLOW_CLIENT_TIMEOUT": "1",
        "NSD_NFS_JUKEBOX_AFTER": "30",  # slow reads stay in flight instead of answering JUKEBOX themselves
    }
    d = start(tmp_path / "data", env=env)
    yield d
    assert d.stop() == 0


# ---- NFS -------------------------------------------------------------------------------------------


def test_nfs_connections_past_the_limit_are_closed(nfs_limited: Daemon) -> None:
    clients = [RpcClient(nfs_limited.nfs_port) for _ in range(3)]
    try:
        assert all(null_call(c) for c in clients)
        extra = socket.create_connection(("127.0.0.1", nfs_limited.nfs_port))
        assert closed_by_server(extra, 5)
        clients.pop().close()
        time.sleep(0.2)
        with RpcClient(nfs_limited.nfs_port) as again:  # room again
            assert null_call(again)
        assert all(null_call(c) for c in clients)  # the others never noticed
    finally:
        for c in clients:
            c.close()


def test_calls_past_the_server_wide_limit_get_jukebox_at_once(nfs_limited: Daemon) -> None:
    d = nfs_limited
    mount_slow(d)
    put(d, "/slow/f", b"slow bytes")
    with RpcClient(d.nfs_port) as a, RpcClient(d.nfs_port) as b:
        handle = lookup_path(a, "/slow/f")
        a.send_raw(read_call(1, handle, 100) + read_call(2, handle, 100))  # two slow reads: the server is full
        time.sleep(0.3)
        root = b.mount()
        started = time.monotonic()
        u = b.nfs(Proc.GETATTR, fh(root))
        assert u.uint32() == Status.JUKEBOX and time.monotonic() - started < 1.0
        u = b.nfs(Proc.LOOKUP, fh(root) + struct.pack(">I", 1) + b"x\0\0\0")
        assert u.uint32() == Status.JUKEBOX and u.uint32() == 0  # LOOKUP's failure body: no dir attributes
        assert null_call(b)  # NULL is always answered
        for _ in range(2):
            reply = oncrpc.decode_reply(a.recv_record())
            assert reply.accepted and int.from_bytes(reply.body[:4], "big") == Status.OK
        assert b.nfs(Proc.GETATTR, fh(root)).uint32() == Status.OK  # the reads are done: room again


def test_a_connection_is_not_read_past_its_own_limit(nfs_limited: Daemon) -> None:
    d = nfs_limited
    mount_slow(d)
    put(d, "/slow/g", b"g")
    with RpcClient(d.nfs_port) as c:
        handle = lookup_path(c, "/slow/g")
        started = time.monotonic()
        c.send_raw(read_call(1, handle, 10) + read_call(2, handle, 10) + oncrpc.encode_call(3, NFS, 3, 0))
        replies = [oncrpc.decode_reply(c.recv_record()) for _ in range(3)]
        # the NULL behind two slow reads is not even read until one of them ends
        assert replies[0].xid in (1, 2) and time.monotonic() - started >= 1.4
        assert sorted(r.xid for r in replies) == [1, 2, 3]


def test_idle_connections_are_closed_and_busy_ones_kept(nfs_limited: Daemon) -> None:
    idle = RpcClient(nfs_limited.nfs_port)
    busy = RpcClient(nfs_limited.nfs_port)
    try:
        assert null_call(idle) and null_call(busy)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            assert null_call(busy)
            time.sleep(0.3)
        assert closed_by_server(idle.sock, 2)
        assert null_call(busy)
    finally:
        idle.close()
        busy.close()


def test_a_client_that_never_reads_is_aborted_and_memory_stays_bounded(nfs_limited: Daemon) -> None:
    d = nfs_limited
    put(d, "/big", b"\xab" * (1 << 20))
    proc = psutil.Process(d.proc.pid)
    with RpcClient(d.nfs_port) as setup:
        handle = lookup_path(setup, "/big")
    rss_before = proc.memory_info().rss
    hog = socket.create_connection(("127.0.0.1", d.nfs_port))
    hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    calls = b"".join(read_call(i, handle, 1 << 20) for i in range(1, 301))  # 300 MiB of replies asked for
    hog.settimeout(10)
    sent = 0
    try:
        while sent < len(calls):
            sent += hog.send(calls[sent : sent + 65536])
    except (TimeoutError, ConnectionError):
        pass  # the server stopped reading (backpressure) or aborted us: both expected
    peak = proc.memory_info().rss
    deadline = time.monotonic() + 10
    while metric(d, 'nsd_overload_total{protocol="nfs",reason="slow_client_aborted"}') < 1:
        assert time.monotonic() < deadline, "the server kept a client that reads nothing"
        time.sleep(0.2)
    assert metric(d, 'nsd_open_connections{protocol="nfs"}') == 0
    hog.close()
    assert peak - rss_before < 64 << 20, f"RSS grew by {(peak - rss_before) >> 20} MiB for one silent client"
    with RpcClient(d.nfs_port) as c:
        assert null_call(c)  # everyone else is served


# ---- HTTP ------------------------------------------------------------------------------------------


@pytest.fixture
def http_limited(tmp_path: Path) -> Iterator[Daemon]:
    env = {
        "NSD_HTTP_MAX_CONNECTIONS": "4",
        "NSD_HTTP_MAX_REQUESTS": "2",
        "NSD_HTTP_MAX_HEADER_BYTES": "2048",
        "NSD_HTTP_MAX_BODY_BYTES": "4096",
        "NSD_HTTP_IDLE_TIMEOUT": "1",
        "NSD_HTTP_BODY_TIMEOUT": "1",
    }
    d = start(tmp_path / "data", env=env)
    yield d
    assert d.stop() == 0


def test_requests_past_the_limit_get_503_with_retry_after(http_limited: Daemon) -> None:
    d = http_limited
    mount_slow(d)
    put(d, "/slow/a", b"a")
    results: list[int] = []

    def slow_read() -> None:
        r = requests.get(f"{d.url}/webhdfs/v1/slow/a", params={"op": "OPEN", "user.name": USER}, timeout=30)
        results.append(r.status_code)

    readers = [threading.Thread(target=slow_read) for _ in range(2)]
    for t in readers:
        t.start()
    time.sleep(0.4)
    r = requests.get(f"{d.url}/webhdfs/v1/", params={"op": "GETFILESTATUS", "user.name": USER})
    assert r.status_code == 503 and r.headers["Retry-After"] == "1"
    assert r.json()["RemoteException"]["javaClassName"] == "org.apache.hadoop.ipc.RetriableException"
    r = requests.get(f"{d.url}/api/v1/status")
    assert r.status_code == 503 and "server busy" in r.json()["error"]["message"]
    for t in readers:
        t.join(30)
    assert results == [200, 200]
    assert requests.get(f"{d.url}/api/v1/status").status_code == 200


def test_oversized_headers_and_bodies_are_refused(http_limited: Daemon) -> None:
    d = http_limited
    r = requests.get(f"{d.url}/api/v1/status", headers={"X-Big": "x" * 4096})
    assert r.status_code == 400
    r = requests.get(f"{d.url}/webhdfs/v1/" + "a" * 4096, params={"op": "GETFILESTATUS"})
    assert r.status_code in (400, 414)
    r = d.session().post(f"{d.url}/api/v1/fs/mkdir", json={"path": "/d", "pad": "x" * 8192})
    assert r.status_code == 413
    assert d.session().post(f"{d.url}/api/v1/fs/mkdir", json={"path": "/d"}).status_code == 201
    put(d, "/bigger-than-the-body-limit", b"y" * 100_000)  # uploads stream: not limited by it


def test_idle_http_connections_are_closed(http_limited: Daemon) -> None:
    d = http_limited
    host, port = d.url.removeprefix("http://").split(":")
    silent = socket.create_connection((host, int(port)))
    assert closed_by_server(silent, 4), "a connection that never sends a request stays open"
    kept = socket.create_connection((host, int(port)))
    kept.sendall(b"GET /api/v1/status HTTP/1.1\r\nHost: x\r\n\r\n")
    assert b"200 OK" in kept.recv(65536)
    assert closed_by_server(kept, 4), "an idle keep-alive connection stays open"


def test_a_stalled_upload_gets_408_and_leaves_nothing(http_limited: Daemon) -> None:
    d = http_limited
    host, port = d.url.removeprefix("http://").split(":")
    s = socket.create_connection((host, int(port)))
    s.sendall(
        b"PUT /api/v1/fs/content?path=/stalled HTTP/1.1\r\nHost: x\r\n"
        + f"Authorization: Bearer {d.token}\r\nContent-Length: 100000\r\n\r\n".encode()
        + b"only the start"
    )
    s.settimeout(10)
    started = time.monotonic()
    head = s.recv(65536)
    assert head.startswith(b"HTTP/1.1 408"), head[:200]
    assert b"upload stalled" in head or b"upload stalled" in s.recv(65536)
    assert time.monotonic() - started < 5
    assert closed_by_server(s, 3)
    assert requests.get(f"{d.url}/api/v1/fs/stat", params={"path": "/stalled"}).status_code == 404


def test_http_connections_past_the_limit_get_503(http_limited: Daemon) -> None:
    d = http_limited
    host, port = d.url.removeprefix("http://").split(":")
    held = [socket.create_connection((host, int(port))) for _ in range(4)]
    try:
        time.sleep(0.2)
        extra = socket.create_connection((host, int(port)))
        extra.settimeout(5)
        answer = extra.recv(65536)
        assert answer.startswith(b"HTTP/1.1 503") and b"Retry-After: 1" in answer
        assert closed_by_server(extra, 2)
    finally:
        for s in held:
            s.close()
    time.sleep(0.2)
    assert requests.get(f"{d.url}/api/v1/status").status_code == 200
