"""The admin API under /api/v1: JSON for the `nsd` CLI and for scripts.

Every method but GET/HEAD needs `Authorization: Bearer <admin token>` (401 without it). The
token holder acts as the superuser (the user running the daemon); a read without the token
acts as nobody, so the namespace's permissions still apply to it (403 when they refuse).
The token is compared in constant time. Errors come back as
{"error": {"type", "errno", "message", "path"}} with a status from errmap.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import stat as st
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from nsd import __version__, errors
from nsd.backup_live import LiveBackup
from nsd.cache.controls import cache_info
from nsd.cache.policy import parse_read_type
from nsd.config import Config
from nsd.datadir import DataDir
from nsd.doctor import diagnose
from nsd.fsck import fsck
from nsd.namespace import DirInode, Inode
from nsd.protocols.admin import cache as cache_routes
from nsd.protocols.admin.probes import probe_listeners
from nsd.protocols.admin.request import (
    ANONYMOUS,
    CALLER_KEY,
    PREFIX,
    VFS_KEY,
    bool_arg,
    caller_of,
    int_arg,
    json_body,
    path_arg,
)
from nsd.protocols.clients import LISTENERS_KEY, USER_KEY
from nsd.protocols.errmap import http_status
from nsd.protocols.http.limits import body_stream
from nsd.protocols.http.readahead import read_ahead
from nsd.report import build_report, event_loop_name
from nsd.users import SYSTEM
from nsd.vfs import Vfs

UPLOAD_CHUNK = 1 << 20
log = logging.getLogger("nsd.admin")
MAX_LIST = 10_000

TOKEN_KEY: web.AppKey[str] = web.AppKey("token", str)
STARTED_KEY: web.AppKey[float] = web.AppKey("started", float)
CONFIG_KEY: web.AppKey[Config] = web.AppKey("config", Config)
DATADIR_KEY: web.AppKey[DataDir] = web.AppKey("datadir", DataDir)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

TYPE_NAMES = {st.S_IFREG: "file", st.S_IFDIR: "dir", st.S_IFLNK: "symlink", st.S_IFIFO: "fifo", st.S_IFSOCK: "socket"}


def stat_json(node: Inode, name: str, path: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": name,
        "ino": node.ino,
        "gen": node.gen,
        "type": TYPE_NAMES.get(st.S_IFMT(node.mode), "other"),
        "mode": st.S_IMODE(node.mode),
        "uid": node.uid,
        "gid": node.gid,
        "nlink": node.nlink,
        "size": node.size,
        "atime_ns": node.atime,
        "mtime_ns": node.mtime,
        "ctime_ns": node.ctime,
    }
    if path is not None:
        out["path"] = path
    if isinstance(node, DirInode):
        out["children"] = len(node.children)
    target = getattr(node, "target", None)
    if target is not None:
        out["target"] = target
    return out


def error_response(exc: errors.NsdError) -> web.Response:
    body = {"error": {"type": type(exc).__name__, "errno": exc.errno, "message": exc.message, "path": exc.path}}
    return web.json_response(body, status=http_status(exc))


def _has_token(request: web.Request) -> bool:
    expected = f"Bearer {request.app[TOKEN_KEY]}".encode()
    return hmac.compare_digest(request.headers.get("Authorization", "").encode(), expected)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith(PREFIX):
        authorized = _has_token(request)
        if not authorized and request.method not in ("GET", "HEAD"):
            return web.json_response(
                {"error": {"type": "Unauthorized", "errno": 13, "message": "admin token required", "path": None}},
                status=401,
            )
        request[CALLER_KEY] = SYSTEM if authorized else ANONYMOUS
        request[USER_KEY] = "admin-token" if authorized else "anonymous"
    try:
        return await handler(request)
    except errors.NsdError as e:
        return error_response(e)


async def status(request: web.Request) -> web.Response:
    stats = request.app[VFS_KEY].fs_stats()
    return web.json_response(
        {
            "version": __version__,
            "uptime_s": round(time.monotonic() - request.app[STARTED_KEY], 3),
            "event_loop": event_loop_name(),
            "inodes": stats.inodes,
            "last_txid": stats.last_txid,
            "durable_txid": stats.durable_txid,
            "checkpoint_txid": stats.checkpoint_txid,
            "mounts": stats.mounts,
            "writes_refused": stats.writes_refused,
        }
    )


async def fs_stat(request: web.Request) -> web.Response:
    path = path_arg(request)
    follow = bool_arg(request.query.get("follow"), "follow", True)
    vfs = request.app[VFS_KEY]
    node = await vfs.stat(path, caller=caller_of(request), follow=follow)
    return web.json_response({**stat_json(node, path.rstrip("/").rsplit("/", 1)[-1], path), **cache_info(vfs, node)})


async def fs_list(request: web.Request) -> web.Response:
    path = path_arg(request)
    limit = int_arg(request.query.get("limit"), "limit", MAX_LIST) or MAX_LIST
    if not 0 < limit <= MAX_LIST:
        raise errors.Invalid(f"limit must be 1..{MAX_LIST}")
    entries = await request.app[VFS_KEY].list(
        path, caller=caller_of(request), start_after=request.query.get("start_after"), limit=limit + 1
    )
    more = len(entries) > limit
    return web.json_response({"entries": [stat_json(n, name) for name, n in entries[:limit]], "more": more})


async def fs_readlink(request: web.Request) -> web.Response:
    return web.json_response(
        {"target": await request.app[VFS_KEY].readlink(path_arg(request), caller=caller_of(request))}
    )


async def fs_read(request: web.Request) -> web.StreamResponse:
    vfs = request.app[VFS_KEY]
    path = path_arg(request)
    offset = int_arg(request.query.get("offset"), "offset", 0) or 0
    length = int_arg(request.query.get("length"), "length")
    if offset < 0 or (length is not None and length < 0):
        raise errors.Invalid("offset and length must not be negative")
    raw_type = request.query.get("read_type")
    read_type = parse_read_type(raw_type) if raw_type else None
    node = await vfs.open_read(path, caller=caller_of(request))
    end = node.size if length is None else min(node.size, offset + length)
    # 4 MiB pieces, the next read while one is sent (as WebHDFS OPEN): a remote store's
    # per-request cost is paid a quarter as often, and overlaps the sending.
    stream = read_ahead(vfs, node.ino, offset, max(offset, end), path, caller=caller_of(request), read_type=read_type)
    async with contextlib.aclosing(stream):
        first = await anext(stream, b"")  # errors surface before the 200 goes out
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        response.content_length = max(0, end - offset)
        await response.prepare(request)
        if first:
            await response.write(first)
        async for chunk in stream:
            await response.write(chunk)
        await response.write_eof()
    return response


async def fs_write(request: web.Request) -> web.Response:
    vfs = request.app[VFS_KEY]
    path = path_arg(request)
    overwrite = bool_arg(request.query.get("overwrite"), "overwrite", False)
    mode = int_arg(request.query.get("mode"), "mode", 0o644)
    node = await vfs.write_file(
        path, body_stream(request), caller=caller_of(request), mode=mode or 0o644, overwrite=overwrite
    )
    return web.json_response(stat_json(node, path.rsplit("/", 1)[-1], path), status=201)


async def fs_mkdir(request: web.Request) -> web.Response:
    body = await json_body(request)
    path = path_arg(request, body=body)
    mode = int_arg(body.get("mode"), "mode", 0o755)
    node = await request.app[VFS_KEY].mkdir(
        path,
        caller=caller_of(request),
        mode=0o755 if mode is None else mode,
        parents=bool_arg(body.get("parents"), "parents"),
    )
    return web.json_response(stat_json(node, path.rstrip("/").rsplit("/", 1)[-1], path), status=201)


async def fs_remove(request: web.Request) -> web.Response:
    body = await json_body(request)
    path = path_arg(request, body=body)
    await request.app[VFS_KEY].remove(
        path, caller=caller_of(request), recursive=bool_arg(body.get("recursive"), "recursive")
    )
    return web.json_response({"removed": path})


async def fs_rename(request: web.Request) -> web.Response:
    """mv semantics: a destination that is an existing directory receives the source inside it."""
    vfs = request.app[VFS_KEY]
    body = await json_body(request)
    src, dst = path_arg(request, "src", body), path_arg(request, "dst", body)
    who = caller_of(request)
    try:
        if (await vfs.stat(dst, caller=who)).is_dir and not (await vfs.stat(src, caller=who, follow=False)).is_dir:
            dst = dst.rstrip("/") + "/" + src.rstrip("/").rsplit("/", 1)[-1]
    except errors.NotFound:
        pass
    await vfs.rename(src, dst, caller=who)
    return web.json_response({"src": src, "dst": dst})


async def fs_setattr(request: web.Request) -> web.Response:
    vfs = request.app[VFS_KEY]
    body = await json_body(request)
    path = path_arg(request, body=body)
    size = int_arg(body.get("size"), "size")
    if size is not None:
        await vfs.truncate(path, size, caller=caller_of(request))
    node = await vfs.setattr(
        path,
        caller=caller_of(request),
        mode=int_arg(body.get("mode"), "mode"),
        uid=int_arg(body.get("uid"), "uid"),
        gid=int_arg(body.get("gid"), "gid"),
        atime=int_arg(body.get("atime_ns"), "atime_ns"),
        mtime=int_arg(body.get("mtime_ns"), "mtime_ns"),
    )
    return web.json_response(stat_json(node, path.rsplit("/", 1)[-1], path))


async def fs_symlink(request: web.Request) -> web.Response:
    body = await json_body(request)
    path = path_arg(request, body=body)
    target = body.get("target")
    if not isinstance(target, str):
        raise errors.Invalid("missing parameter 'target'")
    node = await request.app[VFS_KEY].symlink(target, path, caller=caller_of(request))
    return web.json_response(stat_json(node, path.rsplit("/", 1)[-1], path), status=201)


async def fs_link(request: web.Request) -> web.Response:
    body = await json_body(request)
    existing, path = path_arg(request, "existing", body), path_arg(request, "path", body)
    node = await request.app[VFS_KEY].link(existing, path, caller=caller_of(request))
    return web.json_response(stat_json(node, path.rsplit("/", 1)[-1], path), status=201)


async def fs_sync(request: web.Request) -> web.Response:
    body = await json_body(request)
    path = path_arg(request, body=body)
    listed = await request.app[VFS_KEY].sync(
        path, caller=caller_of(request), recursive=bool_arg(body.get("recursive"), "recursive")
    )
    return web.json_response({"path": path, "directories_listed": listed})


async def mounts_list(request: web.Request) -> web.Response:
    return web.json_response({"mounts": [m.to_json() for m in request.app[VFS_KEY].mount_table()]})


async def mounts_add(request: web.Request) -> web.Response:
    body = await json_body(request)
    path = path_arg(request, body=body)
    uri = body.get("uri")
    options = body.get("options") or {}
    if not isinstance(uri, str) or not uri:
        raise errors.Invalid("missing parameter 'uri'")
    if not isinstance(options, dict) or not all(isinstance(v, str) for v in options.values()):
        raise errors.Invalid("options must be a map of strings")
    view = await request.app[VFS_KEY].mount(
        path, uri, caller=caller_of(request), readonly=bool_arg(body.get("readonly"), "readonly"), options=options
    )
    return web.json_response(view.to_json(), status=201)


async def mounts_remove(request: web.Request) -> web.Response:
    body = await json_body(request)
    path = path_arg(request, body=body)
    await request.app[VFS_KEY].unmount(path, caller=caller_of(request))
    return web.json_response({"unmounted": path})


async def report(request: web.Request) -> web.Response:
    return web.json_response(build_report(request.app[VFS_KEY], request.app[LISTENERS_KEY].clients()))


async def conf(request: web.Request) -> web.Response:
    cfg = request.app[CONFIG_KEY]
    return web.json_response(
        {name: {"value": value, "source": cfg.sources[name]} for name, value in sorted(cfg.values.items())}
    )


async def journal_backup(request: web.Request) -> web.StreamResponse:
    """A consistent checkpoint taken now, with the mount table, config and the blocks of
    unpersisted files, streamed back as it is made (see backup_live.py)."""
    job = await LiveBackup.prepare(request.app[VFS_KEY], request.app[DATADIR_KEY], request.app[CONFIG_KEY].values)
    try:
        response = web.StreamResponse(
            headers={
                "Content-Type": "application/gzip",
                "X-Nsd-Txid": str(job.txid),
                "X-Nsd-Backup-Bytes": str(job.raw_size()),  # uncompressed: the client's progress total
            }
        )
        await response.prepare(request)
        try:
            await job.stream(response.write)
        except Exception as e:  # the headers are out: all that is left is to break the stream
            log.error("backup of txid %d failed while streaming: %s", job.txid, e)
            if request.transport is not None:
                request.transport.abort()  # the client sees a cut archive, never a complete-looking one
            return response
        await response.write_eof()
        return response
    finally:
        job.close()


async def fsck_route(request: web.Request) -> web.Response:
    body = await json_body(request)
    path = body.get("path") or "/"
    result = await fsck(
        request.app[VFS_KEY], path_arg(request, body={"path": path}), repair=bool_arg(body.get("repair"), "repair")
    )
    return web.json_response(result)


async def doctor_route(request: web.Request) -> web.Response:
    listener_checks = await probe_listeners(request.app[LISTENERS_KEY].addresses)
    checks = await diagnose(request.app[VFS_KEY], request.app[DATADIR_KEY], listener_checks)
    return web.json_response({"checks": checks})


async def journal_checkpoint(request: web.Request) -> web.Response:
    txid = await request.app[VFS_KEY].checkpoint()
    return web.json_response({"checkpoint_txid": txid})


def add_routes(app: web.Application, vfs: Vfs, datadir: DataDir, config: Config) -> None:
    app[VFS_KEY] = vfs
    app[TOKEN_KEY] = datadir.read_token()
    app[CONFIG_KEY] = config
    app[DATADIR_KEY] = datadir
    app[STARTED_KEY] = time.monotonic()
    app.middlewares.append(errors_middleware)
    app.router.add_get(f"{PREFIX}/status", status)
    app.router.add_get(f"{PREFIX}/report", report)
    app.router.add_get(f"{PREFIX}/conf", conf)
    app.router.add_get(f"{PREFIX}/fs/stat", fs_stat)
    app.router.add_get(f"{PREFIX}/fs/list", fs_list)
    app.router.add_get(f"{PREFIX}/fs/readlink", fs_readlink)
    app.router.add_get(f"{PREFIX}/fs/content", fs_read)
    app.router.add_put(f"{PREFIX}/fs/content", fs_write)
    app.router.add_post(f"{PREFIX}/fs/mkdir", fs_mkdir)
    app.router.add_post(f"{PREFIX}/fs/remove", fs_remove)
    app.router.add_post(f"{PREFIX}/fs/rename", fs_rename)
    app.router.add_post(f"{PREFIX}/fs/setattr", fs_setattr)
    app.router.add_post(f"{PREFIX}/fs/symlink", fs_symlink)
    app.router.add_post(f"{PREFIX}/fs/link", fs_link)
    app.router.add_post(f"{PREFIX}/fs/sync", fs_sync)
    app.router.add_get(f"{PREFIX}/mounts", mounts_list)
    app.router.add_post(f"{PREFIX}/mounts", mounts_add)
    app.router.add_post(f"{PREFIX}/mounts/remove", mounts_remove)
    app.router.add_post(f"{PREFIX}/journal/checkpoint", journal_checkpoint)
    app.router.add_post(f"{PREFIX}/journal/backup", journal_backup)
    app.router.add_post(f"{PREFIX}/fsck", fsck_route)
    app.router.add_get(f"{PREFIX}/doctor", doctor_route)
    cache_routes.add_routes(app)
