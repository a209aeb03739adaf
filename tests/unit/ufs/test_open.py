"""open_ufs: the scheme registry, its wrapper, and clear errors at mount time."""

from __future__ import annotations

import pytest

from nsd import errors
from nsd.ufs import open_ufs
from nsd.ufs.adapters.local import LocalUfs
from nsd.ufs.wrap.retry import RetryingUfs


def test_file_uri_is_the_local_adapter_behind_retries(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ufs = open_ufs(tmp_path.as_uri(), {"retries": "5", "timeout_s": "2"})
    assert isinstance(ufs, RetryingUfs) and isinstance(ufs.inner, LocalUfs)
    assert ufs.describe()["retry"] == {"attempts": 5, "timeout_s": 2.0}
    assert ufs.describe()["kind"] == "local"


def test_unknown_scheme_is_invalid_and_lists_the_known_ones() -> None:
    with pytest.raises(errors.Invalid) as e:
        open_ufs("ftp://user:pw@host/x")
    assert "s3://" in str(e.value) and "webhdfs://" in str(e.value)
    assert "pw" not in str(e.value)


def test_bucketless_object_store_uri_is_invalid() -> None:
    with pytest.raises(errors.Invalid, match="bucket"):
        open_ufs("s3:///prefix")


def test_hdfs_without_libhdfs_fails_at_mount_time_pointing_to_webhdfs() -> None:
    # This machine (and CI) has no libhdfs/JVM for pyarrow: the mount must say so, not hang.
    with pytest.raises(errors.NotSupported, match="webhdfs://"):
        open_ufs("hdfs://127.0.0.1:1/data")


def test_webhdfs_uri_needs_a_host() -> None:
    with pytest.raises(errors.Invalid):
        open_ufs("webhdfs:///path")
