"""Under-storage adapters behind one async interface (`nsd.ufs.base.Ufs`).

`open_ufs` picks the adapter by URI scheme and wraps it in `RetryingUfs` (options `retries`,
`timeout_s`, `retry_base_s`, `retry_max_s`). Adapters import their libraries lazily, so a
store nobody mounts costs nothing and a missing library is an error at mount time only.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from urllib.parse import urlparse

from nsd.errors import Invalid
from nsd.ufs.base import Syncs, Ufs, UfsStatus
from nsd.ufs.options import Options, mask_uri


def _local(uri: str, options: Mapping[str, str]) -> Ufs:
    from nsd.ufs.adapters.local import LocalUfs

    return LocalUfs(uri, list_helper=Options(options, uri).flag("list_helper", True))


def _memory(uri: str, options: Mapping[str, str]) -> Ufs:
    from nsd.ufs.adapters.memory import MemoryUfs

    return MemoryUfs(uri, options)


def _arrow(uri: str, options: Mapping[str, str]) -> Ufs:
    from nsd.ufs.adapters.arrow import open_arrow

    return open_arrow(uri, options)


def _webhdfs(uri: str, options: Mapping[str, str]) -> Ufs:
    from nsd.ufs.adapters.webhdfs import WebHdfsUfs

    return WebHdfsUfs(uri, options)


REGISTRY: dict[str, Callable[[str, Mapping[str, str]], Ufs]] = {
    "file": _local,
    "memory": _memory,
    "s3": _arrow,
    "gs": _arrow,
    "gcs": _arrow,
    "abfs": _arrow,
    "hdfs": _arrow,
    "webhdfs": _webhdfs,
}


RETRY_OPTIONS = ("retries", "timeout_s", "retry_base_s", "retry_max_s")
_S3 = (
    *("endpoint_override", "access_key", "secret_key", "session_token", "anonymous", "region", "scheme"),
    *("connect_timeout_s", "request_timeout_s", "sdk_retries", "paged_listing", "list_page"),
)
_GCS = ("access_token", "anonymous", "scheme", "endpoint_override", "project_id", "region", "sdk_retry_s")
# The options each store reads (besides RETRY_OPTIONS); anything else is refused at mount time.
STORE_OPTIONS: dict[str, tuple[str, ...]] = {
    "file": ("list_helper",),
    "memory": ("fault_latency_s", "fault_read_latency_s", "fault_capacity", "faults_file"),
    "s3": _S3,
    "gs": _GCS,
    "gcs": _GCS,
    "abfs": ("account_name", "account_key", "sas_token", "blob_storage_authority", "dfs_storage_authority", "scheme"),
    "hdfs": ("user",),
    "webhdfs": ("scheme", "user", "token", "page"),
}


def check_options(uri: str, options: Mapping[str, str], also: Iterable[str] = ()) -> None:
    """Refuse an option the store does not read (nor nsd: `also`), naming the closest one: a typo
    such as `endpoint_overide` must not quietly send the keys to the store's public endpoint."""
    scheme = urlparse(uri).scheme
    known = {*STORE_OPTIONS.get(scheme, ()), *RETRY_OPTIONS, *also}
    for name in options:
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f" (it takes: {', '.join(sorted(known))})"
            raise Invalid(f"unknown option {name!r} for a {scheme}:// mount{hint}")


def open_ufs(uri: str, options: Mapping[str, str] | None = None) -> Ufs:
    """An adapter for `uri` with its mount options, behind retries and timeouts.

    Cheap: no connection is made here (except HDFS, whose library connects on creation).
    Raises Invalid for an unknown scheme or a bad option.
    """
    options = dict(options or {})
    scheme = urlparse(uri).scheme
    make = REGISTRY.get(scheme)
    if make is None:
        known = ", ".join(f"{s}://" for s in REGISTRY)
        raise Invalid(f"unsupported under-storage URI {mask_uri(uri)!r} (supported: {known})")
    adapter = make(uri, options)
    if not adapter.options:
        adapter.options = MappingProxyType(options)
    opts = Options(options, uri)
    from nsd.ufs.wrap.retry import RetryingUfs

    return RetryingUfs(
        adapter,
        attempts=opts.integer("retries", 3),
        timeout=opts.number("timeout_s", 30.0),
        base_delay=opts.number("retry_base_s", 0.1),
        max_delay=opts.number("retry_max_s", 2.0),
    )


__all__ = ["REGISTRY", "STORE_OPTIONS", "Syncs", "Ufs", "UfsStatus", "check_options", "open_ufs"]
