"""A small synchronous client of the admin API, used by the CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import requests

from nsd.datadir import DataDir

CHUNK = 1 << 20


class ApiError(Exception):
    """The daemon answered with an error (or could not be reached)."""

    def __init__(self, message: str, *, status: int = 0, kind: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind


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


class Client:
    def __init__(self, server: str, token: str | None = None, timeout: float = 60.0, token_from: str = "") -> None:
        self.server = check_server_url(server)
        self.base = self.server + "/api/v1"
        self.session = requests.Session()
        self.timeout = timeout
        self.token_from = token_from  # where the token was found (or looked for), for a 401's message
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def _call(self, method: str, endpoint: str, **kwargs: Any) -> requests.Response:
        try:
            response = self.session.request(method, self.base + endpoint, timeout=self.timeout, **kwargs)
        except requests.ConnectionError:
            raise ApiError(f"cannot reach nsd at {self.server} (is `nsd serve` running?)") from None
        except requests.RequestException as e:
            raise ApiError(f"cannot talk to nsd at {self.server}: {e}") from None
        if response.status_code >= 400:
            try:
                err = response.json()["error"]
                message, kind = err["message"], err["type"]
            except (ValueError, KeyError, TypeError):
                raise ApiError(
                    f"{self.server} answered HTTP {response.status_code} without nsd's error body: is it an nsd?",
                    status=response.status_code,
                ) from None
            if response.status_code == 401:
                message = f"{message} (token: {self.token_from})" if self.token_from else message
            raise ApiError(message, status=response.status_code, kind=kind)
        return response

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

    def stream(self, method: str, endpoint: str) -> requests.Response:
        """A streamed response (caller iterates `iter_content`)."""
        return self._call(method, endpoint, stream=True)

    def read(self, path: str, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        params: dict[str, Any] = {"path": path, "offset": offset}
        if length is not None:
            params["length"] = length
        response = self._call("GET", "/fs/content", params=params, stream=True)
        yield from response.iter_content(CHUNK)
