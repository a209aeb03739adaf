"""The asyncio driver for ONC RPC programs over TCP (NFS, MOUNT and the portmapper share it).

Theory of operation
-------------------
One `RpcConnection` (an asyncio.BufferedProtocol) per TCP connection:

    buffer_updated (the socket reads into RecordDecoder) -> each record: decode_call -> dispatch

Dispatch looks the (program, version, procedure) up in the `RpcServer` tables and calls the
procedure function with a `CallContext`. A function may answer at once (a plain return) or be
a coroutine. A coroutine is first stepped inline: most calls (GETATTR, LOOKUP, ...) never
really wait and are answered right there, without the cost of a task; one that suspends is
finished as a task (`_Suspended.finish` resumes it exactly as asyncio's Task would). So many
calls of one connection are in flight together, and their replies go out in completion
order, each tagged with its XID, as RPC allows. Every call runs in a contextvars.Context of
its own, inline steps included (they would otherwise share the transport's callback context),
so a ContextVar a procedure sets (its wcc watch, nsd.core.wcc) is seen by that call only; the cost
is one context copy per call (about 0.1 us).

Bounds and backpressure: at most `max_inflight` tasks per connection; at the bound, and while
the transport's write buffer is over its high-water mark (`pause_writing`), the connection
stops reading; buffered records wait in the decoder. A reply body may be a list of buffers
(a READ reply is header + file data + padding) written buffer by buffer (or with a native
`writelines`), so the payload is never joined into one bytes object.

With `busy_poll` (seconds), the loop keeps polling that long after a connection's traffic
instead of going to sleep (nsd.protocols.rpc.busypoll), so a client's next call is read without a
CPU wake-up.

Limits (`Limits`), so overload gives errors and never unbounded memory: past `max_connections`
a new connection is closed at once; past `max_total` tasks over all connections a call is
answered at once with its program's `busy` reply (NFS3ERR_JUKEBOX: "retry later") instead of
being run; a connection without calls for `idle_timeout` seconds is closed (clients reconnect);
one whose replies stay unread (writing paused) for `slow_client_timeout` seconds is aborted,
dropping what it buffered. So a client that never reads holds at most `max_inflight` replies.

Errors: a broken frame (FrameError) closes the connection. A bad call gets an RPC error reply
(PROG_UNAVAIL, PROG_MISMATCH, PROC_UNAVAIL, GARBAGE_ARGS when the arguments do not decode,
SYSTEM_ERR when a procedure fails unexpectedly, AUTH_ERROR when it raises oncrpc.AuthError)
and the connection lives on.

Non-idempotent procedures (marked `cached`) go through the `DuplicateRequestCache`: a call
retransmitted with the same XID, from the same host, with the same bytes (credentials and
arguments), gets the first execution's reply (waiting for it if the first is still running)
instead of running twice.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import os
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from types import CoroutineType
from typing import Any, Protocol, cast

from nsd.protocols.rpc import oncrpc
from nsd.protocols.rpc.busypoll import BusyPoller
from nsd.protocols.rpc.drc import DuplicateRequestCache
from nsd.protocols.rpc.oncrpc import NEED_DATA, AuthSys, RpcCall
from nsd.protocols.xdr import Unpacker, XdrError

log = logging.getLogger("nsd.rpc")

Buffer = bytes | bytearray | memoryview
ReplyBody = Buffer | Sequence[Buffer]
ProcFunc = Callable[["CallContext"], "ReplyBody | Awaitable[ReplyBody]"]


class LatencyRow(Protocol):
    """The calls of one (protocol, operation) so far (nsd.ops.metrics.LatencyRow)."""

    def add(self, seconds: float) -> None: ...


class RequestStats(Protocol):
    """Where a server counts its answered calls (nsd.ops.metrics): each route's row is looked up
    once and added to per call; errors (a failure status, an RPC error) are counted by name."""

    def row(self, protocol: str, op: str) -> LatencyRow: ...

    def error(self, protocol: str, op: str, error: str) -> None: ...


_BODY_TYPES = (bytes, bytearray, memoryview, list)
DEFAULT_MAX_INFLIGHT = 64
RECORD_POOL_BYTES = 32 << 20
SWEEP_MAX_SECONDS = 10.0
BATCHED_REPLY_MAX = 16 << 10  # larger replies (READ data) go out on their own, never joined
BULK_CALL_BYTES = 64 << 10  # a call this large (a WRITE's data) is bulk: no busy polling after it
_AUTH_STAT_NAMES = {oncrpc.AUTH_BADCRED: "AUTH_BADCRED", oncrpc.AUTH_TOOWEAK: "AUTH_TOOWEAK"}


@dataclass(slots=True)
class CallContext:
    """What a procedure sees: the call, its arguments and who sent it."""

    call: RpcCall
    args: Unpacker
    peer_host: str
    local_port: int

    @property
    def cred(self) -> AuthSys | None:
        return self.call.cred


@dataclass(frozen=True, slots=True)
class Procedure:
    func: ProcFunc
    cached: bool = False  # non-idempotent: replies go through the duplicate request cache
    name: str = ""


class Route:
    """Where a (program, version, procedure) goes, and the stats row its calls add to (None
    without stats). Looked up once per call."""

    __slots__ = ("op", "proc", "program", "row")

    def __init__(self, program: Program, proc: Procedure, op: str, row: LatencyRow | None) -> None:
        self.program = program
        self.proc = proc
        self.op = op  # the procedure's name, for metrics and logs
        self.row = row


@dataclass
class Program:
    """One version of one RPC program: procedure number -> Procedure.

    `name` labels its metrics; `error_of` names the failure a reply body reports (None: success).
    """

    number: int
    version: int
    procs: dict[int, Procedure] = field(default_factory=dict)
    name: str = "rpc"
    error_of: Callable[[ReplyBody], str | None] | None = None
    busy: Callable[[int], ReplyBody] | None = None  # procedure -> "retry later" reply, when overloaded


@dataclass(frozen=True)
class Limits:
    """What one listener accepts; 0 means no limit (a timeout of 0: never)."""

    max_connections: int = 0
    max_total: int = 0  # tasks in flight over all connections
    idle_timeout: float = 0.0
    slow_client_timeout: float = 0.0


class RpcServer:
    """The programs one listener serves, its connections and the duplicate request cache."""

    def __init__(
        self,
        *,
        max_inflight: int = DEFAULT_MAX_INFLIGHT,
        max_record: int = oncrpc.DEFAULT_MAX_RECORD,
        limits: Limits | None = None,
        busy_poll: float = 0.0,
    ):
        self.programs: dict[int, dict[int, Program]] = {}
        self.max_inflight = max_inflight
        self.max_record = max_record
        self.limits = limits or Limits()
        self.inflight = 0  # tasks over all connections
        self.refused_connections = 0
        self.busy_replies = 0
        self.closed_idle = 0
        self.aborted_slow = 0
        self._sweeper: asyncio.Task[None] | None = None
        self.drc = DuplicateRequestCache()
        self._stats: RequestStats | None = None  # metrics; None costs nothing per call
        self.connections: set[RpcConnection] = set()
        self.server: asyncio.Server | None = None
        self._routes: dict[tuple[int, int, int], Route] = {}
        # large record buffers (1 MiB WRITEs) kept for reuse, for all connections together
        self.buffers = oncrpc.BufferPool(RECORD_POOL_BYTES)
        # seconds to keep the loop polling after traffic (nsd.protocols.rpc.busypoll); 0: sleep at once
        self.poller = BusyPoller(busy_poll) if busy_poll > 0 else None

    def add(self, program: Program) -> None:
        self.programs.setdefault(program.number, {})[program.version] = program
        self._routes.clear()

    @property
    def stats(self) -> RequestStats | None:
        return self._stats

    @stats.setter
    def stats(self, stats: RequestStats | None) -> None:
        self._stats = stats
        self._routes.clear()  # their rows belong to the stats before

    def route(self, call: RpcCall, send: Callable[[bytes], None] | None = None) -> Route | None:
        """The program and procedure a call names; else None, after sending the RPC error
        (PROG_UNAVAIL, PROG_MISMATCH with low/high, PROC_UNAVAIL) with `send`. One dict lookup
        for a (program, version, procedure) seen before."""
        key = (call.prog, call.vers, call.proc)
        found = self._routes.get(key)
        if found is not None:
            return found
        versions = self.programs.get(call.prog)
        if versions is None:
            reply = oncrpc.accepted_reply(call.xid, oncrpc.PROG_UNAVAIL)
        elif (program := versions.get(call.vers)) is None:
            reply = oncrpc.prog_mismatch_reply(call.xid, min(versions), max(versions))
        elif (proc := program.procs.get(call.proc)) is None:
            reply = oncrpc.accepted_reply(call.xid, oncrpc.PROC_UNAVAIL)
        else:
            op = proc.name or str(call.proc)
            row = self._stats.row(program.name, op) if self._stats is not None else None
            found = self._routes[key] = Route(program, proc, op, row)
            return found
        if send is not None:
            send(reply)
        return None

    def protocol(self) -> asyncio.BaseProtocol:
        cap = self.limits.max_connections
        if cap and len(self.connections) >= cap:
            self.refused_connections += 1
            if self.refused_connections in (1, 10, 100) or self.refused_connections % 1000 == 0:
                log.warning(
                    "refusing an RPC connection: %d open, the limit (%d refused so far)", cap, self.refused_connections
                )
            return _Refused()
        return RpcConnection(self)

    async def listen(self, host: str, port: int) -> int:
        """Start accepting; returns the bound port (useful with port 0)."""
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(self.protocol, host, port, reuse_address=True)
        timeouts = [t for t in (self.limits.idle_timeout, self.limits.slow_client_timeout) if t > 0]
        if timeouts:
            self._sweeper = asyncio.create_task(self._sweep(min(SWEEP_MAX_SECONDS, max(0.05, min(timeouts) / 4))))
        return int(self.server.sockets[0].getsockname()[1])

    async def _sweep(self, every: float) -> None:
        """Close connections idle too long; abort those whose replies stay unread too long."""
        idle, slow = self.limits.idle_timeout, self.limits.slow_client_timeout
        while True:
            await asyncio.sleep(every)
            now = time.monotonic()
            for c in list(self.connections):
                if slow and c.write_paused_since is not None and now - c.write_paused_since > slow:
                    self.aborted_slow += 1
                    log.warning(
                        "aborting the connection from %s: its replies went unread for %.0f s", c.peer_host, slow
                    )
                    c.abort()
                elif idle and not c.tasks and now - c.last_data > idle:
                    self.closed_idle += 1
                    log.debug("closing the connection from %s: idle for %.0f s", c.peer_host, idle)
                    c.close()

    async def close(self, grace: float = 30.0) -> None:
        """Stop accepting, let in-flight calls finish (up to `grace` seconds), close connections."""
        if self.server is not None:
            self.server.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
        tasks = [t for c in self.connections for t in c.tasks]
        if tasks:
            await asyncio.wait(tasks, timeout=grace)
        for c in list(self.connections):
            c.close()
        if self.server is not None:
            await self.server.wait_closed()


class RpcConnection(asyncio.BufferedProtocol):
    def __init__(self, server: RpcServer) -> None:
        self.server = server
        self.decoder = oncrpc.RecordDecoder(server.max_record, pool=server.buffers)
        self.transport: asyncio.Transport | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.peer_host = ""
        self.local_port = 0
        # for `nsd report clients`: plain attributes, a few stores per call
        self.since = self.last_call = time.time()
        self.calls = 0
        self.rejected = 0  # calls answered with an RPC-level error (bad header, auth, garbage)
        self.uid: int | None = None  # AUTH_SYS uid of the latest call
        self._write_paused = False
        self.write_paused_since: float | None = None  # monotonic, while the client is not reading
        self.last_data = time.monotonic()
        self._read_paused = False
        self._batch: list[Buffer] | None = None  # small replies gathered for one write (_gather)
        self._bulk = False  # the latest call carried bulk data (see _process)
        self._sock_fd = -1

    # ---- transport callbacks ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream transport (uvloop's are not asyncio.Transport subclasses, but behave as one)
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        sock = transport.get_extra_info("sockname")
        raw = transport.get_extra_info("socket")
        self._sock_fd = raw.fileno() if raw is not None else -1  # for writev (see _reply)
        self.peer_host = str(peer[0]) if peer else ""
        self.local_port = int(sock[1]) if sock else 0
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        # In-flight calls finish (a half-done mutation must not be cut); their replies are dropped.
        self.server.connections.discard(self)
        self.transport = None

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.decoder.get_buffer(sizehint)  # the socket reads straight into the decoder

    def buffer_updated(self, nbytes: int) -> None:
        self.last_data = time.monotonic()
        self.last_call = time.time()  # stamped per read, not per call (for `nsd report clients`)
        self.decoder.buffer_updated(nbytes)
        self._process()

    def data_received(self, data: bytes) -> None:  # transports without buffer support
        self.last_data = time.monotonic()
        self.last_call = time.time()
        self.decoder.feed(data)
        self._process()

    def pause_writing(self) -> None:
        self._write_paused = True
        self.write_paused_since = time.monotonic()
        self._update_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self.write_paused_since = None
        self._update_reading()
        self._process()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Close now, dropping buffered replies (close() would wait for the client to read them)."""
        if self.transport is not None:
            self.transport.abort()

    # ---- dispatch ---------------------------------------------------------------------------

    def _process(self) -> None:
        # Replies answered inline while draining one read are gathered and sent in one write:
        # a client pipelining 32 GETATTRs then costs one send() instead of 32.
        if self._batch is None:
            self._batch = []
        tasks, limit, decoder = self.tasks, self.server.max_inflight, self.decoder
        try:
            while self.transport is not None and not self._write_paused and len(tasks) < limit:
                try:
                    record = decoder.next()
                except oncrpc.FrameError as e:
                    log.warning("closing connection from %s: %s", self.peer_host, e)
                    self.transport.close()
                    self.transport = None
                    return
                if record is NEED_DATA:
                    break
                self._bulk = len(record) > BULK_CALL_BYTES  # type: ignore[arg-type]
                self._dispatch(record)  # type: ignore[arg-type]
        finally:
            self._flush()
        if self._read_paused or self._write_paused or len(tasks) >= limit:
            self._update_reading()
        # No polling after bulk calls: the next 1 MiB WRITE takes far longer than the window to
        # arrive, and the spinning loop would take a core from the threads that store the data.
        if self.server.poller is not None and not (self._bulk or decoder.receiving_large()):
            self.server.poller.traffic()

    def _flush(self) -> None:
        batch, self._batch = self._batch, None
        t = self.transport
        if batch and t is not None and not t.is_closing():
            t.write(b"".join(batch))

    def _update_reading(self) -> None:
        t = self.transport
        if t is None or t.is_closing():
            return
        want_pause = self._write_paused or len(self.tasks) >= self.server.max_inflight
        if want_pause and not self._read_paused:
            t.pause_reading()
            self._read_paused = True
        elif not want_pause and self._read_paused:
            t.resume_reading()
            self._read_paused = False

    def _dispatch(self, record: bytes | bytearray) -> None:
        try:
            call = oncrpc.decode_call(record)
        except oncrpc.Ignored as e:
            log.debug("ignoring a record from %s: %s", self.peer_host, e)
            return
        except oncrpc.CallError as e:
            log.debug("rejecting a call from %s: %s", self.peer_host, e)
            self.rejected += 1
            self._send(e.reply)
            return
        self.calls += 1  # last_call is stamped per read (buffer_updated)
        if call.cred is not None:
            self.uid = call.cred.uid
        server = self.server
        route = server._routes.get((call.prog, call.vers, call.proc)) or server.route(call, self._send)
        if route is None:
            return
        proc = route.proc
        ctx = CallContext(call, call.args(), self.peer_host, self.local_port)
        row = route.row
        started = time.perf_counter() if row is not None else 0.0
        cap = self.server.limits.max_total
        if cap and self.server.inflight >= cap and route.program.busy is not None and call.proc != 0:
            self.server.busy_replies += 1
            body = route.program.busy(call.proc)
            self._reply(call.xid, body)
            self._observe(route, started, body)
            return
        if proc.cached:
            self._start(self._run_cached(route, ctx, started))
            return
        result: ReplyBody | Awaitable[ReplyBody] | _Suspended
        # Each call runs in a context of its own, also while stepped inline: what a procedure
        # sets in a ContextVar (its wcc watch) must not leak into the transport's callbacks.
        context = contextvars.copy_context()
        try:
            result = context.run(_call_inline, proc.func, ctx)
        except Exception as e:
            self._failed(route, call, started, e)
            return
        if isinstance(result, _Suspended):
            self._start(self._run(route, call, started, result.finish()), context)
        elif not isinstance(result, _BODY_TYPES) and inspect.isawaitable(result):
            self._start(self._run(route, call, started, result), context)
        else:
            self._reply(call.xid, result)
            if row is not None:
                self._observe(route, started, result)
            if type(record) is bytearray:  # a large record's own buffer: reusable now
                del ctx  # its argument views are what keep the buffer from reuse
                self.decoder.recycle(record)

    def _start(self, coro: Coroutine[Any, Any, None], context: contextvars.Context | None = None) -> None:
        task = asyncio.get_running_loop().create_task(coro, context=context)
        self.tasks.add(task)
        self.server.inflight += 1
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        self.server.inflight -= 1
        if not task.cancelled() and task.exception() is not None:
            log.error("rpc task failed", exc_info=task.exception())
        if self.transport is not None:
            self._update_reading()
            self._process()

    async def _run(self, route: Route, call: RpcCall, started: float, pending: Awaitable[ReplyBody]) -> None:
        try:
            body = await pending
        except Exception as e:
            self._failed(route, call, started, e)
            return
        finally:
            del pending  # the finished coroutine and, with it, its views of the record
            self.decoder.recycle(call.record)
        self._reply(call.xid, body)
        self._observe(route, started, body)

    def _failed(self, route: Route, call: RpcCall, started: float, e: Exception) -> None:
        """The reply to a procedure that raised: the one place exceptions become RPC errors.
        Arguments that do not decode: GARBAGE_ARGS; AuthError: AUTH_ERROR; anything else is a
        bug: SYSTEM_ERR, logged with its traceback. The connection lives on."""
        name = route.op
        if isinstance(e, XdrError):
            log.debug("garbage arguments from %s for %d/%d/%d: %s", self.peer_host, call.prog, call.vers, call.proc, e)
            self.rejected += 1
            self._send(oncrpc.accepted_reply(call.xid, oncrpc.GARBAGE_ARGS))
            error = "GARBAGE_ARGS"
        elif isinstance(e, oncrpc.AuthError):
            log.debug("refused %s from %s: %s", name, self.peer_host, e)  # counted in metrics
            self.rejected += 1
            self._send(oncrpc.auth_error_reply(call.xid, e.stat))
            error = _AUTH_STAT_NAMES.get(e.stat, "AUTH_ERROR")
        else:
            log.error("procedure %s failed", name, exc_info=e)
            self._send(oncrpc.accepted_reply(call.xid, oncrpc.SYSTEM_ERR))
            error = "SYSTEM_ERR"
        self._observe(route, started, error=error)

    def _observe(self, route: Route, started: float, body: ReplyBody = b"", error: str | None = None) -> None:
        row = route.row
        if row is None:
            return
        row.add(time.perf_counter() - started)
        if error is None:
            error_of = route.program.error_of
            if error_of is None or (error := error_of(body)) is None:
                return
        stats = self.server.stats
        if stats is not None:
            stats.error(route.program.name, route.op, error)

    async def _run_cached(self, route: Route, ctx: CallContext, started: float) -> None:
        drc = self.server.drc
        key = drc.key(ctx.peer_host, ctx.call.xid, ctx.call.record)
        earlier = drc.get(key)
        if earlier is not None:
            try:
                reply = await asyncio.shield(earlier)
            except asyncio.CancelledError:
                return  # evicted or failed: the client will retransmit
            log.debug("duplicate xid %#x from %s answered from the cache", ctx.call.xid, ctx.peer_host)
            self._send(reply)
            return
        fut = drc.start(key)
        call = ctx.call
        try:
            result = route.proc.func(ctx)
            body = await result if inspect.isawaitable(result) else result
            reply = _join(call.xid, body)
        except Exception as e:
            drc.forget(key)
            self._failed(route, call, started, e)
            return
        if not fut.done():
            fut.set_result(reply)
        self._send(reply)
        self._observe(route, started, body)

    # ---- output -----------------------------------------------------------------------------

    def _reply(self, xid: int, body: ReplyBody) -> None:
        t = self.transport
        if t is None or t.is_closing():
            return
        if isinstance(body, bytes | bytearray | memoryview):
            batch = self._batch if self._batch is not None else self._gather(len(body))
            if batch is not None and len(body) <= BATCHED_REPLY_MAX:
                batch += (oncrpc.success_header(xid, len(body)), body)
            else:
                t.write(oncrpc.success_header(xid, len(body)) + body)
            return
        size = sum(len(b) for b in body)
        header = oncrpc.success_header(xid, size)
        if type(t).writelines is not asyncio.WriteTransport.writelines:
            t.writelines([header, *body])  # Python >= 3.12: sendmsg, no join
            return
        # Before 3.12 writelines joins all buffers into one (a copy of the READ data). With
        # nothing queued in the transport, the buffers go out in one writev, as 3.12 does; what
        # the socket cannot take yet is queued behind, in order. Else one write per buffer.
        parts = [header, *body]
        if self._sock_fd >= 0 and not t.get_write_buffer_size():
            try:
                sent = os.writev(self._sock_fd, parts)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                sent = 0  # the transport meets the same error on its write and closes
            for part in parts:
                if sent >= len(part):
                    sent -= len(part)
                    continue
                t.write(memoryview(part)[sent:] if sent else part)
                sent = 0
            return
        t.write(header + body[0])
        for part in body[1:]:
            t.write(part)

    def _send(self, record: Buffer) -> None:
        t = self.transport
        if t is None or t.is_closing():
            return
        batch = self._batch if self._batch is not None else self._gather(len(record))
        if batch is not None and len(record) <= BATCHED_REPLY_MAX:
            batch.append(record)
        else:
            t.write(record)

    def _gather(self, size: int) -> list[Buffer] | None:
        """For a reply a task finished (outside `_process`): a batch written at the end of this
        turn of the loop when other calls of this connection are in flight. The calls one journal
        batch made durable (32 CREATEs) resume in the same turn, and their replies leave in one
        send() instead of one each. None for the only call in flight (it goes out at once, as a
        large reply does)."""
        if len(self.tasks) < 2 or size > BATCHED_REPLY_MAX:
            return None
        self._batch = []
        asyncio.get_running_loop().call_soon(self._flush)
        return self._batch


class _Refused(asyncio.Protocol):
    """A connection over the limit: closed as soon as it is made."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


class _Suspended:
    """A procedure coroutine stepped inline that had to wait on `waiting` (a future, or None
    for a bare yield): `finish` drives it to the end as an asyncio Task would."""

    __slots__ = ("coro", "waiting")

    def __init__(self, coro: Coroutine[Any, Any, ReplyBody], waiting: Any) -> None:
        self.coro = coro
        self.waiting = waiting

    async def finish(self) -> ReplyBody:
        coro, waiting = self.coro, self.waiting
        try:
            while True:
                cancelled = None
                try:
                    if waiting is None:
                        await asyncio.sleep(0)
                    else:
                        # The coroutine awaits this future: wait until it is done, then resume
                        # the coroutine, which reads the outcome itself (Future.__await__
                        # requires only that the future be done by then).
                        await asyncio.wait([waiting])
                except asyncio.CancelledError as e:
                    # As a Task does: the cancellation goes into the coroutine, whose handlers
                    # decide what it means (asyncio.timeout, inside, turns its own into
                    # TimeoutError; the coroutine had been closed unasked and the call dropped).
                    if waiting is not None:
                        waiting.cancel()
                    cancelled = e
                try:
                    waiting = coro.send(None) if cancelled is None else coro.throw(cancelled)
                except StopIteration as stop:
                    return stop.value
        except BaseException:
            coro.close()
            raise


def _call_inline(func: ProcFunc, ctx: CallContext) -> ReplyBody | Awaitable[ReplyBody] | _Suspended:
    """Call a procedure; a coroutine it returns is run up to its first real wait: its reply
    if it never waits, else a _Suspended."""
    result = func(ctx)
    if type(result) is not CoroutineType:
        return result
    try:
        waiting = result.send(None)
    except StopIteration as stop:
        return cast(ReplyBody, stop.value)
    return _Suspended(result, waiting)


def _join(xid: int, body: ReplyBody) -> bytes:
    if isinstance(body, bytes | bytearray | memoryview):
        return oncrpc.success_header(xid, len(body)) + bytes(body)
    data = b"".join(body)
    return oncrpc.success_header(xid, len(data)) + data
