"""The nodes' block stores as one cache: a block lives at its owner, named by its digest.

Theory of operation. Live nodes (the cluster's members) form a consistent-hash ring over block
digests (`core/cache/ring.py`); a block's owner is the first node on the ring from its digest.
The block reader asks this class before it goes to the under-storage:

- a block the layout names, missing from the local store and owned elsewhere, is fetched
  from its owner (`GET /api/v1/cluster/blocks/<digest>`) and re-hashed on arrival: a peer's
  bytes are never trusted blindly. The owner not having it (evicted) is a miss like any other.
- a block read from the under-storage by a node that does not own it goes to its owner
  (`PUT`, in the background, bounded), not into the local store, so the cluster caches it once.
- the fact that block (ino, offset) of a file version is digest D (`CacheBlock`) is what lets
  the next reader on any node find the owner. A follower cannot journal, so it ships such facts
  to the leader (`POST /api/v1/cluster/facts`, batched); the leader journals them and they
  reach every node with the log. Losing some (a leader change) costs a re-read, nothing more.

Data in no under-storage (MUST_CACHE, ASYNC_THROUGH before its persist) is put on its blocks'
first COPIES owners before it is journaled (`copies`, from `Cache.secure`), and every node
fetches the kept blocks (unpersisted or pinned) the ring gives it and it lacks (`repair_once`),
so a node's death leaves every such block with its copies again within seconds.

A node killed stays a member until its lease runs out (`cluster_lease_ttl`, 5 s). Meanwhile
each node tries a TCP connection to every other member's HTTP port every PROBE_SECONDS; one that
does not answer is `unreachable`: WebHDFS OPEN no longer redirects to it and readers skip it
(straight to the other owner or the under-storage) until it answers again.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

import aiohttp

from nsd.blockstore import BlockStore
from nsd.blockstore.digest import hash_block
from nsd.core.cache.ring import Ring
from nsd.core.replication.cluster import Cluster
from nsd.errors import NsdError, Unavailable
from nsd.journal.ops import CacheBlock, Op, decode_op
from nsd.namespace import FileInode, Inode
from nsd.namespace.layouts import block_at

log = logging.getLogger("nsd.cluster")

COPIES = 2  # nodes that hold a block no under-storage has (its first owners on the ring)
REPAIR_SECONDS = 5.0  # how often a node looks for copies it should hold and does not
PUTS_IN_FLIGHT = 8  # blocks on their way to their owners at once; a reader with more waits for a slot
FACTS_BATCH = 256  # CacheBlock facts per POST to the leader
FACTS_DELAY = 0.05  # seconds facts wait to be batched
# a peer that stops answering (dead, paused) costs a reader seconds, then the under-storage
TIMEOUT = aiohttp.ClientTimeout(total=30, connect=2, sock_read=5)
PROBE_SECONDS = 1.0  # how often each other member's HTTP port is tried (see the module docstring)
PROBE_TIMEOUT = 0.5


@dataclass
class PeerCounters:
    blocks_from_peers: int = 0
    bytes_from_peers: int = 0
    peer_misses: int = 0  # the owner did not have the block (or could not be reached)
    corrupt_from_peers: int = 0  # bytes that did not hash to their name: dropped
    blocks_to_owners: int = 0
    bytes_to_owners: int = 0
    blocks_served: int = 0  # this node as the owner, to other nodes
    bytes_served: int = 0
    facts_shipped: int = 0
    repaired: int = 0  # kept blocks fetched back after their copies were lost

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class ClusterBlocks:
    """This node's part of the cluster cache; `token` (the cluster's admin token) authenticates
    it to its peers."""

    def __init__(
        self,
        cluster: Cluster,
        token: str,
        block_size: int,
        blocks: BlockStore,
        kept: Callable[[], Iterable[str]] = tuple,
    ) -> None:
        self.cluster = cluster
        self.block_size = block_size
        self.blocks = blocks
        self.kept = kept  # digests of blocks no under-storage has (unpersisted) or pinned
        self._repairer: asyncio.Task[None] | None = None
        self._prober: asyncio.Task[None] | None = None
        self.unreachable: set[str] = set()  # members whose HTTP port did not take a connection
        self.headers = {"Authorization": f"Bearer {token}"}
        self.counters = PeerCounters()
        self.ring = Ring([cluster.node])
        self._session: aiohttp.ClientSession | None = None
        self._puts: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(PUTS_IN_FLIGHT)
        self._facts: list[Op] = []
        self._flusher: asyncio.Task[None] | None = None
        cluster.on_members.append(self._members_changed)
        self._members_changed(cluster.members)

    def _members_changed(self, members: dict[str, dict[str, Any]]) -> None:
        self.ring = Ring([*members, self.cluster.node])

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=TIMEOUT, headers=self.headers)
        return self._session

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._repairer = loop.create_task(self._repair_loop(), name="cluster-repair")
        self._prober = loop.create_task(self._probe_loop(), name="cluster-probe")

    async def close(self) -> None:
        for task in (self._repairer, self._prober):
            if task is not None:
                task.cancel()
        for task in list(self._puts):
            task.cancel()
        if self._flusher is not None:
            self._flusher.cancel()
        if self._session is not None:
            await self._session.close()

    def snapshot(self) -> dict[str, Any]:
        return {"members": len(self.ring.nodes), "unreachable": sorted(self.unreachable), **self.counters.as_dict()}

    # ---- placement ---------------------------------------------------------------------------

    def owner(self, digest: str) -> str:
        owners = self.ring.owners(digest)
        return owners[0] if owners else self.cluster.node

    def remote_owner(self, digest: str) -> bool:
        return self.owner(digest) != self.cluster.node

    def base_url_for(self, node: Inode, offset: int) -> str | None:
        """The HTTP base URL of the node holding the data at `offset` of `node` (None: this node):
        the owner of its cached block, or for a block nobody cached yet a node picked from the
        ring by (inode, block), so first reads of a file spread over the cluster too."""
        entry = block_at(node.layout, offset) if isinstance(node, FileInode) else None
        key = entry[2] if entry is not None else hash_block(f"{node.ino}:{offset // self.block_size}".encode())
        name = self.owner(key)
        member = self.cluster.members.get(name)
        if name == self.cluster.node or member is None or name in self.unreachable:
            return None
        return str(member["http"])

    async def _probe_loop(self) -> None:
        while True:
            await asyncio.sleep(PROBE_SECONDS)
            others = {n: str(m.get("http", "")) for n, m in self.cluster.members.items() if n != self.cluster.node}
            answers = await asyncio.gather(*(_takes_connections(url) for url in others.values()))
            down = {name for name, ok in zip(others, answers, strict=True) if not ok}
            for name in down - self.unreachable:
                log.warning("node %s does not answer at %s: no redirects or block reads to it", name, others[name])
            self.unreachable = down

    def _url(self, name: str, digest: str) -> str | None:
        member = self.cluster.members.get(name)
        return f"{member['http']}/api/v1/cluster/blocks/{digest}" if member else None

    # ---- the reader's side -------------------------------------------------------------------

    async def fetch(self, digest: str, names: list[str] | None = None) -> bytes | None:
        """The block from its owners (or `names`) in turn, verified; None when none has it."""
        for name in names if names is not None else self.ring.owners(digest, COPIES):
            url = self._url(name, digest)
            if name == self.cluster.node or url is None or name in self.unreachable:
                continue
            data = await self._get(name, url, digest)
            if data is not None:
                return data
        self.counters.peer_misses += 1
        return None

    async def _get(self, name: str, url: str, digest: str) -> bytes | None:
        try:
            async with self.session().get(url) as resp:
                if resp.status != 200:
                    return None
                data = await resp.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            log.debug("block %s from node %s: %s", digest, name, e)
            return None
        if await asyncio.to_thread(hash_block, data) != digest:
            self.counters.corrupt_from_peers += 1
            log.warning("block %s from node %s did not match its digest: dropped", digest, name)
            return None
        self.counters.blocks_from_peers += 1
        self.counters.bytes_from_peers += len(data)
        return data

    async def copies(self, digest: str, data: bytes) -> None:
        """Put a block no under-storage has on its COPIES owners (this node's own copy counts when
        it is one); Unavailable when that cannot be done now, so the write is refused, not
        acknowledged with a single copy."""
        owners = self.ring.owners(digest, COPIES)
        if len(owners) < COPIES:
            raise Unavailable(f"data kept only in caches needs {COPIES} live nodes; the cluster has {len(owners)}")
        for name in owners:
            url = self._url(name, digest)
            if name == self.cluster.node:
                continue
            if url is None or not await self._store_at(url, digest, data):
                raise Unavailable(f"cannot put block {digest} on node {name}, one of its owners: retry")

    async def _store_at(self, url: str, digest: str, data: bytes) -> bool:
        """The block on the owner at `url`, held there until the writer's layout arrives."""
        try:
            async with self.session().head(url, params={"hold": "1"}) as resp:
                if resp.status == 200:
                    return True
            async with self.session().put(url, data=data, params={"hold": "1"}) as resp:
                if resp.status != 200:
                    return False
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            log.debug("block %s to %s: %s", digest, url, e)
            return False
        self.counters.blocks_to_owners += 1
        self.counters.bytes_to_owners += len(data)
        return True

    async def copies_held(self, digest: str) -> int:
        """How many of the block's COPIES owners hold it (fsck)."""
        held = 0
        for name in self.ring.owners(digest, COPIES):
            if name == self.cluster.node:
                held += self.blocks.has(digest)
                continue
            url = self._url(name, digest)
            try:
                async with self.session().head(url or "") as resp:
                    held += resp.status == 200
            except (aiohttp.ClientError, TimeoutError, OSError, ValueError):
                pass
        return held

    async def ask_members(self, path: str) -> list[dict[str, Any]]:
        """GET `path` on every other live node (JSON each); a node that does not answer gives
        {"node": name, "error": why}."""

        async def one(name: str, member: dict[str, Any]) -> dict[str, Any]:
            try:
                async with self.session().get(f"{member['http']}{path}") as resp:
                    got: dict[str, Any] = await resp.json()
                    return got
            except (aiohttp.ClientError, TimeoutError, OSError, ValueError, KeyError) as e:
                return {"node": name, "error": str(e) or type(e).__name__}

        others = [(n, m) for n, m in sorted(self.cluster.members.items()) if n != self.cluster.node]
        return list(await asyncio.gather(*(one(n, m) for n, m in others)))

    async def drop_elsewhere(self, digests: list[str]) -> int:
        """`free` on every other node: each drops those blocks no layout it knows needs and that
        it need not keep; the bytes freed in all."""
        freed = 0
        for name, member in sorted(self.cluster.members.items()):
            if name == self.cluster.node:
                continue
            try:
                url = f"{member['http']}/api/v1/cluster/blocks/drop"
                # the node drops once it has applied this node's changes so far (the dropped layouts)
                body = {"digests": digests, "txid": self.cluster.applied_txid}
                async with self.session().post(url, json=body) as resp:
                    if resp.status == 200:
                        freed += int((await resp.json())["freed_bytes"])
            except (aiohttp.ClientError, TimeoutError, OSError, ValueError, KeyError) as e:
                log.warning("free on node %s: %s", name, e)
        return freed

    # ---- repair: copies back where the ring says they belong ----------------------------------

    async def repair_once(self) -> int:
        """Fetch every kept block (of unpersisted or pinned files) this node owns and lacks, from
        any node that has it; how many came. After a node's death the ring gives its blocks to
        others, and each of them brings its share back to COPIES copies."""
        brought = 0
        members = sorted(self.cluster.members)
        for digest in list(self.kept()):
            if self.cluster.node not in self.ring.owners(digest, COPIES) or self.blocks.has(digest):
                continue
            data = await self.fetch(digest, members)
            if data is None:
                continue  # nobody has it right now: the next round tries again
            await self.blocks.put(data)
            brought += 1
        if brought:
            log.info("brought %d kept block(s) back to %d copies", brought, COPIES)
        return brought

    async def _repair_loop(self) -> None:
        while True:
            await asyncio.sleep(REPAIR_SECONDS)
            try:
                self.counters.repaired += await self.repair_once()
            except NsdError as e:
                log.warning("repairing block copies: %s", e.message)

    async def give(self, digest: str, data: bytes) -> None:
        """Send a block to its owner to store; returns once it is on its way (waits for a slot
        while PUTS_IN_FLIGHT are)."""
        url = self._url(self.owner(digest), digest)
        if url is None:
            return
        await self._slots.acquire()
        task = asyncio.get_running_loop().create_task(self._put(url, digest, data))
        self._puts.add(task)
        task.add_done_callback(self._puts.discard)

    async def _put(self, url: str, digest: str, data: bytes) -> None:
        try:
            async with self.session().put(url, data=data) as resp:
                if resp.status == 200:
                    self.counters.blocks_to_owners += 1
                    self.counters.bytes_to_owners += len(data)
                else:
                    log.debug("owner refused block %s: HTTP %d", digest, resp.status)
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            log.debug("block %s to its owner: %s", digest, e)
        finally:
            self._slots.release()

    # ---- facts for the leader ----------------------------------------------------------------

    def share(self, ops: list[Op]) -> None:
        """A follower's cache facts (CacheBlock), sent to the leader to journal, in batches."""
        self._facts += [op for op in ops if isinstance(op, CacheBlock)]
        if self._facts and self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        try:
            while self._facts:
                await asyncio.sleep(FACTS_DELAY)
                batch, self._facts = self._facts[:FACTS_BATCH], self._facts[FACTS_BATCH:]
                body = [[op.CODE, base64.b64encode(op.encode()).decode()] for op in batch]
                try:
                    base = await self.cluster.leader_http()
                    async with self.session().post(f"{base}/api/v1/cluster/facts", json=body) as resp:
                        if resp.status == 200:
                            self.counters.facts_shipped += len(batch)
                except (NsdError, aiohttp.ClientError, TimeoutError, OSError) as e:
                    log.debug("%d cache facts not shipped to the leader: %s", len(batch), e)
        finally:
            self._flusher = None


def decode_facts(body: Any) -> list[CacheBlock]:
    """The CacheBlock ops of a facts POST (anything else in it is ignored); ValueError if malformed."""
    try:
        ops = [decode_op(int(code), base64.b64decode(payload)) for code, payload in body]
    except Exception as e:  # whatever the decoders raise on garbage (msgpack has its own errors)
        raise ValueError(f"malformed cache facts: {e!r}") from None
    return [op for op in ops if isinstance(op, CacheBlock)]


async def _takes_connections(base_url: str) -> bool:
    """Whether the HTTP port of `base_url` (http://host:port) accepts a TCP connection now."""
    host, _, port = base_url.split("://", 1)[-1].rstrip("/").rpartition(":")
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host.strip("[]"), int(port)), PROBE_TIMEOUT)
    except (OSError, TimeoutError, ValueError):
        return False
    writer.close()
    return True
