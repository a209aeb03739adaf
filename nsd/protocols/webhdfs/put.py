"""WebHDFS PUT, POST and DELETE operations, with Hadoop FileSystem contract semantics.

Where the contract answers `false` instead of raising (rename onto an existing file, delete of
a missing path), so do these; where HDFS raises, the error names Hadoop's class and wording.
"""

from __future__ import annotations

from aiohttp import web

from nsd import errors
from nsd.core.permissions import W, X
from nsd.namespace import Inode, validate_name
from nsd.namespace.names import split_path
from nsd.protocols.webhdfs.context import (
    FAE,
    FNF,
    IAE,
    IOE,
    Ctx,
    Handler,
    Remote,
    body_chunks,
    boolean,
    empty,
    not_a_file,
)
from nsd.protocols.webhdfs.encode import decode_xattr
from nsd.protocols.webhdfs.params import BadParam
from nsd.protocols.webhdfs.xattr import normalize_name, parse_flags

PNDE = "org.apache.hadoop.fs.ParentNotDirectoryException"
NOT_EMPTY = "org.apache.hadoop.fs.PathIsNotEmptyDirectoryException"
HIAE = "org.apache.hadoop.HadoopIllegalArgumentException"


def _parent(path: str) -> str:
    return "/" + "/".join(split_path(path)[:-1])


def _name(path: str) -> str:
    parts = split_path(path)
    return parts[-1] if parts else ""


async def _maybe(ctx: Ctx, path: str, *, follow: bool = True) -> Inode | None:
    try:
        return await ctx.vfs.stat(path, caller=ctx.caller, follow=follow)
    except errors.NotFound:
        return None


def _under(path: str, ancestor: str) -> bool:
    a, p = split_path(ancestor), split_path(path)
    return len(p) > len(a) and p[: len(a)] == a


# ---- CREATE / APPEND (two steps) ---------------------------------------------------------------


async def _check_create(ctx: Ctx, overwrite: bool, createparent: bool) -> None:
    """Everything a CREATE can fail on, before the client uploads: an impossible name, an
    existing file or directory, a missing parent, and permissions."""
    validate_name(_name(ctx.path))
    node = await _maybe(ctx, ctx.path)
    if node is not None:
        if node.is_dir:
            raise Remote(403, FAE, f"{ctx.path} already exists as a directory")
        if not overwrite:
            raise Remote(403, FAE, f"{ctx.path} for client {ctx.request.remote} already exists")
        await ctx.vfs.access(ctx.path, W, caller=ctx.caller)
    parent = _parent(ctx.path)
    pnode = await _maybe(ctx, parent)
    if pnode is None and not createparent:
        raise Remote(404, FNF, f"Parent directory doesn't exist: {parent}")
    if pnode is not None and not pnode.is_dir:
        raise Remote(403, PNDE, f"{parent} (is not a directory)")
    if pnode is not None and node is None:
        await ctx.vfs.access(parent, W | X, caller=ctx.caller)


async def create(ctx: Ctx) -> web.StreamResponse:
    p = ctx.params
    overwrite = p.flag("overwrite", False)
    createparent = p.flag("createparent", True)
    mode = p.permission(default=0o644)
    assert mode is not None
    for name in ("blocksize", "replication", "buffersize"):
        p.long(name, None, minimum=1)  # validated; the UFS decides its own layout
    if ctx.path == "/":
        raise Remote(403, FAE, "/ already exists as a directory")
    await _check_create(ctx, overwrite, createparent)
    if not ctx.data_step:
        return ctx.redirect()
    parent = _parent(ctx.path)
    if createparent and await _maybe(ctx, parent) is None:
        await ctx.vfs.mkdir(parent, caller=ctx.caller, mode=0o755, parents=True)
    node = await ctx.vfs.write_file(
        ctx.path, body_chunks(ctx.request), caller=ctx.caller, mode=mode, overwrite=overwrite
    )
    if "permission" in ctx.params and node.mode & 0o7777 != mode:
        # HDFS replaces an overwritten file by a new one with the asked permission; the vfs
        # keeps the inode (NFS handles stay valid), so the permission is set on it.
        await ctx.vfs.setattr(ctx.path, caller=ctx.caller, mode=mode)
    return web.Response(status=201, headers={"Location": f"webhdfs://{ctx.request.host}{ctx.path}"})


async def append(ctx: Ctx) -> web.StreamResponse:
    """The data step's Location stays valid: fsspec posts every buffer to the same one."""
    ctx.params.long("buffersize", None, minimum=1)
    node = await _maybe(ctx, ctx.path)
    if node is None:
        raise Remote(404, FNF, f"Failed to append to non-existent file {ctx.path} for client {ctx.request.remote}")
    if not node.is_file:
        raise not_a_file(ctx.path)
    await ctx.vfs.access(ctx.path, W, caller=ctx.caller)  # fail before the client uploads
    if not ctx.data_step:
        return ctx.redirect()
    await ctx.vfs.append(ctx.path, body_chunks(ctx.request), caller=ctx.caller)
    return empty()


# ---- namespace changes ---------------------------------------------------------------------------


async def mkdirs(ctx: Ctx) -> web.StreamResponse:
    mode = ctx.params.permission(default=0o755)
    assert mode is not None
    try:
        await ctx.vfs.mkdir(ctx.path, caller=ctx.caller, mode=mode, parents=True)
    except errors.Exists as e:
        raise Remote(403, FAE, f"Path is not a directory: {e.path or ctx.path}") from None
    except errors.NotDir as e:
        raise Remote(403, PNDE, f"{e.path or ctx.path} (is not a directory)") from None
    return boolean(True)


async def rename(ctx: Ctx) -> web.StreamResponse:
    dst = ctx.params.path("destination")
    assert dst is not None
    dst = "/" + "/".join(split_path(dst))
    options = {o.strip().upper() for o in (ctx.params.get("renameoptions") or "").split(",") if o.strip()}
    if not options <= {"NONE", "OVERWRITE"}:
        raise BadParam(f'Invalid value for webhdfs parameter "renameoptions": {ctx.params.get("renameoptions")}')
    if options:
        await _rename2(ctx, ctx.path, dst, "OVERWRITE" in options)
        return boolean(True)
    return boolean(await _rename(ctx, ctx.path, dst))


async def _rename(ctx: Ctx, src: str, dst: str) -> bool:
    """FileSystem.rename: false (not an error) when the move cannot happen."""
    try:
        return await _try_rename(ctx, src, dst)
    except errors.NotDir:
        return False  # a file where a parent directory should be


async def _try_rename(ctx: Ctx, src: str, dst: str) -> bool:
    node = await _maybe(ctx, src, follow=False)
    if node is None or src == "/":
        return False
    if src == dst:
        return True  # as HDFS: renaming a path onto itself succeeds without change
    target = await _maybe(ctx, dst)
    if target is not None and target.is_dir:
        dst = dst.rstrip("/") + "/" + _name(src)  # into an existing directory
        if dst == src:
            return True
        target = await _maybe(ctx, dst, follow=False)
    if target is not None or _under(dst, src):
        return False
    parent = await _maybe(ctx, _parent(dst))
    if parent is None or not parent.is_dir:
        return False
    try:
        await ctx.vfs.rename(src, dst, caller=ctx.caller)
    except (errors.NotFound, errors.Exists, errors.NotEmpty, errors.IsDir, errors.NotDir, errors.Invalid):
        return False  # lost a race with another change
    return True


async def _rename2(ctx: Ctx, src: str, dst: str, overwrite: bool) -> None:
    """FileContext.rename with options: raises where rename() would return false."""
    node = await _maybe(ctx, src, follow=False)
    if node is None:
        raise Remote(404, FNF, f"rename source {src} is not found.")
    if src == dst:
        raise Remote(403, FAE, f"The source {src} and destination {dst} are the same")
    if _under(dst, src):
        raise Remote(403, IOE, f"Rename destination {dst} is a directory or file under source {src}")
    target = await _maybe(ctx, dst, follow=False)
    if target is not None:
        if not overwrite:
            raise Remote(403, FAE, f"rename destination {dst} already exists.")
        if target.is_dir != node.is_dir:
            kinds = "directories" if target.is_dir else "files"
            raise Remote(403, IOE, f"Source {src} and destination {dst} must both be {kinds}")
        if target.is_dir and await ctx.vfs.list(dst, caller=ctx.caller, limit=1):
            raise Remote(403, IOE, f"rename destination directory is not empty: {dst}")
    parent = await _maybe(ctx, _parent(dst))
    if parent is None:
        raise Remote(404, FNF, f"rename destination parent {_parent(dst)} not found.")
    if not parent.is_dir:
        raise Remote(403, PNDE, f"rename destination parent {_parent(dst)} is a file.")
    await ctx.vfs.rename(src, dst, caller=ctx.caller)


async def delete(ctx: Ctx) -> web.StreamResponse:
    recursive = ctx.params.flag("recursive", False)
    if ctx.path == "/":
        return boolean(False)  # HDFS refuses to delete the root, with false
    node = await _maybe(ctx, ctx.path, follow=False)
    if node is None:
        return boolean(False)
    try:
        await ctx.vfs.remove(ctx.path, caller=ctx.caller, recursive=recursive)
    except errors.NotEmpty:
        raise Remote(403, NOT_EMPTY, f"`{ctx.path} is non empty': Directory is not empty") from None
    except errors.NotFound:
        return boolean(False)
    return boolean(True)


async def createsymlink(ctx: Ctx) -> web.StreamResponse:
    target = ctx.params.path("destination")
    assert target is not None
    if ctx.params.flag("createparent", False) and await _maybe(ctx, _parent(ctx.path)) is None:
        await ctx.vfs.mkdir(_parent(ctx.path), caller=ctx.caller, mode=0o755, parents=True)
    if await _maybe(ctx, ctx.path, follow=False) is not None:
        raise Remote(403, FAE, f"{ctx.path} already exists")
    await ctx.vfs.symlink(target, ctx.path, caller=ctx.caller)
    return empty()


# ---- attributes ------------------------------------------------------------------------------------


async def setpermission(ctx: Ctx) -> web.StreamResponse:
    mode = ctx.params.permission(default=0o755)
    await ctx.vfs.setattr(ctx.path, caller=ctx.caller, mode=mode)
    return empty()


async def setowner(ctx: Ctx) -> web.StreamResponse:
    owner, group = ctx.params.get("owner") or None, ctx.params.get("group") or None
    if owner is None and group is None:
        raise Remote(400, IAE, "Both owner and group are empty.")
    names = ctx.vfs.perms.users
    uid = None
    if owner is not None:
        uid = names.uid_of(owner)
        if uid is None and ctx.vfs.perms.is_super(ctx.caller):  # only a superuser may give a file away
            uid = (await names.resolve(owner)).caller.uid
        if uid is None:
            raise Remote(400, IAE, f"Unknown user: {owner}")
    gid = names.gid_of(group) if group is not None else None
    if group is not None and gid is None:
        raise Remote(400, IAE, f"Unknown group: {group}")
    await ctx.vfs.setattr(ctx.path, caller=ctx.caller, uid=uid, gid=gid)
    return empty()


async def settimes(ctx: Ctx) -> web.StreamResponse:
    """Times in ms; -1 (the default) leaves one unchanged."""
    mtime = ctx.params.long("modificationtime", -1, minimum=-1)
    atime = ctx.params.long("accesstime", -1, minimum=-1)
    await ctx.vfs.setattr(
        ctx.path,
        caller=ctx.caller,
        mtime=None if mtime == -1 or mtime is None else mtime * 1_000_000,
        atime=None if atime == -1 or atime is None else atime * 1_000_000,
    )
    return empty()


async def setreplication(ctx: Ctx) -> web.StreamResponse:
    """Accepted and ignored for files (true), false for directories, as HDFS answers."""
    ctx.params.long("replication", None, minimum=1)
    node = await ctx.vfs.stat(ctx.path, caller=ctx.caller)
    return boolean(node.is_file)


async def setxattr(ctx: Ctx) -> web.StreamResponse:
    raw = ctx.params.get("xattr.name")
    if not raw:
        raise BadParam('Missing required webhdfs parameter "xattr.name"')
    name = normalize_name(raw)
    create_ok, replace_ok = parse_flags(ctx.params.get("flag"))
    value = decode_xattr(ctx.params.get("xattr.value"))
    try:
        await ctx.vfs.set_xattr(ctx.path, name, value, caller=ctx.caller, create=create_ok, replace=replace_ok)
    except errors.Exists:
        raise Remote(403, IOE, f"XAttr: {name} already exists. The REPLACE flag must be specified.") from None
    except errors.NotFound:
        await ctx.vfs.stat(ctx.path, caller=ctx.caller)  # a missing path stays a FileNotFoundException
        raise Remote(403, IOE, f"XAttr: {name} does not exist. The CREATE flag must be specified.") from None
    return empty()


async def removexattr(ctx: Ctx) -> web.StreamResponse:
    raw = ctx.params.get("xattr.name")
    if not raw:
        raise BadParam('Missing required webhdfs parameter "xattr.name"')
    name = normalize_name(raw)
    if name not in await ctx.vfs.get_xattrs(ctx.path, caller=ctx.caller):
        raise Remote(403, IOE, "No matching attributes found for remove operation")
    await ctx.vfs.remove_xattr(ctx.path, name, caller=ctx.caller)
    return empty()


# ---- POST: CONCAT, TRUNCATE --------------------------------------------------------------------------


async def concat(ctx: Ctx) -> web.StreamResponse:
    raw = ctx.params.get("sources") or ""
    sources = ["/" + "/".join(split_path(s)) for s in raw.split(",") if s.strip()]
    if not sources:
        raise Remote(400, HIAE, "Sources list is empty")
    if len(set(sources)) != len(sources):
        raise Remote(400, HIAE, "concat: sources contain duplicates")
    if ctx.path in sources:
        raise Remote(400, HIAE, f"concat: target file {ctx.path} is in the sources")
    if not await _file_or_fnf(ctx, ctx.path):
        raise not_a_file(ctx.path)
    for s in sources:
        if not await _file_or_fnf(ctx, s):
            raise Remote(400, HIAE, f"concat: source file {s} is not a file")
    await ctx.vfs.concat(ctx.path, sources, caller=ctx.caller)
    return empty()


async def _file_or_fnf(ctx: Ctx, path: str) -> bool:
    node = await _maybe(ctx, path)
    if node is None:
        raise Remote(404, FNF, f"File does not exist: {path}")
    return node.is_file


async def truncate(ctx: Ctx) -> web.StreamResponse:
    size = ctx.params.required_long("newlength", minimum=0)
    node = await _maybe(ctx, ctx.path)
    if node is None:
        raise Remote(404, FNF, f"File does not exist: {ctx.path}")
    if not node.is_file:
        raise not_a_file(ctx.path)
    if size > node.size:
        raise Remote(
            400, HIAE, f"Cannot truncate to a larger file size. Current size: {node.size}, truncate size: {size}."
        )
    await ctx.vfs.truncate(ctx.path, size, caller=ctx.caller)
    return boolean(True)


PUT_OPS: dict[str, Handler] = {
    "CREATE": create,
    "MKDIRS": mkdirs,
    "RENAME": rename,
    "SETPERMISSION": setpermission,
    "SETOWNER": setowner,
    "SETTIMES": settimes,
    "SETREPLICATION": setreplication,
    "SETXATTR": setxattr,
    "REMOVEXATTR": removexattr,
    "CREATESYMLINK": createsymlink,
}
POST_OPS: dict[str, Handler] = {"APPEND": append, "CONCAT": concat, "TRUNCATE": truncate}
DELETE_OPS: dict[str, Handler] = {"DELETE": delete}
