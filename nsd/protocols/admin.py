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
from nsd.clients import USER_KEY
from nsd.config import Config
from nsd.datadir import DataDir
from nsd.doctor import diagnose
from nsd.fsck import fsck
from nsd.namespace import DirInode, Inode
from nsd.protocols.errmap import http_status
from nsd.protocols.httplimits import body_stream
from nsd.protocols.readahead import read_ahead
from nsd.protocols.status import METRICS_KEY
from nsd.report import build_report, event_loop_name
from nsd.users import NOBODY, SYSTEM, UserMap
from nsd.vfs import Caller, Vfs

PREFIX = "/api/v1"
UPLOAD_CHUNK = 1 << 20
log = logging.getLogger("nsd.admin")
MAX_LIST = 10_000

VFS_KEY: web.AppKey[Vfs] = web.AppKey("vfs", Vfs)
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


def stat_json(node: Inode, name: str, path: str | None = None, names: UserMap | None = None) -> dict[str, Any]:
    """An object's attributes; with `names`, also its owner and group by name, as WebHDFS shows them."""
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
    if names is not None:
        out["owner"], out["group"] = names.user_name(node.uid), names.group_name(node.gid)
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


def _names(request: web.Request) -> UserMap:
    return request.app[VFS_KEY].perms.users


def _path(request: web.Request, key: str = "path", body: dict[str, Any] | None = None) -> str:
    value = (body or {}).get(key) if body is not None else request.query.get(key)
    if not isinstance(value, str) or not value:
        raise errors.Invalid(f"missing parameter {key!r}")
    if not value.startswith("/"):
        raise errors.Invalid(f"{key} must be an absolute path: {value!r}")
    return value


def _int(value: Any, name: str, default: int | None = None) -> int | None:
    if value is None or value == "":
        return default
    try:
        return int(value, 0) if isinstance(value, str) else int(value)
    except (TypeError, ValueError):
        raise errors.Invalid(f"{name} must be an integer, got {value!r}") from None


def _bool(value: Any, name: str, default: bool = False) -> bool:
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


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except ValueError:
        raise errors.Invalid("request body must be a JSON object") from None
    if not isinstance(data, dict):
        raise errors.Invalid("request body must be a JSON object")
    return data


async def status(request: web.Request) -> web.Response:
    vfs = request.app[VFS_KEY]
    store = vfs.store
    return web.json_response(
        {
            "version": __version__,
            "uptime_s": round(time.monotonic() - request.app[STARTED_KEY], 3),
            "event_loop": event_loop_name(),
            "inodes": len(store.ns.inodes),
            "last_txid": store.writer.last_txid,
            "durable_txid": store.writer.durable_txid,
            "checkpoint_txid": store.checkpoint_txid,
            "mounts": len(vfs.ns.mounts) + 1,
            "writes_refused": store.refusal(),
        }
    )


async def fs_stat(request: web.Request) -> web.Response:
    path = _path(request)
    follow = _bool(request.query.get("follow"), "follow", True)
    vfs = request.app[VFS_KEY]
    node = await vfs.stat(path, caller=_caller(request), follow=follow)
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return web.json_response({**stat_json(node, name, path, _names(request)), **cache_info(vfs, node)})


async def fs_list(request: web.Request) -> web.Response:
    path = _path(request)
    limit = _int(request.query.get("limit"), "limit", MAX_LIST) or MAX_LIST
    if not 0 < limit <= MAX_LIST:
        raise errors.Invalid(f"limit must be 1..{MAX_LIST}")
    entries = await request.app[VFS_KEY].list(
        path, caller=_caller(request), start_after=request.query.get("start_after"), limit=limit + 1
    )
    more = len(entries) > limit
    rows = [stat_json(n, name, names=_names(request)) for name, n in entries[:limit]]
    return web.json_response({"entries": rows, "more": more})


async def fs_readlink(request: web.Request) -> web.Response:
    return web.json_response({"target": await request.app[VFS_KEY].readlink(_path(request), caller=_caller(request))})


async def fs_read(request: web.Request) -> web.StreamResponse:
    vfs = request.app[VFS_KEY]
    path = _path(request)
    offset = _int(request.query.get("offset"), "offset", 0) or 0
    length = _int(request.query.get("length"), "length")
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
    path = _path(request)
    overwrite = _bool(request.query.get("overwrite"), "overwrite", False)
    mode = _int(request.query.get("mode"), "mode", 0o644)
    node = await vfs.write_file(
        path, body_stream(request), caller=_caller(request), mode=mode or 0o644, overwrite=overwrite
    )
    return web.json_response(stat_json(node, path.rsplit("/", 1)[-1], path, _names(request)), status=201)


async def fs_mkdir(request: web.Request) -> web.Response:
    body = await _body(request)
    path = _path(request, body=body)
    mode = _int(body.get("mode"), "mode", 0o755)
    node = await request.app[VFS_KEY].mkdir(
        path,
        caller=_caller(request),
        mode=0o755 if mode is None else mode,
        parents=_bool(body.get("parents"), "parents"),
    )
    return web.json_response(stat_json(node, path.rstrip("/").rsplit("/", 1)[-1], path, _names(request)), status=201)


async def fs_remove(request: web.Request) -> web.Response:
    body = await _body(request)
    path = _path(request, body=body)
    await request.app[VFS_KEY].remove(
        path, caller=_caller(request), recursive=_bool(body.get("recursive"), "recursive")
    )
    return web.json_response({"removed": path})


async def fs_rename(request: web.Request) -> web.Response:
    """mv semantics: a destination that is an existing directory receives the source inside it."""
    vfs = request.app[VFS_KEY]
    body = await _body(request)
    src, dst = _path(request, "src", body), _path(request, "dst", body)
    who = _caller(request)
    try:
        if (await vfs.stat(dst, caller=who)).is_dir and not (await vfs.stat(src, caller=who, follow=False)).is_dir:
            dst = dst.rstrip("/") + "/" + src.rstrip("/").rsplit("/", 1)[-1]
    except errors.NotFound:
        pass
    await vfs.rename(src, dst, caller=who)
    return web.json_response({"src": src, "dst": dst})


async def fs_setattr(request: web.Request) -> web.Response:
    """Besides numbers (uid, gid), `owner` and `group` take names, resolved here as WebHDFS's
    SETOWNER resolves them (a name nobody knows gets an id: see nsd.users)."""
    vfs = request.app[VFS_KEY]
    body = await _body(request)
    path = _path(request, body=body)
    size = _int(body.get("size"), "size")
    mode = _int(body.get("mode"), "mode")
    atime, mtime = _int(body.get("atime_ns"), "atime_ns"), _int(body.get("mtime_ns"), "mtime_ns")
    uid, gid = await _owner_ids(vfs.perms.users, body)
    if size is not None:
        await vfs.truncate(path, size, caller=_caller(request))
    node = await vfs.setattr(path, caller=_caller(request), mode=mode, uid=uid, gid=gid, atime=atime, mtime=mtime)
    return web.json_response(stat_json(node, path.rsplit("/", 1)[-1], path, _names(request)))


async def _owner_ids(names: UserMap, body: dict[str, Any]) -> tuple[int | None, int | None]:
    """(uid, gid) from `uid`/`owner` and `gid`/`group` in `body` (None: leave as it is)."""
    uid, gid = _int(body.get("uid"), "uid"), _int(body.get("gid"), "gid")
    owner, group = body.get("owner"), body.get("group")
    for key, value, number_key, number in (("owner", owner, "uid", uid), ("group", group, "gid", gid)):
        if value is not None and (not isinstance(value, str) or not value or number is not None):
            raise errors.Invalid(f"{key} must be a non-empty name, and not given together with {number_key}")
    if owner is not None:
        uid = (await names.resolve(owner)).caller.uid
    if group is not None:
        gid = await names.resolve_group(group)
    return uid, gid


async def users_list(request: web.Request) -> web.Response:
    """The ids nsd gave to user names nobody else knows, and how it treats the next such name."""
    names = request.app[VFS_KEY].perms.users
    first, last = names.auto_range
    return web.json_response(
        {"unknown_users": names.unknown_users, "auto_id_range": f"{first}-{last}", "users": names.auto_users()}
    )


async def fs_symlink(request: web.Request) -> web.Response:
    body = await _body(request)
    path = _path(request, body=body)
    target = body.get("target")
    if not isinstance(target, str):
        raise errors.Invalid("missing parameter 'target'")
    node = await request.app[VFS_KEY].symlink(target, path, caller=_caller(request))
    return web.json_response(stat_json(node, path.rsplit("/", 1)[-1], path, _names(request)), status=201)


async def fs_link(request: web.Request) -> web.Response:
    body = await _body(request)
    existing, path = _path(request, "existing", body), _path(request, "path", body)
    node = await request.app[VFS_KEY].link(existing, path, caller=_caller(request))
    return web.json_response(stat_json(node, path.rsplit("/", 1)[-1], path, _names(request)), status=201)


async def fs_sync(request: web.Request) -> web.Response:
    body = await _body(request)
    path = _path(request, body=body)
    listed = await request.app[VFS_KEY].sync(
        path, caller=_caller(request), recursive=_bool(body.get("recursive"), "recursive")
    )
    return web.json_response({"path": path, "directories_listed": listed})


async def mounts_list(request: web.Request) -> web.Response:
    return web.json_response({"mounts": [m.to_json() for m in request.app[VFS_KEY].mount_table()]})


async def mounts_add(request: web.Request) -> web.Response:
    body = await _body(request)
    path = _path(request, body=body)
    uri = body.get("uri")
    options = body.get("options") or {}
    if not isinstance(uri, str) or not uri:
        raise errors.Invalid("missing parameter 'uri'")
    if not isinstance(options, dict) or not all(isinstance(v, str) for v in options.values()):
        raise errors.Invalid("options must be a map of strings")
    view = await request.app[VFS_KEY].mount(
        path, uri, caller=_caller(request), readonly=_bool(body.get("readonly"), "readonly"), options=options
    )
    return web.json_response(view.to_json(), status=201)


async def mounts_remove(request: web.Request) -> web.Response:
    body = await _body(request)
    path = _path(request, body=body)
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
    body = await _body(request)
    path = body.get("path") or "/"
    result = await fsck(
        request.app[VFS_KEY], _path(request, body={"path": path}), repair=_bool(body.get("repair"), "repair")
    )
    return web.json_response(result)


async def doctor_route(request: web.Request) -> web.Response:
    checks = await diagnose(request.app[VFS_KEY], request.app[DATADIR_KEY], request.app[LISTENERS_KEY])
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
    from nsd.protocols import admin_cache  # it imports this module's helpers

    admin_cache.add_routes(app)
