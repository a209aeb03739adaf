"""Argument decoders of the 22 NFSv3 procedures (RFC 1813 section 3.3), one function each.

Each takes an Unpacker positioned at the arguments and returns a NamedTuple; garbage raises
XdrError only (the server answers GARBAGE_ARGS). Handles and WRITE data come back as
memoryviews into the call's record: no copies. Names stay bytes here; the procedures decode
them (UTF-8, undecodable bytes kept by surrogateescape).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from nsd.protocols.nfs3.attrs import Sattr3, decode_nfstime3, decode_sattr3
from nsd.protocols.nfs3.const import (
    CREATE_MODES,
    FHSIZE3,
    FTYPES,
    MAX_NAME,
    MAX_PATH,
    STABLE_HOWS,
    CreateMode,
    Ftype,
    Proc,
)
from nsd.protocols.xdr import U32X2, U64, Unpacker

MAX_WRITE = 1 << 20  # wtmax: what FSINFO promises; a larger WRITE is garbage


def fh(u: Unpacker) -> memoryview:
    return u.opaque_view(FHSIZE3)


# The most frequent calls' arguments are plain tuples: a NamedTuple costs ~0.2 us more to build.
DirOp = tuple[memoryview, memoryview]  # (directory handle, name): views of the call's record


def dirop(u: Unpacker) -> DirOp:
    return u.opaque_view(FHSIZE3), u.opaque_view(MAX_NAME)


fh_args = fh  # the arguments of GETATTR, READLINK, FSSTAT, FSINFO, PATHCONF: one handle


class SetattrArgs(NamedTuple):
    fh: memoryview
    attrs: Sattr3
    guard_ctime: int | None


def setattr_args(u: Unpacker) -> SetattrArgs:
    handle = fh(u)
    attrs = decode_sattr3(u)
    guard = decode_nfstime3(u) if u.bool() else None
    return SetattrArgs(handle, attrs, guard)


class AccessArgs(NamedTuple):
    fh: memoryview
    access: int


def access_args(u: Unpacker) -> AccessArgs:
    return AccessArgs(fh(u), u.uint32())


class ReadArgs(NamedTuple):
    fh: memoryview
    offset: int
    length: int


def read_args(u: Unpacker) -> ReadArgs:
    return ReadArgs(fh(u), u.uint64(), u.uint32())


class WriteArgs(NamedTuple):
    fh: memoryview
    offset: int
    stable: int
    data: memoryview


def write_args(u: Unpacker) -> WriteArgs:
    handle = fh(u)
    offset = u.uint64()
    count = u.uint32()
    stable = u.enum(STABLE_HOWS)
    data = u.opaque_view(MAX_WRITE)
    # count and the data's length should agree; trust the shorter, as other servers do.
    return WriteArgs(handle, offset, stable, data[:count] if count < len(data) else data)


class CreateArgs(NamedTuple):
    where: DirOp
    mode: int
    attrs: Sattr3
    verf: bytes


def create_args(u: Unpacker) -> CreateArgs:
    where = dirop(u)
    mode = u.enum(CREATE_MODES)
    if mode == CreateMode.EXCLUSIVE:
        return CreateArgs(where, mode, Sattr3(), u.fixed(8))
    return CreateArgs(where, mode, decode_sattr3(u), b"")


class MkdirArgs(NamedTuple):
    where: DirOp
    attrs: Sattr3


def mkdir_args(u: Unpacker) -> MkdirArgs:
    return MkdirArgs(dirop(u), decode_sattr3(u))


class SymlinkArgs(NamedTuple):
    where: DirOp
    attrs: Sattr3
    target: bytes


def symlink_args(u: Unpacker) -> SymlinkArgs:
    return SymlinkArgs(dirop(u), decode_sattr3(u), u.string(MAX_PATH))


class MknodArgs(NamedTuple):
    where: DirOp
    type: int
    attrs: Sattr3 | None  # for the special types (devices, sockets, FIFOs)


def mknod_args(u: Unpacker) -> MknodArgs:
    where = dirop(u)
    kind = u.enum(FTYPES)
    attrs = None
    if kind in (Ftype.CHR, Ftype.BLK):
        attrs = decode_sattr3(u)
        u.struct(U32X2)  # specdata3
    elif kind in (Ftype.SOCK, Ftype.FIFO):
        attrs = decode_sattr3(u)
    return MknodArgs(where, kind, attrs)


class RenameArgs(NamedTuple):
    src: DirOp
    dst: DirOp


def rename_args(u: Unpacker) -> RenameArgs:
    return RenameArgs(dirop(u), dirop(u))


class LinkArgs(NamedTuple):
    fh: memoryview
    link: DirOp


def link_args(u: Unpacker) -> LinkArgs:
    return LinkArgs(fh(u), dirop(u))


class ReaddirArgs(NamedTuple):
    fh: memoryview
    cookie: int
    verf: bytes
    dircount: int
    maxcount: int


def readdir_args(u: Unpacker) -> ReaddirArgs:
    handle = fh(u)
    cookie = u.uint64()
    verf = u.fixed(8)
    count = u.uint32()
    return ReaddirArgs(handle, cookie, verf, count, count)


def readdirplus_args(u: Unpacker) -> ReaddirArgs:
    handle = fh(u)
    cookie = u.uint64()
    verf = u.fixed(8)
    dircount, maxcount = u.struct(U32X2)
    return ReaddirArgs(handle, cookie, verf, dircount, maxcount)


class CommitArgs(NamedTuple):
    fh: memoryview
    offset: int
    length: int


def commit_args(u: Unpacker) -> CommitArgs:
    return CommitArgs(fh(u), u.struct(U64)[0], u.uint32())


def no_args(u: Unpacker) -> None:
    return None


DECODERS: dict[Proc, Callable[[Unpacker], Any]] = {
    Proc.NULL: no_args,
    Proc.GETATTR: fh_args,
    Proc.SETATTR: setattr_args,
    Proc.LOOKUP: dirop,
    Proc.ACCESS: access_args,
    Proc.READLINK: fh_args,
    Proc.READ: read_args,
    Proc.WRITE: write_args,
    Proc.CREATE: create_args,
    Proc.MKDIR: mkdir_args,
    Proc.SYMLINK: symlink_args,
    Proc.MKNOD: mknod_args,
    Proc.REMOVE: dirop,
    Proc.RMDIR: dirop,
    Proc.RENAME: rename_args,
    Proc.LINK: link_args,
    Proc.READDIR: readdir_args,
    Proc.READDIRPLUS: readdirplus_args,
    Proc.FSSTAT: fh_args,
    Proc.FSINFO: fh_args,
    Proc.PATHCONF: fh_args,
    Proc.COMMIT: commit_args,
}
