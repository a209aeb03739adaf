"""Adapters the conformance suite runs against, each on a store of its own."""

from __future__ import annotations

import secrets
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from nsd.ufs import Ufs, open_ufs
from nsd.ufs.memory import drop_store

sys.path.insert(0, str(Path(__file__).parent))
from webhdfs_fake import serve_fake

S3_KEYS = {"access_key": "AKIAEXAMPLEACCESS1234", "secret_key": "s3cr3t-Sh0uld-N3v3r-Sh0w"}


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A real S3 endpoint (moto's server) on loopback, one per test session."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"{host}:{port}"
    server.stop()


def make_bucket(endpoint: str) -> str:
    import boto3

    name = "nsd-" + secrets.token_hex(6)
    boto3.client(
        "s3",
        endpoint_url=f"http://{endpoint}",
        aws_access_key_id=S3_KEYS["access_key"],
        aws_secret_access_key=S3_KEYS["secret_key"],
        region_name="us-east-1",
    ).create_bucket(Bucket=name)
    return name


def s3_options(endpoint: str, **more: str) -> dict[str, str]:
    return {"endpoint_override": endpoint, "scheme": "http", **S3_KEYS, **more}


@pytest.fixture(params=["local", "memory", "s3", "webhdfs"])
async def ufs(request: Any, tmp_path: Path) -> AsyncIterator[Ufs]:
    kind = request.param
    if kind == "local":
        root = tmp_path / "ufs"
        root.mkdir()
        adapter = open_ufs(root.as_uri())
    elif kind == "memory":
        name = "conf-" + secrets.token_hex(4)
        adapter = open_ufs(f"memory://{name}/base")
        request.addfinalizer(lambda: drop_store(name))
    elif kind == "s3":
        endpoint = request.getfixturevalue("moto_endpoint")
        adapter = open_ufs(f"s3://{make_bucket(endpoint)}/prefix", s3_options(endpoint))
    else:
        server = await serve_fake(tmp_path / "hdfs")
        adapter = open_ufs(f"webhdfs://127.0.0.1:{server.port}/base", {"user": "nsd", "token": "t0ken-secret-123"})
    await adapter.mkdir("")
    yield adapter
    await adapter.close()
    if kind == "webhdfs":
        await server.close()
