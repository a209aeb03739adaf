"""The admin API under /api/v1: JSON for the `nsd` CLI and for scripts.

Every method but GET/HEAD needs `Authorization: Bearer <admin token>` (401 without it). The
token holder acts as the superuser (the user running the daemon); a read without the token
acts as nobody, so the namespace's permissions still apply to it (403 when they refuse).
The token is compared in constant time. Errors come back as
{"error": {"type", "errno", "message", "path"}} with a status from errmap.
"""

from __future__ import annotations

import asyncio
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
from nsd.protocols.webhdfs.checksum import Md5Md5Crc32c
from nsd.protocols.webhdfs.context import DEFAULT_BLOCK_SIZE
from nsd.protocols.webhdfs.encode import file_checksum
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


def stat_json(users: UserMap, node: Inode, name: str, path: str | None = None) -> dict[str, Any]:
    """An object's attributes as the API shows them; owner and group by name too, from the
    daemon's one user map (what WebHDFS shows)."""
    out: dict[str, Any] = {
        "name": name,
        "ino": node.ino,
        "gen": node.gen,
        "type": TYPE_NAMES.get(st.S_IFMT(node.mode), "other"),
        "mode": st.S_IMODE(node.mode),
        "uid": node.uid,
        "gid": node.gid,
        "owner": users.user_name(node.uid),
        "group": users.group_name(node.gid),
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


def path_json(request: web.Request, node: Inode, path: str) -> dict[str, Any]:
    """stat_json of the object at `path`, named by its last component."""
    return stat_json(request.app[VFS_KEY].perms.users, node, path.rstrip("/").rsplit("/", 1)[-1], path)


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
            given = "Authorization" in request.headers
            message = "admin token rejected: not this daemon's token" if given else "admin token required"
            return web.json_response(
                {"error": {"type": "Unauthorized", "errno": 13, "message": message, "path": None}}, status=401
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


async def fs_df(request: web.Request) -> web.Response:
    """Capacity, used and remaining bytes of the root under-storage (`nsd df`, hdfs dfs -df)."""
    capacity, used, remaining = await request.app[VFS_KEY].capacity()
    return web.json_response({"capacity": capacity, "used": used, "remaining": remaining})


async def users_list(request: web.Request) -> web.Response:
    """The user map: configured users and the names given ids here (`nsd users ls`)."""
    return web.json_response({"users": request.app[VFS_KEY].perms.users.entries()})


async def fs_stat(request: web.Request) -> web.Response:
    path = path_param(request)
    follow = bool_param(request.query.get("follow"), "follow", True)
    vfs = request.app[VFS_KEY]
    node = await vfs.stat(path, caller=_caller(request), follow=follow)
    return web.json_response({**path_json(request, node, path), **cache_info(vfs, node)})


async def fs_list(request: web.Request) -> web.Response:
    path = path_param(request)
    limit = int_param(request.query.get("limit"), "limit", MAX_LIST) or MAX_LIST
    if not 0 < limit <= MAX_LIST:
        raise errors.Invalid(f"limit must be 1..{MAX_LIST}")
    entries = await request.app[VFS_KEY].list(
        path, caller=_caller(request), start_after=request.query.get("start_after"), limit=limit + 1
    )
    more = len(entries) > limit
    vfs = request.app[VFS_KEY]
    listed = [{**stat_json(vfs.perms.users, n, name), **cache_info(vfs, n)} for name, n in entries[:limit]]
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
    return web.json_response(path_json(request, node, path), status=201)


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
    return web.json_response(path_json(request, node, path), status=201)


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
    uid, gid = int_param(body.get("uid"), "uid"), int_param(body.get("gid"), "gid")
    if isinstance(owner := body.get("owner"), str) and owner:  # a name: the daemon's map decides
        uid = (await vfs.identity(owner)).caller.uid
    if isinstance(group := body.get("group"), str) and group:
        gid = vfs.perms.users.gid_of(group)
        if gid is None:
            gid = (await vfs.identity(group)).caller.gid  # an unknown name's group has its id
    node = await vfs.setattr(
        path,
        caller=_caller(request),
        mode=int_param(body.get("mode"), "mode"),
        uid=uid,
        gid=gid,
        atime=int_param(body.get("atime_ns"), "atime_ns"),
        mtime=int_param(body.get("mtime_ns"), "mtime_ns"),
    )
    return web.json_response(path_json(request, node, path))


async def fs_checksum(request: web.Request) -> web.Response:
    """The file's MD5-of-MD5-of-CRC32C, the value WebHDFS's GETFILECHECKSUM gives (HDFS's
    default block size and bytes per CRC), so `nsd checksum` matches `hdfs dfs -checksum`."""
    vfs = request.app[VFS_KEY]
    path = path_param(request)
    node = await vfs.open_read(path, caller=_caller(request))
    summer = Md5Md5Crc32c(DEFAULT_BLOCK_SIZE)  # WebHDFS's block size: both doors give one value
    stream = read_ahead(vfs, node.ino, 0, node.size, path, caller=_caller(request))
    async with contextlib.aclosing(stream):
        async for chunk in stream:
            await asyncio.to_thread(summer.feed, chunk)
    return web.json_response(file_checksum(summer.result()))


async def fs_xattrs(request: web.Request) -> web.Response:
    """Extended attributes by name, values as text (hex for bytes that are not UTF-8)."""
    found = await request.app[VFS_KEY].get_xattrs(path_param(request), caller=_caller(request))
    return web.json_response({name: _xattr_text(value) for name, value in sorted(found.items())})


def _xattr_text(value: bytes) -> str:
    try:
        return value.decode()
    except UnicodeDecodeError:
        return "0x" + value.hex()


async def fs_setxattr(request: web.Request) -> web.Response:
    """{"path", "name", "value"} sets (value a string; 0x... for bytes), without "value" removes."""
    vfs = request.app[VFS_KEY]
    body = await json_body(request)
    path, name = path_param(request, body=body), body.get("name")
    if not isinstance(name, str) or not name:
        raise errors.Invalid("missing parameter 'name'")
    value = body.get("value")
    if value is None:
        node = await vfs.remove_xattr(path, name, caller=_caller(request))
    elif isinstance(value, str):
        raw = bytes.fromhex(value[2:]) if value.startswith("0x") else value.encode()
        node = await vfs.set_xattr(path, name, raw, caller=_caller(request))
    else:
        raise errors.Invalid("value must be a string")
    return web.json_response(path_json(request, node, path))


async def fs_symlink(request: web.Request) -> web.Response:
    body = await json_body(request)
    path = path_param(request, body=body)
    target = body.get("target")
    if not isinstance(target, str):
        raise errors.Invalid("missing parameter 'target'")
    node = await request.app[VFS_KEY].symlink(target, path, caller=_caller(request))
    return web.json_response(path_json(request, node, path), status=201)


async def fs_link(request: web.Request) -> web.Response:
    body = await json_body(request)
    existing, path = path_param(request, "existing", body), path_param(request, "path", body)
    node = await request.app[VFS_KEY].link(existing, path, caller=_caller(request))
    return web.json_response(path_json(request, node, path), status=201)


async def fs_sync(request: web.Request) -> web.Response:
    body = await json_body(request)
    path = path_param(request, body=body)
    listed = await request.app[VFS_KEY].sync(
        path, caller=_caller(request), recursive=bool_param(body.get("recursive"), "recursive")
    )
    return web.json_response({"path": path, "directories_listed": listed})


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
    app.router.add_get(f"{PREFIX}/users", users_list)
    app.router.add_get(f"{PREFIX}/fs/df", fs_df)
    app.router.add_get(f"{PREFIX}/fs/checksum", fs_checksum)
    app.router.add_get(f"{PREFIX}/fs/xattrs", fs_xattrs)
    app.router.add_post(f"{PREFIX}/fs/xattrs", fs_setxattr)
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
