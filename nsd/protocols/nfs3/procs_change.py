"""NFSv3 procedures that change the namespace or attributes: SETATTR, CREATE, MKDIR, SYMLINK,
MKNOD, REMOVE, RMDIR, RENAME, LINK.

Each resolves its handle(s), checks the export is writable, and calls the vfs as the (squashed)
caller (the vfs checks permissions and answers once the change is durable) while watching what
it changes, so that the reply's wcc_data holds the attributes from just before and just after
this call's own change (nsd.core.wcc), on failure too.
"""

from __future__ import annotations

import stat
import struct
from collections.abc import Callable

from nsd.core.permissions import NOW
from nsd.core.wcc import Watch
from nsd.namespace import Inode
from nsd.protocols.nfs3 import args
from nsd.protocols.nfs3.attrs import SERVER_TIME, Sattr3
from nsd.protocols.nfs3.const import CreateMode, Ftype, NfsError, Status
from nsd.protocols.nfs3.service import OK, Failure, Nfs3Service, Target, decode_name, status_word
from nsd.protocols.rpc.server import CallContext, ReplyBody
from nsd.protocols.xdr import U32
from nsd.vfs import Caller

_NS = 1_000_000_000
_VERF = struct.Struct(">II")
_FH_FOLLOWS = U32.pack(1)


async def _dir(s: Nfs3Service, ctx: CallContext, fh: memoryview) -> Target:
    d = await s.resolve(ctx, fh)
    if not d.node.is_dir:
        raise NfsError(Status.NOTDIR)
    return d


def _may_change_entries(d: Target) -> None:
    d.require_writable()  # the export's ro/rw; permission bits are the vfs's to check


def _post_op_fh(s: Nfs3Service, d: Target, node: Inode) -> bytes:
    fh = s.handle(d.export, node)
    return _FH_FOLLOWS + U32.pack(len(fh)) + fh


def _created(s: Nfs3Service, d: Target, w: Watch, node: Inode) -> bytes:
    """CREATE/MKDIR/SYMLINK3resok: post_op_fh3, post_op_attr, wcc_data of the directory."""
    return OK + _post_op_fh(s, d, node) + s.attr_of(d.export, s.vfs.peek(node.ino)) + s.wcc(w, d)


async def _apply_sattr(
    s: Nfs3Service, t: Target, a: Sattr3, *, new: bool = False, guard: Callable[[Inode], None] | None = None
) -> None:
    """Apply a sattr3 to `t` as its caller (for a new object, mode was applied at creation).
    `guard` is checked by the vfs atomically with the change (or here, when nothing changes)."""
    node = t.node
    mode = None if new else a.mode
    atime = NOW if a.atime == SERVER_TIME else a.atime
    mtime = NOW if a.mtime == SERVER_TIME else a.mtime
    uid = a.uid if a.uid is not None and a.uid != node.uid else None
    gid = a.gid if a.gid is not None and a.gid != node.gid else None
    if (mode, uid, gid, a.size, atime, mtime) == (None, None, None, None, None, None):
        if guard is not None:
            guard(node)
        return
    if a.size is not None:
        s.slow_reads.forget(t.ino)
    await s.vfs.setattr_at(
        t.ino, caller=t.caller, mode=mode, uid=uid, gid=gid, size=a.size, atime=atime, mtime=mtime, precondition=guard
    )


def _ctime_guard(ctime: int) -> Callable[[Inode], None]:
    def check(node: Inode) -> None:
        if node.ctime != ctime:
            raise NfsError(Status.NOT_SYNC, "ctime guard does not match")

    return check


async def setattr3(s: Nfs3Service, ctx: CallContext) -> ReplyBody:
    a = args.setattr_args(ctx.args)
    t: Target | None = None
    w = Watch()
    try:
        t = await s.resolve(ctx, a.fh)
        t.require_writable()
        guard = None if a.guard_ctime is None else _ctime_guard(a.guard_ctime)
        with w.on(t.ino):
            await _apply_sattr(s, t, a.attrs, guard=guard)
    except Failure as e:
        return status_word(e) + s.wcc(w, t)
    return OK + s.wcc(w, t)


def _as_child(d: Target, node: Inode, caller: Caller) -> Target:
    return Target(d.export, d.rule, node, caller)


async def create3(s: Nfs3Service, ctx: CallContext) -> ReplyBody:
    a = args.create_args(ctx.args)
    dir_fh, raw_name = a.where
    d: Target | None = None
    w = Watch()
    try:
        d = await _dir(s, ctx, dir_fh)
        _may_change_entries(d)
        name = decode_name(raw_name)
        who = d.caller
        mode = 0o644 if a.attrs.mode is None else a.attrs.mode & 0o7777
        with w.on(d.ino):
            if a.mode == CreateMode.EXCLUSIVE:
                node = await _create_exclusive(s, d, name, a.verf)
            else:
                existed = a.mode == CreateMode.UNCHECKED and await _exists(s, d, name)
                excl = a.mode == CreateMode.GUARDED
                node = await s.vfs.create(d.ino, name, caller=who, mode=mode, exclusive=excl)
                await _apply_sattr(s, _as_child(d, node, who), a.attrs, new=not existed)
    except Failure as e:
        return status_word(e) + s.wcc(w, d)
    return _created(s, d, w, node)


async def _exists(s: Nfs3Service, d: Target, name: str) -> bool:
    try:
        await s.vfs.lookup(d.ino, name, caller=d.caller)
    except Failure:
        return False
    return True


async def _create_exclusive(s: Nfs3Service, d: Target, name: str, verf: bytes) -> Inode:
    """EXCLUSIVE create: the verifier is kept in atime/mtime seconds (until the client's SETATTR),
    so a retransmit (even after a restart) finds its own file and gets OK; anyone else gets EXIST."""
    hi, lo = _VERF.unpack(verf)
    want = (hi * _NS, lo * _NS)
    try:
        existing: Inode | None = await s.vfs.lookup(d.ino, name, caller=d.caller)
    except Failure:
        existing = None
    if existing is not None:
        if existing.is_file and (existing.atime, existing.mtime) == want:
            return existing
        raise NfsError(Status.EXIST)
    node = await s.vfs.create(d.ino, name, caller=d.caller, mode=0o644, exclusive=True)
    return await s.vfs.setattr_at(node.ino, caller=d.caller, atime=want[0], mtime=want[1])


async def mkdir3(s: Nfs3Service, ctx: CallContext) -> ReplyBody:
    a = args.mkdir_args(ctx.args)
    dir_fh, raw_name = a.where
    d: Target | None = None
    w = Watch()
    try:
        d = await _dir(s, ctx, dir_fh)
        _may_change_entries(d)
        mode = 0o755 if a.attrs.mode is None else a.attrs.mode & 0o7777
        with w.on(d.ino):
            node = await s.vfs.mkdir_at(d.ino, decode_name(raw_name), caller=d.caller, mode=mode)
            await _apply_sattr(s, _as_child(d, node, d.caller), a.attrs, new=True)
    except Failure as e:
        return status_word(e) + s.wcc(w, d)
    return _created(s, d, w, node)


async def symlink3(s: Nfs3Service, ctx: CallContext) -> ReplyBody:
    a = args.symlink_args(ctx.args)
    dir_fh, raw_name = a.where
    d: Target | None = None
    w = Watch()
    try:
        d = await _dir(s, ctx, dir_fh)
        _may_change_entries(d)
        target = decode_name(a.target)
        with w.on(d.ino):
            node = await s.vfs.symlink_at(d.ino, decode_name(raw_name), target, caller=d.caller)
    except Failure as e:
        return status_word(e) + s.wcc(w, d)
    return _created(s, d, w, node)


async def mknod3(s: Nfs3Service, ctx: CallContext) -> ReplyBody:
    """FIFOs and sockets (kept in the namespace only, as symlinks); device files are NOTSUPP."""
    a = args.mknod_args(ctx.args)
    dir_fh, raw_name = a.where
    d: Target | None = None
    w = Watch()
    try:
        d = await _dir(s, ctx, dir_fh)
        _may_change_entries(d)
        if a.type in (Ftype.REG, Ftype.DIR, Ftype.LNK):
            raise NfsError(Status.BADTYPE, "MKNOD makes only special files")
        if a.type not in _SPECIAL or a.attrs is None:
            raise NfsError(Status.NOTSUPP, "device files are not supported")
        mode = 0o644 if a.attrs.mode is None else a.attrs.mode & 0o7777
        with w.on(d.ino):
            node = await s.vfs.mknod_at(d.ino, decode_name(raw_name), _SPECIAL[a.type], caller=d.caller, mode=mode)
            await _apply_sattr(s, _as_child(d, node, d.caller), a.attrs, new=True)
    except Failure as e:
        return status_word(e) + s.wcc(w, d)
    return _created(s, d, w, node)


_SPECIAL: dict[int, int] = {Ftype.FIFO: stat.S_IFIFO, Ftype.SOCK: stat.S_IFSOCK}


async def remove3(s: Nfs3Service, ctx: CallContext) -> ReplyBody:
    dir_fh, raw_name = args.dirop(ctx.args)
    d: Target | None = None
    w = Watch()
    try:
        d = await _dir(s, ctx, dir_fh)
        _may_change_entries(d)
        with w.on(d.ino):
            await s.vfs.remove_at(d.ino, decode_name(raw_name), caller=d.caller)
    except Failure as e:
        return status_word(e) + s.wcc(w, d)
    return OK + s.wcc(w, d)


async def rmdir3(s: Nfs3Service, ctx: CallContext) -> ReplyBody:
    dir_fh, raw_name = args.dirop(ctx.args)
    d: Target | None = None
    w = Watch()
    try:
        d = await _dir(s, ctx, dir_fh)
        _may_change_entries(d)
        name = decode_name(raw_name)
        if name == "..":
            raise NfsError(Status.NOTEMPTY)
        with w.on(d.ino):
            await s.vfs.rmdir_at(d.ino, name, caller=d.caller)
    except Failure as e:
        return status_word(e) + s.wcc(w, d)
    return OK + s.wcc(w, d)


async def rename3(s: Nfs3Service, ctx: CallContext) -> ReplyBody:
    a = args.rename_args(ctx.args)
    (src_fh, src_raw), (dst_fh, dst_raw) = a.src, a.dst
    src: Target | None = None
    dst: Target | None = None
    w = Watch()
    try:
        src = await _dir(s, ctx, src_fh)
        dst = await _dir(s, ctx, dst_fh)
        if src.export.id != dst.export.id:
            raise NfsError(Status.XDEV)
        _may_change_entries(src)
        _may_change_entries(dst)
        src_name, dst_name = decode_name(src_raw), decode_name(dst_raw)
        with w.on(src.ino, dst.ino):
            await s.vfs.rename_at(src.ino, src_name, dst.ino, dst_name, caller=src.caller)
    except Failure as e:
        return status_word(e) + s.wcc(w, src) + s.wcc(w, dst)
    return OK + s.wcc(w, src) + s.wcc(w, dst)


async def link3(s: Nfs3Service, ctx: CallContext) -> ReplyBody:
    a = args.link_args(ctx.args)
    dir_fh, raw_name = a.link
    t: Target | None = None
    d: Target | None = None
    w = Watch()
    try:
        t = await s.resolve(ctx, a.fh)
        d = await _dir(s, ctx, dir_fh)
        if t.export.id != d.export.id:
            raise NfsError(Status.XDEV)
        _may_change_entries(d)
        with w.on(d.ino):
            await s.vfs.link_at(t.ino, d.ino, decode_name(raw_name), caller=d.caller)
    except Failure as e:
        return status_word(e) + s.maybe_attr(t) + s.wcc(w, d)
    return OK + s.attr(t) + s.wcc(w, d)
