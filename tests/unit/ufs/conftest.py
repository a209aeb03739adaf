"""Adapters the conformance suite runs against, each on a store of its own."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from nsd.ufs import Ufs, open_ufs
from nsd.ufs.adapters.memory import drop_store
from nsd.ufs.wrap.health import HealthUfs

sys.path.insert(0, str(Path(__file__).parent))
from s3server import S3_KEYS, make_bucket, s3_options, start_moto
from webhdfs_fake import serve_fake

__all__ = ["S3_KEYS", "make_bucket", "s3_options"]  # imported from here by the S3 tests


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A real S3 endpoint (moto's server) on loopback, one per test session."""
    server, endpoint = start_moto()
    yield endpoint
    server.stop()


# Azurite's public, documented development key.
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@pytest.fixture(scope="session")
def azurite_endpoint() -> Iterator[str]:
    """Azurite's blob service (npm `azurite`, installed by .ci/run) on loopback, in memory,
    telemetry off. Missing: a failure in CI, a skip on a developer machine without npm."""
    exe = shutil.which("azurite-blob")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("azurite-blob is not installed (npm install -g azurite)")
        pytest.skip("azurite-blob is not installed (npm install -g azurite); CI runs these")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = ["--blobHost", "127.0.0.1", "--blobPort", str(port), "--inMemoryPersistence"]
    proc = subprocess.Popen([exe, *args, "--disableTelemetry", "--skipApiVersionCheck", "--loose", "--silent"])
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("azurite did not start")
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(30)


def azure_options(endpoint: str) -> dict[str, str]:
    return {
        "account_name": "devstoreaccount1",
        "account_key": AZURITE_KEY,
        "blob_storage_authority": endpoint,
        "dfs_storage_authority": endpoint,
        "scheme": "http",
    }


ADAPTERS = ["local", "memory", "s3", "azure", "webhdfs"]


@pytest.fixture(params=[*ADAPTERS, *(f"{kind}+health" for kind in ADAPTERS)])
async def ufs(request: Any, tmp_path: Path) -> AsyncIterator[Ufs]:
    """Each adapter as open_ufs gives it (inside its retry wrapper), and "+health": inside the
    health wrapper too, as a mount table serves it."""
    kind, _, wrapper = request.param.partition("+")
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
    elif kind == "azure":
        endpoint = request.getfixturevalue("azurite_endpoint")
        container = "nsd" + secrets.token_hex(6)
        await open_ufs(f"abfs://{container}", azure_options(endpoint)).mkdir("")  # the container
        adapter = open_ufs(f"abfs://{container}/prefix", azure_options(endpoint))
    else:
        server = await serve_fake(tmp_path / "hdfs")
        adapter = open_ufs(f"webhdfs://127.0.0.1:{server.port}/base", {"user": "nsd", "token": "t0ken-secret-123"})
    if wrapper == "health":
        adapter = HealthUfs(adapter)
    await adapter.mkdir("")
    yield adapter
    await adapter.close()
    if kind == "webhdfs":
        await server.close()
