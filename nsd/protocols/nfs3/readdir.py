"""READDIR and READDIRPLUS: the namespace's cookie order, sized exactly to the client's limits.

Cookies: 1 is ".", 2 is "..", and every entry's cookie is the namespace's hash of its name
(never below 3), so cookies are unique, non-zero and stable while the directory changes; the
cookie verifier is always zero (no cookie ever becomes invalid).

Sizing counts every byte of the reply body, status included, against `count` (READDIR) or
`maxcount` (READDIRPLUS); READDIRPLUS also counts the fileid, name and cookie of each entry
against `dircount`. An entry that does not fit ends the reply with eof false; TOOSMALL comes
only when not even the first remaining entry fits.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator

from nsd.core.permissions import R
from nsd.namespace import Inode
from nsd.protocols.nfs3 import args
from nsd.protocols.nfs3.attrs import POST_OP_ATTR_SIZE, post_op_attr
from nsd.protocols.nfs3.const import NfsError, Status
from nsd.protocols.nfs3.handles import FH_SIZE
from nsd.protocols.nfs3.service import OK, Failure, Nfs3Service, Target, status_word
from nsd.protocols.rpc.server import CallContext, ReplyBody
from nsd.protocols.xdr import pad_len, padding

MAX_REPLY = 1 << 20
BATCH = 512
ZERO_VERF = bytes(8)
_ENTRY_HEAD = struct.Struct(">IQI")  # value_follows, fileid, name length
_COOKIE = struct.Struct(">Q")
_FH_HEAD = struct.Struct(">II")  # handle_follows, handle length
_TAIL_EOF = struct.Struct(">II")  # no more entries, eof

# status + dir_attributes + cookieverf + (value_follows = FALSE) + eof
FIXED = 4 + POST_OP_ATTR_SIZE + 8 + 4 + 4
PLUS_EXTRA = POST_OP_ATTR_SIZE + 4 + 4 + FH_SIZE  # name_attributes + name_handle


async def _entries(s: Nfs3Service, d: Target, cookie: int) -> AsyncIterator[tuple[int, str, Inode]]:
    """Entries after `cookie`, "." and ".." first, fetched from the namespace in batches."""
    if cookie == 0:
        yield 1, ".", d.node
    if cookie <= 1:
        yield 2, "..", s.parent(d)
    after = cookie if cookie > 2 else 0
    while True:
        batch, eof = await s.vfs.readdir(d.ino, after, BATCH, caller=d.caller)
        for item in batch:
            yield item
        if eof or not batch:
            return
        after = batch[-1][0]


async def _readdir(s: Nfs3Service, ctx: CallContext, a: args.ReaddirArgs, plus: bool) -> ReplyBody:
    d: Target | None = None
    try:
        d = await s.resolve(ctx, a.fh)
        if not d.node.is_dir:
            raise NfsError(Status.NOTDIR)
        s.vfs.perms.require(d.node, d.caller, R)  # before "." and ".." go out
        dir_attr = s.attr_of(d.export, d.node)
        budget = min(a.maxcount, MAX_REPLY) - FIXED
        dir_budget = a.dircount if plus and a.dircount else 1 << 62
        parts: list[bytes] = [OK, dir_attr, ZERO_VERF]
        eof = True
        count = 0
        async for cookie, name, node in _entries(s, d, a.cookie):
            raw = s.name_bytes(name)
            dir_size = 20 + pad_len(len(raw))
            size = 4 + dir_size + (PLUS_EXTRA if plus else 0)
            if size > budget or dir_size > dir_budget:
                eof = False
                break
            budget -= size
            dir_budget -= dir_size
            count += 1
            parts.append(_ENTRY_HEAD.pack(1, node.ino, len(raw)) + raw + padding(len(raw)) + _COOKIE.pack(cookie))
            if plus:
                parts.append(post_op_attr(node, d.export.id))  # a stream of distinct inodes: not cached
                parts.append(_FH_HEAD.pack(1, FH_SIZE) + s.handle(d.export, node))
        if count == 0 and not eof:
            raise NfsError(Status.TOOSMALL, "not even one entry fits")
    except Failure as e:
        return status_word(e) + s.maybe_attr(d)
    parts.append(_TAIL_EOF.pack(0, 1 if eof else 0))
    return b"".join(parts)


async def readdir3(s: Nfs3Service, ctx: CallContext) -> ReplyBody:
    return await _readdir(s, ctx, args.readdir_args(ctx.args), plus=False)


async def readdirplus3(s: Nfs3Service, ctx: CallContext) -> ReplyBody:
    return await _readdir(s, ctx, args.readdirplus_args(ctx.args), plus=True)
