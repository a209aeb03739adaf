"""The one ONC RPC client over TCP (RFC 5531): portmap registration, doctor's probes, the tests.

Replies are read as whole records through the server's own RecordDecoder, so they get the same
reassembly of fragments and the same size cap (a peer announcing a larger record is refused
before its bytes are buffered), and a reply must carry the XID of its call. One call at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket

from nsd.protocols.rpc import oncrpc
from nsd.protocols.rpc.oncrpc import AuthSys, RpcReply
from nsd.protocols.xdr import XdrError

CONNECT_TIMEOUT = 5.0
RECEIVE_BYTES = 1 << 16


class RpcError(Exception):
    """The peer broke the protocol: a bad frame or reply, or a reply to another call."""


def _take(decoder: oncrpc.RecordDecoder) -> bytes | None:
    """The next whole record the decoder holds, or None when it needs more bytes."""
    try:
        record = decoder.next()
    except oncrpc.FrameError as e:
        raise RpcError(str(e)) from None
    return None if isinstance(record, oncrpc.NeedData) else bytes(record)


def _reply(record: bytes, xid: int) -> RpcReply:
    try:
        reply = oncrpc.decode_reply(record)
    except XdrError as e:
        raise RpcError(f"undecodable reply: {e}") from None
    if reply.xid != xid:
        raise RpcError(f"a reply to call {reply.xid}, expected {xid}")
    return reply


class RpcClient:
    """On one asyncio connection: `client = await RpcClient.connect(host, port)`."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, max_record: int = oncrpc.DEFAULT_MAX_RECORD
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.decoder = oncrpc.RecordDecoder(max_record)
        self.xid = random.getrandbits(30)  # a new transport does not reuse an old one's XIDs

    @classmethod
    async def connect(
        cls, host: str, port: int, *, timeout: float = CONNECT_TIMEOUT, max_record: int = oncrpc.DEFAULT_MAX_RECORD
    ) -> RpcClient:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        return cls(reader, writer, max_record=max_record)

    async def call(
        self, prog: int, vers: int, proc: int, args: bytes = b"", *, cred: AuthSys | None = None
    ) -> RpcReply:
        self.xid = (self.xid + 1) & 0xFFFFFFFF
        self.writer.write(oncrpc.encode_call(self.xid, prog, vers, proc, args, cred=cred))
        await self.writer.drain()
        while (record := _take(self.decoder)) is None:
            data = await self.reader.read(RECEIVE_BYTES)
            if not data:
                raise ConnectionError("the server closed the connection")
            self.decoder.feed(data)
        return _reply(record, self.xid)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


class BlockingRpcClient:
    """The same over a blocking socket, for code outside an event loop (tests, tools)."""

    def __init__(
        self, host: str, port: int, *, timeout: float = 30.0, max_record: int = oncrpc.DEFAULT_MAX_RECORD
    ) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.decoder = oncrpc.RecordDecoder(max_record)
        self.xid = random.getrandbits(30)

    def call(
        self,
        prog: int,
        vers: int,
        proc: int,
        args: bytes = b"",
        *,
        cred: AuthSys | None = None,
        xid: int | None = None,
    ) -> RpcReply:
        """`xid`: send under this XID (a retransmission) instead of the next one."""
        if xid is None:
            self.xid = xid = (self.xid + 1) & 0xFFFFFFFF
        self.sock.sendall(oncrpc.encode_call(xid, prog, vers, proc, args, cred=cred))
        return _reply(self.recv_record(), xid)

    def recv_record(self) -> bytes:
        """The next whole record; ConnectionError if the server closed."""
        while (record := _take(self.decoder)) is None:
            data = self.sock.recv(RECEIVE_BYTES)
            if not data:
                raise ConnectionError("the server closed the connection")
            self.decoder.feed(data)
        return record

    def close(self) -> None:
        self.sock.close()
