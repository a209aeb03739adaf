"""Calls relayed whole to another RPC server over one multiplexed connection (rpc/relay.py)."""

from __future__ import annotations

import asyncio

import pytest

from nsd.protocols.rpc import oncrpc
from nsd.protocols.rpc.oncrpc import AuthSys
from nsd.protocols.rpc.relay import Relay
from nsd.protocols.rpc.server import CallContext, Procedure, Program, RpcServer

PROG = 0x20000099


async def slow_echo(ctx: CallContext) -> bytes:
    """Answers with the caller's uid and its arguments, later for larger first bytes."""
    args = bytes(ctx.call.record[ctx.call.args_offset :])
    await asyncio.sleep(args[0] / 1000)
    assert ctx.cred is not None
    return ctx.cred.uid.to_bytes(4, "big") + args


async def upstream() -> tuple[RpcServer, int]:
    server = RpcServer()
    server.add(Program(PROG, 1, {1: Procedure(slow_echo)}))
    return server, await server.listen("127.0.0.1", 0)


def call(xid: int, uid: int, args: bytes) -> bytes:
    framed = oncrpc.encode_call(xid, PROG, 1, 1, args, cred=AuthSys(0, b"client", uid, uid, ()))
    return framed[4:]  # the record, without its record mark: what a server's decoder hands on


async def test_concurrent_calls_with_the_same_xid_each_get_their_own_reply() -> None:
    server, port = await upstream()
    relay = Relay("127.0.0.1", port)
    try:
        # ten clients happen to use the same XID; replies come back out of order
        records = [call(7, 1000 + i, bytes([20 - 2 * i, i]) + b"pad!") for i in range(10)]
        replies = await asyncio.gather(*(relay.call(r, 5) for r in records))
        for i, reply in enumerate(replies):
            assert reply.xid == 7 and reply.accepted and reply.stat == oncrpc.SUCCESS
            assert reply.body == (1000 + i).to_bytes(4, "big") + bytes([20 - 2 * i, i]) + b"pad!"
    finally:
        await relay.close()
        await server.close(1)


async def test_a_lost_connection_fails_the_waiting_calls_and_the_next_call_reconnects() -> None:
    server, port = await upstream()
    relay = Relay("127.0.0.1", port)
    try:
        pending = asyncio.create_task(relay.call(call(1, 5, bytes([200]) + b"x" * 3), 5))
        await asyncio.sleep(0.05)
        for conn in list(server.connections):
            conn.abort()
        with pytest.raises(ConnectionError):
            await pending
        reply = await relay.call(call(2, 6, bytes([0]) + b"y" * 3), 5)
        assert reply.xid == 2 and reply.body == (6).to_bytes(4, "big") + bytes([0]) + b"y" * 3
    finally:
        await relay.close()
        await server.close(1)
