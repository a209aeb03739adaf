"""Who is talking to nsd (`nsd report clients`, the status page, nsd_open_connections).

`Listeners` holds the daemon's doors as the reports see them (the RPC servers, the HTTP server
and its overload counts, the recent HTTP clients, the bound addresses) and renders their gauges
for /metrics; the daemon registers it with `Metrics`, so nothing below protocols/ knows them.

NFS clients hold long-lived TCP connections, so they are read live from the RPC servers'
connection sets at report time. HTTP clients (WebHDFS, admin API) come and go per request, so
the HTTP middleware records them here: one row per (protocol, host, user), the least recently
seen dropped past `limit`, so a scan from many addresses cannot grow memory.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from nsd.metrics import counter

if TYPE_CHECKING:
    from nsd.protocols.http.limits import Overload
    from nsd.protocols.rpc.server import RpcServer

HTTP_CLIENTS_KEPT = 256
# aiohttp request key: the name an HTTP request acted as (never a credential), set by the
# WebHDFS and admin handlers for metrics, `nsd report clients` and the audit log
USER_KEY = "nsd.user"


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


def nfs_clients(servers: Iterable[RpcServer]) -> list[ClientRow]:
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


def report(http: HttpClients, nfs_servers: Iterable[RpcServer]) -> list[dict[str, Any]]:
    """Every client row, most recently seen first."""
    rows = [*nfs_clients(nfs_servers), *http.rows()]
    rows.sort(key=lambda r: r.last_seen, reverse=True)
    return [asdict(r) for r in rows]


class Listeners(Collector):
    """The daemon's listeners: NFS/MOUNT RPC servers (for connection counts and NFS clients),
    the HTTP server and what its limits turned away, the recent HTTP clients, and name ->
    (host, port) of each bound listener (for doctor's probes). Filled in by the daemon."""

    def __init__(self) -> None:
        self.rpc_servers: list[RpcServer] = []
        self.http_server: web.Server | None = None
        self.http_overload: Overload | None = None
        self.http_clients = HttpClients()
        self.addresses: dict[str, tuple[str, int]] = {}

    def clients(self) -> list[dict[str, Any]]:
        """`nsd report clients`: every client row, most recently seen first."""
        return report(self.http_clients, self.rpc_servers)

    def collect(self) -> Iterator[Any]:
        """Open connections, work turned away by a limit and NFS busy polling, read at scrape time."""
        servers, ho, http = self.rpc_servers, self.http_overload, self.http_server
        open_now = GaugeMetricFamily("nsd_open_connections", "Open client connections.", labels=["protocol"])
        open_now.add_metric(["nfs"], sum(len(s.connections) for s in servers))
        open_now.add_metric(["http"], len(http.connections) if http is not None else 0)
        yield open_now
        turned = CounterMetricFamily(
            "nsd_overload", "Work turned away by a limit, by protocol and what happened.", labels=["protocol", "reason"]
        )
        turned.add_metric(["nfs", "connection_refused"], sum(s.refused_connections for s in servers))
        turned.add_metric(["nfs", "jukebox"], sum(s.busy_replies for s in servers))
        turned.add_metric(["nfs", "idle_closed"], sum(s.closed_idle for s in servers))
        turned.add_metric(["nfs", "slow_client_aborted"], sum(s.aborted_slow for s in servers))
        if ho is not None:
            turned.add_metric(["http", "connection_refused"], ho.refused_connections)
            turned.add_metric(["http", "busy_503"], ho.busy_replies)
            turned.add_metric(["http", "stalled_upload_408"], ho.stalled_uploads)
        yield turned
        pollers = [s.poller for s in servers if s.poller is not None]
        yield counter(
            "nsd_nfs_busy_poll_idle_seconds",
            "Seconds the NFS loop spent polling after traffic with no call arriving (nfs_busy_poll_us).",
            sum(p.idle_seconds for p in pollers),
        )


LISTENERS_KEY: web.AppKey[Listeners] = web.AppKey("listeners", Listeners)
