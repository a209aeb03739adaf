"""S3 calls pyarrow makes poorly, through boto3: paged listings (ListObjectsV2 with a "/"
delimiter), stats that carry the ETag, and ranged reads in one request (pyarrow's
open_input_file sends a HEAD first).

pyarrow lists a whole prefix before returning anything: for 100k objects that is one call of
tens of seconds and every FileInfo in memory at once. This lists one page (up to 1000 keys)
per call, so the first entry arrives after one round trip and memory holds one page.

Entries and stats agree: size, mtime in whole seconds (a HEAD's Last-Modified has no finer
grain) and the ETag, so a fingerprint taken from a listing equals one taken from a stat, and
an object overwritten within the same second with the same size still gets a new fingerprint.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from nsd import errors
from nsd.ufs.base import TMP_PREFIX, UfsStatus
from nsd.ufs.options import scrub

PAGE = 1000

_DENIED = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"}
_NOT_FOUND = {"NoSuchBucket", "NoSuchKey", "404"}


def _file(name: str, size: int, modified: Any, etag: str | None) -> UfsStatus:
    mtime = int(modified.timestamp()) * 1_000_000_000
    return UfsStatus(name, False, int(size), mtime, etag.strip('"') if etag else None)


def late_candidates(key: str) -> list[str]:
    """Directory names that sort before `key` by name but after it by key ("a" for "a-1":
    key "a/" > "a-1"): the prefixes of `key` followed by a character below "/"."""
    return [key[:i] for i in range(1, len(key)) if key[i] < "/" and "/" not in key[:i]]


class S3Lister:
    """A boto3 client made from the same options as the pyarrow S3FileSystem."""

    def __init__(self, options: dict[str, Any], hidden: list[str], page: int = PAGE) -> None:
        self.options = dict(options)
        self.hidden = hidden
        self.page = page
        self._client: Any = None
        self.pages_fetched = 0

    @property
    def client(self) -> Any:
        """Made on first use: a boto3 client costs a fraction of a second to build."""
        if self._client is None:
            self._client = self._make_client(self.options)
        return self._client

    @staticmethod
    def _make_client(options: dict[str, Any]) -> Any:
        import boto3
        from botocore import UNSIGNED
        from botocore.config import Config

        endpoint = options.get("endpoint_override")
        scheme = options.get("scheme") or "https"
        config = Config(
            connect_timeout=options["connect_timeout"],
            read_timeout=options["request_timeout"],
            retries={"max_attempts": options["sdk_retries"], "mode": "standard"},
            signature_version=UNSIGNED if options.get("anonymous") else None,
        )
        return boto3.session.Session().client(
            "s3",
            endpoint_url=f"{scheme}://{endpoint}" if endpoint else None,
            region_name=options.get("region"),
            aws_access_key_id=options.get("access_key"),
            aws_secret_access_key=options.get("secret_key"),
            aws_session_token=options.get("session_token"),
            config=config,
        )

    def pages(self, bucket: str, prefix: str, path: str) -> Iterator[list[UfsStatus]]:
        """Entries of directory `prefix` ("" or ending in "/"), a page at a time, in name order
        across pages. Blocking.

        S3 sorts keys, and a directory's key is its name plus "/", so directory "a" comes after
        file "a-1" although "a" < "a-1" by name. Only directories whose name prefixes the page's
        last key (followed by a character below "/") can come late, so for those few names one
        probe (a one-key listing of "name/") asks whether they exist; one that does is listed
        early and skipped when its place in key order comes. Probes are remembered while the
        keys still start with the name: about one extra request per page at most.
        """
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix, Delimiter="/", PaginationConfig={"PageSize": self.page}
        )
        early: set[str] = set()  # directories already listed ahead of their key
        probed: dict[str, bool] = {}
        it = iter(pages)
        while True:
            try:
                page = next(it)
            except StopIteration:
                return
            except Exception as e:
                raise self.classify(e, path) from None
            self.pages_fetched += 1
            out, last = [], ""
            for cp in page.get("CommonPrefixes", ()):
                name = cp["Prefix"][len(prefix) :].rstrip("/")
                last = max(last, name + "/")
                if name in early:
                    early.discard(name)
                elif name and "/" not in name and not name.startswith(TMP_PREFIX):
                    out.append(UfsStatus(name, True, 0, 0))
            for obj in page.get("Contents", ()):
                name = obj["Key"][len(prefix) :]
                last = max(last, name)
                if name and "/" not in name and not name.startswith(TMP_PREFIX):
                    out.append(_file(name, obj["Size"], obj["LastModified"], obj.get("ETag")))
            if page.get("IsTruncated"):
                probed = {d: found for d, found in probed.items() if last.startswith(d)}
                for d in late_candidates(last):
                    if d not in probed:
                        probed[d] = self._is_dir(bucket, prefix + d + "/", path)
                        if probed[d] and d not in early and not d.startswith(TMP_PREFIX):
                            early.add(d)
                            out.append(UfsStatus(d, True, 0, 0))
            out.sort(key=lambda e: e.name)
            yield out

    def stat(self, bucket: str, key: str, path: str) -> UfsStatus:
        """A HEAD for a file; else a one-key listing of "key/" for a directory (a mount's root
        is a directory while its bucket exists). Blocking."""
        from botocore.exceptions import ClientError

        name = path.rstrip("/").rsplit("/", 1)[-1]
        try:
            if key:
                try:
                    head = self.client.head_object(Bucket=bucket, Key=key)
                    return _file(name, head["ContentLength"], head["LastModified"], head.get("ETag"))
                except ClientError as e:
                    if int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0) != 404:
                        raise
                if self._is_dir(bucket, key + "/", path):
                    return UfsStatus(name, True, 0, 0)
            if not path.strip("/"):
                self.client.head_bucket(Bucket=bucket)
                return UfsStatus(name, True, 0, 0)
        except errors.NsdError:
            raise
        except Exception as e:
            raise self.classify(e, path) from None
        raise errors.NotFound(f"under-storage s3: no such object: {path or '/'}", path=path)

    def _is_dir(self, bucket: str, key_prefix: str, path: str) -> bool:
        try:
            return bool(self.client.list_objects_v2(Bucket=bucket, Prefix=key_prefix, MaxKeys=1).get("KeyCount"))
        except Exception as e:
            raise self.classify(e, path) from None

    def sweep_tmp(self, bucket: str, prefix: str, older_than: float, writing: set[str]) -> int:
        """Delete TMP_PREFIX objects below `prefix` older than `older_than` seconds, except the
        keys in `writing` ("bucket/key"): one listing without delimiter, deletes in batches of
        up to 1000 keys. Blocking."""
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than)
        swept = 0
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": self.page}
            )
            for page in pages:
                stale = [
                    {"Key": obj["Key"]}
                    for obj in page.get("Contents", ())
                    if obj["Key"].rsplit("/", 1)[-1].startswith(TMP_PREFIX)
                    and obj["LastModified"] < cutoff
                    and f"{bucket}/{obj['Key']}" not in writing
                ]
                if stale:
                    self.client.delete_objects(Bucket=bucket, Delete={"Objects": stale, "Quiet": True})
                    swept += len(stale)
        except Exception as e:
            raise self.classify(e, prefix) from None
        return swept

    def read(self, bucket: str, key: str, offset: int, length: int, path: str) -> bytes:
        """Up to `length` bytes from `offset` with one ranged GET. Blocking."""
        from botocore.exceptions import ClientError

        if length <= 0:
            return b""
        try:
            resp = self.client.get_object(Bucket=bucket, Key=key, Range=f"bytes={offset}-{offset + length - 1}")
            with resp["Body"] as body:
                return bytes(body.read())
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") == "InvalidRange":
                return b""  # offset at or past the end
            raise self.classify(e, path) from None
        except Exception as e:
            raise self.classify(e, path) from None

    def classify(self, e: BaseException, path: str) -> errors.NsdError:
        from botocore.exceptions import ClientError, ParamValidationError

        text = scrub(str(e), self.hidden)
        # name the object, unless the library's message does already (a URL ending in it)
        msg = f"under-storage s3: {text}" if path and path in text else f"under-storage s3: {text}: {path or '/'}"
        if isinstance(e, ClientError):
            code = str(e.response.get("Error", {}).get("Code", ""))
            status = int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            if code in _DENIED or status == 403:
                return errors.Denied(msg, path=path)
            if code in _NOT_FOUND or status == 404:
                return errors.NotFound(msg, path=path)
            if status and status < 500 and status not in (408, 429):
                return errors.Invalid(msg, path=path)
        if isinstance(e, ParamValidationError):
            return errors.Invalid(msg, path=path)
        return errors.UfsUnavailable(msg, path=path)
