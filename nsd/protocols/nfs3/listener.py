"""The NFS front: one listener serving NFSv3 and MOUNT v3, and the optional portmapper.

`start_nfs` wires the services to the vfs and returns an `NfsFront` holding what to close.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from nsd import errors
from nsd.core.replication.cluster import Cluster
from nsd.protocols import nfs3
from nsd.protocols.nfs3 import mount3, portmap
from nsd.protocols.nfs3.exports import parse_exports
from nsd.protocols.nfs3.forward import LeaderDoor
from nsd.protocols.nfs3.handles import HandleCodec, load_secret
from nsd.protocols.nfs3.service import Nfs3Service
from nsd.protocols.nfs3.slowreads import SlowReads
from nsd.protocols.rpc.server import DEFAULT_MAX_INFLIGHT, Limits, RequestStats, RpcServer
from nsd.vfs import Vfs

log = logging.getLogger("nsd.nfs")


@dataclass
class NfsFront:
    server: RpcServer
    port: int
    portmapper: RpcServer | None = None
    portmap_port: int | None = None
    registered: list[portmap.Mapping] = field(default_factory=list)  # with an outside portmapper
    host: str = "127.0.0.1"
    leader_doors: list[LeaderDoor] = field(default_factory=list)  # cluster mode: calls relayed to the leader
    service: Nfs3Service | None = None  # the NFSv3 program's state (its caches' counts for /metrics)

    async def close(self, grace: float = 30.0) -> None:
        """Unregister, stop accepting, let in-flight calls finish (up to `grace` seconds)."""
        if self.registered and self.portmap_port is not None:
            await portmap.register(self.host, self.portmap_port, self.registered, unset=True)
        if self.portmapper is not None:
            await self.portmapper.close(grace)
        await self.server.close(grace)
        for door in self.leader_doors:
            await door.close()


async def start_nfs(
    vfs: Vfs,
    data_dir: Path,
    *,
    host: str,
    port: int,
    exports_spec: str,
    portmapper: bool = False,
    portmap_port: int = 111,
    jukebox_after: float = 0.0,
    stats: RequestStats | None = None,
    limits: Limits | None = None,
    max_inflight_per_connection: int = DEFAULT_MAX_INFLIGHT,
    busy_poll: float = 0.0,
    cluster: Cluster | None = None,
) -> NfsFront:
    """Listen for NFS + MOUNT on host:port; with `portmapper`, serve port `portmap_port` too,
    or register with the portmapper already there. `busy_poll`: seconds the loop keeps polling after
    NFS traffic (nsd.protocols.rpc.busypoll)."""
    exports = parse_exports(exports_spec)
    codec = HandleCodec(load_secret(data_dir))
    server = RpcServer(limits=limits, max_inflight=max_inflight_per_connection, busy_poll=busy_poll)
    server.stats = stats
    door = LeaderDoor(cluster, nfs3.busy) if cluster is not None else None
    service = Nfs3Service(vfs, exports, codec, data_dir, SlowReads(patience=jukebox_after))
    server.add(nfs3.program(service, door.wrap if door is not None else None))
    mount_door = LeaderDoor(cluster, mount3.busy, frozenset()) if cluster is not None else None
    server.add(mount3.program(mount3.MountService(vfs, exports, codec), mount_door.wrap if mount_door else None))
    try:
        bound = await server.listen(host, port)
    except OSError as e:
        raise errors.NsdError(f"NFS: cannot listen on {host}:{port}: {e.strerror or e}") from None
    doors = [d for d in (door, mount_door) if d is not None]
    front = NfsFront(server, bound, host=host, leader_doors=doors, service=service)
    if not portmapper:
        return front
    mappings = [
        (nfs3.const.PROGRAM, nfs3.const.VERSION, portmap.IPPROTO_TCP, bound),
        (mount3.PROGRAM, mount3.VERSION, portmap.IPPROTO_TCP, bound),
    ]
    pm = RpcServer()
    pm.stats = stats
    try:
        pm_port = await pm.listen(host, portmap_port)
    except OSError as e:
        log.info("port %d is taken (%s): registering with the portmapper there", portmap_port, e)
        if await portmap.register(host, portmap_port, mappings):
            front.registered, front.portmap_port = mappings, portmap_port
        else:
            log.warning("could not register with the portmapper on port %d; clients must name ports", portmap_port)
        return front
    pm.add(portmap.program(portmap.PortmapService([*mappings, (portmap.PROGRAM, portmap.VERSION, 6, pm_port)])))
    front.portmapper, front.portmap_port = pm, pm_port
    return front
