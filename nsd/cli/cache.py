"""Cache controls: `nsd load|free|pin|unpin|persist PATH [-r]`, `nsd ttl set|rm`, and the same
under `nsd cache ...` (Alluxio's `fs load`/`free`/`pin` habits, both spellings)."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer

from nsd.cli.app import G, JsonOpt, api_errors, app, fail
from nsd.cli.fs import transfer_progress
from nsd.units import human_bytes, human_duration, parse_duration

cache_app = typer.Typer(no_args_is_help=True, help="Cache controls: load, free, pin, unpin, persist, ttl.")
ttl_app = typer.Typer(no_args_is_help=True, help="Time to live: free or delete a path when it expires.")
app.add_typer(cache_app, name="cache")
app.add_typer(ttl_app, name="ttl")
cache_app.add_typer(ttl_app, name="ttl")

RecursiveOpt = Annotated[bool, typer.Option("-r", "-R", "--recursive", help="Every file below a directory.")]


def _files(n: int) -> str:
    return f"{n:,} file" + ("" if n == 1 else "s")


def load(path: str, recursive: RecursiveOpt = False, as_json: JsonOpt = False) -> None:
    """Read PATH into the cache (a progress bar on a terminal, then a summary); exit 1 if a file failed."""
    lines = G.client().post_lines("/cache/load", {"path": path, "recursive": recursive})
    plan = next(lines)
    summary: dict[str, Any] = {}
    failures: list[str] = []
    with transfer_progress("load", plan["bytes"]) as advance:
        for event in lines:
            if "summary" in event:
                summary = event["summary"]
                break
            advance(event["bytes"])
            if "error" in event:
                failures.append(f"{event['path']}: {event['error']}")
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        for failure in failures:
            typer.echo(f"nsd: load failed: {failure}", err=True)
        rate = summary["bytes_from_ufs"] / summary["seconds"] if summary.get("seconds") else 0.0
        typer.echo(
            f"loaded {_files(summary['files'])}, {human_bytes(summary['bytes'])}: "
            f"{human_bytes(summary['bytes_from_ufs'])} from the under-storage, "
            f"{human_bytes(summary['bytes_already_cached'])} already cached, "
            f"in {summary['seconds']:.1f} s ({human_bytes(rate)}/s)"
        )
    if summary.get("failed"):
        raise typer.Exit(1)


def free(path: str, recursive: RecursiveOpt = False, as_json: JsonOpt = False) -> None:
    """Drop PATH's cached blocks (never unpersisted or pinned data: those are skipped)."""
    r = G.client().post("/cache/free", {"path": path, "recursive": recursive})
    if as_json:
        typer.echo(json.dumps(r))
        return
    typer.echo(
        f"freed {_files(r['freed_files'])} ({human_bytes(r['freed_bytes'])} released); skipped "
        f"{r['skipped_unpersisted']:,} not yet persisted, {r['skipped_pinned']:,} pinned"
    )


def pin(path: str, recursive: RecursiveOpt = False, as_json: JsonOpt = False) -> None:
    """Pin PATH: its cached blocks are never evicted (`nsd load` caches them); a directory is
    pinned whole, and files created in it later are pinned too."""
    _pin(path, recursive, as_json, "pin")


def unpin(path: str, recursive: RecursiveOpt = False, as_json: JsonOpt = False) -> None:
    """Unpin PATH (a directory whole, and files created in it later no longer inherit a pin)."""
    _pin(path, recursive, as_json, "unpin")


def _pin(path: str, recursive: bool, as_json: bool, what: str) -> None:
    r = G.client().post(f"/cache/{what}", {"path": path, "recursive": recursive})
    if as_json:
        typer.echo(json.dumps(r))
    else:
        dirs = r.get("directories", 0)
        also = f" in {dirs:,} director{'y' if dirs == 1 else 'ies'}" if dirs else ""
        typer.echo(f"{what}ned {_files(r['files'])}{also} ({r['changed']:,} changed)")


def persist(path: str, recursive: RecursiveOpt = False, as_json: JsonOpt = False) -> None:
    """Write PATH's unpersisted data (MUST_CACHE, ASYNC_THROUGH) to its under-storage now."""
    r = G.client().post("/cache/persist", {"path": path, "recursive": recursive})
    if as_json:
        typer.echo(json.dumps(r))
    else:
        typer.echo(f"persisted {_files(r['persisted'])} ({r['already_persisted']:,} already persisted)")


def _local_time(ns: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ns / 1e9))


@ttl_app.command("set")
@api_errors
def ttl_set(
    path: str,
    duration: Annotated[str, typer.Argument(help="From now: seconds, or 90s, 15m, 12h, 1d, 2w.")],
    action: Annotated[str, typer.Option("--action", help="free (drop cached data) or delete.")] = "free",
    as_json: JsonOpt = False,
) -> None:
    """Give PATH a time to live; when it expires its data is freed or it is deleted."""
    try:
        seconds = parse_duration(duration)
    except ValueError as e:
        fail(str(e), 2)
    r = G.client().post("/cache/ttl", {"path": path, "seconds": seconds, "action": action})
    if as_json:
        typer.echo(json.dumps(r))
    else:
        typer.echo(f"TTL of {path}: {action} at {_local_time(r['expires_ns'])} (in {human_duration(seconds)})")


@ttl_app.command("ls")
@api_errors
def ttl_ls(
    path: Annotated[str, typer.Argument(help="Only TTLs at or below this path.")] = "/",
    as_json: JsonOpt = False,
) -> None:
    """Every TTL, soonest first: when it expires, how long is left, the action, the path."""
    ttls = G.client().get("/cache/ttl", path=path)["ttls"]
    if as_json:
        typer.echo(json.dumps(ttls))
        return
    if ttls:
        typer.echo(f"{'EXPIRES':<19}  {'LEFT':<8}  {'ACTION':<6}  PATH")
    for t in ttls:
        left = human_duration(t["seconds_left"]) if t["seconds_left"] > 0 else "due"
        typer.echo(f"{_local_time(t['expires_ns']):<19}  {left:<8}  {t['action']:<6}  {t['path']}")


@ttl_app.command("rm")
@api_errors
def ttl_rm(path: str, as_json: JsonOpt = False) -> None:
    """Remove PATH's TTL."""
    r = G.client().post("/cache/ttl/remove", {"path": path})
    typer.echo(json.dumps(r) if as_json else f"TTL of {path} removed")


for _fn in (load, free, pin, unpin, persist):
    wrapped = api_errors(_fn)
    app.command(_fn.__name__)(wrapped)
    cache_app.command(_fn.__name__)(wrapped)
