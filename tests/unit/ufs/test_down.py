"""A store that is down gives a clear UfsUnavailable (no hang), and the same adapter works
again once the store is back: S3 (moto's server stopped and restarted on its port) and
WebHDFS (the fake stopped and restarted)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from conftest import S3_KEYS, make_bucket, s3_options
from webhdfs_fake import serve_fake

from nsd import errors
from nsd.ufs import open_ufs

FAST = {"retries": "2", "retry_base_s": "0.05", "timeout_s": "5"}


async def body(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def test_s3_down_fails_clearly_and_recovers() -> None:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"{host}:{port}"
    ufs = open_ufs(f"s3://{make_bucket(endpoint)}/p", {**s3_options(endpoint), **FAST, "sdk_retries": "1"})
    await ufs.write("f", body(b"still here"))
    server.stop()
    try:
        with pytest.raises(errors.UfsUnavailable) as e:
            await ufs.read("f", 0, 100)
        assert "connect" in str(e.value).lower()
        assert S3_KEYS["secret_key"] not in str(e.value)
    finally:
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()  # moto keeps its buckets in the process: the data is back too
    try:
        assert await ufs.read("f", 0, 100) == b"still here"
    finally:
        server.stop()


async def test_webhdfs_down_fails_clearly_and_recovers(tmp_path: Path) -> None:
    server = await serve_fake(tmp_path / "hdfs")
    port = server.port
    ufs = open_ufs(f"webhdfs://127.0.0.1:{port}/", {"token": "t0ken-secret-123", **FAST})
    try:
        await ufs.write("f", body(b"data"))
        await server.close()
        with pytest.raises(errors.UfsUnavailable) as e:
            await ufs.stat("f")
        assert "127.0.0.1" in str(e.value)
        server = await serve_fake(tmp_path / "hdfs", port=port)
        assert (await ufs.stat("f")).size == 4
    finally:
        await ufs.close()
        await server.close()
