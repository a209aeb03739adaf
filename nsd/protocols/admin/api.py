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
from nsd.config import Config
from nsd.core.cache.policy import parse_read_type
from nsd.core.users import NOBODY, SYSTEM, UserMap
from nsd.datadir import DataDir
from nsd.namespace import DirInode, Inode
from nsd.ops.backup_live import LiveBackup
from nsd.ops.cache.controls import cache_info
from nsd.ops.clients import USER_KEY
from nsd.ops.doctor import diagnose
from nsd.ops.fsck import fsck
from nsd.ops.report import build_report, event_loop_name
from nsd.protocols.admin import cache as cache_routes
from nsd.protocols.admin.request import PREFIX, VFS_KEY, bool_param, int_param, json_body, path_param
from nsd.protocols.errmap import http_status
from nsd.protocols.http.limits import body_stream
from nsd.protocols.http.readahead import read_ahead
from nsd.protocols.http.status import METRICS_KEY
from nsd.protocols.probes import probe_listeners
from nsd.vfs import Caller, Vfs

UPLOAD_CHUNK = 1 << 20
log = logging.getLogger("nsd.admin")
MAX_LIST = 10_000

# name -> (host, port) of each listener, filled in by the daemon once they are bound (for doctor)
LISTENERS_KEY: web.AppKey[dict[str, tuple[str, int]]] = web.AppKey("listeners", dict)
TOKEN_KEY: web.AppKey[str] = web.AppKey("token", str)
STARTED_KEY: web.AppKey[float] = web.AppKey("started", float)
CONFIG_KEY: web.AppKey[Config] = web.AppKey("config", Config)
DATADIR_KEY: web.AppKey[DataDir] = web.AppKey("datadir", DataDir)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CALLER_KEY = "nsd.admin.caller"
ANONYMOUS = Caller(NOBODY, NOBODY)

TYPE_NAMES = {st.S_IFREG: "file", st.S_IFDIR: "dir", st.S_IFLNK: "symlink", st.S_IFIFO: "fifo", st.S_IFSOCK: "socket"}


def stat_json(node: Inode, name: str, path: str | None = None, users: UserMap | None = None) -> dict[str, Any]:
    """An object's attributes; with `users`, its owner and group by name too (as WebHDFS shows them)."""
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
    if users is not None:
        out["owner"], out["group"] = users.user_name(node.uid), users.group_name(node.gid)
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


def _caller(request: web.Request) -> Caller:
    """The token holder is the superuser (HDFS's convention: the user running the daemon)."""
    return request.get(CALLER_KEY, ANONYMOUS)


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
    path = path_param(request)
    follow = bool_param(request.query.get("follow"), "follow", True)
    vfs = request.app[VFS_KEY]
    node = await vfs.stat(path, caller=_caller(request), follow=follow)
    info = stat_json(node, path.rstrip("/").rsplit("/", 1)[-1], path, vfs.perms.users)
    return web.json_response({**info, **cache_info(vfs, node)})


async def fs_list(request: web.Request) -> web.Response:
    path = path_param(request)
    limit = int_param(request.query.get("limit"), "limit", MAX_LIST) or MAX_LIST
    if not 0 < limit <= MAX_LIST:
        raise errors.Invalid(f"limit must be 1..{MAX_LIST}")
    vfs = request.app[VFS_KEY]
    entries = await vfs.list(
        path, caller=_caller(request), start_after=request.query.get("start_after"), limit=limit + 1
    )
    more = len(entries) > limit
    listed = [stat_json(n, name, users=vfs.perms.users) for name, n in entries[:limit]]
    return web.json_response({"entries": listed, "more": more})


async def fs_readlink(request: web.Request) -> web.Response:
    target = await request.app[VFS_KEY].readlink(path_param(request), caller=_caller(request))
    return web.json_response({"target": target})


async def fs_read(request: web.Request) -> web.StreamResponse:
    vfs = request.app[VFS_KEY]
    path = path_param(request)
    offset = int_param(request.query.get("offset"), "offset", 0) or 0
    length = int_param(request.query.get("length"), "length")
    if offset < 0 or (length is not None and length < 0):
        raise errors.Invalid("offset and length must not be negative")
    raw_type = request.query.get("read_type")
    read_type = parse_read_type(raw_type) if raw_type else None
    node = await vfs.open_read(path, caller=_caller(request))
    end = node.size if length is None else min(node.size, offset + length)
    # 4 MiB pieces, the next read while one is sent (as WebHDFS OPEN): a remote store's
    # per-request cost is paid a quarter as often, and overlaps the sending.
    stream = read_ahead(vfs, node.ino, offset, max(offset, end), path, caller=_caller(request), read_type=read_type)
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
    path = path_param(request)
    overwrite = bool_param(request.query.get("overwrite"), "overwrite", False)
    mode = int_param(request.query.get("mode"), "mode", 0o644)
    node = await vfs.write_file(
        path, body_stream(request), caller=_caller(request), mode=mode or 0o644, overwrite=overwrite
    )
    return web.json_response(stat_json(node, path.rsplit("/", 1)[-1], path), status=201)


async def fs_mkdir(request: web.Request) -> web.Response:
    body = await json_body(request)
    path = path_param(request, body=body)
    mode = int_param(body.get("mode"), "mode", 0o755)
    node = await request.app[VFS_KEY].mkdir(
        path,
        caller=_caller(request),
        mode=0o755 if mode is None else mode,
        parents=bool_param(body.get("parents"), "parents"),
    )
    return web.json_response(stat_json(node, path.rstrip("/").rsplit("/", 1)[-1], path), status=201)


async def fs_remove(request: web.Request) -> web.Response:
    body = await json_body(request)
    path = path_param(request, body=body)
    await request.app[VFS_KEY].remove(
        path, caller=_caller(request), recursive=bool_param(body.get("recursive"), "recursive")
    )
    return web.json_response({"removed": path})


async def fs_rename(request: web.Request) -> web.Response:
    """mv semantics: a destination that is an existing directory receives the source inside it."""
    vfs = request.app[VFS_KEY]
    body = await json_body(request)
    src, dst = path_param(request, "src", body), path_param(request, "dst", body)
    who = _caller(request)
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
    path = path_param(request, body=body)
    size = int_param(body.get("size"), "size")
    if size is not None:
        await vfs.truncate(path, size, caller=_caller(request))
    uid, gid = await _owner_ids(vfs, body, _caller(request))
    node = await vfs.setattr(
        path,
        caller=_caller(request),
        mode=int_param(body.get("mode"), "mode"),
        uid=uid,
        gid=gid,
        atime=int_param(body.get("atime_ns"), "atime_ns"),
        mtime=int_param(body.get("mtime_ns"), "mtime_ns"),
    )
    return web.json_response(stat_json(node, path.rsplit("/", 1)[-1], path, vfs.perms.users))


async def _owner_ids(vfs: Vfs, body: dict[str, Any], caller: Caller) -> tuple[int | None, int | None]:
    """The uid and gid a setattr asks for: numbers ("uid", "gid") or names ("owner", "group"),
    resolved through the daemon's user map (a superuser giving a file to a user nobody knows
    maps that user, as WebHDFS SETOWNER does). Invalid for a name nobody knows."""
    uid, gid = int_param(body.get("uid"), "uid"), int_param(body.get("gid"), "gid")
    users = vfs.perms.users
    owner, group = body.get("owner"), body.get("group")
    if owner is not None:
        if not isinstance(owner, str) or uid is not None:
            raise errors.Invalid("owner must be a user name, and not given with uid")
        uid = users.uid_of(owner)
        if uid is None and vfs.perms.is_super(caller):
            uid = (await users.resolve(owner)).caller.uid
        if uid is None:
            raise errors.Invalid(f"unknown user: {owner}")
    if group is not None:
        if not isinstance(group, str) or gid is not None:
            raise errors.Invalid("group must be a group name, and not given with gid")
        gid = users.gid_of(group)
        if gid is None:
            raise errors.Invalid(f"unknown group: {group}")
    return uid, gid


async def fs_symlink(request: web.Request) -> web.Response:
    body = await json_body(request)
    path = path_param(request, body=body)
    target = body.get("target")
    if not isinstance(target, str):
        raise errors.Invalid("missing parameter 'target'")
    node = await request.app[VFS_KEY].symlink(target, path, caller=_caller(request))
    return web.json_response(stat_json(node, path.rsplit("/", 1)[-1], path), status=201)


async def fs_link(request: web.Request) -> web.Response:
    body = await json_body(request)
    existing, path = path_param(request, "existing", body), path_param(request, "path", body)
    node = await request.app[VFS_KEY].link(existing, path, caller=_caller(request))
    return web.json_response(stat_json(node, path.rsplit("/", 1)[-1], path), status=201)


async def fs_sync(request: web.Request) -> web.Response:
    body = await json_body(request)
    path = path_param(request, body=body)
    listed = await request.app[VFS_KEY].sync(
        path, caller=_caller(request), recursive=bool_param(body.get("recursive"), "recursive")
    )
    return web.json_response({"path": path, "directories_listed": listed})


async def users_list(request: web.Request) -> web.Response:
    """The user map: configured users and the names mapped to `auto_id_range`, with the setting."""
    users = request.app[VFS_KEY].perms.users
    configured = [
        {"name": u.name, "uid": u.caller.uid, "gid": u.caller.gid, "groups": list(u.caller.gids), "source": "config"}
        for u in users.configured()
    ]
    mapped = [{"name": name, "uid": i, "gid": i, "groups": [i], "source": "mapped"} for name, i in users.mapped()]
    lo, hi = users.auto_id_range
    return web.json_response(
        {"unknown_users": users.unknown_users, "auto_id_range": f"{lo}-{hi}", "users": configured + mapped}
    )


async def mounts_list(request: web.Request) -> web.Response:
    return web.json_response({"mounts": [m.to_json() for m in request.app[VFS_KEY].mount_table()]})


async def mounts_add(request: web.Request) -> web.Response:
    body = await json_body(request)
    path = path_param(request, body=body)
    uri = body.get("uri")
    options = body.get("options") or {}
    if not isinstance(uri, str) or not uri:
        raise errors.Invalid("missing parameter 'uri'")
    if not isinstance(options, dict) or not all(isinstance(v, str) for v in options.values()):
        raise errors.Invalid("options must be a map of strings")
    view = await request.app[VFS_KEY].mount(
        path, uri, caller=_caller(request), readonly=bool_param(body.get("readonly"), "readonly"), options=options
    )
    return web.json_response(view.to_json(), status=201)


async def mounts_remove(request: web.Request) -> web.Response:
    body = await json_body(request)
    path = path_param(request, body=body)
    await request.app[VFS_KEY].unmount(path, caller=_caller(request))
    return web.json_response({"unmounted": path})


async def report(request: web.Request) -> web.Response:
    return web.json_response(build_report(request.app[VFS_KEY], request.app[METRICS_KEY]))


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
        request.app[VFS_KEY], path_param(request, body={"path": path}), repair=bool_param(body.get("repair"), "repair")
    )
    return web.json_response(result)


async def doctor_route(request: web.Request) -> web.Response:
    doors = await probe_listeners(request.app[LISTENERS_KEY])
    checks = await diagnose(request.app[VFS_KEY], request.app[DATADIR_KEY], doors)
    return web.json_response({"checks": checks})


async def journal_checkpoint(request: web.Request) -> web.Response:
    txid = await request.app[VFS_KEY].store.checkpoint()
    return web.json_response({"checkpoint_txid": txid})


def add_routes(app: web.Application, vfs: Vfs, datadir: DataDir, config: Config) -> None:
    app[VFS_KEY] = vfs
    app[LISTENERS_KEY] = {}
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
    app.router.add_get(f"{PREFIX}/users", users_list)
    app.router.add_get(f"{PREFIX}/mounts", mounts_list)
    app.router.add_post(f"{PREFIX}/mounts", mounts_add)
    app.router.add_post(f"{PREFIX}/mounts/remove", mounts_remove)
    app.router.add_post(f"{PREFIX}/journal/checkpoint", journal_checkpoint)
    app.router.add_post(f"{PREFIX}/journal/backup", journal_backup)
    app.router.add_post(f"{PREFIX}/fsck", fsck_route)
    app.router.add_get(f"{PREFIX}/doctor", doctor_route)
    cache_routes.add_routes(app)
