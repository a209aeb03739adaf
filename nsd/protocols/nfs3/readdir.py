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

import asyncio
import contextlib
import struct

from nsd.core.permissions import R
from nsd.namespace import Inode
from nsd.protocols.nfs3 import args
from nsd.protocols.nfs3.attrs import POST_OP_ATTR_SIZE
from nsd.protocols.nfs3.const import NfsError, Status
from nsd.protocols.nfs3.entries import Page, entry3
from nsd.protocols.nfs3.handles import FH_SIZE
from nsd.protocols.nfs3.service import OK, Failure, Nfs3Service, Target, status_word
from nsd.protocols.rpc.server import CallContext, ReplyBody

MAX_REPLY = 1 << 20
BATCH = 512  # entries asked of the namespace at most at a time
ZERO_VERF = bytes(8)
_TAIL_EOF = struct.Struct(">II")  # no more entries, eof

# status + dir_attributes + cookieverf + (value_follows = FALSE) + eof
FIXED = 4 + POST_OP_ATTR_SIZE + 8 + 4 + 4
PLUS_EXTRA = POST_OP_ATTR_SIZE + 4 + 4 + FH_SIZE  # name_attributes + name_handle
MIN_DIR_SIZE = 8 + 4 + 4 + 8  # fileid, name length, the shortest name padded, cookie


def _dots(s: Nfs3Service, d: Target, cookie: int) -> list[tuple[int, str, Inode]]:
    """The "." and ".." entries not yet listed after `cookie`."""
    if cookie >= 2:
        return []
    return [(1, ".", d.node), (2, "..", s.parent(d))][cookie:]


async def _readdir(s: Nfs3Service, ctx: CallContext, a: args.ReaddirArgs, plus: bool) -> ReplyBody:
    d: Target | None = None
    try:
        d = await s.resolve(ctx, a.fh)
        if not d.node.is_dir:
            raise NfsError(Status.NOTDIR)
        s.vfs.perms.require(d.node, d.caller, R)  # before "." and ".." go out
        dir_attr = s.attr_of(d.export, d.node)
        sizes = (a.maxcount, a.dircount if plus else -1)
        page, after = await _page(s, d, a.cookie, sizes, plus)
    except Failure as e:
        return status_word(e) + s.maybe_attr(d)
    if after is not None:
        _read_ahead(s, d, after, sizes, plus)
    return b"".join((OK, dir_attr, ZERO_VERF, page))


async def _page(s: Nfs3Service, d: Target, cookie: int, sizes: tuple[int, int], plus: bool) -> Page:
    """The entries part of a reply from `cookie` on, sized to the client's (maxcount, dircount)
    (-1: READDIR), and the cookie to go on from unless it ends the directory.

    A page after the first comes from the page cache while nothing changed: listing a directory
    again, many clients listing one, or the page `_read_ahead` built, skip the namespace and
    the entries."""
    version = s.vfs.version
    key = (d.ino, d.export.id, cookie, *sizes)
    if cookie > 2:
        hit = s.pages.get(version, key)
        if hit is not None:
            return hit
    maxcount, dircount = sizes
    budget = min(maxcount, MAX_REPLY) - FIXED
    dir_budget = dircount if plus and dircount else 1 << 62
    extra = PLUS_EXTRA if plus else 0
    # No more entries than the shortest ones would fill: the namespace builds only those.
    limit = max(1, min(BATCH, budget // (4 + MIN_DIR_SIZE + extra) + 1, dir_budget // MIN_DIR_SIZE + 1))
    fsid = d.export.id
    encode = s.entries.entryplus3 if plus else entry3
    parts: list[bytes] = []
    batch, more = _dots(s, d, cookie), True
    after = cookie if cookie > 2 else 0  # 0: from the start, which syncs with the UFS
    last = cookie
    full = False
    while not full and (batch or more):
        if not batch:
            batch, eof = await s.vfs.readdir(d.ino, after, limit, caller=d.caller)
            more = not eof and bool(batch)
            if not batch:
                break
            after = batch[-1][0]
        for entry_cookie, name, node in batch:
            wire, dir_size = encode(entry_cookie, name, node, fsid)
            if len(wire) > budget or dir_size > dir_budget:
                full = True
                break
            budget -= len(wire)
            dir_budget -= dir_size
            parts.append(wire)
            last = entry_cookie
        batch = []
    if full and not parts:
        raise NfsError(Status.TOOSMALL, "not even one entry fits")
    parts.append(_TAIL_EOF.pack(0, 0 if full else 1))
    page = (b"".join(parts), last if full else None)
    if cookie > 2 and s.vfs.version == version:  # nothing changed while it was built
        s.pages.put(version, key, page, len(page[0]))
    return page


def _read_ahead(s: Nfs3Service, d: Target, cookie: int, sizes: tuple[int, int], plus: bool) -> None:
    """Build the page after `cookie` while the client reads this one: its next call, which
    comes a round trip later, finds it in the page cache. One page ahead of a listing, never
    past its end."""
    version = s.vfs.version
    if cookie <= 2 or s.pages.has(version, (d.ino, d.export.id, cookie, *sizes)):
        return
    task = asyncio.get_running_loop().create_task(_page_ahead(s, d, cookie, sizes, plus, version))
    s.ahead.add(task)
    task.add_done_callback(s.ahead.discard)


async def _page_ahead(s: Nfs3Service, d: Target, cookie: int, sizes: tuple[int, int], plus: bool, version: int) -> None:
    # Not if the namespace moved since the reply: under a stream of changes the page would be
    # stale before it is asked for. A failure answers no one; the call itself will say why.
    if s.vfs.version == version:
        with contextlib.suppress(*Failure):
            await _page(s, d, cookie, sizes, plus)


async def readdir3(s: Nfs3Service, ctx: CallContext) -> ReplyBody:
    return await _readdir(s, ctx, args.readdir_args(ctx.args), plus=False)


async def readdirplus3(s: Nfs3Service, ctx: CallContext) -> ReplyBody:
    return await _readdir(s, ctx, args.readdirplus_args(ctx.args), plus=True)
