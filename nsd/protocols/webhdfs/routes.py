"""WebHDFS REST API (/webhdfs/v1/<path>?op=...) on the daemon's HTTP port, as Hadoop serves it.

Theory of operation. One aiohttp handler takes every method under the prefix. It parses the
path from the raw request line (percent-decoded exactly once, `.`/`..`/NUL refused, so nothing
the URL normaliser did can change which object is meant), the query (names case-insensitive,
unknown ones ignored), and the caller (webhdfs_auth: `user.name` or a bearer token, `doas`),
then dispatches on (method, op) through one table to a handler in webhdfs_get / webhdfs_put.
Handlers call only the vfs, as the caller: the vfs checks permissions.

Two-step operations (CREATE, APPEND, OPEN, GETFILECHECKSUM): the first request is validated
and answered with a 307 whose absolute Location carries every original parameter plus
`data=true` (or 200 {"Location"} with noredirect=true); the second request, to that Location,
moves the data. A NameNode would send clients to a DataNode; here both steps reach this
daemon, as with Hadoop's HttpFS. `Expect: 100-continue` is answered only on data steps, so a
client that announces a body on the first step gets its 307 without sending the body.

Every failure is {"RemoteException": {exception, javaClassName, message}} with the status
from errmap (or the handler's exact Hadoop class and wording); the connection lives on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from aiohttp import hdrs, web

from nsd import errors
from nsd.ops.clients import USER_KEY
from nsd.protocols import errmap
from nsd.protocols.webhdfs import get as webhdfs_get
from nsd.protocols.webhdfs import put as webhdfs_put
from nsd.protocols.webhdfs.auth import Authenticator, Unauthenticated
from nsd.protocols.webhdfs.context import (
    IAE,
    IOE,
    PREFIX,
    UOE,
    Ctx,
    Handler,
    JsonResponse,
    Remote,
    Settings,
    json_response,
)
from nsd.protocols.webhdfs.encode import remote_exception
from nsd.protocols.webhdfs.params import Params
from nsd.vfs import Vfs

log = logging.getLogger("nsd.webhdfs")

OPS: dict[str, dict[str, Handler]] = {
    "GET": webhdfs_get.OPS,
    "PUT": webhdfs_put.PUT_OPS,
    "POST": webhdfs_put.POST_OPS,
    "DELETE": webhdfs_put.DELETE_OPS,
}
ALL_OPS = {op: method for method, table in OPS.items() for op in table}
# The ops that carry a request body on their data step.
BODY_OPS = frozenset({"CREATE", "APPEND"})


@dataclass(frozen=True)
class State:
    vfs: Vfs
    settings: Settings
    auth: Authenticator


STATE_KEY: web.AppKey[State] = web.AppKey("webhdfs", State)


def parse_path(raw_path: str) -> str:
    """The namespace path of a request: after the prefix, percent-decoded once, normalised.

    Raises Remote(400, InvalidPathException) for `.`/`..` components, NUL, or bad UTF-8.
    """
    rest = raw_path.split("?", 1)[0][len(PREFIX) :]
    try:
        decoded = unquote_to_bytes(rest).decode("utf-8")
    except UnicodeDecodeError:
        raise Remote(400, "org.apache.hadoop.fs.InvalidPathException", f"Invalid path name {rest}") from None
    parts = [p for p in decoded.split("/") if p]
    if any(p in (".", "..") or "\0" in p for p in parts):
        raise Remote(
            400, "org.apache.hadoop.fs.InvalidPathException", f"Invalid path name Invalid file name: {decoded!r}"
        )
    return "/" + "/".join(parts)


def error_response(status: int, java: str, message: str) -> web.Response:
    return json_response(remote_exception(java, message), status=status)


def _core_error(e: errors.NsdError, ctx_op: str, path: str) -> web.Response:
    status, java = errmap.webhdfs(e)
    message = e.message
    if isinstance(e, errors.NotFound | errors.Stale):
        # Hadoop's wording; HdfsCLI matches "does not exist" in it.
        message = f"File {path} does not exist." if ctx_op.startswith("LISTSTATUS") else f"File does not exist: {path}"
    return error_response(status, java, message)


def _lookup(method: str, op: str | None) -> Handler:
    if not op:
        raise Remote(400, IAE, 'Missing required webhdfs parameter "op"')
    handler = OPS.get(method, {}).get(op)
    if handler is not None:
        return handler
    right = ALL_OPS.get(op)
    if right is not None:
        raise Remote(400, IAE, f'Invalid value for webhdfs parameter "op": {op} is a {right} operation, not {method}')
    raise Remote(400, UOE, f"Operation {op} is not supported by nsd")


async def handle(request: web.Request) -> web.StreamResponse:
    response = await _handle(request)
    if isinstance(response, JsonResponse) and request.headers.get(hdrs.USER_AGENT, "").startswith("Java/"):
        response.bare = True  # Hadoop's Java client: see JsonResponse
    return response


async def _handle(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    params = Params(request.query.items())
    op = (params.get("op") or "").upper()
    path = "/"
    try:
        path = parse_path(request.raw_path)
        handler = _lookup(request.method, op)
        who = await state.auth.identify(
            request.headers.get(hdrs.AUTHORIZATION), params.get("user.name"), params.get("doas"), request.remote or ""
        )
        request[USER_KEY] = who.name
        ctx = Ctx(request, state.vfs, state.settings, op, path, params, who)
        return await handler(ctx)
    except Unauthenticated as e:
        response = error_response(401, "java.lang.SecurityException", e.message)
        response.headers[hdrs.WWW_AUTHENTICATE] = 'Bearer realm="nsd"'
        return response
    except Remote as e:
        return error_response(e.status, e.java, e.message)
    except errors.NsdError as e:
        return _core_error(e, op, path)
    except Exception as e:  # a bug: answer like a NameNode would, and keep serving
        log.exception("webhdfs %s %s failed", request.method, request.raw_path)
        return error_response(500, IOE, f"internal error: {type(e).__name__}: {e}")


async def expect_handler(request: web.Request) -> None:
    """100-continue only where a body is wanted: a first step answers 307 before any upload."""
    if request.headers.get(hdrs.EXPECT, "").lower() != "100-continue":
        return
    params = Params(request.query.items())
    op = (params.get("op") or "").upper()
    try:
        data = params.flag("data", False)
    except errors.Invalid:
        data = False
    if op in BODY_OPS and data and request.version >= (1, 1):
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")


def add_routes(
    app: web.Application, vfs: Vfs, settings: Settings | None = None, auth: Authenticator | None = None
) -> None:
    app[STATE_KEY] = State(vfs, settings or Settings(), auth or Authenticator(vfs.perms.users, vfs.perms.is_super))
    for method in OPS:
        app.router.add_route(method, PREFIX + "{path:|/.*}", handle, expect_handler=expect_handler)


__all__ = ["PREFIX", "Settings", "add_routes", "parse_path"]
