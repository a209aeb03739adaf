"""`nsd users ls`: the daemon's user map (configured users and names mapped to auto_id_range)."""

from __future__ import annotations

import json

import typer

from nsd.cli.app import G, JsonOpt, api_errors, app

users_app = typer.Typer(no_args_is_help=True, help="The user map NFS and WebHDFS share.")
app.add_typer(users_app, name="users")


@users_app.command("ls")
@api_errors
def users_ls(as_json: JsonOpt = False) -> None:
    """Configured users and the users nobody knew that got an id from auto_id_range (with
    unknown_users = map); users of the machine's passwd are not listed."""
    reply = G.client().get("/users")
    if as_json:
        typer.echo(json.dumps(reply))
        return
    rows = [("NAME", "UID", "GID", "GROUPS", "SOURCE")]
    for u in reply["users"]:
        rows.append((u["name"], str(u["uid"]), str(u["gid"]), ",".join(map(str, u["groups"])), u["source"]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        typer.echo("  ".join(f"{cell:<{w}}" for cell, w in zip(row, widths, strict=True)).rstrip())
    typer.echo(f"unknown_users = {reply['unknown_users']}, auto_id_range = {reply['auto_id_range']}")
