"""Object stores and HDFS through `pyarrow.fs`: s3://bucket/prefix, gs://bucket/prefix,
abfs://container/prefix, hdfs://host:port/path.

Every pyarrow call blocks, so each runs in a worker thread (asyncio.to_thread).

Object stores have no directories, so:
- mkdir writes a zero-byte `prefix/` marker (pyarrow's create_dir); any prefix with objects
  under it is a directory for stat and list. Deleting the last object keeps its directory:
  pyarrow writes the parent's marker.
- write uploads to a hidden `.nsd-tmp.*` key beside the target (multipart for large bodies),
  then moves it into place (server-side copy + delete). pyarrow cannot abort a multipart upload
  from Python (closing always completes it), so the temporary key is what makes a failed write
  leave the target untouched. Cost: one server-side copy per write; S3's single CopyObject
  limits one object to 5 GiB.
- rename is copy + delete: one object for a file, every object under the prefix for a
  directory (not atomic: a crash in between leaves both; the namespace is journaled only after
  the rename returns, so nsd retries or reports it).
- list on S3 pages with boto3's ListObjectsV2 paginator (s3list.py; option paged_listing=false
  falls back to pyarrow). pyarrow has no paging API: on GCS and Azure list holds one directory's
  FileInfo list and turns it into entries page by page while releasing it (never held twice),
  and the first entry arrives only once the whole directory has been listed.
- etag: pyarrow gives size and mtime only, so on GCS and Azure the fingerprint is (size, mtime);
  S3 stats and lists through boto3 (s3list.py), which adds the ETag.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from datetime import UTC
from typing import Any, TypeVar
from urllib.parse import unquote, urlparse

from nsd import errors
from nsd.ufs.adapters.s3list import S3Lister
from nsd.ufs.base import TMP_PREFIX, Syncs, Ufs, UfsStatus
from nsd.ufs.options import Options, mask_uri, scrub, secret_values

LIST_BATCH = 1000
T = TypeVar("T")

_DENIED = ("ACCESS_DENIED", "AccessDenied", "INVALID_ACCESS_KEY_ID", "SIGNATURE_DOES_NOT_MATCH", "403", "Forbidden")
_NOT_FOUND = ("NO_SUCH_BUCKET", "NO_SUCH_KEY", "NoSuchBucket", "NoSuchKey", "404")
_INVALID = ("INVALID_PARAMETER", "InvalidArgument", "InvalidBucketName")


_MISSING_BUCKET = re.compile(r"Bucket '([^']+)' not found")


def endpoint_and_scheme(opts: Options) -> tuple[str | None, str | None]:
    """`endpoint_override` as host:port, and the scheme: a URL (http://host:port, as boto3, s3fs
    and MinIO write it) gives both; an explicit `scheme` option wins."""
    endpoint, scheme = opts.text("endpoint_override"), opts.text("scheme")
    if endpoint is not None and "://" in endpoint:
        parsed = urlparse(endpoint)
        if parsed.scheme not in ("http", "https") or not parsed.netloc or parsed.path.strip("/"):
            raise errors.Invalid(f"endpoint_override must be host:port or http(s)://host:port, not {endpoint!r}")
        endpoint, scheme = parsed.netloc, scheme or parsed.scheme
    return endpoint, scheme


def classify(e: BaseException, path: str, kind: str, hidden: list[str]) -> errors.NsdError:
    """pyarrow's errors -> the core tree. Unknown OSErrors count as transient, like the
    local adapter's unknown errnos: a retry costs little, a wrong "permanent" loses data."""
    import pyarrow as pa

    msg = scrub(str(e), hidden)
    text = f"under-storage {kind}: {msg}"
    cls: type[errors.NsdError]
    missing = _MISSING_BUCKET.search(msg)
    if missing is not None:  # pyarrow's advice names an option of its own, not one of nsd's mounts
        return errors.NotFound(f"under-storage {kind}: bucket {missing.group(1)!r} does not exist", path=path)
    if isinstance(e, FileNotFoundError):
        cls = errors.NotFound
    elif isinstance(e, PermissionError):
        cls = errors.Denied
    elif isinstance(e, IsADirectoryError):
        cls = errors.IsDir
    elif isinstance(e, NotADirectoryError):
        cls = errors.NotDir
    elif isinstance(e, FileExistsError):
        cls = errors.Exists
    elif isinstance(e, pa.ArrowNotImplementedError | NotImplementedError):
        cls = errors.NotSupported
    elif isinstance(e, pa.ArrowInvalid | ValueError | TypeError):
        cls = errors.Invalid
    elif any(w in msg for w in _DENIED):
        cls = errors.Denied
    elif any(w in msg for w in _NOT_FOUND):
        cls = errors.NotFound
    elif any(w in msg for w in _INVALID):
        cls = errors.Invalid
    elif not isinstance(e, OSError):
        cls = errors.NsdError  # not a store failure we know: permanent, never retried
    else:
        cls = errors.UfsUnavailable
    return cls(text, path=path)


class ArrowUfs(Ufs):
    """A pyarrow FileSystem rooted at `root` ("bucket/prefix" or "/path")."""

    def __init__(
        self,
        uri: str,
        fs: Any,
        root: str,
        *,
        kind: str,
        object_store: bool,
        options: Mapping[str, str],
        lister: S3Lister | None = None,
    ) -> None:
        self.uri = uri
        self.lister = lister
        self.sorted_listing = lister is not None  # boto3 pages come in name order (s3list.py)
        self.fs = fs
        self.root = root.rstrip("/")
        self.kind = kind
        self.object_store = object_store
        self.options = dict(options)
        self._hidden = secret_values(options)
        self._writing: set[str] = set()  # temporary keys of writes in progress: never swept

    def _full(self, path: str) -> str:
        parts = [p for p in path.split("/") if p]
        if any(p in (".", "..") or "\0" in p for p in parts):
            raise errors.Invalid(f"bad under-storage path {path!r}")
        return "/".join([self.root, *parts]) if parts else self.root

    async def _run(self, path: str, fn: Callable[..., T], *args: Any) -> T:
        try:
            return await asyncio.to_thread(fn, *args)
        except errors.NsdError:
            raise
        except Exception as e:
            raise classify(e, path, self.kind, self._hidden) from None

    def _info(self, full: str) -> Any:
        return self.fs.get_file_info(full)

    def _status(self, name: str, info: Any) -> UfsStatus:
        from pyarrow.fs import FileType

        mtime = info.mtime_ns or 0
        if info.type == FileType.Directory:
            return UfsStatus(name, True, 0, mtime)
        return UfsStatus(name, False, info.size or 0, mtime)

    def _stat_sync(self, path: str) -> UfsStatus:
        from pyarrow.fs import FileType

        info = self._info(self._full(path))
        if info.type == FileType.NotFound and self.object_store and not path.strip("/"):
            # A mount's prefix with no objects left is an empty directory while its bucket exists.
            info = self._info(self.root.split("/", 1)[0])
        if info.type == FileType.NotFound:
            raise errors.NotFound(f"under-storage {self.kind}: no such object: {path or '/'}", path=path)
        return self._status(path.rstrip("/").rsplit("/", 1)[-1], info)

    async def stat(self, path: str) -> UfsStatus:
        if self.lister is not None:
            bucket, _, key = self._full(path).partition("/")
            return await self._run(path, self.lister.stat, bucket, key, path)
        return await self._run(path, self._stat_sync, path)

    def _select(self, full: str, path: str, recursive: bool = False) -> list[Any]:
        from pyarrow.fs import FileSelector

        try:
            return list(self.fs.get_file_info(FileSelector(full, recursive=recursive)))
        except FileNotFoundError:
            if not self._stat_sync(path).is_dir:
                raise errors.NotDir(f"under-storage {self.kind}: not a directory: {path}", path=path) from None
            raise
        except NotADirectoryError:
            raise errors.NotDir(f"under-storage {self.kind}: not a directory: {path}", path=path) from None

    async def list_pages(self, path: str) -> AsyncIterator[list[UfsStatus]]:
        full = self._full(path)
        if self.lister is not None:
            async for page in self._list_paged(full, path):
                yield page
            return

        def select() -> list[Any]:
            infos = self._select(full, path)
            if not infos and not self._stat_sync(path).is_dir:
                raise errors.NotDir(f"under-storage {self.kind}: not a directory: {path}", path=path)
            infos.reverse()  # pop() from the end releases each FileInfo as it is turned into an entry
            return infos

        infos = await self._run(path, select)
        cut = len(full) + 1 if full else 0
        while infos:
            page = []
            for info in [infos.pop() for _ in range(min(LIST_BATCH, len(infos)))]:
                name = info.path[cut:].strip("/")
                if name and "/" not in name and not name.startswith(TMP_PREFIX):
                    page.append(self._status(name, info))
            if page:
                yield page
            await asyncio.sleep(0)

    async def _list_paged(self, full: str, path: str) -> AsyncIterator[list[UfsStatus]]:
        """S3: one ListObjectsV2 page per worker-thread call (see s3list.py)."""
        assert self.lister is not None
        bucket, _, key = full.partition("/")
        pages = self.lister.pages(bucket, key + "/" if key else "", path)
        first = True
        while (page := await self._run(path, next, pages, None)) is not None:
            if first and not page and not (await self.stat(path)).is_dir:
                raise errors.NotDir(f"under-storage {self.kind}: not a directory: {path}", path=path)
            first = False
            if page:
                yield page

    async def read(self, path: str, offset: int, length: int) -> bytes:
        full = self._full(path)
        if self.lister is not None:
            bucket, _, key = full.partition("/")
            return await self._run(path, self.lister.read, bucket, key, offset, length, path)

        def read() -> bytes:
            with self.fs.open_input_file(full) as f:
                size = f.size()
                if offset >= size or length <= 0:
                    return b""
                return bytes(f.read_at(min(length, size - offset), offset))

        return await self._run(path, read)

    async def write(self, path: str, chunks: AsyncIterable[bytes], *, syncs: Syncs | None = None) -> UfsStatus:
        from pyarrow.fs import FileType

        full = self._full(path)
        if not path.strip("/"):
            raise errors.IsDir("under-storage: the root is a directory", path=path)
        if (await self._run(path, self._info, full)).type == FileType.Directory:
            raise errors.IsDir(f"under-storage {self.kind}: is a directory: {path}", path=path)
        parent, _, name = full.rpartition("/")
        tmp = f"{parent}/{TMP_PREFIX}{secrets.token_hex(8)}.{name}"[-1000:]
        self._writing.add(tmp)
        try:
            await self._write(path, full, tmp, chunks)
        finally:
            self._writing.discard(tmp)
        return await self.stat(path)

    async def _write(self, path: str, full: str, tmp: str, chunks: AsyncIterable[bytes]) -> None:
        out = await self._run(path, self.fs.open_output_stream, tmp)
        try:
            try:
                async for chunk in chunks:
                    await self._run(path, out.write, chunk)
            finally:
                await self._run(path, out.close)  # completes the upload, even a failed one: tmp holds it
            await self._run(path, self._replace, tmp, full)
        except BaseException:
            await asyncio.to_thread(self._delete_quietly, tmp)
            raise

    def _replace(self, tmp: str, full: str) -> None:
        if self.object_store:
            # copy + delete by hand: pyarrow's Azure (without a hierarchical namespace) has no move
            self.fs.copy_file(tmp, full)
            self.fs.delete_file(tmp)
            return
        with contextlib.suppress(FileNotFoundError):
            self.fs.delete_file(full)  # HDFS rename does not replace
        self.fs.move(tmp, full)

    def _delete_quietly(self, full: str) -> None:
        with contextlib.suppress(Exception):
            self.fs.delete_file(full)

    async def sweep_tmp(self, older_than: float) -> int:
        if self.lister is not None:
            bucket, _, key = self.root.partition("/")
            return await self._run(
                "", self.lister.sweep_tmp, bucket, key + "/" if key else "", older_than, self._writing
            )

        def sweep() -> int:
            from pyarrow.fs import FileSelector, FileType

            cutoff, swept = time.time_ns() - int(older_than * 1e9), 0
            for info in self.fs.get_file_info(FileSelector(self.root, recursive=True, allow_not_found=True)):
                if info.type != FileType.File or not info.base_name.startswith(TMP_PREFIX):
                    continue
                if info.path not in self._writing and (info.mtime_ns or 0) < cutoff:
                    self._delete_quietly(info.path)
                    swept += 1
            return swept

        return await self._run("", sweep)

    async def mkdir(self, path: str) -> None:
        from pyarrow.fs import FileType

        full = self._full(path)

        def mkdir() -> None:
            info = self._info(full)
            if info.type == FileType.File:
                raise errors.Exists(f"under-storage {self.kind}: a file is in the way: {path}", path=path)
            if info.type == FileType.NotFound:
                self.fs.create_dir(full, recursive=True)

        await self._run(path, mkdir)

    async def delete(self, path: str, *, recursive: bool = False, syncs: Syncs | None = None) -> None:
        full = self._full(path)

        def delete() -> None:
            st = self._stat_sync(path)
            if not st.is_dir:
                self.fs.delete_file(full)
                return
            if not recursive and self._select(full, path):
                raise errors.NotEmpty(f"under-storage {self.kind}: directory not empty: {path}", path=path)
            if full == self.root:
                self.fs.delete_dir_contents(full, missing_dir_ok=True)
            else:
                self.fs.delete_dir(full)

        await self._run(path, delete)

    async def rename(self, src: str, dst: str) -> None:
        s, d = self._full(src), self._full(dst)

        def rename() -> None:
            st = self._stat_sync(src)
            if st.is_dir and (d + "/").startswith(s + "/"):
                raise errors.Invalid(f"under-storage: cannot move {src} into itself", path=src)
            try:
                target: UfsStatus | None = self._stat_sync(dst)
            except errors.NotFound:
                target = None
            if target is not None and target.is_dir:
                if not st.is_dir:
                    raise errors.IsDir(f"under-storage {self.kind}: is a directory: {dst}", path=dst)
                if self._select(d, dst):
                    raise errors.NotEmpty(f"under-storage {self.kind}: directory not empty: {dst}", path=dst)
                self.fs.delete_dir(d)
            elif target is not None and st.is_dir:
                raise errors.NotDir(f"under-storage {self.kind}: not a directory: {dst}", path=dst)
            if not st.is_dir:
                self._replace(s, d)
            elif self.object_store:
                self._move_prefix(s, d, src)
            else:
                self.fs.move(s, d)

        await self._run(src, rename)

    def _move_prefix(self, s: str, d: str, src: str) -> None:
        """Copy every object under `s` to `d`, then delete `s`: the object-store rename."""
        from pyarrow.fs import FileType

        self.fs.create_dir(d, recursive=True)
        for info in self._select(s, src, recursive=True):
            target = d + info.path[len(s) :]
            if info.type == FileType.Directory:
                self.fs.create_dir(target, recursive=True)
            else:
                self.fs.copy_file(info.path, target)
        self.fs.delete_dir(s)


def _s3(uri: str, opts: Options) -> tuple[Any, str, S3Lister | None]:
    from pyarrow import fs

    p = urlparse(uri)
    endpoint, scheme = endpoint_and_scheme(opts)
    kwargs: dict[str, Any] = {
        "access_key": opts.text("access_key"),
        "secret_key": opts.text("secret_key"),
        "session_token": opts.text("session_token"),
        "anonymous": opts.flag("anonymous"),
        "region": opts.text("region", "us-east-1" if endpoint else None),
        "scheme": scheme,
        "endpoint_override": endpoint,
        "connect_timeout": opts.number("connect_timeout_s", 5.0),
        "request_timeout": opts.number("request_timeout_s", 30.0),
        "sdk_retries": opts.integer("sdk_retries", 3),
    }
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    if ("access_key" in kwargs) != ("secret_key" in kwargs):
        raise errors.Invalid(f"{mask_uri(uri)}: give both access_key and secret_key, or neither")
    paged = opts.flag("paged_listing", True)
    lister = S3Lister(kwargs, secret_values(opts.raw), opts.integer("list_page", 1000)) if paged else None
    retries = fs.AwsStandardS3RetryStrategy(max_attempts=kwargs.pop("sdk_retries"))
    return fs.S3FileSystem(**kwargs, retry_strategy=retries), p.netloc + p.path, lister


def _gcs(uri: str, opts: Options) -> tuple[Any, str, None]:
    from datetime import datetime, timedelta

    from pyarrow import fs

    p = urlparse(uri)
    token = opts.text("access_token")
    endpoint, scheme = endpoint_and_scheme(opts)
    kwargs: dict[str, Any] = {
        "anonymous": opts.flag("anonymous"),
        "access_token": token,
        "credential_token_expiration": datetime.now(UTC) + timedelta(hours=1) if token else None,
        "scheme": scheme,
        "endpoint_override": endpoint,
        "project_id": opts.text("project_id"),
        "default_bucket_location": opts.text("region"),
        "retry_time_limit": timedelta(seconds=opts.number("sdk_retry_s", 5.0)),
    }
    return fs.GcsFileSystem(**{k: v for k, v in kwargs.items() if v is not None}), p.netloc + p.path, None


def _azure(uri: str, opts: Options) -> tuple[Any, str, None]:
    from pyarrow import fs

    if not hasattr(fs, "AzureFileSystem"):
        raise errors.NotSupported("this pyarrow has no AzureFileSystem")
    p = urlparse(uri)
    container, _, host = p.netloc.partition("@")
    account = opts.text("account_name") or (host.split(".", 1)[0] if host else None)
    if not account:
        raise errors.Invalid(f"{mask_uri(uri)}: give the account (abfs://container@ACCOUNT.dfs.core.windows.net/...)")
    kwargs: dict[str, Any] = {
        "account_name": account,
        "account_key": opts.text("account_key"),
        "sas_token": opts.text("sas_token"),
        "blob_storage_authority": opts.text("blob_storage_authority"),
        "dfs_storage_authority": opts.text("dfs_storage_authority"),
        "blob_storage_scheme": opts.text("scheme"),
        "dfs_storage_scheme": opts.text("scheme"),
    }
    return fs.AzureFileSystem(**{k: v for k, v in kwargs.items() if v is not None}), container + p.path, None


def _hdfs(uri: str, opts: Options) -> tuple[Any, str, None]:
    from pyarrow import fs

    p = urlparse(uri)
    try:
        hdfs = fs.HadoopFileSystem(p.hostname or "default", p.port or 8020, user=opts.text("user"))
    except OSError as e:
        raise errors.NotSupported(
            f"hdfs:// needs libhdfs and a JVM on this machine ({str(e).splitlines()[0]}); "
            "use webhdfs://host:port/path to reach HDFS over HTTP instead"
        ) from None
    return hdfs, unquote(p.path) or "/", None


_MAKERS: dict[str, tuple[Callable[[str, Options], tuple[Any, str, S3Lister | None]], bool]] = {
    "s3": (_s3, True),
    "gs": (_gcs, True),
    "gcs": (_gcs, True),
    "abfs": (_azure, True),
    "hdfs": (_hdfs, False),
}


def open_arrow(uri: str, options: Mapping[str, str]) -> ArrowUfs:
    """An adapter for an s3/gs/abfs/hdfs URI. Raises Invalid or NotSupported (never showing a
    secret) when the options are wrong or the store's library cannot load."""
    scheme = urlparse(uri).scheme
    make, object_store = _MAKERS[scheme]
    if object_store and not urlparse(uri).netloc:
        raise errors.Invalid(f"{mask_uri(uri)}: name the bucket ({scheme}://bucket/prefix)")
    opts = Options(options, uri)
    try:
        fs, root, lister = make(uri, opts)
    except errors.NsdError:
        raise
    except Exception as e:
        raise classify(e, "", scheme, secret_values(options)) from None
    return ArrowUfs(uri, fs, unquote(root), kind=scheme, object_store=object_store, options=options, lister=lister)
