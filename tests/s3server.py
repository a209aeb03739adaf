"""A real S3 endpoint for tests: moto's server on loopback, in this process (so a test can
also reach its backend directly, e.g. to fill a bucket fast or backdate an object)."""

from __future__ import annotations

import logging
import secrets
from typing import Any

S3_KEYS = {"access_key": "AKIAEXAMPLEACCESS1234", "secret_key": "s3cr3t-Sh0uld-N3v3r-Sh0w"}
ACCOUNT = "123456789012"  # moto's default account


def start_moto(port: int = 0) -> tuple[Any, str]:
    """(server, "host:port"); the caller stops the server."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    host, bound = server.get_host_and_port()
    return server, f"{host}:{bound}"


def s3_client(endpoint: str) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=f"http://{endpoint}",
        aws_access_key_id=S3_KEYS["access_key"],
        aws_secret_access_key=S3_KEYS["secret_key"],
        region_name="us-east-1",
    )


def make_bucket(endpoint: str) -> str:
    name = "nsd-" + secrets.token_hex(6)
    s3_client(endpoint).create_bucket(Bucket=name)
    return name


def s3_options(endpoint: str, **more: str) -> dict[str, str]:
    return {"endpoint_override": endpoint, "scheme": "http", **S3_KEYS, **more}


def backend() -> Any:
    """moto's in-process S3 store (same process as the server)."""
    from moto.s3.models import s3_backends

    return s3_backends[ACCOUNT]["global"]
