"""`nsd users ls`: the daemon's user map (configured users, and Hadoop names given ids here)."""

from __future__ import annotations

import typer

from nsd.cli.app import G, JsonOpt, api_errors, app, emit

users_app = typer.Typer(no_args_is_help=True, help="The daemon's map of user names to ids.")
app.add_typer(users_app, name="users")


@users_app.command("ls")
@api_errors
def users_ls(as_json: JsonOpt = False) -> None:
    """Configured users and the names given ids from auto_id_range (unknown Hadoop users)."""
    users = G.client().get("/users")["users"]
    rows = [f"{'NAME':<24} {'UID':>8} {'GID':>8}  SOURCE  GROUPS"]
    rows += [f"{u['name']:<24} {u['uid']:>8} {u['gid']:>8}  {u['source']:<6}  {','.join(u['groups'])}" for u in users]
    emit(as_json, users, "\n".join(rows))
