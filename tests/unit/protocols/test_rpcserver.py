"""The RPC driver with a toy program over a real loopback socket."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import struct
import time
from collections.abc import AsyncIterator

import pytest

from nsd.ops.metrics import LatencyRow
from nsd.protocols.rpc import oncrpc
from nsd.protocols.rpc.oncrpc import RpcReply
from nsd.protocols.rpc.server import CallContext, Procedure, Program, ReplyBody, RpcServer
from nsd.protocols.xdr import XdrError

PROG = 400400
MARK: contextvars.ContextVar[int] = contextvars.ContextVar("mark", default=0)


class Toy:
    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.started = 0
        self.running = 0
        self.max_running = 0
        self.executions = 0

    def echo(self, ctx: CallContext) -> ReplyBody:
        return [b"par", b"ts", b"\0\0\0"]  # written with writelines, arrives as one body

    async def slow(self, ctx: CallContext) -> ReplyBody:
        self.started += 1
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        await self.gate.wait()
        self.running -= 1
        return struct.pack(">I", ctx.args.uint32())

    def garbage(self, ctx: CallContext) -> ReplyBody:
        raise XdrError("bad")

    def broken(self, ctx: CallContext) -> ReplyBody:
        raise RuntimeError("bug")

    async def quick(self, ctx: CallContext) -> ReplyBody:
        return b"fast"  # never waits: answered inline, without a task

    async def yields(self, ctx: CallContext) -> ReplyBody:
        await asyncio.sleep(0)  # a bare yield
        await asyncio.sleep(0.001)  # a real timer future
        raise ValueError("boom")

    async def marks(self, ctx: CallContext) -> ReplyBody:
        """Sets a ContextVar, waits, and reports what it saw before and after."""
        mine = ctx.args.uint32()
        seen_before = MARK.get()
        MARK.set(mine)
        await asyncio.sleep(0.01)
        return struct.pack(">II", seen_before, MARK.get())

    async def times_out(self, ctx: CallContext) -> ReplyBody:
        """Waits once (so it is finished as a task), then meets a timeout of its own."""
        await asyncio.sleep(0)
        try:
            async with asyncio.timeout(0.05):
                await asyncio.sleep(30)
        except TimeoutError:
            return b"timed out"
        return b"slept"

    async def once(self, ctx: CallContext) -> ReplyBody:
        self.executions += 1
        await asyncio.sleep(0)
        return struct.pack(">I", self.executions)


@pytest.fixture
async def served() -> AsyncIterator[tuple[Toy, RpcServer, int]]:
    toy = Toy()
    server = RpcServer(max_inflight=4)
    server.add(
        Program(
            PROG,
            1,
            {
                0: Procedure(toy.echo),
                1: Procedure(toy.slow),
                2: Procedure(toy.garbage),
                3: Procedure(toy.broken),
                4: Procedure(toy.once, cached=True),
                5: Procedure(toy.quick),
                6: Procedure(toy.yields),
                7: Procedure(toy.marks),
                8: Procedure(toy.times_out),
            },
        )
    )
    port = await server.listen("127.0.0.1", 0)
    yield toy, server, port
    toy.gate.set()
    await server.close(grace=5)


async def read_reply(reader: asyncio.StreamReader) -> RpcReply:
    mark = struct.unpack(">I", await reader.readexactly(4))[0]
    return oncrpc.decode_reply(await reader.readexactly(mark & 0x7FFFFFFF))


async def test_replies_go_out_in_completion_order(served: tuple[Toy, RpcServer, int]) -> None:
    toy, _, port = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(oncrpc.encode_call(1, PROG, 1, 1, struct.pack(">I", 11)))
    writer.write(oncrpc.encode_call(2, PROG, 1, 0))
    first = await read_reply(reader)
    assert (first.xid, first.body) == (2, b"parts\0\0\0")
    toy.gate.set()
    second = await read_reply(reader)
    assert (second.xid, second.body) == (1, struct.pack(">I", 11))
    writer.close()


async def test_in_flight_calls_are_bounded(served: tuple[Toy, RpcServer, int]) -> None:
    toy, _, port = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for xid in range(10):
        writer.write(oncrpc.encode_call(xid, PROG, 1, 1, struct.pack(">I", xid)))
    await writer.drain()
    while toy.started < 4:
        await asyncio.sleep(0.01)
    for _ in range(20):  # give the server every chance to start more than it may
        await asyncio.sleep(0.01)
    assert toy.started == 4  # the rest wait, unread, in the decoder
    toy.gate.set()
    xids = sorted([(await read_reply(reader)).xid for _ in range(10)])
    assert xids == list(range(10)) and toy.max_running == 4
    writer.close()


class CountedWrites:
    """A transport that counts its writes (everything else goes to the real one)."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1
        self.transport.write(data)

    def __getattr__(self, name: str) -> object:
        return getattr(self.transport, name)


async def test_replies_that_calls_in_flight_finish_together_leave_in_one_write(
    served: tuple[Toy, RpcServer, int],
) -> None:
    """As CREATEs do when one journal batch makes them durable: one send(), not one each."""
    toy, server, port = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for xid in range(4):
        writer.write(oncrpc.encode_call(xid, PROG, 1, 1, struct.pack(">I", xid)))
    while toy.started < 4:
        await asyncio.sleep(0.01)
    [conn] = server.connections
    assert conn.transport is not None
    counted = conn.transport = CountedWrites(conn.transport)  # type: ignore[assignment]
    toy.gate.set()
    replies = [await read_reply(reader) for _ in range(4)]
    assert sorted((r.xid, r.body) for r in replies) == [(x, struct.pack(">I", x)) for x in range(4)]
    assert counted.writes == 1
    toy.gate.clear()  # one call alone (written at once, not gathered: a latency, not checked here)
    writer.write(oncrpc.encode_call(9, PROG, 1, 1, struct.pack(">I", 9)))
    while toy.started < 5:
        await asyncio.sleep(0.01)
    toy.gate.set()
    assert (await read_reply(reader)).xid == 9 and counted.writes == 2
    writer.close()


async def test_bad_calls_get_error_replies(served: tuple[Toy, RpcServer, int]) -> None:
    _, _, port = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for xid, prog, vers, proc, stat in [
        (1, PROG, 1, 2, oncrpc.GARBAGE_ARGS),
        (2, PROG, 1, 3, oncrpc.SYSTEM_ERR),
        (3, PROG, 1, 9, oncrpc.PROC_UNAVAIL),
        (4, PROG, 7, 0, oncrpc.PROG_MISMATCH),
        (5, 1, 1, 0, oncrpc.PROG_UNAVAIL),
        (6, PROG, 1, 0, oncrpc.SUCCESS),
    ]:
        writer.write(oncrpc.encode_call(xid, prog, vers, proc))
        reply = await read_reply(reader)
        assert (reply.xid, reply.stat) == (xid, stat)
    writer.close()


async def test_duplicate_calls_execute_once(served: tuple[Toy, RpcServer, int]) -> None:
    toy, _, port = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    call = oncrpc.encode_call(77, PROG, 1, 4)
    writer.write(call + call)  # the retransmit arrives while the first still runs
    replies = [await read_reply(reader) for _ in range(2)]
    assert [r.body for r in replies] == [struct.pack(">I", 1)] * 2
    _, writer2 = await asyncio.open_connection("127.0.0.1", port)
    writer.write(call)  # and after it finished, on another connection too
    assert (await read_reply(reader)).body == struct.pack(">I", 1)
    assert toy.executions == 1
    writer.close()
    writer2.close()


async def test_broken_frame_closes_only_that_connection(served: tuple[Toy, RpcServer, int]) -> None:
    _, server, port = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(struct.pack(">I", 0x80000000 | (server.max_record + 1)))
    assert await reader.read() == b""
    reader2, writer2 = await asyncio.open_connection("127.0.0.1", port)
    writer2.write(oncrpc.encode_call(1, PROG, 1, 0))
    assert (await read_reply(reader2)).stat == oncrpc.SUCCESS
    writer2.close()


async def test_coroutines_inline_or_suspended(served: tuple[Toy, RpcServer, int]) -> None:
    _, server, port = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(oncrpc.encode_call(1, PROG, 1, 5))
    assert (await read_reply(reader)).body == b"fast"
    [conn] = server.connections
    assert not conn.tasks
    writer.write(oncrpc.encode_call(2, PROG, 1, 6))  # suspends twice, then fails
    assert (await read_reply(reader)).stat == oncrpc.SYSTEM_ERR
    writer.close()


async def test_a_timeout_inside_a_suspended_call_is_the_calls_to_handle(served: tuple[Toy, RpcServer, int]) -> None:
    # asyncio.timeout cancels the task running the call; the cancellation must reach the
    # call's coroutine (as a Task delivers it), not end the call without a reply.
    port = served[2]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(oncrpc.encode_call(1, PROG, 1, 8))
    reply = await asyncio.wait_for(read_reply(reader), 5)
    assert reply.stat == oncrpc.SUCCESS and reply.body == b"timed out"
    writer.write(oncrpc.encode_call(2, PROG, 1, 5))  # the connection serves on
    assert (await read_reply(reader)).body == b"fast"
    writer.close()


class Recorder:
    """RequestStats that keeps what it is told."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], LatencyRow] = {}
        self.errors: list[tuple[str, str, str]] = []

    def row(self, protocol: str, op: str) -> LatencyRow:
        return self.rows.setdefault((protocol, op), LatencyRow())

    def error(self, protocol: str, op: str, error: str) -> None:
        self.errors.append((protocol, op, error))


async def test_answered_calls_are_observed(served: tuple[Toy, RpcServer, int]) -> None:
    _, server, port = served
    stats = Recorder()
    server.stats = stats
    for program in server.programs[PROG].values():
        program.name = "toy"
        program.procs[0] = Procedure(program.procs[0].func, name="ECHO")
        program.procs[2] = Procedure(program.procs[2].func, name="GARBAGE")
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for xid, proc in ((1, 0), (2, 2), (3, 0)):
        writer.write(oncrpc.encode_call(xid, PROG, 1, proc))
        await read_reply(reader)
    echo, garbage = stats.rows["toy", "ECHO"], stats.rows["toy", "GARBAGE"]
    assert (echo.count, garbage.count) == (2, 1)
    assert sum(echo.buckets) == 2 and echo.seconds > 0
    assert stats.errors == [("toy", "GARBAGE", "GARBAGE_ARGS")]
    server.stats = None  # counting stops, with no route left holding the old rows
    writer.write(oncrpc.encode_call(4, PROG, 1, 0))
    await read_reply(reader)
    assert echo.count == 2
    writer.close()


async def test_each_call_has_its_own_context(served: tuple[Toy, RpcServer, int]) -> None:
    """Calls stepped inline in one read must not see each other's ContextVars (a wcc watch)."""
    _, _, port = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"".join(oncrpc.encode_call(xid, PROG, 1, 7, struct.pack(">I", xid)) for xid in (1, 2, 3)))
    replies = {r.xid: struct.unpack(">II", r.body) for r in [await read_reply(reader) for _ in range(3)]}
    assert replies == {1: (0, 1), 2: (0, 2), 3: (0, 3)}
    writer.write(oncrpc.encode_call(4, PROG, 1, 7, struct.pack(">I", 4)))  # nothing left behind either
    assert struct.unpack(">II", (await read_reply(reader)).body) == (0, 4)
    writer.close()


WINDOW = 0.2  # busy-polling window of the tests below: long, so CPU time shows it


@contextlib.asynccontextmanager
async def polling_echo() -> AsyncIterator[tuple[RpcServer, asyncio.StreamReader, asyncio.StreamWriter]]:
    """An echo server that busy-polls for WINDOW after traffic, and a connection to it."""
    server = RpcServer(busy_poll=WINDOW)
    server.add(Program(PROG, 1, {0: Procedure(Toy().echo)}))
    port = await server.listen("127.0.0.1", 0)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        yield server, reader, writer
        writer.close()
    finally:
        await server.close(grace=5)


async def test_busy_polling_spends_cpu_for_the_window_after_traffic_then_sleeps() -> None:
    async with polling_echo() as (server, reader, writer):
        writer.write(oncrpc.encode_call(1, PROG, 1, 0))
        assert (await read_reply(reader)).xid == 1
        cpu = time.process_time()
        await asyncio.sleep(WINDOW)
        assert time.process_time() - cpu > WINDOW / 4  # the loop kept polling instead of sleeping
        await asyncio.sleep(WINDOW / 2)
        cpu = time.process_time()
        await asyncio.sleep(WINDOW)
        assert time.process_time() - cpu < WINDOW / 4  # and then slept
        assert server.poller is not None and server.poller.idle_seconds >= WINDOW
    assert RpcServer().poller is None  # off unless asked for


async def test_no_busy_polling_after_a_bulk_call() -> None:
    """A call with bulk data (a 1 MiB WRITE) does not start the polling window: the next one
    takes longer to arrive, and the spinning loop would take a core from the threads storing it.
    A small call after it does start it again."""
    async with polling_echo() as (server, reader, writer):
        writer.write(oncrpc.encode_call(1, PROG, 1, 0, b"\0" * (1 << 20)))
        assert (await read_reply(reader)).xid == 1
        assert server.poller is not None
        cpu = time.process_time()
        await asyncio.sleep(WINDOW)
        assert time.process_time() - cpu < WINDOW / 4  # slept at once
        assert server.poller.idle_seconds == 0
        writer.write(oncrpc.encode_call(2, PROG, 1, 0))
        assert (await read_reply(reader)).xid == 2
        await asyncio.sleep(WINDOW * 1.5)
        assert server.poller.idle_seconds >= WINDOW  # a small call polls as before
