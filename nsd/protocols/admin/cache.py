"""Cache controls in the admin API under /api/v1/cache: load (streamed progress), free, pin,
unpin, persist, TTLs. Every route takes a JSON body {"path", "recursive", ...} and needs the
admin token (as every non-GET call)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from nsd import errors
from nsd.cache import controls
from nsd.protocols.admin.request import PREFIX, VFS_KEY, bool_arg, json_body, path_arg


async def _args(request: web.Request) -> tuple[dict[str, Any], str, bool]:
    body = await json_body(request)
    return body, path_arg(request, body=body), bool_arg(body.get("recursive"), "recursive")


async def load(request: web.Request) -> web.StreamResponse:
    """NDJSON: first {"files", "bytes"}, then one line per file, then {"summary": {...}}.
    Errors found before the first line (a bad path) come back as an ordinary error reply."""
    _, path, recursive = await _args(request)
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})

    async def emit(event: dict[str, Any]) -> None:
        if not response.prepared:
            await response.prepare(request)
        await response.write(json.dumps(event).encode() + b"\n")

    summary = await controls.load_path(request.app[VFS_KEY], path, recursive=recursive, progress=emit)
    await emit({"summary": summary})
    await response.write_eof()
    return response


async def free(request: web.Request) -> web.Response:
    _, path, recursive = await _args(request)
    return web.json_response(await controls.free_path(request.app[VFS_KEY], path, recursive=recursive))


async def pin(request: web.Request) -> web.Response:
    _, path, recursive = await _args(request)
    return web.json_response(await controls.pin_path(request.app[VFS_KEY], path, pinned=True, recursive=recursive))


async def unpin(request: web.Request) -> web.Response:
    _, path, recursive = await _args(request)
    result = await controls.pin_path(request.app[VFS_KEY], path, pinned=False, recursive=recursive)
    return web.json_response(result)


async def persist(request: web.Request) -> web.Response:
    _, path, recursive = await _args(request)
    return web.json_response(await controls.persist_path(request.app[VFS_KEY], path, recursive=recursive))


async def ttl_set(request: web.Request) -> web.Response:
    body, path, _ = await _args(request)
    seconds = body.get("seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise errors.Invalid(f"seconds must be a number, got {seconds!r}")
    action = body.get("action", "free")
    if not isinstance(action, str):
        raise errors.Invalid(f"action must be a string, got {action!r}")
    return web.json_response(await controls.set_ttl(request.app[VFS_KEY], path, float(seconds), action))


async def ttl_remove(request: web.Request) -> web.Response:
    _, path, _ = await _args(request)
    return web.json_response(await controls.remove_ttl(request.app[VFS_KEY], path))


def add_routes(app: web.Application) -> None:
    for name, handler in (
        ("load", load),
        ("free", free),
        ("pin", pin),
        ("unpin", unpin),
        ("persist", persist),
        ("ttl", ttl_set),
        ("ttl/remove", ttl_remove),
    ):
        app.router.add_post(f"{PREFIX}/cache/{name}", handler)
