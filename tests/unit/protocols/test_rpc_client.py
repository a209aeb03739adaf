"""The RPC client against a scripted server: fragments, the size cap, XID matching, a close."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from nsd.protocols.rpc import oncrpc
from nsd.protocols.rpc.client import RpcClient
from nsd.protocols.rpc.oncrpc import FrameError

# (the call's xid) -> the bytes the scripted server writes back
Answer = Callable[[int], bytes]
Connect = Callable[[Answer], Awaitable[RpcClient]]


def success(xid: int, body: bytes) -> bytes:
    """A whole SUCCESS reply record (record mark included)."""
    return oncrpc.success_header(xid, len(body)) + body


def fragments(record: bytes, size: int) -> bytes:
    """The reply of `record` (mark stripped) cut into fragments of `size` bytes."""
    payload = record[4:]
    parts = [payload[i : i + size] for i in range(0, len(payload), size)]
    marks = [len(p) | (oncrpc.LAST_FRAGMENT if i == len(parts) - 1 else 0) for i, p in enumerate(parts)]
    return b"".join(m.to_bytes(4, "big") + p for m, p in zip(marks, parts, strict=True))


async def serve(answer: Answer) -> tuple[asyncio.Server, int]:
    async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = oncrpc.RecordDecoder()
        while data := await reader.read(65536):
            decoder.feed(data)
            while not isinstance(record := decoder.next(), oncrpc.NeedData):
                writer.write(answer(oncrpc.decode_call(record).xid))
        writer.close()

    server = await asyncio.start_server(one, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


@pytest.fixture
async def scripted() -> AsyncIterator[Connect]:
    servers: list[asyncio.Server] = []

    async def connect(answer: Answer) -> RpcClient:
        server, port = await serve(answer)
        servers.append(server)
        return await RpcClient.connect("127.0.0.1", port, timeout=5, max_record=1024)

    yield connect
    for s in servers:
        s.close()
        await s.wait_closed()


async def test_a_reply_in_many_fragments_is_reassembled(
    scripted: Connect,
) -> None:
    body = bytes(range(200))
    async with await scripted(lambda xid: fragments(success(xid, body), 7)) as c:
        reply = await c.call(100003, 3, 0)
    assert reply.accepted and reply.stat == oncrpc.SUCCESS and reply.body == body


async def test_replies_to_other_xids_are_skipped(scripted: Connect) -> None:
    async with await scripted(lambda xid: success(xid - 1, b"late") + success(xid, b"mine")) as c:
        first = await c.call(100003, 3, 0)
        second = await c.call(100003, 3, 0)
    assert (first.body, second.body) == (b"mine", b"mine")
    assert second.xid == first.xid + 1


async def test_a_record_over_the_cap_is_refused_unread(scripted: Connect) -> None:
    async with await scripted(lambda xid: success(xid, b"x" * 2000)) as c:
        with pytest.raises(FrameError):
            await c.call(100003, 3, 0)


async def test_a_server_that_closes_is_a_connection_error() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    async with server, await RpcClient.connect("127.0.0.1", server.sockets[0].getsockname()[1]) as c:
        with pytest.raises(ConnectionError, match="closed"):
            await c.call(100003, 3, 0)
