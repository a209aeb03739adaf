"""S3 calls pyarrow makes poorly, through boto3: paged listings (ListObjectsV2 with a "/"
delimiter) and ranged reads in one request (pyarrow's open_input_file sends a HEAD first).

pyarrow lists a whole prefix before returning anything: for 100k objects that is one call of
tens of seconds and every FileInfo in memory at once. This lists one page (up to 1000 keys)
per call, so the first entry arrives after one round trip and memory holds one page.

Entries match what pyarrow's stat reports for the same objects: size, mtime in whole
seconds (a HEAD's Last-Modified has no finer grain) and no etag, so a fingerprint taken
from a listing equals one taken from a stat.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from nsd import errors
from nsd.ufs.base import TMP_PREFIX, UfsStatus
from nsd.ufs.options import scrub

PAGE = 1000

_DENIED = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"}
_NOT_FOUND = {"NoSuchBucket", "NoSuchKey", "404"}


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
        """Entries of directory `prefix` ("" or ending in "/"), a page at a time. Blocking."""
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix, Delimiter="/", PaginationConfig={"PageSize": self.page}
        )
        it = iter(pages)
        while True:
            try:
                page = next(it)
            except StopIteration:
                return
            except Exception as e:
                raise self.classify(e, path) from None
            self.pages_fetched += 1
            out = []
            for cp in page.get("CommonPrefixes", ()):
                name = cp["Prefix"][len(prefix) :].rstrip("/")
                if name and "/" not in name and not name.startswith(TMP_PREFIX):
                    out.append(UfsStatus(name, True, 0, 0))
            for obj in page.get("Contents", ()):
                name = obj["Key"][len(prefix) :]
                if name and "/" not in name and not name.startswith(TMP_PREFIX):
                    mtime = int(obj["LastModified"].timestamp()) * 1_000_000_000
                    out.append(UfsStatus(name, False, int(obj["Size"]), mtime))
            yield out

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

        msg = f"under-storage s3: {scrub(str(e), self.hidden)}: {path or '/'}"
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
