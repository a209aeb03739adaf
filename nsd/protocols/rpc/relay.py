"""Calls relayed, as they came, to another RPC server over one multiplexed connection.

A cluster follower sends the NFS changes it may not make to the leader this way. Each call
goes out under an XID of the relay's own (clients' XIDs collide across connections) and its
reply comes back under the client's; many calls may be in flight at once. A broken
connection fails the calls waiting on it and the next call opens a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import random

from nsd.protocols.rpc import oncrpc
from nsd.protocols.rpc.client import CONNECT_TIMEOUT, RECEIVE_BYTES
from nsd.protocols.xdr import U32


class Relay:
    def __init__(self, host: str, port: int, *, max_record: int = oncrpc.DEFAULT_MAX_RECORD) -> None:
        self.host, self.port = host, port
        self.max_record = max_record
        self._xid = random.getrandbits(30)
        self._waiting: dict[int, asyncio.Future[bytes]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._connecting = asyncio.Lock()

    async def call(self, record: bytes | bytearray, timeout: float) -> oncrpc.RpcReply:
        """Send the call `record` (a whole RPC call message); its reply, under the call's XID."""
        writer = await self._connection()
        self._xid = xid = (self._xid + 1) & 0xFFFFFFFF
        client_xid = bytes(record[:4])
        waiter = self._waiting[xid] = asyncio.get_running_loop().create_future()
        try:
            writer.write(oncrpc.record_mark(len(record)) + U32.pack(xid) + bytes(record[4:]))
            await writer.drain()
            reply = await asyncio.wait_for(waiter, timeout)
        finally:
            self._waiting.pop(xid, None)
        return oncrpc.decode_reply(client_xid + reply[4:])

    async def close(self) -> None:
        if self._reader_task is not None:
            self._reader_task.cancel()
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
        self._writer = None

    async def _connection(self) -> asyncio.StreamWriter:
        async with self._connecting:
            if self._writer is None or self._writer.is_closing():
                reader, writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), CONNECT_TIMEOUT)
                self._reader_task = asyncio.create_task(self._read_replies(reader, writer))
                self._writer = writer
            return self._writer

    async def _read_replies(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = oncrpc.RecordDecoder(self.max_record)
        error: BaseException = ConnectionError(f"{self.host}:{self.port} closed the connection")
        try:
            while data := await reader.read(RECEIVE_BYTES):
                decoder.feed(data)
                while not isinstance(record := decoder.next(), oncrpc.NeedData):
                    waiter = self._waiting.get(U32.unpack_from(record)[0])
                    if waiter is not None and not waiter.done():
                        waiter.set_result(bytes(record))
        except (OSError, oncrpc.FrameError) as e:
            error = ConnectionError(f"relay to {self.host}:{self.port}: {e}")
        finally:
            writer.close()
            for waiter in self._waiting.values():
                if not waiter.done():
                    waiter.set_exception(error)
