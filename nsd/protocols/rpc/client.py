"""The one ONC RPC client over TCP: portmapper registration, doctor's probes and the tests' client.

`RpcChannel` is the codec, without a socket: it numbers calls (XIDs), encodes them, and
reassembles reply records from the bytes fed to it with the server's own RecordDecoder, so a
reply may come in several fragments and a record over `max_record` bytes (the server's limit)
is a FrameError as soon as its header announces it, never a buffer of that size.

`RpcClient` drives a channel over an asyncio stream: `call` sends one call and returns the
reply with its XID; replies to other XIDs (late answers to calls given up on) are skipped.
Each read waits at most `timeout` seconds. What a caller may see: OSError (ConnectionError
when the server closes), TimeoutError, FrameError, XdrError (a reply that does not decode):
`ERRORS` holds them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random

from nsd.protocols.rpc import oncrpc
from nsd.protocols.rpc.oncrpc import AuthSys, FrameError, NeedData, RpcReply
from nsd.protocols.xdr import XdrError

log = logging.getLogger("nsd.rpc.client")

DEFAULT_TIMEOUT = 5.0
READ_SIZE = 64 << 10
ERRORS = (OSError, TimeoutError, FrameError, XdrError)


class RpcChannel:
    """Calls out, reply records in; no I/O. The first XID is random (as real clients: a new
    connection does not reuse the XIDs of an old one), then one more per call."""

    def __init__(self, *, max_record: int = oncrpc.DEFAULT_MAX_RECORD, cred: AuthSys | None = None) -> None:
        self.decoder = oncrpc.RecordDecoder(max_record)
        self.cred = cred
        self.xid = random.getrandbits(30)

    def encode(
        self, prog: int, vers: int, proc: int, args: bytes = b"", *, xid: int | None = None
    ) -> tuple[int, bytes]:
        """(xid, record) of a call; a new XID unless `xid` is given (a retransmission)."""
        if xid is None:
            self.xid += 1
            xid = self.xid
        return xid, oncrpc.encode_call(xid, prog, vers, proc, args, cred=self.cred)

    def feed(self, data: bytes) -> None:
        self.decoder.feed(data)

    def next_record(self) -> bytes | NeedData:
        """The next whole reply record, or NEED_DATA; FrameError past `max_record`."""
        record = self.decoder.next()
        return record if isinstance(record, NeedData) else bytes(record)


class RpcClient:
    """One TCP connection to an RPC server; use `connect`, then `call`, then `close`."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        channel: RpcChannel,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.channel = channel
        self.timeout = timeout

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        cred: AuthSys | None = None,
        max_record: int = oncrpc.DEFAULT_MAX_RECORD,
    ) -> RpcClient:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        return cls(reader, writer, RpcChannel(max_record=max_record, cred=cred), timeout)

    async def call(self, prog: int, vers: int, proc: int, args: bytes = b"") -> RpcReply:
        """Send one call and return its reply (any accept or reject status: the caller judges)."""
        xid, record = self.channel.encode(prog, vers, proc, args)
        self.writer.write(record)
        await asyncio.wait_for(self.writer.drain(), self.timeout)
        while True:
            reply = oncrpc.decode_reply(await self.recv_record())
            if reply.xid == xid:
                return reply
            log.debug("skipping a reply to xid %#x while waiting for %#x", reply.xid, xid)

    async def recv_record(self) -> bytes:
        """The next whole record; ConnectionError if the server closed the connection first."""
        while True:
            record = self.channel.next_record()
            if not isinstance(record, NeedData):
                return record
            data = await asyncio.wait_for(self.reader.read(READ_SIZE), self.timeout)
            if not data:
                raise ConnectionError("the server closed the connection")
            self.channel.feed(data)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()

    async def __aenter__(self) -> RpcClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
