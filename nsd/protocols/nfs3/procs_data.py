"""READ, WRITE and COMMIT: file content.

READ replies are returned as [header, data, padding] so the driver writes the data buffer as
it came from the vfs, never joined into one bytes object; a read that outlasts the service's
patience is answered JUKEBOX and finished for the retry (see slowreads). WRITE honours stable_how: UNSTABLE
data is staged (and answered UNSTABLE, possibly while its bytes still go to the stage file: a
failure then fails the file's next change or COMMIT); DATA_SYNC and FILE_SYNC are sealed before the reply
and answered FILE_SYNC. WRITE and COMMIT carry the same verifier, new at each daemon start.
"""

from __future__ import annotations

import struct

from nsd.core.permissions import R
from nsd.core.wcc import Watch
from nsd.protocols.nfs3 import args
from nsd.protocols.nfs3.const import NfsError, StableHow, Status
from nsd.protocols.nfs3.service import OK, Failure, Nfs3Service, Target, status_word
from nsd.protocols.nfs3.slowreads import Jukebox
from nsd.protocols.rpc.server import CallContext, ReplyBody
from nsd.protocols.xdr import U32, padding

MAX_READ = 1 << 20

_READ_TAIL = struct.Struct(">III")  # count, eof, opaque length
_WRITE_TAIL = struct.Struct(">II")  # count, committed


async def read3(s: Nfs3Service, ctx: CallContext) -> ReplyBody:
    a = args.read_args(ctx.args)
    t: Target | None = None
    try:
        t = await s.resolve(ctx, a.fh)
        if t.node.is_dir:
            raise NfsError(Status.ISDIR)
        ino, count, who = t.ino, min(a.length, MAX_READ), t.caller
        s.vfs.perms.require_data(t.node, who, R)  # before a parked read of someone else's could answer
        data, eof = await s.slow_reads.read(
            (ino, a.offset, count), lambda: s.vfs.read_at(ino, a.offset, count, caller=who)
        )
    except Jukebox:
        return [U32.pack(Status.JUKEBOX) + s.maybe_attr(t)]
    except Failure as e:
        return [status_word(e) + s.maybe_attr(t)]
    head = OK + s.attr(t) + _READ_TAIL.pack(len(data), 1 if eof else 0, len(data))
    pad = padding(len(data))
    return [head, data, pad] if pad else [head, data]


async def write3(s: Nfs3Service, ctx: CallContext) -> ReplyBody:
    a = args.write_args(ctx.args)
    t: Target | None = None
    w = Watch()
    try:
        t = await s.resolve(ctx, a.fh)
        t.require_writable()
        if t.node.is_dir:
            raise NfsError(Status.ISDIR)
        stable = a.stable != StableHow.UNSTABLE
        s.slow_reads.forget(t.ino)
        with w.on(t.ino):
            await s.vfs.write_at(t.ino, a.offset, a.data, stable=stable, caller=t.caller)
    except Failure as e:
        return status_word(e) + s.wcc(w, t)
    committed = StableHow.FILE_SYNC if stable else StableHow.UNSTABLE
    return OK + s.wcc(w, t) + _WRITE_TAIL.pack(len(a.data), committed) + s.vfs.write_verifier


async def commit3(s: Nfs3Service, ctx: CallContext) -> ReplyBody:
    a = args.commit_args(ctx.args)
    t: Target | None = None
    w = Watch()
    try:
        t = await s.resolve(ctx, a.fh)
        if not t.node.is_file:
            raise NfsError(Status.ISDIR if t.node.is_dir else Status.INVAL)
        with w.on(t.ino):
            await s.vfs.commit(t.ino, caller=t.caller)
    except Failure as e:
        return status_word(e) + s.wcc(w, t)
    return OK + s.wcc(w, t) + s.vfs.write_verifier
