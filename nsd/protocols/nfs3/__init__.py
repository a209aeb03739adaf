"""NFSv3 (RFC 1813): one function per procedure, bound to a service by one dispatch table."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from nsd.protocols.nfs3 import procs_change, procs_data, procs_meta, readdir
from nsd.protocols.nfs3.attrs import NO_ATTR, NO_WCC
from nsd.protocols.nfs3.const import PROGRAM, VERSION, Proc, Status
from nsd.protocols.nfs3.service import Nfs3Service
from nsd.protocols.rpc.server import Procedure, ProcFunc, Program, ReplyBody

# procedure -> (function, non-idempotent: goes through the duplicate request cache)
DISPATCH = {
    Proc.NULL: (procs_meta.null, False),
    Proc.GETATTR: (procs_meta.getattr3, False),
    Proc.SETATTR: (procs_change.setattr3, True),
    Proc.LOOKUP: (procs_meta.lookup3, False),
    Proc.ACCESS: (procs_meta.access3, False),
    Proc.READLINK: (procs_meta.readlink3, False),
    Proc.READ: (procs_data.read3, False),
    Proc.WRITE: (procs_data.write3, False),
    Proc.CREATE: (procs_change.create3, True),
    Proc.MKDIR: (procs_change.mkdir3, True),
    Proc.SYMLINK: (procs_change.symlink3, True),
    Proc.MKNOD: (procs_change.mknod3, True),
    Proc.REMOVE: (procs_change.remove3, True),
    Proc.RMDIR: (procs_change.rmdir3, True),
    Proc.RENAME: (procs_change.rename3, True),
    Proc.LINK: (procs_change.link3, True),
    Proc.READDIR: (readdir.readdir3, False),
    Proc.READDIRPLUS: (readdir.readdirplus3, False),
    Proc.FSSTAT: (procs_meta.fsstat3, False),
    Proc.FSINFO: (procs_meta.fsinfo3, False),
    Proc.PATHCONF: (procs_meta.pathconf3, False),
    Proc.COMMIT: (procs_data.commit3, False),
}


# What each procedure's failure body holds after its status, without attributes (RFC 1813).
_FAILURE_TAIL = {
    Proc.GETATTR: b"",
    Proc.SETATTR: NO_WCC,
    Proc.LOOKUP: NO_ATTR,
    Proc.ACCESS: NO_ATTR,
    Proc.READLINK: NO_ATTR,
    Proc.READ: NO_ATTR,
    Proc.WRITE: NO_WCC,
    Proc.CREATE: NO_WCC,
    Proc.MKDIR: NO_WCC,
    Proc.SYMLINK: NO_WCC,
    Proc.MKNOD: NO_WCC,
    Proc.REMOVE: NO_WCC,
    Proc.RMDIR: NO_WCC,
    Proc.RENAME: NO_WCC + NO_WCC,
    Proc.LINK: NO_ATTR + NO_WCC,
    Proc.READDIR: NO_ATTR,
    Proc.READDIRPLUS: NO_ATTR,
    Proc.FSSTAT: NO_ATTR,
    Proc.FSINFO: NO_ATTR,
    Proc.PATHCONF: NO_ATTR,
    Proc.COMMIT: NO_WCC,
}
_JUKEBOX = Status.JUKEBOX.to_bytes(4, "big")
BUSY = {int(p): _JUKEBOX + tail for p, tail in _FAILURE_TAIL.items()}


def busy(proc: int) -> bytes:
    """NFS3ERR_JUKEBOX for `proc`, with its failure body: the reply when the server is overloaded."""
    return BUSY[proc]


def program(service: Nfs3Service, wrap: Callable[[ProcFunc, int], ProcFunc] | None = None) -> Program:
    """The NFS program (100003 v3) served by `service`; `wrap` (cluster mode) may take each
    procedure's calls elsewhere."""
    procs = {}
    for proc, (func, cached) in DISPATCH.items():
        bound: ProcFunc = partial(func, service)
        procs[int(proc)] = Procedure(wrap(bound, proc) if wrap else bound, cached=cached, name=proc.name)
    return Program(PROGRAM, VERSION, procs, name="nfs3", error_of=error_of, busy=busy)


_OK = b"\0\0\0\0"


def error_of(body: ReplyBody) -> str | None:
    """The nfsstat3 a reply reports, by name (None for NFS3_OK and for NULL's empty body).
    On every reply: a successful one in bytes is told by its first word alone."""
    if type(body) is bytes and (body.startswith(_OK) or not body):
        return None
    first = body if isinstance(body, bytes | bytearray | memoryview) else (body[0] if body else b"")
    if len(first) < 4:
        return None
    code = int.from_bytes(first[:4], "big")
    if code == 0:
        return None
    try:
        return f"NFS3ERR_{Status(code).name}"
    except ValueError:
        return str(code)


__all__ = ["DISPATCH", "Nfs3Service", "program"]
