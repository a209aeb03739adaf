"""moto's S3 server for tools/bench/cache.py, with one object `bench/big` put in (not a script)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))

from s3server import S3_KEYS as KEYS
from s3server import s3_client, start_moto


def start_moto_with(data: bytes) -> tuple[Any, str, dict[str, str]]:
    server, endpoint = start_moto()
    s3 = s3_client(endpoint, KEYS)
    s3.create_bucket(Bucket="bench")
    s3.put_object(Bucket="bench", Key="big", Body=data)
    return server, endpoint, {"endpoint_override": endpoint, "scheme": "http", **KEYS}
