"""Limits of the HTTP listener (admin API and WebHDFS): overload gives errors, never unbounded memory.

- connections: past `max_connections` open ones, a new connection is answered 503 and closed
  (`LimitedSite` wraps aiohttp's protocol factory);
- requests in progress: past `max_requests`, 503 with Retry-After (a middleware);
- request line and header fields: past `max_header_bytes`, aiohttp answers 400 and closes;
- JSON/form bodies read whole: past `max_body_bytes`, 413 (aiohttp's client_max_size). File
  uploads are streamed in pieces and never held whole, so their size is not limited here;
- an idle keep-alive connection (or one that never sends a request) is closed after
  `idle_timeout` (aiohttp's keepalive timeout, armed from the moment of connection);
- an upload that stalls, no data for `body_timeout` seconds, is answered 408 and the connection
  closed (`body_stream`), so a client cannot hold a request slot by sending nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

from aiohttp import web

from nsd import errors

log = logging.getLogger("nsd.http")

RETRY_AFTER_SECONDS = 1
BUSY_BODY = (
    b'{"RemoteException": {"exception": "RetriableException", '
    b'"javaClassName": "org.apache.hadoop.ipc.RetriableException", '
    b'"message": "server busy: too many connections, retry later"}}'
)


@dataclass(frozen=True)
class HttpLimits:
    max_connections: int = 1024
    max_requests: int = 256
    max_header_bytes: int = 8190
    max_body_bytes: int = 1 << 20
    idle_timeout: float = 75.0
    body_timeout: float = 60.0

    def runner_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for web.AppRunner (passed on to each connection's handler)."""
        return {
            "keepalive_timeout": self.idle_timeout,
            "max_line_size": self.max_header_bytes,
            "max_field_size": self.max_header_bytes,
        }


@dataclass
class Overload:
    """What the limits turned away, for metrics."""

    refused_connections: int = 0
    busy_replies: int = 0
    stalled_uploads: int = 0


LIMITS_KEY: web.AppKey[HttpLimits] = web.AppKey("http_limits", HttpLimits)
OVERLOAD_KEY: web.AppKey[Overload] = web.AppKey("http_overload", Overload)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def install(app: web.Application, limits: HttpLimits) -> Overload:
    """The request limit (first middleware, so nothing runs for a refused request)."""
    app[LIMITS_KEY] = limits
    app[OVERLOAD_KEY] = overload = Overload()
    app.middlewares.insert(0, _Concurrency(limits.max_requests, overload).middleware)
    return overload


class _Concurrency:
    def __init__(self, limit: int, overload: Overload) -> None:
        self.limit = limit
        self.running = 0
        self.overload = overload

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.limit and self.running >= self.limit:
            self.overload.busy_replies += 1
            n = self.overload.busy_replies
            if n in (1, 10, 100) or n % 1000 == 0:
                log.warning("refusing an HTTP request: %d in progress (%d refused so far)", self.running, n)
            return busy_response(request, f"server busy: {self.running} requests in progress, retry later")
        self.running += 1
        try:
            try:
                response = await handler(request)
            except ConnectionError as e:
                if request.transport is not None and not request.transport.is_closing():
                    raise  # not this client's connection (a peer's, a store's): a real error
                # The client went away mid-reply (`nsd cat big | head`): normal, not a server error.
                # A reply paused for a slow reader fails with a plain ConnectionError, not a reset.
                log.debug("%s %s: the client went away: %s", request.method, request.path, e)
                if request.protocol is not None:
                    request.protocol.force_close()
                raise asyncio.CancelledError from None  # aiohttp drops a cancelled handler quietly
            if response.status == 408 and isinstance(response, web.Response) and not response.prepared:
                # Send the 408 and hang up now: waiting for the rest of a stalled body (aiohttp's
                # lingering close) would hold the connection for nothing.
                self.overload.stalled_uploads += 1
                response.force_close()
                await response.prepare(request)
                await response.write_eof()
                if request.protocol is not None:
                    request.protocol.force_close()
        finally:
            self.running -= 1
        return response


def busy_response(request: web.Request, message: str) -> web.Response:
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    body: dict[str, Any]
    if request.path.startswith("/webhdfs/"):
        body = {
            "RemoteException": {
                "exception": "RetriableException",
                "javaClassName": "org.apache.hadoop.ipc.RetriableException",
                "message": message,
            }
        }
    else:
        body = {"error": {"type": "Busy", "errno": 11, "message": message, "path": None}}
    return web.json_response(body, status=503, headers=headers)


def timeout_response(request: web.Request, message: str) -> web.Response:
    body: dict[str, Any]
    if request.path.startswith("/webhdfs/"):
        body = {
            "RemoteException": {
                "exception": "SocketTimeoutException",
                "javaClassName": "java.net.SocketTimeoutException",
                "message": message,
            }
        }
    else:
        body = {"error": {"type": "TimedOut", "errno": 110, "message": message, "path": None}}
    response = web.json_response(body, status=408)
    response.force_close()
    return response


async def body_stream(request: web.Request) -> AsyncIterator[bytes]:
    """The request body as it arrives; TimedOut if no data comes for the body timeout."""
    timeout = request.app[LIMITS_KEY].body_timeout if LIMITS_KEY in request.app else 0.0
    while True:
        try:
            if timeout > 0:
                async with asyncio.timeout(timeout):  # no task per piece, as wait_for makes
                    piece = await request.content.readany()
            else:
                piece = await request.content.readany()
        except TimeoutError:
            raise errors.TimedOut(f"upload stalled: no data for {timeout:g} s") from None
        if not piece:
            return
        yield piece


class LimitedSite(web.TCPSite):
    """A TCP site that refuses connections past `max_connections` with a 503 and a close."""

    def __init__(
        self, runner: web.AppRunner, host: str, port: int, max_connections: int, overload: Overload, **kwargs: Any
    ) -> None:
        super().__init__(runner, host, port, **kwargs)
        self.max_connections = max_connections
        self.overload = overload

    async def start(self) -> None:
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()

        def factory() -> asyncio.Protocol:
            if self.max_connections and len(server.connections) >= self.max_connections:
                self.overload.refused_connections += 1
                n = self.overload.refused_connections
                if n in (1, 10, 100) or n % 1000 == 0:
                    log.warning("refusing an HTTP connection: %d open (%d refused so far)", self.max_connections, n)
                return _Busy()
            return server()

        self._server = await loop.create_server(
            factory,
            self._host,
            self._port,
            ssl=self._ssl_context,
            reuse_address=self._reuse_address,
            backlog=self._backlog,
        )
        self._bound_port = self._server.sockets[0].getsockname()[1] if self._server.sockets else self._port


class _Busy(asyncio.Protocol):
    """Over the connection limit: one 503 and the connection is closed."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's transports are not its subclasses
        transport.write(
            b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: %d\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (RETRY_AFTER_SECONDS, len(BUSY_BODY), BUSY_BODY)
        )
        transport.close()
