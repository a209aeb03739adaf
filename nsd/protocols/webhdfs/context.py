"""What a WebHDFS operation handler gets: the parsed request, the caller, the vfs, and helpers
for the replies every handler shares (JSON, the two-step redirect)."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, cast
from urllib.parse import quote, urlencode

from aiohttp import hdrs, web

from nsd import errors
from nsd.namespace import Inode
from nsd.protocols.http.limits import body_stream
from nsd.protocols.webhdfs.auth import Identity
from nsd.protocols.webhdfs.params import Params
from nsd.vfs import Caller, Vfs

PREFIX = "/webhdfs/v1"
DEFAULT_BLOCK_SIZE = 128 << 20  # HDFS's default; what Spark and MapReduce split by


@dataclass(frozen=True)
class Settings:
    base_url: str = ""  # advertised scheme://host:port for Locations; "" = from the request
    block_size: int = DEFAULT_BLOCK_SIZE
    placement: Placement | None = None  # cluster mode: which node holds a file's data


class Placement(Protocol):
    def base_url_for(self, node: Inode, offset: int) -> str | None:
        """scheme://host:port of the node that holds the data at `offset` (None: this one)."""


@dataclass
class Ctx:
    request: web.Request
    vfs: Vfs
    settings: Settings
    op: str
    path: str  # absolute, percent-decoded once, validated
    params: Params
    who: Identity

    @property
    def caller(self) -> Caller:
        """Who the vfs checks permissions for and new objects belong to."""
        return self.who.caller

    @property
    def data_step(self) -> bool:
        """True on the second request of a two-step operation (the one that carries data)."""
        return self.params.flag("data", False)

    def base_url(self) -> str:
        """scheme://host[:port] clients can reach this daemon at.

        The configured `webhdfs_base_url` wins (NAT, containers); else X-Forwarded-Proto/-Host from
        a reverse proxy; else the Host the client used, which reached us once already.
        """
        if self.settings.base_url:
            return self.settings.base_url.rstrip("/")
        headers = self.request.headers
        proto = headers.get("X-Forwarded-Proto", "").split(",")[0].strip() or self.request.scheme
        host = headers.get("X-Forwarded-Host", "").split(",")[0].strip() or self.request.host
        return f"{proto}://{host}"

    def data_base_url(self, node: Inode, offset: int) -> str:
        """Where the data at `offset` of `node` is best read: its owner in a cluster, else here."""
        placement = self.settings.placement
        owner = placement.base_url_for(node, offset) if placement is not None else None
        return owner or self.base_url()

    def host_port(self, base_url: str | None = None) -> tuple[str, int]:
        """The advertised host and port (of `base_url`, default this daemon's), for block locations."""
        rest = (base_url or self.base_url()).split("://", 1)[-1]
        host, _, port = rest.rpartition(":")
        if not host or not port.isdigit():
            return rest, 80
        return host.strip("[]"), int(port)

    def data_location(self, base_url: str | None = None) -> str:
        """The absolute, self-sufficient URL of this operation's data step.

        Every original parameter travels along (user.name, doas, delegation, offsets), so the URL
        works on its own and can be used again: repeated APPEND posts, OPEN at other offsets.
        """
        items = [(k, v) for k, v in self.request.query.items() if k.lower() not in ("noredirect", "data")]
        items.append(("data", "true"))
        return f"{base_url or self.base_url()}{PREFIX}{quote(self.path)}?{urlencode(items)}"

    def redirect(self, base_url: str | None = None) -> web.Response:
        """307 to the data step (at `base_url`, default here), or 200 {"Location": ...} when the
        client asked noredirect=true."""
        location = self.data_location(base_url)
        if self.params.flag("noredirect", False):
            return json_response({"Location": location})
        return web.Response(status=307, headers={"Location": location, "Content-Type": "application/octet-stream"})


class JsonResponse(web.Response):
    """A JSON reply that can go out without a Content-Type header (see `bare`).

    Hadoop's shaded Java client (hadoop-client-runtime, as Spark ships it) parses any
    Content-Type with a Jersey class the shaded jar lacks, and fails every JSON reply that
    has one; with no Content-Type it skips the check. webhdfs.handle sets `bare` for it.
    """

    bare = False

    async def _write_headers(self) -> None:
        if self.bare:
            self._headers.popall(hdrs.CONTENT_TYPE, None)
        await super()._write_headers()


def json_response(body: Any, status: int = 200) -> web.Response:
    return JsonResponse(text=json.dumps(body), status=status, content_type="application/json")


def empty(status: int = 200) -> web.Response:
    return web.Response(status=status, headers={"Content-Type": "application/octet-stream"})


class Remote(errors.NsdError):
    """An error with Hadoop's exact class and wording, for cases the core table cannot word."""

    def __init__(self, status: int, java: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.java = java


FNF = "java.io.FileNotFoundException"
IOE = "java.io.IOException"
FAE = "org.apache.hadoop.fs.FileAlreadyExistsException"
IAE = "java.lang.IllegalArgumentException"
UOE = "java.lang.UnsupportedOperationException"


def not_a_file(path: str) -> Remote:
    return Remote(404, FNF, f"Path is not a file: {path}")


def boolean(value: bool) -> web.Response:
    return json_response({"boolean": value})


async def body_chunks(request: web.Request, size: int = 4 << 20) -> AsyncIterator[bytes]:
    """The request body (chunked or not) regrouped into pieces of about `size` bytes, so the
    under-storage sees few large writes instead of many 64 KiB ones. The pieces are joined once
    (a bytearray grown piece by piece and then copied out moved every byte twice more)."""
    pieces: list[bytes] = []
    held = 0
    async for piece in body_stream(request):
        pieces.append(piece)
        held += len(piece)
        if held >= size:
            yield b"".join(pieces)
            pieces.clear()
            held = 0
    if pieces:
        yield b"".join(pieces)


Handler = Callable[[Ctx], Awaitable[web.StreamResponse]]


def read_stream(ctx: Ctx, path: str, offset: int, length: int) -> AsyncGenerator[bytes, None]:
    """vfs.read as the async generator it is, so callers can close it when a client hangs up."""
    return cast(AsyncGenerator[bytes, None], ctx.vfs.read(path, offset, length, caller=ctx.caller))
