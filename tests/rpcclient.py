"""A small blocking ONC RPC client over TCP for tests (on nsd's RpcChannel): raw calls, NFSv3 and MOUNT helpers."""

from __future__ import annotations

import socket
import struct

from nsd.protocols.rpc import oncrpc
from nsd.protocols.rpc.client import READ_SIZE, RpcChannel
from nsd.protocols.rpc.oncrpc import AuthSys, NeedData, RpcReply
from nsd.protocols.xdr import Packer, Unpacker

NFS, MOUNT = 100003, 100005
ROOT = AuthSys(0, b"test", 0, 0, ())


class RpcClient:
    """Blocking: nsd.protocols.rpc.client's RpcChannel (XIDs, encoding, record reassembly with the
    server's size cap) over a plain socket, for tests that pipeline and send raw bytes."""

    def __init__(self, port: int, host: str = "127.0.0.1", cred: AuthSys | None = ROOT) -> None:
        self.sock = socket.create_connection((host, port), timeout=30)
        self.channel = RpcChannel(cred=cred)

    @property
    def cred(self) -> AuthSys | None:
        return self.channel.cred

    @property
    def xid(self) -> int:
        """The last XID used; tests that build calls themselves take the next ones."""
        return self.channel.xid

    @xid.setter
    def xid(self, value: int) -> None:
        self.channel.xid = value

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RpcClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv_record(self) -> bytes:
        """One whole record (all fragments); raises ConnectionError if the server closed."""
        while isinstance(record := self.channel.next_record(), NeedData):
            chunk = self.sock.recv(READ_SIZE)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.channel.feed(chunk)
        return record

    def call(self, prog: int, vers: int, proc: int, args: bytes = b"", *, xid: int | None = None) -> RpcReply:
        xid, record = self.channel.encode(prog, vers, proc, args, xid=xid)
        self.send_raw(record)
        reply = oncrpc.decode_reply(self.recv_record())
        assert reply.xid == xid
        return reply

    def nfs(self, proc: int, args: bytes = b"", *, xid: int | None = None) -> Unpacker:
        """Call NFSv3 `proc`; the reply body positioned at its nfsstat3."""
        reply = self.call(NFS, 3, proc, args, xid=xid)
        assert reply.accepted and reply.stat == oncrpc.SUCCESS, reply
        return Unpacker(reply.body)

    def mount(self, path: bytes = b"/") -> bytes:
        p = Packer()
        p.string(path)
        reply = self.call(MOUNT, 3, 1, bytes(p.buf))
        u = Unpacker(reply.body)
        assert u.uint32() == 0, "MNT failed"
        return u.opaque(64)


def fh(handle: bytes) -> bytes:
    p = Packer()
    p.opaque(handle)
    return bytes(p.buf)


def dirop(handle: bytes, name: bytes) -> bytes:
    p = Packer()
    p.opaque(handle)
    p.string(name)
    return bytes(p.buf)


SATTR_NONE = struct.pack(">IIIIII", 0, 0, 0, 0, 0, 0)


def skip_fattr(u: Unpacker) -> tuple[int, ...]:
    """Read a fattr3; returns (type, mode, nlink, uid, gid, size, used, rdev1, rdev2, fsid, fileid, 6 times)."""
    return u.struct(struct.Struct(">IIIIIQQIIQQIIIIII"))


def post_op_attr(u: Unpacker) -> tuple[int, ...] | None:
    return skip_fattr(u) if u.bool() else None


def wcc(u: Unpacker) -> tuple[tuple[int, ...] | None, tuple[int, ...] | None]:
    pre = u.struct(struct.Struct(">QIIII")) if u.bool() else None
    return pre, post_op_attr(u)


def post_op_fh(u: Unpacker) -> bytes | None:
    return u.opaque(64) if u.bool() else None


def lookup_path(c: RpcClient, path: str) -> bytes:
    """The handle of `path` under the export "/", one LOOKUP per component."""
    handle = c.mount()
    for name in [p for p in path.split("/") if p]:
        u = c.nfs(3, dirop(handle, name.encode()))  # LOOKUP
        assert u.uint32() == 0, f"LOOKUP {name} failed"
        handle = u.opaque(64)
    return handle


def read_status(c: RpcClient, handle: bytes, offset: int, count: int) -> tuple[int, bytes]:
    """(nfsstat3, data) of one READ."""
    u = c.nfs(6, fh(handle) + struct.pack(">QI", offset, count))
    status = u.uint32()
    post_op_attr(u)
    if status != 0:
        return status, b""
    u.uint32()  # count
    u.bool()  # eof
    return status, bytes(u.opaque(count))


def create_file(c: RpcClient, dir_handle: bytes, name: str) -> bytes:
    """CREATE (UNCHECKED) and return the new handle."""
    u = c.nfs(8, dirop(dir_handle, name.encode()) + struct.pack(">I", 0) + SATTR_NONE)
    assert u.uint32() == 0, "CREATE failed"
    handle = post_op_fh(u)
    assert handle is not None
    return handle


def write_status(c: RpcClient, handle: bytes, offset: int, data: bytes, stable: int = 2) -> int:
    """The nfsstat3 of one WRITE (stable 2: FILE_SYNC)."""
    p = Packer()
    p.opaque(handle)
    p.buf += struct.pack(">QII", offset, len(data), stable)
    p.opaque(data)
    return c.nfs(7, bytes(p.buf)).uint32()
