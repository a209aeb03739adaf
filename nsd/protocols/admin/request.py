"""What every admin API route reads from a request: its caller, path, flags and JSON body.

Shared by the admin routes (api) and the cache controls (cache); each bad value is an
errors.Invalid that the admin error middleware turns into a 400 reply.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from nsd import errors
from nsd.users import NOBODY
from nsd.vfs import Caller, Vfs

PREFIX = "/api/v1"
VFS_KEY: web.AppKey[Vfs] = web.AppKey("vfs", Vfs)
CALLER_KEY = "nsd.admin.caller"
ANONYMOUS = Caller(NOBODY, NOBODY)


def caller_of(request: web.Request) -> Caller:
    """The token holder is the superuser (HDFS's convention: the user running the daemon)."""
    return request.get(CALLER_KEY, ANONYMOUS)


def path_arg(request: web.Request, key: str = "path", body: dict[str, Any] | None = None) -> str:
    value = (body or {}).get(key) if body is not None else request.query.get(key)
    if not isinstance(value, str) or not value:
        raise errors.Invalid(f"missing parameter {key!r}")
    if not value.startswith("/"):
        raise errors.Invalid(f"{key} must be an absolute path: {value!r}")
    return value


def int_arg(value: Any, name: str, default: int | None = None) -> int | None:
    if value is None or value == "":
        return default
    try:
        return int(value, 0) if isinstance(value, str) else int(value)
    except (TypeError, ValueError):
        raise errors.Invalid(f"{name} must be an integer, got {value!r}") from None


def bool_arg(value: Any, name: str, default: bool = False) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    text = str(value).lower()
    if text in ("1", "true", "yes"):
        return True
    if text in ("0", "false", "no"):
        return False
    raise errors.Invalid(f"{name} must be true or false, got {value!r}")


async def json_body(request: web.Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except ValueError:
        raise errors.Invalid("request body must be a JSON object") from None
    if not isinstance(data, dict):
        raise errors.Invalid("request body must be a JSON object")
    return data
