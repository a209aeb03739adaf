"""Logging set-up: text by default, one JSON object per line with log_format = json.

Libraries that log requests on the wire at DEBUG (botocore prints every signed request: the
access key id in the Authorization header, the session token in x-amz-security-token) stay
at INFO whatever `log_level` says, so credentials never reach the log.
"""

from __future__ import annotations

import json
import logging
import sys
import time


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out)


def setup(level: str = "info", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    for name in WIRE_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.INFO, root.level))


# Loggers whose DEBUG output includes request headers or bodies (credentials among them).
WIRE_LOGGERS = ("botocore", "boto3", "s3transfer", "urllib3", "azure", "google", "requests_oauthlib", "aiobotocore")
