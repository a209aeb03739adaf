"""WebHDFS GET operations: one async function per op, each (Ctx) -> response."""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

from nsd.core.permissions import parse_fsaction
from nsd.namespace import DirInode, Inode
from nsd.protocols.http.readahead import read_ahead
from nsd.protocols.webhdfs import encode as js
from nsd.protocols.webhdfs.checksum import Md5Md5Crc32c
from nsd.protocols.webhdfs.context import IOE, Ctx, Handler, Remote, empty, json_response, not_a_file, read_stream
from nsd.protocols.webhdfs.params import LONG_MAX
from nsd.protocols.webhdfs.xattr import normalize_name

LIST_BATCH = 1000  # HDFS's dfs.ls.limit
OPEN_CHUNK = 4 << 20  # fewer, larger reads: each one is a worker-thread round trip


async def _file(ctx: Ctx) -> Inode:
    """The file at the request's path, which the caller may read (HDFS checks READ here)."""
    node = await ctx.vfs.stat(ctx.path, caller=ctx.caller)
    if not node.is_file:
        raise not_a_file(ctx.path)
    return await ctx.vfs.open_read(ctx.path, caller=ctx.caller)


async def open_(ctx: Ctx) -> web.StreamResponse:
    """Two steps; the data step streams with a Content-Length, always 200 (never 206)."""
    offset = ctx.params.long("offset", 0, minimum=0) or 0
    length = ctx.params.long("length", None, minimum=0)
    ctx.params.long("buffersize", None, minimum=1)
    node = await _file(ctx)
    if offset > node.size:
        raise Remote(403, IOE, f"Offset={offset} out of the range [0, {node.size}]")
    if not ctx.data_step:
        return ctx.redirect(ctx.data_base_url(node, offset))  # in a cluster: the node holding the data
    end = node.size if length is None else min(node.size, offset + length)
    stream = read_ahead(ctx.vfs, node.ino, offset, end, ctx.path, caller=ctx.caller, chunk=OPEN_CHUNK)
    async with contextlib.aclosing(stream):
        first = await anext(stream, b"")  # errors surface before the 200 goes out
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        response.content_length = end - offset
        await response.prepare(ctx.request)
        try:
            if first:
                await response.write(first)
            async for chunk in stream:
                await response.write(chunk)
            await response.write_eof()
        except ConnectionError:
            pass  # columnar readers hang up mid-stream on purpose
    return response


async def getfilestatus(ctx: Ctx) -> web.StreamResponse:
    node = await ctx.vfs.stat(ctx.path, caller=ctx.caller)
    return json_response({"FileStatus": js.file_status(node, "", ctx.settings.block_size, ctx.vfs.perms.users)})


async def liststatus(ctx: Ctx) -> web.StreamResponse:
    entries = await ctx.vfs.list(ctx.path, caller=ctx.caller)
    return json_response({"FileStatuses": js.file_statuses(entries, ctx.settings.block_size, ctx.vfs.perms.users)})


async def liststatus_batch(ctx: Ctx) -> web.StreamResponse:
    """LIST_BATCH entries after `startAfter` (a name) and how many remain after them."""
    node = await ctx.vfs.stat(ctx.path, caller=ctx.caller)
    start_after = ctx.params.get("startafter") or None
    # One more than a batch: a directory still being listed from its UFS may hold fewer entries
    # than it will, and clients stop at remainingEntries 0, so "more" must come from the listing.
    entries = await ctx.vfs.list(ctx.path, caller=ctx.caller, start_after=start_after, limit=LIST_BATCH + 1)
    more = len(entries) > LIST_BATCH
    entries = entries[:LIST_BATCH]
    remaining = 0
    if isinstance(node, DirInode) and more:
        remaining = max(1, len(node.children) - node.children.bisect_right(entries[-1][0]))
    body = {
        "DirectoryListing": {
            "partialListing": {"FileStatuses": js.file_statuses(entries, ctx.settings.block_size, ctx.vfs.perms.users)},
            "remainingEntries": remaining,
        }
    }
    return json_response(body)


async def getcontentsummary(ctx: Ctx) -> web.StreamResponse:
    return json_response(js.content_summary(*await ctx.vfs.content_summary(ctx.path, caller=ctx.caller)))


async def getquotausage(ctx: Ctx) -> web.StreamResponse:
    return json_response(js.quota_usage(*await ctx.vfs.content_summary(ctx.path, caller=ctx.caller)))


async def getfilechecksum(ctx: Ctx) -> web.StreamResponse:
    """Two steps, like OPEN; the data step reads the whole file once (CRCs in a worker thread)."""
    node = await _file(ctx)
    if not ctx.data_step:
        return ctx.redirect()
    summer = Md5Md5Crc32c(ctx.settings.block_size)
    async with contextlib.aclosing(read_stream(ctx, ctx.path, 0, node.size)) as stream:
        async for chunk in stream:
            await asyncio.to_thread(summer.feed, chunk)
    return json_response(js.file_checksum(summer.result()))


async def gethomedirectory(ctx: Ctx) -> web.StreamResponse:
    return json_response({"Path": f"/user/{ctx.who.name}"})


async def gettrashroot(ctx: Ctx) -> web.StreamResponse:
    return json_response({"Path": f"/user/{ctx.who.name}/.Trash"})


async def getserverdefaults(ctx: Ctx) -> web.StreamResponse:
    return json_response(js.server_defaults(ctx.settings.block_size))


async def _spans(ctx: Ctx) -> tuple[Inode, list[tuple[int, int]]]:
    offset = ctx.params.long("offset", 0, minimum=0) or 0
    length = ctx.params.long("length", LONG_MAX, minimum=0)
    node = await _file(ctx)
    assert length is not None
    return node, js.blocks(node.size, ctx.settings.block_size, offset, length)


async def get_block_locations(ctx: Ctx) -> web.StreamResponse:
    node, spans = await _spans(ctx)
    hosts = [ctx.host_port(ctx.data_base_url(node, off)) for off, _ in spans]
    return json_response(js.located_blocks(node.ino, node.size, spans, ctx.settings.block_size, hosts))


async def getfileblocklocations(ctx: Ctx) -> web.StreamResponse:
    node, spans = await _spans(ctx)
    hosts = [ctx.host_port(ctx.data_base_url(node, off)) for off, _ in spans]
    return json_response(js.block_locations(spans, hosts))


async def getxattrs(ctx: Ctx) -> web.StreamResponse:
    encoding = ctx.params.choice("encoding", ("TEXT", "HEX", "BASE64"))
    attrs = await ctx.vfs.get_xattrs(ctx.path, caller=ctx.caller)
    names = [normalize_name(n) for n in ctx.params.getall("xattr.name")]
    if names:
        if any(n not in attrs for n in names):
            raise Remote(403, IOE, "At least one of the attributes provided was not found.")
        wanted = sorted(set(names))
    else:
        wanted = sorted(attrs)
    return json_response({"XAttrs": [{"name": n, "value": js.encode_xattr(attrs[n], encoding)} for n in wanted]})


async def listxattrs(ctx: Ctx) -> web.StreamResponse:
    return json_response(js.xattr_names(sorted(await ctx.vfs.get_xattrs(ctx.path, caller=ctx.caller))))


async def checkaccess(ctx: Ctx) -> web.StreamResponse:
    """200 when the caller holds the rwx bits of `fsaction` on the path, else 403
    AccessControlException: the vfs's own checks, so the answer is what OPEN/CREATE would meet."""
    want = parse_fsaction(ctx.params.fsaction())
    await ctx.vfs.access(ctx.path, want, caller=ctx.caller)
    return empty()


async def getdelegationtoken(ctx: Ctx) -> web.StreamResponse:
    return json_response({"Token": None})  # security off: no tokens, as Hadoop without Kerberos


async def getstatus(ctx: Ctx) -> web.StreamResponse:
    capacity, used, remaining = await ctx.vfs.capacity()
    return json_response({"FsStatus": {"capacity": capacity, "used": used, "remaining": remaining}})


OPS: dict[str, Handler] = {
    "OPEN": open_,
    "GETFILESTATUS": getfilestatus,
    "LISTSTATUS": liststatus,
    "LISTSTATUS_BATCH": liststatus_batch,
    "GETCONTENTSUMMARY": getcontentsummary,
    "GETQUOTAUSAGE": getquotausage,
    "GETFILECHECKSUM": getfilechecksum,
    "GETHOMEDIRECTORY": gethomedirectory,
    "GETTRASHROOT": gettrashroot,
    "GETSERVERDEFAULTS": getserverdefaults,
    "GET_BLOCK_LOCATIONS": get_block_locations,
    "GETFILEBLOCKLOCATIONS": getfileblocklocations,
    "GETXATTRS": getxattrs,
    "LISTXATTRS": listxattrs,
    "CHECKACCESS": checkaccess,
    "GETDELEGATIONTOKEN": getdelegationtoken,
    "GETSTATUS": getstatus,
}

__all__ = ["OPS"]
