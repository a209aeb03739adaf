"""`nsd report` and `nsd conf show`: what the running daemon says about itself."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from nsd.cli.app import G, JsonOpt, api_errors, app, conf_app, fail, human_bytes
from nsd.ops.report import SECTIONS

if TYPE_CHECKING:
    from rich.table import Table


def _kv_table(title: str, rows: dict[str, Any]) -> Table:
    from rich.table import Table  # here: a command that prints no table does not pay for rich

    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    for key, value in rows.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k.replace('_', ' ')} {_cell(k, v)}" for k, v in value.items())
        table.add_row(key.replace("_", " "), _cell(key, value))
    return table


def _cell(key: str, value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}"
    if isinstance(value, int) and not isinstance(value, bool):
        # every byte figure (logical_bytes, bytes_from_cache, ...) in the same binary units
        return human_bytes(value) if "bytes" in key.split("_") else f"{value:,}"
    if isinstance(value, list):
        return " ".join(map(str, value)) or "none"
    return str(value)


def _clients_table(rows: list[dict[str, Any]]) -> Table:
    from rich.table import Table

    table = Table(title="clients", title_justify="left")
    for col in ("protocol", "host", "user", "open", "requests", "errors", "last seen"):
        table.add_column(col, justify="right" if col in ("open", "requests", "errors") else "left")
    now = time.time()
    for r in rows:
        table.add_row(
            r["protocol"],
            r["host"],
            r["user"],
            f"{r['connections']:,}",
            f"{r['requests']:,}",
            f"{r['errors']:,}",
            f"{max(0.0, now - r['last_seen']):.0f} s ago",
        )
    return table


def _cache_tables(cache: dict[str, Any]) -> list[Table]:
    from rich.table import Table

    if not cache.get("enabled"):
        return [_kv_table("cache", {"enabled": "no"})]
    tiers = Table(title="cache tiers", title_justify="left")
    for col in ("tier", "path", "capacity", "used", "use", "blocks"):
        tiers.add_column(col, justify="left" if col in ("tier", "path") else "right")
    for t in cache["tiers"]:
        use = f"{100 * t['used'] / t['capacity']:.1f}%" if t["capacity"] else "-"
        tiers.add_row(t["tier"], t["path"], human_bytes(t["capacity"]), human_bytes(t["used"]), use, f"{t['blocks']:,}")
    rows = {k: v for k, v in cache.items() if k not in ("tiers", "enabled")}
    rows["hit_ratio"] = f"{100 * cache['hit_ratio']:.1f}%"
    rows["dedup_ratio"] = f"{cache['dedup_ratio']:.2f}"
    return [tiers, _kv_table("cache", rows)]


def _cluster_cache_table(c: dict[str, Any]) -> Table:
    """Every node's cache and the cluster's (`nsd report cache` in a cluster)."""
    from rich.table import Table

    table = Table(title="cluster cache", title_justify="left")
    cols = ("node", "capacity", "used", "blocks", "hit ratio", "from UFS", "from peers", "served to peers")
    for col in cols:
        table.add_column(col, justify="left" if col == "node" else "right")
    for r in [*c["nodes"], {"node": "cluster", **c["total"]}]:
        if "error" in r:
            table.add_row(r["node"], f"unreachable: {r['error']}", *[""] * (len(cols) - 2))
            continue
        table.add_row(
            r["node"],
            human_bytes(r["capacity"]),
            human_bytes(r["used"]),
            f"{r['blocks']:,}",
            f"{100 * r['hit_ratio']:.1f}%",
            human_bytes(r["bytes_from_ufs"]),
            human_bytes(r["bytes_from_peers"]),
            human_bytes(r["bytes_served"]),
        )
    return table


def _mounts_table(mounts: list[dict[str, Any]]) -> Table:
    from rich.table import Table

    table = Table(title="mounts", title_justify="left")
    for col in ("path", "mode", "state", "under-storage", "options"):
        table.add_column(col)
    for m in mounts:
        opts = ", ".join(f"{k}={v}" for k, v in sorted(m["options"].items()))
        table.add_row(m["path"], "ro" if m["readonly"] else "rw", m.get("state", ""), m["uri"], opts)
    return table


@app.command()
@api_errors
def report(
    section: Annotated[str | None, typer.Argument(help=f"One of: {', '.join(SECTIONS)} (default: all).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The daemon's state: summary, capacity, mounts, cache, journal, clients (and cluster)."""
    from rich.console import Console

    if section is not None and section not in SECTIONS:
        fail(f"unknown section {section!r}; choose from {', '.join(SECTIONS)}", 2)
    client = G.client()
    data = client.get("/report")
    if "cluster" in data and section in (None, "cache", "cluster"):
        data["cluster_cache"] = client.get("/cluster/cache")  # every node's cache, and the totals
    if section is not None:
        if section not in data:
            fail(f"no {section} section: this nsd is a single node, not part of a cluster")
        data = {k: v for k, v in data.items() if k == section or (k == "cluster_cache" and section != "cluster")}
    if as_json:
        typer.echo(json.dumps(data))
        return
    console = Console()
    for name, value in data.items():
        tables: dict[str, Callable[[Any], Table]] = {
            "mounts": _mounts_table,
            "clients": _clients_table,
            "cluster_cache": _cluster_cache_table,
        }
        if name == "cache":
            for table in _cache_tables(value):
                console.print(table)
        else:
            console.print(tables[name](value) if name in tables else _kv_table(name, value))


@conf_app.command("show")
@api_errors
def conf_show(as_json: JsonOpt = False) -> None:
    """Effective configuration, with where each value came from."""
    from rich.console import Console
    from rich.table import Table

    data = G.client().get("/conf")
    if as_json:
        typer.echo(json.dumps(data))
        return
    table = Table(title="configuration", title_justify="left")
    for col in ("key", "value", "source"):
        table.add_column(col)
    for key, item in data.items():
        table.add_row(key, str(item["value"]), item["source"])
    Console().print(table)


@app.command("fsck")
@api_errors
def fsck_cmd(
    path: Annotated[str, typer.Argument()] = "/",
    repair: Annotated[bool, typer.Option("--repair", help="Re-sync what differs from the UFS.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Check the namespace against its invariants and the under-storage; exit 1 if not clean."""
    result = G.client().post("/fsck", {"path": path, "repair": repair})
    if as_json:
        typer.echo(json.dumps(result))
    else:
        for p in result["problems"]:
            mark = "repaired" if p["repaired"] else "PROBLEM"
            typer.echo(f"{mark:<8} {p['kind']:<16} {p['path']}: {p['detail']}")
        garbage = result.get("garbage_blocks")
        if garbage and garbage["blocks"]:
            done = "removed" if garbage["removed"] else "left for eviction (--repair removes them)"
            typer.echo(f"{garbage['blocks']} cached blocks ({garbage['bytes']} bytes) no file names: {done}")
        verdict = "clean" if result["clean"] else "NOT clean"
        typer.echo(f"{result['files_checked']} files checked below {result['path']}: {verdict}")
    if not result["clean"]:
        raise typer.Exit(1)


@app.command()
def doctor(as_json: JsonOpt = False) -> None:
    """Check the daemon, its data dir, its journal, the cache tiers, pending persists and every
    mount; exit 1 if anything fails."""
    from rich.console import Console
    from rich.table import Table

    from nsd.cli.client import ApiError

    try:
        checks = G.client().get("/doctor")["checks"]
    except ApiError as e:
        checks = [{"check": "daemon reachable", "status": "fail", "detail": str(e)}]
    else:
        checks.insert(0, {"check": "daemon reachable", "status": "ok", "detail": G.server})
    if as_json:
        typer.echo(json.dumps(checks))
    else:
        table = Table(title="nsd doctor", title_justify="left")
        for col in ("check", "status", "detail"):
            table.add_column(col)
        colors = {"ok": "green", "warn": "yellow", "fail": "red"}
        for c in checks:
            table.add_row(c["check"], f"[{colors[c['status']]}]{c['status']}[/]", c["detail"])
        Console().print(table)
    if any(c["status"] == "fail" for c in checks):
        raise typer.Exit(1)
