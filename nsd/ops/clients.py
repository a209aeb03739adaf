"""Who is talking to nsd (`nsd report clients`, the status page, nsd_open_connections).

NFS clients hold long-lived TCP connections, so they are read live from the RPC servers'
connection sets at report time. HTTP clients (WebHDFS, admin API) come and go per request, so
the HTTP middleware records them here: one row per (protocol, host, user), the least recently
seen dropped past `limit`, so a scan from many addresses cannot grow memory.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Collection, Iterable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

HTTP_CLIENTS_KEPT = 256
# aiohttp request key: the name an HTTP request acted as (never a credential), set by the
# WebHDFS and admin handlers for metrics, `nsd report clients` and the audit log
USER_KEY = "nsd.user"


class RpcConnectionView(Protocol):
    """What is read of an open NFS connection (the RPC server's connections are these)."""

    peer_host: str
    uid: int | None
    calls: int
    rejected: int
    since: float
    last_call: float


class RpcListenerView(Protocol):
    """What is read of an RPC listener: its open connections and what its limits turned away."""

    @property
    def connections(self) -> Collection[RpcConnectionView]: ...

    refused_connections: int
    busy_replies: int
    closed_idle: int
    aborted_slow: int


@dataclass(slots=True)
class ClientRow:
    protocol: str
    host: str
    user: str
    requests: int = 0
    errors: int = 0
    first_seen: float = 0.0  # wall clock, seconds
    last_seen: float = 0.0
    connections: int = 0  # open right now (NFS); 0 for HTTP, where requests are the unit


class HttpClients:
    """Recent HTTP clients, bounded."""

    def __init__(self, limit: int = HTTP_CLIENTS_KEPT) -> None:
        self.limit = limit
        self._rows: OrderedDict[tuple[str, str, str], ClientRow] = OrderedDict()

    def seen(self, protocol: str, host: str, user: str, *, error: bool) -> None:
        key = (protocol, host, user)
        now = time.time()
        row = self._rows.get(key)
        if row is None:
            row = self._rows[key] = ClientRow(protocol, host, user, first_seen=now)
            if len(self._rows) > self.limit:
                self._rows.popitem(last=False)
        else:
            self._rows.move_to_end(key)
        row.requests += 1
        row.errors += error
        row.last_seen = now

    def rows(self) -> list[ClientRow]:
        return list(self._rows.values())


def nfs_clients(servers: Iterable[RpcListenerView]) -> list[ClientRow]:
    """One row per (host, uid) over the open NFS connections, their calls summed."""
    rows: dict[tuple[str, str], ClientRow] = {}
    for server in servers:
        for conn in server.connections:
            user = "-" if conn.uid is None else f"uid:{conn.uid}"
            row = rows.get((conn.peer_host, user))
            if row is None:
                row = rows[conn.peer_host, user] = ClientRow("nfs", conn.peer_host, user, first_seen=conn.since)
            row.connections += 1
            row.requests += conn.calls
            row.errors += conn.rejected
            row.first_seen = min(row.first_seen, conn.since)
            row.last_seen = max(row.last_seen, conn.last_call)
    return list(rows.values())


def report(http: HttpClients, nfs_servers: Iterable[RpcListenerView]) -> list[dict[str, Any]]:
    """Every client row, most recently seen first."""
    rows = [*nfs_clients(nfs_servers), *http.rows()]
    rows.sort(key=lambda r: r.last_seen, reverse=True)
    return [asdict(r) for r in rows]
