"""moto's S3 server for tools/bench/cache.py, with one object `bench/big` put in (not a script)."""

from __future__ import annotations

import logging
from typing import Any

KEYS = {"access_key": "AKIABENCHMARK0000000", "secret_key": "bench-secret"}


def start_moto_with(data: bytes) -> tuple[Any, str, dict[str, str]]:
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"{host}:{port}"
    s3 = boto3.client(
        "s3",
        endpoint_url=f"http://{endpoint}",
        aws_access_key_id=KEYS["access_key"],
        aws_secret_access_key=KEYS["secret_key"],
        region_name="us-east-1",
    )
    s3.create_bucket(Bucket="bench")
    s3.put_object(Bucket="bench", Key="big", Body=data)
    return server, endpoint, {"endpoint_override": endpoint, "scheme": "http", **KEYS}
