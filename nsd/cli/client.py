"""A small synchronous client of the admin API, used by the CLI.

Built on the standard library's http.client rather than requests: the CLI pays for its imports
on every command (requests and urllib3 cost about 0.1 s, a third of `nsd ls`), and it needs only
JSON calls, streamed bodies both ways and one keep-alive connection. HTTPS verifies the server
against the system's CAs, or the bundle named by REQUESTS_CA_BUNDLE or SSL_CERT_FILE.
"""

from __future__ import annotations

import http.client
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlparse, urlsplit

from nsd.datadir import DataDir

CHUNK = 1 << 20
# errors of a keep-alive connection the server closed while idle: the call is sent again once
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


class ApiError(Exception):
    """The daemon answered with an error (or could not be reached)."""

    def __init__(self, message: str, *, status: int = 0, kind: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind


# A body that broke off mid-way (the daemon died, the network dropped): callers that stream catch it.
TransferError = (OSError, http.client.HTTPException)


def find_token(token: str | None, data_dir: str | None) -> tuple[str | None, str]:
    """The admin token and where it came from: --token / NSD_TOKEN first, else the token file in
    --data-dir / NSD_DATA_DIR (default ./nsd-data). Without one, where it was looked for."""
    if token:
        return token, "--token / NSD_TOKEN"
    path = DataDir(Path(data_dir or "./nsd-data")).token_file
    try:
        return DataDir(Path(data_dir or "./nsd-data")).read_token(), str(path)
    except OSError:
        return None, f"no --token, NSD_TOKEN or readable {path}"


def check_server_url(server: str) -> str:
    """The admin API's base URL; refuses what is not an http(s) URL (`127.0.0.1:9870`)."""
    parsed = urlparse(server)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ApiError(f"--server must be an http(s) URL such as http://127.0.0.1:9870, not {server!r}", status=400)
    return server.rstrip("/")


class Response:
    """A reply whose body is read when asked for: all of it (`json`), or piece by piece."""

    def __init__(self, raw: http.client.HTTPResponse | _Whole) -> None:
        self.raw = raw
        self.status_code = raw.status
        self.headers = raw.headers

    def json(self) -> Any:
        return json.loads(self.raw.read())

    def iter_content(self, size: int = CHUNK) -> Iterator[bytes]:
        while piece := self.raw.read(size):
            yield piece

    def iter_lines(self) -> Iterator[bytes]:
        while line := self.raw.readline():
            yield line.rstrip(b"\r\n")


class Client:
    def __init__(self, server: str, token: str | None = None, timeout: float = 60.0, token_from: str = "") -> None:
        self.server = check_server_url(server)
        url = urlsplit(self.server)
        self._url = url
        self.base = url.path + "/api/v1"
        self.timeout = timeout
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.token_from = token_from  # where the token was found (or looked for), for a 401's message
        self._idle: http.client.HTTPConnection | None = None  # kept alive between whole-body calls

    def _connect(self) -> http.client.HTTPConnection:
        host, port = self._url.hostname or "", self._url.port
        if self._url.scheme == "http":
            return http.client.HTTPConnection(host, port, timeout=self.timeout)
        import ssl

        cafile = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE") or None
        context = ssl.create_default_context(cafile=cafile)
        return http.client.HTTPSConnection(host, port, timeout=self.timeout, context=context)

    def _call(
        self,
        method: str,
        endpoint: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        data: Iterable[bytes] | None = None,
        stream: bool = False,
    ) -> Response:
        """Send one call; an error reply raises ApiError with the daemon's message. A streamed
        reply gets a connection of its own, so other calls may run while it is read."""
        target = self.base + endpoint + ("?" + urlencode(params) if params else "")
        headers = dict(self.headers)
        body: Any = data
        if json is not None:
            body = _json_dumps(json)
            headers["Content-Type"] = "application/json"
        reused = self._idle is not None and not stream
        conn = self._idle if reused and self._idle is not None else self._connect()
        self._idle = None
        sock = None
        try:
            if stream:
                conn.connect()
                sock = conn.sock  # kept: http.client lets go of it when the reply says close
            try:
                raw = _send(conn, method, target, body, headers)
            except _STALE:
                if not reused or data is not None:  # a streamed upload cannot be sent twice
                    raise
                conn.close()
                conn = self._connect()
                raw = _send(conn, method, target, body, headers)
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            raise ApiError(f"cannot reach nsd at {self.server} (is `nsd serve` running?): {e}") from None
        if raw.status >= 400:
            message, kind = self._error(raw)
            conn.close()
            raise ApiError(message, status=raw.status, kind=kind)
        if stream:
            # A streamed reply may be quiet for long (`load` of a big file from a slow store
            # reports each file when done): no read timeout once the daemon has answered.
            if sock is not None:
                sock.settimeout(None)
            return Response(raw)
        whole = _Whole(raw)  # read now, so the connection is free for the next call
        self._idle = conn
        return Response(whole)

    def _error(self, raw: http.client.HTTPResponse) -> tuple[str, str]:
        """The daemon's {"error": {"message", "type"}}; a reply without it is not from an nsd."""
        text = raw.read().decode(errors="replace")
        try:
            err = json.loads(text)["error"]
            message, kind = str(err["message"]), str(err["type"])
        except (ValueError, KeyError, TypeError):
            raise ApiError(
                f"{self.server} answered HTTP {raw.status} without nsd's error body: is it an nsd?", status=raw.status
            ) from None
        if raw.status == 401 and self.token_from:
            message = f"{message} (token: {self.token_from})"
        return message, kind

    def get(self, endpoint: str, **params: Any) -> Any:
        return self._call("GET", endpoint, params=params).json()

    def post(self, endpoint: str, body: dict[str, Any]) -> Any:
        return self._call("POST", endpoint, json=body).json()

    def post_lines(self, endpoint: str, body: dict[str, Any]) -> Iterator[Any]:
        """POST, then one JSON value per line of the streamed reply (NDJSON progress)."""
        response = self._call("POST", endpoint, json=body, stream=True)
        for line in response.iter_lines():
            if line:
                yield json.loads(line)

    def status(self) -> dict[str, Any]:
        return self.get("/status")

    def stat(self, path: str, follow: bool = True) -> dict[str, Any]:
        return self.get("/fs/stat", path=path, follow=str(follow).lower())

    def list(self, path: str) -> Iterator[dict[str, Any]]:
        """Every entry, fetched page by page."""
        start_after = ""
        while True:
            page = self.get("/fs/list", path=path, start_after=start_after)
            yield from page["entries"]
            if not page["more"] or not page["entries"]:
                return
            start_after = page["entries"][-1]["name"]

    def put(self, path: str, data: Any, *, overwrite: bool = False) -> dict[str, Any]:
        """Upload from anything with a binary `read(n)`, streamed in CHUNK pieces."""

        def chunks() -> Iterator[bytes]:
            while block := data.read(CHUNK):
                yield block

        return self._call(
            "PUT", "/fs/content", params={"path": path, "overwrite": str(overwrite).lower()}, data=chunks()
        ).json()

    def stream(self, method: str, endpoint: str) -> Response:
        """A streamed response (caller iterates `iter_content`)."""
        return self._call(method, endpoint, stream=True)

    def read(self, path: str, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        params: dict[str, Any] = {"path": path, "offset": offset}
        if length is not None:
            params["length"] = length
        response = self._call("GET", "/fs/content", params=params, stream=True)
        yield from response.iter_content(CHUNK)


def _send(
    conn: http.client.HTTPConnection, method: str, target: str, body: Any, headers: dict[str, str]
) -> http.client.HTTPResponse:
    conn.request(method, target, body=body, headers=headers)  # an iterable body goes out chunked
    return conn.getresponse()


def _json_dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


class _Whole:
    """A reply read whole, with the reading interface Response uses."""

    def __init__(self, raw: http.client.HTTPResponse) -> None:
        self.status = raw.status
        self.headers = raw.headers
        self._body = raw.read()
        self._at = 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._body) if size < 0 else self._at + size
        piece = self._body[self._at : end]
        self._at += len(piece)
        return piece

    def readline(self) -> bytes:
        end = self._body.find(b"\n", self._at)
        return self.read(-1 if end < 0 else end + 1 - self._at)
