"""A cluster follower's NFS door: what it may not do itself, the leader does.

Changes (SETATTR, WRITE, CREATE, ..., COMMIT) go to the leader as they came, and so does a
read that would have to journal something (a LOOKUP or READDIR that discovers under-storage
entries nobody listed yet), which fails here with NotLeader before it changed anything. The
call is relayed whole, credential and all, to the leader's NFS port (`rpc/relay.py`); once
the leader answered, the follower waits until it has applied etcd's log as far as it went
then, so the client reads its own change on this node at once. Handles are cluster-wide, so
the leader's reply is valid here. Without a leader, or no way to it: NFS3ERR_JUKEBOX, and
the client retries. The leader checks exports against the follower's address.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable

from nsd import errors
from nsd.core.replication.cluster import Cluster
from nsd.protocols.nfs3.const import Proc
from nsd.protocols.nfs3.service import ToLeader
from nsd.protocols.rpc import oncrpc
from nsd.protocols.rpc.relay import Relay
from nsd.protocols.rpc.server import CallContext, ProcFunc, ReplyBody
from nsd.protocols.xdr import XdrError

log = logging.getLogger("nsd.nfs")

CHANGES = frozenset(
    int(p)
    for p in (
        Proc.SETATTR, Proc.WRITE, Proc.CREATE, Proc.MKDIR, Proc.SYMLINK, Proc.MKNOD,
        Proc.REMOVE, Proc.RMDIR, Proc.RENAME, Proc.LINK, Proc.COMMIT,
    )
)  # fmt: skip
RELAY_TIMEOUT = 60.0  # seconds for the leader's answer (a WRITE of a cold file may wait on the UFS)
APPLY_TIMEOUT = 10.0  # seconds to apply the leader's change here before answering JUKEBOX


class LeaderDoor:
    """One RPC program's door to the leader: `changes` always go there, other calls when they
    meet NotLeader; `busy(proc)` is the "try again later" reply."""

    def __init__(self, cluster: Cluster, busy: Callable[[int], bytes], changes: frozenset[int] = CHANGES) -> None:
        self.cluster = cluster
        self.busy = busy
        self.changes = changes
        self.relays: dict[str, Relay] = {}
        self.relayed = 0  # calls this node had the leader make (metrics)

    def wrap(self, func: ProcFunc, proc: int) -> ProcFunc:
        """`func`, with its calls sent to the leader when this node may not answer them itself.
        The relay runs as a task of its own: the RPC server may step a procedure inline, outside
        any task, and the etcd and socket clients need one."""
        change = proc in self.changes

        def run(ctx: CallContext) -> ReplyBody | Awaitable[ReplyBody]:
            if change and self.cluster.role != "leader":
                return asyncio.ensure_future(self.relay(ctx, proc))
            try:
                result = func(ctx)
            except ToLeader:
                return asyncio.ensure_future(self.relay(ctx, proc))
            if inspect.isawaitable(result):
                return self._or_relay(result, ctx, proc)
            return result

        return run

    async def _or_relay(self, local: Awaitable[ReplyBody], ctx: CallContext, proc: int) -> ReplyBody:
        try:
            return await local
        except ToLeader:
            return await asyncio.ensure_future(self.relay(ctx, proc))

    async def relay(self, ctx: CallContext, proc: int) -> bytes:
        try:
            address = await self.cluster.leader_address("nfs")
            relay = self.relays.get(address)
            if relay is None:
                host, _, port = address.rpartition(":")
                relay = self.relays[address] = Relay(host, int(port))
            reply = await relay.call(ctx.call.record, RELAY_TIMEOUT)
            await self.cluster.wait_applied(await self.cluster.log_end(), APPLY_TIMEOUT)
        except (errors.NsdError, OSError, TimeoutError, XdrError) as e:
            log.info("RPC %d/%d for %s not relayed to the leader: %s", ctx.call.prog, proc, ctx.peer_host, e)
            return self.busy(proc)
        self.relayed += 1
        if not reply.accepted and reply.stat == oncrpc.AUTH_ERROR:
            raise oncrpc.AuthError(reply.detail[0], "the leader refused the credential")
        if reply.accepted and reply.stat == oncrpc.SUCCESS:
            return reply.body
        if reply.accepted and reply.stat == oncrpc.GARBAGE_ARGS:
            raise XdrError("the leader found the arguments malformed")
        raise RuntimeError(f"the leader answered RPC {ctx.call.prog}/{proc} with status {reply.stat}")

    async def close(self) -> None:
        for relay in self.relays.values():
            await relay.close()
