"""moto's S3 server on loopback, restartable on the same port (its state lives in this process,
so a restart is an outage, not a new store), and the boto3 client and mount options for it."""

from __future__ import annotations

import secrets
from typing import Any

KEYS = {"access_key": "AKIAEXAMPLEACCESS5678", "secret_key": "m0to-s3cr3t-N3v3r-Sh0wn"}


class MotoS3:
    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self._cls = ThreadedMotoServer
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.endpoint = f"{host}:{port}"
        self.port = port
        self.up = True

    def stop(self) -> None:
        if self.up:
            self.server.stop()
            self.up = False

    def restart(self) -> None:
        if not self.up:
            self.server = self._cls(ip_address="127.0.0.1", port=self.port, verbose=False)
            self.server.start()
            self.up = True

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=f"http://{self.endpoint}",
            aws_access_key_id=KEYS["access_key"],
            aws_secret_access_key=KEYS["secret_key"],
            region_name="us-east-1",
        )

    def bucket(self) -> str:
        name = "nsd-" + secrets.token_hex(6)
        self.client().create_bucket(Bucket=name)
        return name

    def mount_options(self, **more: str) -> list[str]:
        """`nsd mount add` -o arguments."""
        options = {"endpoint_override": self.endpoint, "scheme": "http", **KEYS, **more}
        return [arg for k, v in options.items() for arg in ("-o", f"{k}={v}")]
