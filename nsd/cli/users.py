"""`nsd users ls`: the ids the daemon gave to user names nobody else knows."""

from __future__ import annotations

import typer

from nsd.cli.app import G, JsonOpt, api_errors, app, emit

users_app = typer.Typer(no_args_is_help=True, help="User names the daemon maps to ids (see unknown_users).")
app.add_typer(users_app, name="users")


@users_app.command("ls")
@api_errors
def users_ls(as_json: JsonOpt = False) -> None:
    """Names nobody configured that got an id from auto_id_range: NAME UID GID GROUP."""
    reply = G.client().get("/users")
    if as_json:
        emit(True, reply)
        return
    typer.echo(f"# unknown_users = {reply['unknown_users']}, auto_id_range = {reply['auto_id_range']}")
    rows = [("NAME", "UID", "GID", "GROUP")] + [
        (u["name"], str(u["uid"]), str(u["gid"]), u["group"]) for u in reply["users"]
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
