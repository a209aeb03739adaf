"""Credentials never show in describe(), repr() or errors (mount ls and logs use these)."""

from __future__ import annotations

import pytest
from conftest import S3_KEYS, make_bucket, s3_options
from webhdfs_fake import serve_fake

from nsd import errors
from nsd.ufs import open_ufs
from nsd.ufs.options import mask_options, mask_uri

SECRET = S3_KEYS["secret_key"]
ACCESS = S3_KEYS["access_key"]


def test_mask_options_hides_every_secret_like_option() -> None:
    shown = mask_options(
        {
            "access_key": ACCESS,
            "secret_key": SECRET,
            "session_token": "tok-123456",
            "password": "hunter22",
            "gcp_credentials": "{json}",
            "account_key": "azkey-123",
            "region": "eu-west-1",
        }
    )
    assert shown["access_key"] == ACCESS[:4] + "****"
    assert {shown[k] for k in ("secret_key", "session_token", "password", "gcp_credentials", "account_key")} == {"****"}
    assert shown["region"] == "eu-west-1"


def test_mask_uri_hides_user_info() -> None:
    assert mask_uri("webhdfs://alice:pw@nn:9870/x") == "webhdfs://****@nn:9870/x"


def test_s3_describe_and_repr_show_no_secret() -> None:
    ufs = open_ufs("s3://bucket/prefix", s3_options("127.0.0.1:1", session_token="sess-tok-987654"))
    text = repr(ufs) + repr(ufs.describe()) + str(ufs.describe())
    assert ufs.describe()["options"]["endpoint_override"] == "127.0.0.1:1"
    for secret in (SECRET, ACCESS, "sess-tok-987654"):
        assert secret not in text
    assert ACCESS[:4] + "****" in text


async def test_s3_errors_show_no_secret(moto_endpoint: str) -> None:
    bucket = make_bucket(moto_endpoint)
    wrong = {**s3_options(moto_endpoint), "secret_key": "wrong-" + SECRET}
    ufs = open_ufs(f"s3://{bucket}", {**wrong, "retries": "1"})
    with pytest.raises(errors.NsdError) as e:
        await ufs.stat("x")
    assert SECRET not in str(e.value) and ACCESS not in str(e.value)


def test_bad_secret_option_value_is_not_echoed() -> None:
    with pytest.raises(errors.Invalid) as e:
        open_ufs("s3://bucket", {"access_key": "only-the-access-key-given"})
    assert "only-the-access-key-given" not in str(e.value)


async def test_webhdfs_token_never_shows(tmp_path) -> None:  # type: ignore[no-untyped-def]
    server = await serve_fake(tmp_path / "hdfs", token="right-token-5678")
    good = open_ufs(f"webhdfs://127.0.0.1:{server.port}/", {"token": "right-token-5678"})
    bad = open_ufs(f"webhdfs://127.0.0.1:{server.port}/", {"token": "wrong-token-1234", "retries": "1"})
    try:
        assert "right-token-5678" not in repr(good) + str(good.describe())
        with pytest.raises(errors.Denied) as denied:
            await bad.stat("")
        assert "wrong-token-1234" not in str(denied.value)
        await good.mkdir("d")
        await server.close()
        with pytest.raises(errors.UfsUnavailable) as down:
            await good.stat("d")
        assert "right-token-5678" not in str(down.value)  # aiohttp's error quotes the URL
    finally:
        await good.close()
        await bad.close()
        await server.close()
