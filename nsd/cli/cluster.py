"""`nsd cluster status`: the nodes of a cluster as the daemon asked sees them."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from nsd.cli.app import G, JsonOpt, api_errors, app, emit

cluster_app = typer.Typer(no_args_is_help=True, help="Cluster mode: nodes, leader, etcd.")
app.add_typer(cluster_app, name="cluster")


@cluster_app.command("status")
@api_errors
def cluster_status(as_json: JsonOpt = False) -> None:
    """Every node (role, state, addresses, applied txid, lag), the leader and etcd's health."""
    status: dict[str, Any] = G.client().get("/cluster")
    if as_json:
        emit(True, status)
        return
    console = Console()
    if status["cluster"] is None:
        console.print("a single node: not part of a cluster (start it with --etcd, --cluster and --node)")
        return
    console.print(
        f"cluster {status['cluster']}: leader {status['leader'] or '(none)'}, txid {status['txid']:,}, "
        f"{status['failovers']} failover(s) seen by {status['node']}"
    )
    nodes = Table(title="nodes", title_justify="left")
    for col in ("name", "role", "state", "http", "nfs", "applied txid", "lag"):
        nodes.add_column(col, justify="right" if col in ("applied txid", "lag") else "left")
    for n in status["nodes"]:
        nodes.add_row(
            n["name"],
            n["role"],
            n["state"],
            n.get("http", ""),
            n.get("nfs", ""),
            "-" if n["applied_txid"] is None else f"{n['applied_txid']:,}",
            "-" if n["lag"] is None else str(n["lag"]),
        )
    console.print(nodes)
    etcd = Table(title="etcd", title_justify="left")
    for col in ("endpoint", "health", "version"):
        etcd.add_column(col)
    for e in status["etcd"]:
        etcd.add_row(e["endpoint"], e["health"], e.get("version", e.get("error", "")))
    console.print(etcd)
    if status.get("error"):
        console.print(f"etcd: {status['error']}")


@cluster_app.command("remove")
@api_errors
def cluster_remove(
    node: Annotated[str, typer.Argument(help="A node that is down (stopped for good).")],
    as_json: JsonOpt = False,
) -> None:
    """Forget a node that was stopped for good: it is no longer listed as down."""
    result = G.client().post("/cluster/remove", {"node": node})
    emit(as_json, result)
