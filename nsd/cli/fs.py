"""File-system commands against a running daemon (`nsd ls`, `nsd fs ls`, ...)."""

from __future__ import annotations

import contextlib
import json
import os
import stat as st
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, BinaryIO

import typer

from nsd.cli.app import G, JsonOpt, api_errors, app, emit, fail, fs_app, human_bytes


def file_command(name: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A file command, as `nsd NAME` and as `nsd fs NAME` (what hdfs dfs users type)."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        app.command(name)(fn)
        fs_app.command(name)(fn)
        return fn

    return register


def _mode_string(entry: dict[str, Any]) -> str:
    kinds = {"dir": st.S_IFDIR, "symlink": st.S_IFLNK, "fifo": st.S_IFIFO, "socket": st.S_IFSOCK}
    kind = kinds.get(entry["type"], st.S_IFREG)
    return st.filemode(kind | entry["mode"])


def _long_line(entry: dict[str, Any], human: bool = False) -> str:
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry["mtime_ns"] / 1e9))
    name = entry["name"] + (f" -> {entry['target']}" if "target" in entry else "")
    size = human_bytes(entry["size"]) if human else str(entry["size"])
    return (
        f"{_mode_string(entry)} {entry['nlink']:>3} {entry['owner']:<10} {entry['group']:<10} "
        f"{size:>12} {when} {_data_state(entry)} {name}"
    )


def _data_state(entry: dict[str, Any]) -> str:
    """Three letters for a file's data, as `alluxio fs ls` shows it: P persisted (else -), p pinned,
    c cached (some of it); directories show dashes."""
    if entry.get("type") != "file":
        return "---"
    persisted = "P" if entry.get("persisted", True) else "-"
    pinned = "p" if entry.get("pinned") else "-"
    cached = "c" if entry.get("cached_bytes", 0) else "-"
    return persisted + pinned + cached


GLOB_CHARS = frozenset("*?[")


def expand(client: Any, pattern: str) -> list[str]:
    """The paths a glob (`*`, `?`, `[...]` per component, as `hdfs dfs` takes them) names, in
    name order; a path without one is itself. No match is NotFound, as a missing path would be."""
    import fnmatch

    from nsd.errors import NotFound

    if not GLOB_CHARS & set(pattern):
        return [pattern]
    found = ["/"]
    for part in [p for p in pattern.split("/") if p]:
        if not GLOB_CHARS & set(part):
            found = [f"{d.rstrip('/')}/{part}" for d in found]
            continue
        found = [
            f"{d.rstrip('/')}/{e['name']}"
            for d in found
            if client.stat(d)["type"] == "dir"
            for e in client.list(d)
            if fnmatch.fnmatchcase(e["name"], part)
        ]
    if not found:
        raise NotFound(f"{pattern}: no such file or directory")
    return found


def _listing(client: Any, path: str, directory: bool, recursive: bool) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """(header, entries) per directory listed: PATH's entries, or PATH itself when it is not a
    directory or with -d; with -R every directory below, depth first in name order."""
    info = client.stat(path)
    if directory or info["type"] != "dir":
        yield "", [{**info, "name": path}]
        return
    todo = [path]
    while todo:
        d = todo.pop(0)
        entries = list(client.list(d))
        yield d, entries
        if recursive:
            todo[:0] = [f"{d.rstrip('/')}/{e['name']}" for e in entries if e["type"] == "dir"]


@file_command()
@api_errors
def ls(
    paths: Annotated[list[str] | None, typer.Argument(help="Paths or globs (default /).")] = None,
    long: Annotated[bool, typer.Option("-l", help="Long listing.")] = False,
    recursive: Annotated[bool, typer.Option("-R", help="List directories below too.")] = False,
    directory: Annotated[bool, typer.Option("-d", help="List directories themselves, not their entries.")] = False,
    human: Annotated[bool, typer.Option("-h", help="Sizes in KiB, MiB, GiB (with -l).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """List directories (a file lists as itself); -l shows owner, group, size, time and whether
    the data is persisted, pinned or cached."""
    client = G.client()
    targets = [p for pattern in paths or ["/"] for p in expand(client, pattern)]
    sections = [section for path in targets for section in _listing(client, path, directory, recursive)]
    if as_json:
        if len(sections) == 1:
            typer.echo(json.dumps(sections[0][1]))
        else:
            typer.echo(json.dumps([{"path": header, "entries": entries} for header, entries in sections]))
        return
    several = len(sections) > 1
    for i, (header, entries) in enumerate(sections):
        if several and header:
            typer.echo(("\n" if i else "") + f"{header}:")
        for entry in entries:
            typer.echo(_long_line(entry, human) if long else entry["name"])


@file_command("stat")
@api_errors
def stat_cmd(path: str, as_json: JsonOpt = False) -> None:
    """Show one object's attributes."""
    info = G.client().stat(path)
    if as_json:
        typer.echo(json.dumps(info))
        return
    for key in ("path", "type", "ino", "gen", "size", "nlink"):
        typer.echo(f"{key:>6}: {info[key]}")
    typer.echo(f"{'owner':>6}: {info['owner']} ({info['uid']})")
    typer.echo(f"{'group':>6}: {info['group']} ({info['gid']})")
    typer.echo(f"{'mode':>6}: {_mode_string(info)} ({info['mode']:04o})")
    for key in ("atime_ns", "mtime_ns", "ctime_ns"):
        t = info[key]
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t // 10**9)) + f".{t % 10**9:09d}"
        typer.echo(f"{key[:5]:>6}: {stamp}")
    if "target" in info:
        typer.echo(f"{'target':>6}: {info['target']}")


@file_command()
@api_errors
def mkdir(
    paths: list[str],
    parents: Annotated[bool, typer.Option("-p", help="Make parents; no error if it exists.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create directories (--json: their attributes)."""
    client = G.client()
    made = [client.post("/fs/mkdir", {"path": path, "parents": parents}) for path in paths]
    emit(as_json, made[0] if len(made) == 1 else made)


@contextlib.contextmanager
def transfer_progress(label: str, total: int, *, quiet: bool = False) -> Iterator[Callable[[int], None]]:
    """A rich progress bar with rate and ETA on stderr when it is a terminal (and not `quiet`)."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

    console = Console(stderr=True)
    columns = (BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
    with Progress(f"{label}", *columns, console=console, disable=quiet or not console.is_terminal) as progress:
        task = progress.add_task(label, total=total)
        yield lambda n: progress.advance(task, n)


class _counting:
    """A binary file whose reads advance a progress bar."""

    def __init__(self, f: BinaryIO, advance: Callable[[int], None]) -> None:
        self.f, self.advance = f, advance

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.advance(len(data))
        return data


@file_command()
@api_errors
def put(
    local: Annotated[str, typer.Argument(help="A local file, or - for standard input.")],
    path: str,
    force: Annotated[bool, typer.Option("-f", "--force", help="Overwrite an existing file.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Copy a local file into nsd (a progress bar on a terminal; --json: the new file's attributes)."""
    if local == "-":
        emit(as_json, G.client().put(path, sys.stdin.buffer, overwrite=force))
        return
    source = Path(local)
    if not source.is_file():
        fail(f"no such local file: {local}")
    with open(source, "rb") as f, transfer_progress("put", source.stat().st_size) as advance:
        reply = G.client().put(path, _counting(f, advance), overwrite=force)
    emit(as_json, reply)


@file_command()
@api_errors
def get(
    path: str,
    local: Annotated[str, typer.Argument(help="A local file, an existing directory, or - for standard output.")],
    force: Annotated[bool, typer.Option("-f", "--force", help="Overwrite an existing local file.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Copy a file out of nsd (written to LOCAL.part, then renamed; a progress bar on a terminal).
    Like put, an existing LOCAL file is kept unless -f."""
    if local == "-":
        cat(path)
        return
    target = Path(local)
    if target.is_dir():
        target = target / path.rstrip("/").rsplit("/", 1)[-1]
    if not target.parent.is_dir():
        fail(f"no such local directory: {target.parent}")
    if target.exists() and not force:
        fail(f"{target} exists (use -f to overwrite)")
    client = G.client()
    info = client.stat(path)
    if info["type"] != "file":
        fail(f"{path} is a {info['type']}, not a file")
    tmp = target.with_name(target.name + ".part")
    copied = 0
    try:
        with open(tmp, "wb") as f, transfer_progress("get", info["size"]) as advance:
            for chunk in client.read(path):
                f.write(chunk)
                copied += len(chunk)
                advance(len(chunk))
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    emit(as_json, {"path": path, "local": str(target), "bytes": copied})


@file_command()
@api_errors
def cat(path: str) -> None:
    """Write a file's bytes to standard output."""
    out = sys.stdout.buffer
    for chunk in G.client().read(path):
        out.write(chunk)
    out.flush()


@file_command()
@api_errors
def rm(
    paths: list[str],
    recursive: Annotated[bool, typer.Option("-r", "-R", help="Remove directories and contents.")] = False,
    force: Annotated[bool, typer.Option("-f", help="No error for a path that does not exist.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Remove files, symlinks or (with -r) directory trees."""
    from nsd.cli.client import ApiError

    client = G.client()
    replies = []
    for path in paths:
        try:
            replies.append(client.post("/fs/remove", {"path": path, "recursive": recursive}))
        except ApiError as e:
            if not (force and e.kind == "NotFound"):
                raise
    emit(as_json, replies[0] if len(paths) == 1 and replies else replies)


@file_command()
@api_errors
def mv(paths: Annotated[list[str], typer.Argument(help="SRC... DST")], as_json: JsonOpt = False) -> None:
    """Rename or move (into DST when DST is a directory; several sources need one)."""
    if len(paths) < 2:
        fail("give SRC... DST", 2)
    *sources, dst = paths
    client = G.client()
    moved = [client.post("/fs/rename", {"src": src, "dst": dst}) for src in sources]
    emit(as_json, moved[0] if len(moved) == 1 else moved)


@file_command("test")
@api_errors
def test_cmd(
    path: str,
    exists: Annotated[bool, typer.Option("-e", help="PATH exists.")] = False,
    is_dir: Annotated[bool, typer.Option("-d", help="PATH is a directory.")] = False,
    is_file: Annotated[bool, typer.Option("-f", help="PATH is a file.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Exit 0 if PATH exists (-e, the default), is a directory (-d) or a file (-f), else 1."""
    from nsd.cli.client import ApiError

    try:
        kind = G.client().stat(path)["type"]
    except ApiError as e:
        if e.kind != "NotFound":
            raise
        kind = None
    answer = kind == "dir" if is_dir else kind == "file" if is_file else kind is not None
    emit(as_json, {"path": path, "true": answer})
    raise typer.Exit(0 if answer else 1)


@file_command()
@api_errors
def head(path: str, bytes_: Annotated[int, typer.Option("-c", "--bytes", help="How many bytes.")] = 1024) -> None:
    """The first bytes of a file."""
    for chunk in G.client().read(path, 0, bytes_):
        sys.stdout.buffer.write(chunk)
    sys.stdout.buffer.flush()


@file_command()
@api_errors
def tail(path: str, bytes_: Annotated[int, typer.Option("-c", "--bytes", help="How many bytes.")] = 1024) -> None:
    """The last bytes of a file."""
    client = G.client()
    size = client.stat(path)["size"]
    for chunk in client.read(path, max(0, size - bytes_)):
        sys.stdout.buffer.write(chunk)
    sys.stdout.buffer.flush()


def _walk(path: str) -> Any:
    """(directories, files, bytes) below `path`, listing page by page."""
    client = G.client()
    info = client.stat(path)
    if info["type"] != "dir":
        return 0, 1, info["size"]
    dirs, files, size = 1, 0, 0
    todo = [path.rstrip("/") or "/"]
    while todo:
        d = todo.pop()
        for e in client.list(d):
            child = f"{d.rstrip('/')}/{e['name']}"
            if e["type"] == "dir":
                dirs += 1
                todo.append(child)
            else:
                files += 1
                size += e["size"]
    return dirs, files, size


@file_command()
@api_errors
def du(paths: list[str], as_json: JsonOpt = False) -> None:
    """Bytes used below each PATH (one total per argument)."""
    rows = [{"path": path, "bytes": _walk(path)[2]} for path in paths]
    if as_json:
        emit(True, rows)
        return
    for r in rows:
        typer.echo(f"{r['bytes']:>14}  {r['path']}")


@file_command()
@api_errors
def count(paths: list[str], as_json: JsonOpt = False) -> None:
    """Directories, files and bytes below each PATH (as `hdfs dfs -count`)."""
    rows = []
    for path in paths:
        dirs, files, size = _walk(path)
        rows.append({"path": path, "directories": dirs, "files": files, "bytes": size})
    if as_json:
        typer.echo(json.dumps(rows))
        return
    for r in rows:
        typer.echo(f"{r['directories']:>12} {r['files']:>12} {r['bytes']:>18} {r['path']}")


@file_command()
@api_errors
def chmod(mode: str, path: str, as_json: JsonOpt = False) -> None:
    """Set permission bits (octal, e.g. 640)."""
    try:
        bits = int(mode, 8)
    except ValueError:
        fail(f"mode must be octal, got {mode!r}", 2)
    emit(as_json, G.client().post("/fs/setattr", {"path": path, "mode": bits}))


@file_command()
@api_errors
def chown(owner: str, path: str, as_json: JsonOpt = False) -> None:
    """Set owner and/or group: USER, USER:GROUP or :GROUP (names or numbers), by the daemon's user
    map (a Hadoop user name it has never seen is given an id, as HDFS takes any name)."""
    user, _, group = owner.partition(":")
    if not user and not group:
        fail("give USER, USER:GROUP or :GROUP", 2)
    body: dict[str, Any] = {"path": path}
    if user:
        body.update({"uid": int(user)} if user.isdigit() else {"owner": user})
    if group:
        body.update({"gid": int(group)} if group.isdigit() else {"group": group})
    emit(as_json, G.client().post("/fs/setattr", body))


@file_command()
@api_errors
def chgrp(group: str, path: str, as_json: JsonOpt = False) -> None:
    """Set the group (a name or a number)."""
    chown(":" + group, path, as_json)


@file_command()
@api_errors
def touch(path: str, as_json: JsonOpt = False) -> None:
    """Create an empty file, or set an existing one's times to now."""
    import io

    from nsd.cli.client import ApiError

    client = G.client()
    try:
        reply = client.put(path, io.BytesIO(b""), overwrite=False)
    except ApiError as e:
        if e.kind != "Exists":
            raise
        now = time.time_ns()
        reply = client.post("/fs/setattr", {"path": path, "atime_ns": now, "mtime_ns": now})
    emit(as_json, reply)
