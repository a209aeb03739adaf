"""HDFS over its REST API (webhdfs://host:port/path), so nsd can front a cluster with no Java.

Options: `user` (user.name, simple auth), `token` (a delegation token; sent instead of the user),
`scheme` (http or https), `page` (entries per LISTSTATUS_BATCH page).

- list pages with LISTSTATUS_BATCH (startAfter), so a huge directory costs one page of memory;
  a server without it (UnsupportedOperationException, 400) gets one LISTSTATUS.
- read is OPEN with offset and length, following the NameNode's 307 to a DataNode.
- write is the two-step CREATE (the NameNode answers 307, the body goes to the DataNode) into a
  hidden `.nsd-tmp.*` file beside the target, then DELETE target + RENAME: HDFS CREATE with
  overwrite truncates at once, and RENAME does not replace, so a reader may briefly find no
  file between the delete and the rename, but never a half-written one.
- append(at) cuts the file back to `at` with TRUNCATE if an earlier append left more, then
  APPENDs (two-step, like CREATE).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from typing import Any
from urllib.parse import quote, unquote, urlparse

import aiohttp

from nsd import errors
from nsd.ufs.base import TMP_PREFIX, Syncs, Ufs, UfsStatus
from nsd.ufs.options import Options, mask_uri, scrub, secret_values

_REMOTE: dict[str, type[errors.NsdError]] = {
    "FileNotFoundException": errors.NotFound,
    "AccessControlException": errors.Denied,
    "SecurityException": errors.Denied,
    "AuthorizationException": errors.Denied,
    "InvalidToken": errors.Denied,
    "FileAlreadyExistsException": errors.Exists,
    "PathIsNotEmptyDirectoryException": errors.NotEmpty,
    "ParentNotDirectoryException": errors.NotDir,
    "PathIsNotDirectoryException": errors.NotDir,
    "DSQuotaExceededException": errors.NoSpace,
    "NSQuotaExceededException": errors.NoSpace,
    "IllegalArgumentException": errors.Invalid,
    "InvalidPathException": errors.Invalid,
    "UnsupportedOperationException": errors.NotSupported,
    "SafeModeException": errors.UfsUnavailable,
    "RetriableException": errors.UfsUnavailable,
    "StandbyException": errors.UfsUnavailable,
}


def _by_status(status: int) -> type[errors.NsdError]:
    if status in (401, 403):
        return errors.Denied
    if status == 404:
        return errors.NotFound
    if status >= 500 or status in (408, 429):
        return errors.UfsUnavailable
    return errors.Invalid


class WebHdfsUfs(Ufs):
    kind = "webhdfs"
    sorted_listing = True  # LISTSTATUS_BATCH pages by startAfter: name order by definition

    def __init__(self, uri: str, options: Mapping[str, str] | None = None) -> None:
        p = urlparse(uri)
        if p.scheme != "webhdfs" or not p.hostname:
            raise errors.Invalid(f"not a WebHDFS URI (webhdfs://host:port/path): {mask_uri(uri)!r}")
        opts = Options(options, uri)
        self.uri = uri
        self.options = dict(options or {})
        scheme = opts.text("scheme", "http")
        self.base = f"{scheme}://{p.hostname}:{p.port or 9870}/webhdfs/v1"
        self.root = "/" + unquote(p.path).strip("/")
        self.user = opts.text("user")
        self.token = opts.text("token")
        self.page = opts.integer("page", 1000)
        self._hidden = secret_values(self.options)
        self._session: aiohttp.ClientSession | None = None
        self._writing: set[str] = set()  # temporary files of writes in progress: never swept

    # ---- HTTP plumbing --------------------------------------------------------------------

    def _abs(self, path: str) -> str:
        parts = [p for p in path.split("/") if p]
        if any(p in (".", "..") or "\0" in p for p in parts):
            raise errors.Invalid(f"bad under-storage path {path!r}")
        return "/" + "/".join([*[p for p in self.root.split("/") if p], *parts])

    def _url(self, path: str) -> str:
        return self.base + quote(self._abs(path))

    def _params(self, op: str, **more: Any) -> dict[str, str]:
        params = {"op": op}
        if self.token:
            params["delegation"] = self.token
        elif self.user:
            params["user.name"] = self.user
        for k, v in more.items():
            params[k] = str(v).lower() if isinstance(v, bool) else str(v)
        return params

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))
        return self._session

    async def _error(self, resp: aiohttp.ClientResponse, path: str) -> errors.NsdError:
        text = await resp.text()
        cls = _by_status(resp.status)
        message = text[:300]
        try:
            remote = json.loads(text)["RemoteException"]
            cls = _REMOTE.get(remote.get("exception", ""), cls)
            message = f"{remote.get('exception')}: {remote.get('message')}"
        except (ValueError, KeyError, TypeError):
            pass
        return cls(f"under-storage webhdfs: {scrub(message, self._hidden)}: {path or '/'}", path=path)

    async def _request(
        self, method: str, path: str, op: str, *, data: Any = None, follow: bool = True, **more: Any
    ) -> tuple[int, bytes, str | None]:
        """One call; returns (status, body, Location). Connection failures are UfsUnavailable."""
        try:
            async with self._http().request(
                method, self._url(path), params=self._params(op, **more), data=data, allow_redirects=follow
            ) as resp:
                if resp.status >= 400:
                    raise await self._error(resp, path)
                return resp.status, await resp.read(), resp.headers.get("Location")
        except aiohttp.ClientError as e:
            raise errors.UfsUnavailable(f"under-storage webhdfs: {scrub(str(e), self._hidden)}", path=path) from None

    async def _json(self, method: str, path: str, op: str, **more: Any) -> Any:
        _, body, _ = await self._request(method, path, op, **more)
        return json.loads(body) if body else {}

    async def _two_step(self, method: str, path: str, op: str, chunks: AsyncIterable[bytes], **more: Any) -> None:
        """CREATE/APPEND: ask the NameNode where to send the body (307), then send it there."""
        status, _, location = await self._request(method, path, op, follow=False, **more)
        body = _Body(chunks)
        try:
            if status == 307 and location:
                async with self._http().request(method, location, data=body.stream()) as resp:
                    if resp.status >= 400:
                        raise await self._error(resp, path)
            else:  # a server that took the call directly: send the body to the same URL
                await self._request(method, path, op, data=body.stream(), **more)
        except aiohttp.ClientError as e:
            if body.failed is not None:
                raise body.failed from None  # the caller's stream broke, not the store
            raise errors.UfsUnavailable(f"under-storage webhdfs: {scrub(str(e), self._hidden)}", path=path) from None
        if body.failed is not None:
            raise body.failed

    # ---- the interface --------------------------------------------------------------------

    def _status(self, name: str, fs: dict[str, Any]) -> UfsStatus:
        is_dir = fs.get("type") == "DIRECTORY"
        mode = int(fs["permission"], 8) if "permission" in fs else None
        return UfsStatus(
            name, is_dir, 0 if is_dir else int(fs.get("length", 0)), int(fs.get("modificationTime", 0)) * 1_000_000,
            None, mode,
        )  # fmt: skip

    async def stat(self, path: str) -> UfsStatus:
        fs = (await self._json("GET", path, "GETFILESTATUS"))["FileStatus"]
        return self._status(path.rstrip("/").rsplit("/", 1)[-1], fs)

    async def list_pages(self, path: str) -> AsyncIterator[list[UfsStatus]]:
        if not (await self.stat(path)).is_dir:
            raise errors.NotDir(f"under-storage webhdfs: not a directory: {path}", path=path)
        async for statuses in self._pages(path):
            page = [
                self._status(name, fs)
                for fs in statuses
                if (name := fs["pathSuffix"]) and not name.startswith(TMP_PREFIX)
            ]
            if page:
                yield page

    async def _statuses(self, path: str) -> AsyncIterator[dict[str, Any]]:
        """Every FileStatus of a directory, temporary files included."""
        async for page in self._pages(path):
            for fs in page:
                yield fs

    async def _pages(self, path: str) -> AsyncIterator[list[dict[str, Any]]]:
        """The FileStatuses of a directory, temporary files included, page by page."""
        after: str | None = None
        while True:
            try:
                more = {"startAfter": after} if after is not None else {}
                listing = (await self._json("GET", path, "LISTSTATUS_BATCH", **more))["DirectoryListing"]
                page = listing["partialListing"]["FileStatuses"]["FileStatus"]
                remaining = int(listing.get("remainingEntries", 0))
            except (errors.NotSupported, errors.Invalid):
                if after is not None:
                    raise
                page = (await self._json("GET", path, "LISTSTATUS"))["FileStatuses"]["FileStatus"]
                remaining = 0
            if page:
                yield page
            if not remaining or not page:
                return
            after = page[-1]["pathSuffix"]

    async def read(self, path: str, offset: int, length: int) -> bytes:
        if length <= 0:
            return b""
        st = await self.stat(path)
        if st.is_dir:
            raise errors.IsDir(f"under-storage webhdfs: is a directory: {path}", path=path)
        if offset >= st.size:
            return b""
        _, body, _ = await self._request("GET", path, "OPEN", offset=offset, length=length)
        return body[:length]

    async def write(self, path: str, chunks: AsyncIterable[bytes], *, syncs: Syncs | None = None) -> UfsStatus:
        parent, _, name = path.strip("/").rpartition("/")
        hidden = f"{TMP_PREFIX}{secrets.token_hex(8)}.{name}"
        tmp = f"{parent}/{hidden}" if parent else hidden
        self._writing.add(tmp)
        try:
            return await self._write(path, tmp, chunks)
        finally:
            self._writing.discard(tmp)

    async def _write(self, path: str, tmp: str, chunks: AsyncIterable[bytes]) -> UfsStatus:
        try:
            existing: UfsStatus | None = await self.stat(path)
        except errors.NotFound:
            existing = None
        if existing is not None and existing.is_dir:
            raise errors.IsDir(f"under-storage webhdfs: is a directory: {path}", path=path)
        try:
            await self._two_step("PUT", tmp, "CREATE", chunks, overwrite=True)
            if existing is not None:
                await self._json("DELETE", path, "DELETE", recursive=False)
            if not (await self._json("PUT", tmp, "RENAME", destination=self._abs(path))).get("boolean"):
                raise errors.UfsUnavailable(f"under-storage webhdfs: could not move the new file into {path}")
        except BaseException:
            with contextlib.suppress(errors.NsdError):
                await self._request("DELETE", tmp, "DELETE", recursive=False)
            raise
        return await self.stat(path)

    async def sweep_tmp(self, older_than: float) -> int:
        """A walk of the tree, one LISTSTATUS_BATCH page at a time, directories kept on a stack."""
        cutoff_ms = (time.time() - older_than) * 1000
        swept, todo = 0, [""]
        while todo:
            d = todo.pop()
            async for fs in self._statuses(d):
                name = fs["pathSuffix"]
                full = f"{d}/{name}" if d else name
                if fs.get("type") == "DIRECTORY":
                    todo.append(full)
                elif (
                    name.startswith(TMP_PREFIX)
                    and full not in self._writing
                    and int(fs.get("modificationTime", 0)) < cutoff_ms
                ):
                    with contextlib.suppress(errors.NotFound):
                        await self._json("DELETE", full, "DELETE", recursive=False)
                        swept += 1
        return swept

    async def mkdir(self, path: str) -> None:
        try:
            if not (await self.stat(path)).is_dir:
                raise errors.Exists(f"under-storage webhdfs: a file is in the way: {path}", path=path)
            return
        except errors.NotFound:
            pass
        if not (await self._json("PUT", path, "MKDIRS", permission="755")).get("boolean"):
            raise errors.Exists(f"under-storage webhdfs: cannot create directory {path}", path=path)

    async def delete(self, path: str, *, recursive: bool = False, syncs: Syncs | None = None) -> None:
        if not path.strip("/"):
            async for st in self.list(""):
                if st.is_dir and not recursive:
                    raise errors.NotEmpty("under-storage webhdfs: the root is not empty", path="")
                await self.delete(st.name, recursive=recursive)
            return
        if not (await self._json("DELETE", path, "DELETE", recursive=recursive)).get("boolean"):
            raise errors.NotFound(f"under-storage webhdfs: no such object: {path}", path=path)

    async def rename(self, src: str, dst: str) -> None:
        st = await self.stat(src)
        try:
            target: UfsStatus | None = await self.stat(dst)
        except errors.NotFound:
            target = None
        if target is not None:
            if target.is_dir and not st.is_dir:
                raise errors.IsDir(f"under-storage webhdfs: is a directory: {dst}", path=dst)
            if st.is_dir and not target.is_dir:
                raise errors.NotDir(f"under-storage webhdfs: not a directory: {dst}", path=dst)
            # HDFS would move src *into* an existing directory, and never replaces a file.
            await self._json("DELETE", dst, "DELETE", recursive=False)
        if not (await self._json("PUT", src, "RENAME", destination=self._abs(dst))).get("boolean"):
            raise errors.Invalid(f"under-storage webhdfs: cannot rename {src} to {dst}", path=src)

    async def append(self, path: str, chunks: AsyncIterable[bytes], *, at: int) -> UfsStatus:
        size = (await self.stat(path)).size
        if size < at:
            raise errors.Corrupt(f"under-storage object is shorter than {at} bytes: {path}", path=path)
        if size > at and not (await self._json("POST", path, "TRUNCATE", newlength=at)).get("boolean"):
            return await super().append(path, chunks, at=at)  # truncate needs block recovery: rewrite
        await self._two_step("POST", path, "APPEND", chunks)
        return await self.stat(path)

    async def truncate(self, path: str, size: int) -> UfsStatus:
        current = await self.stat(path)
        if size <= current.size and (await self._json("POST", path, "TRUNCATE", newlength=size)).get("boolean"):
            return await self.stat(path)
        return await super().truncate(path, size)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class _Body:
    """A request body that remembers whether the caller's stream failed: aiohttp turns that
    failure into a connection error, which must not pass for the store being down."""

    def __init__(self, chunks: AsyncIterable[bytes]) -> None:
        self.chunks = chunks
        self.failed: BaseException | None = None

    async def stream(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self.chunks:
                yield chunk
        except Exception as e:
            self.failed = e
            raise
