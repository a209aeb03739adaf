"""A real S3 endpoint for tests: moto's server on loopback, in this process, so a restart on
the same port is an outage, not a new store, and a test can reach moto's backend directly
(to fill a bucket fast or backdate an object). Plus the boto3 client and mount options."""

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


def s3_client(endpoint: str, keys: dict[str, str] = S3_KEYS) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=f"http://{endpoint}",
        aws_access_key_id=keys["access_key"],
        aws_secret_access_key=keys["secret_key"],
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


KEYS = {"access_key": "AKIAEXAMPLEACCESS5678", "secret_key": "m0to-s3cr3t-N3v3r-Sh0wn"}


class MotoS3:
    """One moto server that a test can stop and restart on the same port."""

    def __init__(self) -> None:
        self.server, self.endpoint = start_moto()
        self.port = int(self.endpoint.rsplit(":", 1)[1])
        self.up = True

    def stop(self) -> None:
        if self.up:
            self.server.stop()
            self.up = False

    def restart(self) -> None:
        if not self.up:
            self.server, _ = start_moto(self.port)
            self.up = True

    def client(self) -> Any:
        return s3_client(self.endpoint, KEYS)

    def bucket(self) -> str:
        name = "nsd-" + secrets.token_hex(6)
        self.client().create_bucket(Bucket=name)
        return name

    def mount_options(self, **more: str) -> list[str]:
        """`nsd mount add` -o arguments."""
        options = {"endpoint_override": self.endpoint, "scheme": "http", **KEYS, **more}
        return [arg for k, v in options.items() for arg in ("-o", f"{k}={v}")]
