"""The CLI's admin API client (http.client) against a plain HTTP server of the standard library:
keep-alive reuse, a connection the server closed while idle, streamed bodies both ways, errors."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from nsd.cli.client import ApiError, Client


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[tuple[str, str, int, bytes]] = []  # (method, path, client port, body)

    def log_message(self, *args: Any) -> None:
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding") == "chunked":
            out = b""
            while size := int(self.rfile.readline().strip(), 16):
                out += self.rfile.read(size)
                self.rfile.readline()
            self.rfile.readline()
            return out
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def _answer(self, status: int, body: bytes, *, close: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.seen.append(("GET", self.path, self.client_address[1], b""))
        if self.path.startswith("/api/v1/status"):
            self._answer(200, json.dumps({"ok": True, "auth": self.headers.get("Authorization")}).encode())
        elif self.path.startswith("/api/v1/close"):  # answers, then drops the kept-alive connection
            self._answer(200, b'{"closing": true}', close=True)
        elif self.path.startswith("/api/v1/fs/content"):
            self._answer(200, bytes(range(256)) * 8192)
        elif self.path.startswith("/api/v1/denied"):
            self._answer(401, json.dumps({"error": {"message": "admin token rejected", "type": "Unauth"}}).encode())
        else:
            self._answer(404, b"<html>not here</html>")

    def do_POST(self) -> None:
        self._body()
        if self.path.startswith("/api/v1/cache/load"):  # progress lines with a quiet spell between
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b'{"started": true}\n')
            self.wfile.flush()
            time.sleep(1.5)
            self.wfile.write(b'{"done": true}\n')
            self.close_connection = True
        else:
            self._answer(404, b"<html>not here</html>")

    def do_PUT(self) -> None:
        body = self._body()
        self.seen.append(("PUT", self.path, self.client_address[1], body))
        self._answer(200, json.dumps({"length": len(body)}).encode())


@pytest.fixture
def server() -> Iterator[str]:
    Handler.seen = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_calls_share_one_connection_and_carry_the_token(server: str) -> None:
    client = Client(server, token="tok")
    assert client.status() == {"ok": True, "auth": "Bearer tok"}
    assert client.status()["ok"]
    ports = {port for _, _, port, _ in Handler.seen}
    assert len(ports) == 1  # the second call rode the kept-alive connection


def test_a_connection_closed_while_idle_is_replaced(server: str) -> None:
    client = Client(server)
    assert client.get("/close") == {"closing": True}
    assert client.status()["ok"]  # sent again on a new connection, no error
    assert len({port for _, _, port, _ in Handler.seen}) == 2


def test_streamed_upload_and_download(server: str) -> None:
    import io

    client = Client(server)
    data = bytes(range(256)) * 9000  # more than one CHUNK: goes out chunked
    assert client.put("/x", io.BytesIO(data)) == {"length": len(data)}
    assert Handler.seen[-1][3] == data
    assert b"".join(client.read("/x")) == bytes(range(256)) * 8192
    assert client.status()["ok"]  # the streamed reply did not take the kept connection


def test_errors(server: str) -> None:
    client = Client(server, token="bad", token_from="--token / NSD_TOKEN")
    with pytest.raises(ApiError, match=r"admin token rejected \(token: --token / NSD_TOKEN\)") as denied:
        client.get("/denied")
    assert denied.value.status == 401
    with pytest.raises(ApiError, match="without nsd's error body: is it an nsd"):
        client.get("/elsewhere")
    with pytest.raises(ApiError, match="must be an http"):
        Client("127.0.0.1:9870")
    closed = Client("http://127.0.0.1:1")
    with pytest.raises(ApiError, match="cannot reach nsd") as unreachable:
        closed.status()
    assert unreachable.value.status == 0


def test_a_streamed_reply_may_stay_quiet_longer_than_the_timeout(server: str) -> None:
    """`nsd load` of a big file from a slow store reports each file when it is done: a quiet
    spell longer than the client's timeout is not an error once the daemon has answered."""
    client = Client(server, timeout=0.5)
    assert list(client.post_lines("/cache/load", {"path": "/big"})) == [{"started": True}, {"done": True}]
    with pytest.raises(ApiError, match="cannot reach"):
        Client("http://127.0.0.1:9", timeout=0.5).post("/cache/load", {"path": "/x"})
