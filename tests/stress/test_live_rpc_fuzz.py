"""Garbage at a live NFS port: random bytes, bad record marks, truncated and oversized frames,
mangled call headers and argument bodies for every procedure and program, over several
connections. Afterwards the daemon is up, answers valid calls correctly, never answered
SYSTEM_ERR (no procedure failed unexpectedly), and its namespace passes fsck.
"""

from __future__ import annotations

import os
import random
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon import Daemon, fsck_problems, start
from rpcclient import MOUNT, NFS, RpcClient, dirop, fh

from nsd.protocols.nfs3.const import Proc, Status
from nsd.protocols.rpc import oncrpc

FRAMES = int(os.environ.get("NSD_LIVE_FUZZ_FRAMES", "3000"))
CRED = oncrpc.AuthSys(1, b"fuzz", 0, 0, ())


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Daemon]:
    d = start(tmp_path / "data")
    yield d
    if d.proc.poll() is None:
        assert d.stop() == 0


def mangle(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(0, 4)):
        if out:
            out[rng.randrange(len(out))] = rng.randrange(256)
    if out and rng.random() < 0.3:
        out = out[: rng.randrange(len(out))]
    if rng.random() < 0.2:
        out += rng.randbytes(rng.randint(1, 64))
    return bytes(out)


def plausible_args(rng: random.Random, root: bytes) -> bytes:
    """A real handle (or a damaged one), then names and numbers of the right shapes."""
    handle = root if rng.random() < 0.7 else mangle(rng, root)
    parts = [fh(handle)]
    for _ in range(rng.randint(0, 6)):
        kind = rng.randrange(4)
        if kind == 0:
            parts.append(dirop(handle, rng.choice([b"", b".", b"..", b"a", b"x" * 300, rng.randbytes(8)]))[4 + 32 :])
        elif kind == 1:
            parts.append(struct.pack(">I", rng.choice([0, 1, 2, 3, 7, 255, 2**31, 2**32 - 1])))
        elif kind == 2:
            parts.append(struct.pack(">Q", rng.choice([0, 1, 4096, 2**63, 2**64 - 1])))
        else:
            parts.append(rng.randbytes(rng.randint(0, 40)))
    return b"".join(parts)


def bad_record(rng: random.Random, xid: int, root: bytes) -> bytes:
    """A well-framed record holding garbage: the server must answer (or ignore) it and read on."""
    kind = rng.randrange(5)
    if kind == 0:  # random bytes
        return oncrpc.encode_record(rng.randbytes(rng.randint(0, 120)))
    if kind == 1:  # a call with a mangled header
        return oncrpc.encode_record(mangle(rng, oncrpc.encode_call(xid, NFS, 3, 1, fh(root), cred=CRED)[4:]))
    prog, vers = rng.choice([(NFS, 3), (MOUNT, 3), (NFS, 2), (MOUNT, 1), (100000, 2), (123456, 1)])
    proc = rng.choice([*range(0, 23), 99])
    args = plausible_args(rng, root) if kind < 4 else rng.randbytes(rng.randint(0, 100))
    return oncrpc.encode_call(xid, prog, vers, proc, args, cred=CRED if rng.random() < 0.9 else None)


def broken_frame(rng: random.Random) -> bytes:
    """Framing the server cannot follow: it may hang up."""
    if rng.random() < 0.5:
        return rng.randbytes(rng.randint(1, 200))  # noise where a record mark belongs
    return struct.pack(">I", oncrpc.LAST_FRAGMENT | (oncrpc.DEFAULT_MAX_RECORD + rng.randint(1, 1000)))


def drain(sock: socket.socket, marker: int) -> list[oncrpc.RpcReply]:
    """Replies until the one to `marker` (a NULL sent last), or until the server hangs up."""
    replies = []
    buf = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            return replies
        if not chunk:
            return replies
        buf += chunk
        while len(buf) >= 4:
            mark = struct.unpack(">I", buf[:4])[0] & 0x7FFFFFFF
            if len(buf) < 4 + mark:
                break
            reply = oncrpc.decode_reply(buf[4 : 4 + mark])
            buf = buf[4 + mark :]
            replies.append(reply)
            if reply.xid == marker:
                return replies


def test_garbage_never_takes_the_server_down(server: Daemon) -> None:
    rng = random.Random(20261130)
    with RpcClient(server.nfs_port) as ok:
        root = ok.mount()
    sent = answered = broken = 0
    connections = 0
    while sent < FRAMES:
        connections += 1
        sock = socket.create_connection(("127.0.0.1", server.nfs_port), timeout=10)
        try:
            for _ in range(rng.randint(1, 60)):
                sock.sendall(bad_record(rng, rng.getrandbits(31), root))
                sent += 1
            breaks = rng.random() < 0.2
            if breaks:
                sock.sendall(broken_frame(rng))
                broken += 1
            marker = 0xFFFFFFFF
            sock.sendall(oncrpc.encode_call(marker, NFS, 3, 0))
            replies = drain(sock, marker)
        except OSError:
            assert breaks, "the server hung up on well-framed records"
            replies = []
        finally:
            sock.close()
        answered += len(replies)
        if not breaks:  # garbage inside records never costs the connection
            assert replies and replies[-1].xid == marker, "no answer after well-framed garbage"
        assert not [r for r in replies if r.accepted and r.stat == oncrpc.SYSTEM_ERR], "a procedure failed on garbage"
        if connections % 20 == 0:  # in between, valid calls on a fresh connection are answered
            with RpcClient(server.nfs_port) as c:
                assert c.nfs(Proc.GETATTR, fh(root)).uint32() == Status.OK
    assert server.proc.poll() is None, "the daemon died"
    assert answered > sent // 2 and broken > 0, (answered, sent, broken)
    with RpcClient(server.nfs_port) as c:
        reply = c.call(NFS, 3, 0)
        assert reply.accepted and reply.stat == oncrpc.SUCCESS
        assert c.nfs(Proc.GETATTR, fh(c.mount())).uint32() == Status.OK
        assert c.nfs(Proc.FSINFO, fh(root)).uint32() == Status.OK
    assert not fsck_problems(server)
    log = server.log.read_text()
    assert "Traceback" not in log and "failed" not in log, log[-3000:]
