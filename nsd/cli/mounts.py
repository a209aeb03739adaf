"""`nsd mount add|rm|ls` and `nsd sync`."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from nsd.cli.app import G, JsonOpt, api_errors, app, emit, fail, mount_app


@mount_app.command("add")
@api_errors
def mount_add(
    path: str,
    uri: str,
    readonly: Annotated[bool, typer.Option("--readonly", help="Refuse every change below it.")] = False,
    option: Annotated[
        list[str] | None, typer.Option("--option", "-o", help="KEY=VALUE, repeatable (e.g. sync_interval=60).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Mount URI at PATH (journaled: it survives restarts)."""
    options: dict[str, str] = {}
    for item in option or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            fail(f"--option takes KEY=VALUE, got {item!r}", 2)
        options[key] = value
    emit(as_json, G.client().post("/mounts", {"path": path, "uri": uri, "readonly": readonly, "options": options}))


@mount_app.command("rm")
@api_errors
def mount_rm(path: str, as_json: JsonOpt = False) -> None:
    """Unmount PATH: its entries leave the namespace; the under-storage is not touched."""
    emit(as_json, G.client().post("/mounts/remove", {"path": path}))


@mount_app.command("ls")
@api_errors
def mount_ls(as_json: JsonOpt = False) -> None:
    """The mount table: path, rw/ro, state of the store, sync interval, URI, options (secrets masked)."""
    mounts = G.client().get("/mounts")["mounts"]
    if as_json:
        typer.echo(json.dumps(mounts))
        return
    rows = [("PATH", "MODE", "STATE", "SYNC", "URI", "OPTIONS")]
    for m in mounts:
        opts = ",".join(f"{k}={v}" for k, v in sorted(m["options"].items()))
        mode = "ro" if m["readonly"] else "rw"
        rows.append((m["path"], mode, m["state"], _interval(m["sync_interval"]), m["uri"], opts))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row, m in zip(rows, [None, *mounts], strict=True):
        typer.echo("  ".join(f"{cell:<{w}}" for cell, w in zip(row, widths, strict=False)) + "  " + row[-1])
        if m is not None and m.get("last_error") and m["state"] != "connected":
            typer.echo(f"  last error: {m['last_error']}")


def _interval(seconds: float) -> str:
    if seconds < 0:
        return "never"
    return "always" if seconds == 0 else f"{seconds:g}s"


@app.command()
@api_errors
def sync(
    path: str,
    recursive: Annotated[bool, typer.Option("-r", "-R", help="Whole subtree.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Re-check PATH against its under-storage now."""
    result = G.client().post("/fs/sync", {"path": path, "recursive": recursive})
    emit(as_json, result, f"synced {path}: {result['directories_listed']} directories listed")
