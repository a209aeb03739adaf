"""A node's client of the cluster cache against a stand-in peer (aiohttp): bytes are verified."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer
from blake3 import blake3

from nsd.core.replication.peers import ClusterBlocks


async def peer(blocks: dict[str, bytes]) -> TestServer:
    async def get(request: web.Request) -> web.Response:
        assert request.headers["Authorization"] == "Bearer tok"
        data = blocks.get(request.match_info["digest"])
        return web.Response(body=data) if data is not None else web.Response(status=404)

    app = web.Application()
    app.router.add_get("/api/v1/cluster/blocks/{digest}", get)
    server = TestServer(app)
    await server.start_server()
    return server


def node(peer_url: str) -> Any:
    members = {"me": {"name": "me", "http": "http://127.0.0.1:1"}, "peer": {"name": "peer", "http": peer_url}}
    return SimpleNamespace(node="me", members=members, on_members=[])


async def test_fetch_serves_verified_bytes_and_drops_a_peer_s_wrong_ones() -> None:
    good = b"the real block" * 100
    digest = blake3(good).hexdigest()
    lying = b"something else"
    lying_name = blake3(b"what it claims to be").hexdigest()
    server = await peer({digest: good, lying_name: lying})
    blocks = ClusterBlocks(node(str(server.make_url("")).rstrip("/")), "tok", 1 << 20, SimpleNamespace())  # type: ignore[arg-type]
    try:
        blocks.ring = type(blocks.ring)(["peer"])  # every block is the peer's
        assert blocks.remote_owner(digest)
        assert await blocks.fetch(digest) == good
        assert await blocks.fetch(lying_name) is None
        assert await blocks.fetch(blake3(b"absent").hexdigest()) is None
        c = blocks.counters
        # the liar counts as corrupt and, no good copy found, as a miss; the absent block as a miss
        assert (c.blocks_from_peers, c.bytes_from_peers, c.corrupt_from_peers, c.peer_misses) == (1, len(good), 1, 2)
    finally:
        await blocks.close()
        await server.close()
