"""A small synchronous client of the admin API, used by the CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests

from nsd.datadir import DataDir

CHUNK = 1 << 20


class ApiError(Exception):
    """The daemon answered with an error (or could not be reached)."""

    def __init__(self, message: str, *, status: int = 0, kind: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind


def find_token(token: str | None, data_dir: str | None) -> str | None:
    """--token / NSD_TOKEN first, else the token file in --data-dir / NSD_DATA_DIR (default ./nsd-data)."""
    if token:
        return token
    try:
        return DataDir(Path(data_dir or "./nsd-data")).read_token()
    except OSError:
        return None


class Client:
    def __init__(self, server: str, token: str | None = None, timeout: float = 60.0) -> None:
        self.base = server.rstrip("/") + "/api/v1"
        self.session = requests.Session()
        self.timeout = timeout
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def _call(self, method: str, endpoint: str, **kwargs: Any) -> requests.Response:
        try:
            response = self.session.request(method, self.base + endpoint, timeout=self.timeout, **kwargs)
        except requests.ConnectionError:
            raise ApiError(
                f"cannot reach nsd at {self.base.removesuffix('/api/v1')} (is `nsd serve` running?)"
            ) from None
        if response.status_code >= 400:
            try:
                err = response.json()["error"]
                message, kind = err["message"], err["type"]
            except (ValueError, KeyError, TypeError):
                message, kind = response.text.strip() or response.reason, ""
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
