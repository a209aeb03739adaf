"""Cluster mode at the HTTP door: `GET /api/v1/cluster`, and a follower's changes made by the leader.

Theory of operation. A follower cannot journal, so a change that reaches its HTTP port
(WebHDFS or admin API: every method but GET/HEAD) is sent on as it came, body streamed, to
the leader's HTTP port. The leader's answer carries `X-Nsd-Txid` (its durable txid when it
answered, at or past the change); the follower holds the answer until it has applied that
txid itself, so a client reads its own writes on any node. A read that would have to journal
something (discovering a directory nobody listed yet) fails on the follower with NotLeader
(421) before it changed anything and is sent on the same way. The Host header is kept, so a
WebHDFS redirect the leader builds points back at the follower.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import hdrs, web

from nsd import errors
from nsd.blockstore import BlockStore
from nsd.blockstore.digest import hash_block
from nsd.core.replication.cluster import Cluster
from nsd.core.replication.peers import ClusterBlocks, decode_facts
from nsd.ops.clients import USER_KEY
from nsd.protocols import errmap
from nsd.protocols.admin.api import error_response
from nsd.protocols.admin.request import PREFIX
from nsd.protocols.webhdfs import routes as webhdfs

log = logging.getLogger("nsd.cluster")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
TXID_HEADER = "X-Nsd-Txid"
APPLY_TIMEOUT = 10.0  # seconds a follower waits to apply a change the leader made for it
LEADER_POLL = 0.1  # seconds between looks for a new leader while the last one is gone
RECEIVED_HOLD_SECONDS = 600.0  # a writer's copy is not evicted before its layout can arrive (?hold=1)
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "expect"}
CLUSTER_KEY: web.AppKey[Cluster] = web.AppKey("cluster", Cluster)
SESSION_KEY: web.AppKey[aiohttp.ClientSession] = web.AppKey("cluster_session", aiohttp.ClientSession)
BLOCKS_KEY: web.AppKey[BlockStore] = web.AppKey("cluster_blocks", BlockStore)
PEERS_KEY: web.AppKey[ClusterBlocks] = web.AppKey("cluster_peers", ClusterBlocks)
CACHE_REPORT_KEY: web.AppKey[Callable[[], dict[str, Any]]] = web.AppKey("cluster_cache_report")


def add_routes(
    app: web.Application,
    cluster: Cluster,
    durable_txid: Callable[[], int],
    blocks: BlockStore | None = None,
    peers: ClusterBlocks | None = None,
    cache_report: Callable[[], dict[str, Any]] = dict,
) -> None:
    app[CLUSTER_KEY] = cluster
    timeout = aiohttp.ClientTimeout(total=None, connect=5, sock_read=120)
    app[SESSION_KEY] = aiohttp.ClientSession(timeout=timeout, auto_decompress=False)
    app.router.add_get(f"{PREFIX}/cluster", status)
    app.router.add_post(f"{PREFIX}/cluster/facts", facts)
    app.router.add_post(f"{PREFIX}/cluster/remove", remove_node)
    if blocks is not None and peers is not None:
        app[BLOCKS_KEY], app[PEERS_KEY] = blocks, peers
        app.router.add_get(PREFIX + "/cluster/blocks/{digest:[0-9a-f]{64}}", get_block)
        app.router.add_put(PREFIX + "/cluster/blocks/{digest:[0-9a-f]{64}}", put_block)
        app.router.add_post(PREFIX + "/cluster/blocks/drop", drop_blocks)
        app[CACHE_REPORT_KEY] = cache_report
        app.router.add_get(PREFIX + "/cluster/cache", cluster_cache)
    app.middlewares.insert(0, _forwarding(cluster, durable_txid))
    app.on_cleanup.append(_close_session)


async def status(request: web.Request) -> web.Response:
    return web.json_response(await request.app[CLUSTER_KEY].status())


async def remove_node(request: web.Request) -> web.Response:
    """`nsd cluster remove NODE`: forget a node that is down (the admin token, as every change)."""
    _require_token(request)
    body = await request.json()
    name = body.get("node") if isinstance(body, dict) else None
    if not isinstance(name, str) or not name:
        raise errors.Invalid('the body must be {"node": NAME}')
    await request.app[CLUSTER_KEY].forget(name)
    return web.json_response({"removed": name})


def add_single_node_route(app: web.Application) -> None:
    """`GET /api/v1/cluster` of a daemon that is no cluster's node: says so, in the same shape."""

    async def single(request: web.Request) -> web.Response:
        return web.json_response({"cluster": None, "node": None, "leader": None, "nodes": [], "etcd": []})

    app.router.add_get(f"{PREFIX}/cluster", single)


def _require_token(request: web.Request) -> None:
    """Node-to-node calls carry the cluster's admin token, reads included (blocks are data)."""
    if request.get(USER_KEY) != "admin-token":
        raise errors.Denied("node-to-node calls need the cluster's admin token")


async def facts(request: web.Request) -> web.Response:
    """The leader journals cache facts a follower found (see core/replication/peers.py)."""
    _require_token(request)
    try:
        ops = decode_facts(await request.json())
    except ValueError as e:
        raise errors.Invalid(str(e)) from None
    return web.json_response({"taken": request.app[CLUSTER_KEY].take_facts(ops)})


async def get_block(request: web.Request) -> web.StreamResponse:
    """A block this node stores, for another node (which re-hashes it)."""
    _require_token(request)
    if request.method == "HEAD":  # does this node hold it (an owner checking its copies)
        blocks, digest = request.app[BLOCKS_KEY], request.match_info["digest"]
        held = blocks.has(digest)
        if held and request.query.get("hold") == "1":  # a writer's copy: keep it for its layout
            blocks.hold(digest, RECEIVED_HOLD_SECONDS)
        return web.Response(status=200 if held else 404)
    data = await request.app[BLOCKS_KEY].get(request.match_info["digest"])
    if data is None:
        raise errors.NotFound("block not stored on this node")
    peers = request.app[PEERS_KEY]
    peers.counters.blocks_served += 1
    peers.counters.bytes_served += len(data)
    return web.Response(body=data, content_type="application/octet-stream")


async def cluster_cache(request: web.Request) -> web.Response:
    """`nsd report cache` in a cluster: every node's cache figures (each node asked for its own,
    `?here=true`) and the cluster's totals."""
    own = {"node": request.app[CLUSTER_KEY].node, **request.app[CACHE_REPORT_KEY]()}
    if request.query.get("here") == "true":
        return web.json_response(own)
    peers = request.app[PEERS_KEY]
    rows = [own, *await peers.ask_members("/api/v1/cluster/cache?here=true")]
    keys = ("capacity", "used", "blocks", "hits", "misses", "bytes_from_ufs", "bytes_from_peers", "bytes_served")
    total = {k: sum(r.get(k, 0) for r in rows if "error" not in r) for k in keys}
    lookups = total["hits"] + total["misses"]
    total["hit_ratio"] = total["hits"] / lookups if lookups else 0.0
    return web.json_response({"nodes": sorted(rows, key=lambda r: r["node"]), "total": total})


async def drop_blocks(request: web.Request) -> web.Response:
    """`free` asked on another node: drop these blocks here unless a layout or a hold needs them."""
    _require_token(request)
    body = await request.json()
    digests = body.get("digests") if isinstance(body, dict) else None
    txid = body.get("txid", 0) if isinstance(body, dict) else 0
    if not isinstance(digests, list) or not all(isinstance(d, str) for d in digests) or not isinstance(txid, int):
        raise errors.Invalid('the body must be {"digests": [DIGEST, ...], "txid": N}')
    await request.app[CLUSTER_KEY].wait_applied(txid, APPLY_TIMEOUT)  # the layouts `free` dropped, here too
    blocks = request.app[BLOCKS_KEY]
    freed = 0
    for d in digests:
        size = blocks.size_of(d)
        if size is not None and blocks.refs(d) == 0 and not blocks.must_keep(d):
            await blocks.remove(d)
            freed += size
    return web.json_response({"freed_bytes": freed})


async def put_block(request: web.Request) -> web.Response:
    """Store a block another node read from the under-storage for this node, its owner."""
    _require_token(request)
    digest = request.match_info["digest"]
    blocks = request.app[BLOCKS_KEY]
    if (request.content_length or 0) > blocks.max_block_bytes:
        raise errors.Invalid(f"a block of {request.content_length} bytes is over {blocks.max_block_bytes}")
    data = bytearray()  # streamed: a block is larger than the JSON body limit
    async for piece in request.content.iter_chunked(1 << 20):
        data += piece
        if len(data) > blocks.max_block_bytes:
            raise errors.Invalid(f"a block over {blocks.max_block_bytes} bytes")
    block = bytes(data)
    if await asyncio.to_thread(hash_block, block) != digest:
        raise errors.Invalid("the block's bytes do not match its digest")
    if request.query.get("hold") == "1":
        # A writer's copy of data no under-storage has: its layout (which keeps it) arrives
        # with the writer's change, journaled once every block is copied.
        blocks.hold(digest, RECEIVED_HOLD_SECONDS)
    await blocks.put(block)
    return web.json_response({"digest": digest})


def _forwarding(cluster: Cluster, durable_txid: Callable[[], int]) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def forward_changes(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(f"{PREFIX}/cluster"):
            return await handler(request)
        if cluster.role == "leader":
            resp = await handler(request)
            if not resp.prepared:
                resp.headers[TXID_HEADER] = str(durable_txid())
            return resp
        if request.method in ("GET", "HEAD"):
            resp = await handler(request)
            if resp.status != 421 or resp.prepared:
                return resp
        try:
            return await _to_leader(request, cluster)
        except errors.NsdError as e:
            if request.path.startswith("/webhdfs/"):
                status, java = errmap.webhdfs(e)
                return webhdfs.error_response(status, java, e.message)  # what Hadoop clients parse
            return error_response(e)

    return forward_changes


async def _to_leader(request: web.Request, cluster: Cluster) -> web.StreamResponse:
    """Send `request` to the leader as it came; answer with its reply once this node applied it."""
    started = time.perf_counter()
    headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
    body = request.content if request.body_exists else None
    session = request.app[SESSION_KEY]
    continued = request.headers.get("Expect", "").lower() != "100-continue"
    # No leader, or one that takes no connection (dead, its lease not run out yet): wait for the
    # next for as long as a lease lives and an election takes. Nothing was sent, so the next
    # leader may be asked safely; a leader lost once the request went out is a 503.
    deadline = time.monotonic() + cluster.lease_ttl * 2 + 2
    while True:
        try:
            base = await cluster.leader_http()
        except errors.Unavailable:
            if time.monotonic() >= deadline:
                raise
            await asyncio.sleep(LEADER_POLL)
            continue
        if not continued:
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # the leader is asked without Expect
            continued = True
        try:
            upstream = await session.request(
                request.method, base + request.path_qs, headers=headers, data=body, allow_redirects=False
            )
            break
        except aiohttp.ClientConnectorError as e:
            gone = cluster.leader
            while cluster.leader == gone and time.monotonic() < deadline:
                await asyncio.sleep(LEADER_POLL)
            if cluster.leader == gone:
                raise errors.Unavailable(f"cannot reach the leader {gone} at {base}: {e}") from None
        except (aiohttp.ClientError, OSError) as e:
            raise errors.Unavailable(f"lost the leader {cluster.leader} at {base}: {e}") from None
    async with upstream:
        txid = int(upstream.headers.get(TXID_HEADER, "0"))
        await cluster.wait_applied(txid, APPLY_TIMEOUT)
        resp = _Relayed(status=upstream.status, reason=upstream.reason)
        resp.content_type_given = hdrs.CONTENT_TYPE in upstream.headers
        for k, v in upstream.headers.items():
            if k.lower() not in HOP_BY_HOP and k.lower() != "content-length":
                resp.headers.add(k, v)
        if upstream.content_length is not None:
            resp.content_length = upstream.content_length
        await resp.prepare(request)
        async for chunk in upstream.content.iter_chunked(1 << 16):
            await resp.write(chunk)
        await resp.write_eof()
        log.debug(
            "%s %s sent on to the leader %s: %d in %.1f ms (applied here up to txid %d)",
            request.method,
            request.path_qs[:200],
            cluster.leader,
            upstream.status,
            1000 * (time.perf_counter() - started),
            txid,
        )
        return resp


class _Relayed(web.StreamResponse):
    """The leader's reply as it came: without a Content-Type when it had none (aiohttp would add
    application/octet-stream, and Hadoop's shaded client fails every JSON reply with one)."""

    content_type_given = True

    async def _write_headers(self) -> None:
        if not self.content_type_given:
            self._headers.popall(hdrs.CONTENT_TYPE, None)
        await super()._write_headers()


async def _close_session(app: web.Application) -> None:
    await app[SESSION_KEY].close()
