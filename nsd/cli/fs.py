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

from nsd.cli.app import G, JsonOpt, api_errors, app, emit, fail, fs_app


def _mode_string(entry: dict[str, Any]) -> str:
    kinds = {"dir": st.S_IFDIR, "symlink": st.S_IFLNK, "fifo": st.S_IFIFO, "socket": st.S_IFSOCK}
    kind = kinds.get(entry["type"], st.S_IFREG)
    return st.filemode(kind | entry["mode"])


def _long_line(entry: dict[str, Any]) -> str:
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry["mtime_ns"] / 1e9))
    name = entry["name"] + (f" -> {entry['target']}" if "target" in entry else "")
    return (
        f"{_mode_string(entry)} {entry['nlink']:>3} {entry.get('owner', entry['uid']):>8} "
        f"{entry.get('group', entry['gid']):>8} "
        f"{entry['size']:>12} {when} {name}"
    )


@app.command()
@api_errors
def ls(
    path: Annotated[str, typer.Argument()] = "/",
    long: Annotated[bool, typer.Option("-l", help="Long listing.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """List a directory (a file lists as itself)."""
    client = G.client()
    entries = list(client.list(path))
    if entries and entries[0]["name"] == "" and len(entries) == 1:
        entries[0]["name"] = path.rstrip("/").rsplit("/", 1)[-1]
    if as_json:
        typer.echo(json.dumps(entries))
        return
    for entry in entries:
        typer.echo(_long_line(entry) if long else entry["name"])


@app.command("stat")
@api_errors
def stat_cmd(path: str, as_json: JsonOpt = False) -> None:
    """Show one object's attributes."""
    info = G.client().stat(path)
    if as_json:
        typer.echo(json.dumps(info))
        return
    for key in ("path", "type", "ino", "gen", "size", "nlink", "uid", "gid"):
        typer.echo(f"{key:>6}: {info[key]}")
    typer.echo(f"{'mode':>6}: {_mode_string(info)} ({info['mode']:04o})")
    for key in ("atime_ns", "mtime_ns", "ctime_ns"):
        t = info[key]
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t // 10**9)) + f".{t % 10**9:09d}"
        typer.echo(f"{key[:5]:>6}: {stamp}")
    if "target" in info:
        typer.echo(f"{'target':>6}: {info['target']}")


@app.command()
@api_errors
def mkdir(
    path: str,
    parents: Annotated[bool, typer.Option("-p", help="Make parents; no error if it exists.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create a directory (--json: its attributes)."""
    emit(as_json, G.client().post("/fs/mkdir", {"path": path, "parents": parents}))


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


@app.command()
@api_errors
def put(
    local: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    path: str,
    force: Annotated[bool, typer.Option("-f", "--force", help="Overwrite an existing file.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Copy a local file into nsd (a progress bar on a terminal; --json: the new file's attributes)."""
    with open(local, "rb") as f, transfer_progress("put", local.stat().st_size) as advance:
        reply = G.client().put(path, _counting(f, advance), overwrite=force)
    emit(as_json, reply)


@app.command()
@api_errors
def get(path: str, local: Path, as_json: JsonOpt = False) -> None:
    """Copy a file out of nsd (written to LOCAL.part, then renamed; a progress bar on a terminal)."""
    tmp = local.with_name(local.name + ".part")
    client = G.client()
    copied = 0
    try:
        with open(tmp, "wb") as f, transfer_progress("get", client.stat(path)["size"]) as advance:
            for chunk in client.read(path):
                f.write(chunk)
                copied += len(chunk)
                advance(len(chunk))
        os.replace(tmp, local)
    finally:
        tmp.unlink(missing_ok=True)
    emit(as_json, {"path": path, "local": str(local), "bytes": copied})


@app.command()
@api_errors
def cat(path: str) -> None:
    """Write a file's bytes to standard output."""
    out = sys.stdout.buffer
    for chunk in G.client().read(path):
        out.write(chunk)
    out.flush()


@app.command()
@api_errors
def rm(
    path: str,
    recursive: Annotated[bool, typer.Option("-r", "-R", help="Remove directories and contents.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Remove a file, a symlink or (with -r) a directory tree."""
    emit(as_json, G.client().post("/fs/remove", {"path": path, "recursive": recursive}))


@app.command()
@api_errors
def mv(src: str, dst: str, as_json: JsonOpt = False) -> None:
    """Rename or move (into DST when DST is a directory)."""
    emit(as_json, G.client().post("/fs/rename", {"src": src, "dst": dst}))


for _name, _fn in [
    ("ls", ls),
    ("stat", stat_cmd),
    ("mkdir", mkdir),
    ("put", put),
    ("get", get),
    ("cat", cat),
    ("rm", rm),
    ("mv", mv),
]:
    fs_app.command(_name)(_fn)


@fs_app.command()
@api_errors
def head(path: str, bytes_: Annotated[int, typer.Option("-c", "--bytes", help="How many bytes.")] = 1024) -> None:
    """The first bytes of a file."""
    for chunk in G.client().read(path, 0, bytes_):
        sys.stdout.buffer.write(chunk)
    sys.stdout.buffer.flush()


@fs_app.command()
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


@fs_app.command()
@api_errors
def du(paths: list[str], as_json: JsonOpt = False) -> None:
    """Bytes used below each PATH (one total per argument)."""
    rows = [{"path": path, "bytes": _walk(path)[2]} for path in paths]
    if as_json:
        emit(True, rows)
        return
    for r in rows:
        typer.echo(f"{r['bytes']:>14}  {r['path']}")


@fs_app.command()
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


@fs_app.command()
@api_errors
def chmod(mode: str, path: str, as_json: JsonOpt = False) -> None:
    """Set permission bits (octal, e.g. 640)."""
    try:
        bits = int(mode, 8)
    except ValueError:
        fail(f"mode must be octal, got {mode!r}", 2)
    emit(as_json, G.client().post("/fs/setattr", {"path": path, "mode": bits}))


@fs_app.command()
@api_errors
def chown(owner: str, path: str, as_json: JsonOpt = False) -> None:
    """Set owner and/or group: USER, USER:GROUP or :GROUP (names or numbers, resolved by the
    daemon's user map, as WebHDFS does: a user nobody knows gets an id with unknown_users = map)."""
    user, _, group = owner.partition(":")
    body: dict[str, Any] = {"path": path}
    if user:
        body["uid" if user.isdigit() else "owner"] = int(user) if user.isdigit() else user
    if group:
        body["gid" if group.isdigit() else "group"] = int(group) if group.isdigit() else group
    emit(as_json, G.client().post("/fs/setattr", body))


@fs_app.command()
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
