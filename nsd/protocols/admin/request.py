"""What every admin API handler reads of its request: the app's vfs, parameters, the JSON body.

A parameter that is missing or malformed raises errors.Invalid naming it (a 400 for the caller).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from nsd import errors
from nsd.vfs import Vfs

PREFIX = "/api/v1"
VFS_KEY: web.AppKey[Vfs] = web.AppKey("vfs", Vfs)


def path_param(request: web.Request, key: str = "path", body: dict[str, Any] | None = None) -> str:
    value = (body or {}).get(key) if body is not None else request.query.get(key)
    if not isinstance(value, str) or not value:
        raise errors.Invalid(f"missing parameter {key!r}")
    if not value.startswith("/"):
        raise errors.Invalid(f"{key} must be an absolute path: {value!r}")
    return value


def int_param(value: Any, name: str, default: int | None = None) -> int | None:
    if value is None or value == "":
        return default
    try:
        return int(value, 0) if isinstance(value, str) else int(value)
    except (TypeError, ValueError):
        raise errors.Invalid(f"{name} must be an integer, got {value!r}") from None


def bool_param(value: Any, name: str, default: bool = False) -> bool:
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
