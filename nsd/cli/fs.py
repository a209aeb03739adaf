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
    if info["type"] == "file":
        cached = human_bytes(info.get("cached_bytes", 0))
        typer.echo(
            f"{'data':>6}: {_data_state(info)} (persisted {info.get('persisted', True)}, pinned "
            f"{info.get('pinned', False)}, {cached} cached)"
        )
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
    from rich.progress import BarColumn, DownloadColumn, Progress, ProgressColumn, Task, TimeRemainingColumn
    from rich.text import Text

    class BinaryRate(ProgressColumn):
        """The rate in MiB/s, as every other size the CLI prints (rich's own is in MB/s)."""

        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            return Text("?" if speed is None else f"{human_bytes(speed)}/s", style="progress.data.speed")

    console = Console(stderr=True)
    columns = (BarColumn(), DownloadColumn(binary_units=True), BinaryRate(), TimeRemainingColumn())
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
    local: Annotated[str, typer.Argument(help="A local file or directory, or - for standard input.")],
    path: str,
    force: Annotated[bool, typer.Option("-f", "--force", help="Overwrite existing files.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Copy a local file, or a directory and everything below it, into nsd (into PATH when it is
    a directory, as hdfs dfs -put); a progress bar on a terminal; --json: what was written."""
    client = G.client()
    if local == "-":
        emit(as_json, client.put(path, sys.stdin.buffer, overwrite=force))
        return
    source = Path(local)
    if not source.exists():
        fail(f"no such local file or directory: {local}")
    target = _into(client, path, source.name)
    if source.is_file():
        emit(as_json, _upload(client, source, target, force))
        return
    written = []
    client.post("/fs/mkdir", {"path": target, "parents": True})
    for here, dirs, files in os.walk(source):
        below = target + "/" + Path(here).relative_to(source).as_posix() if Path(here) != source else target
        for d in sorted(dirs):
            client.post("/fs/mkdir", {"path": f"{below}/{d}", "parents": True})
        for f in sorted(files):
            written.append(_upload(client, Path(here) / f, f"{below}/{f}", force)["path"])
    emit(as_json, {"path": target, "files": written})


def _into(client: Any, path: str, name: str) -> str:
    """PATH, or PATH/NAME when PATH is an existing directory."""
    from nsd.cli.client import ApiError

    try:
        is_dir = client.stat(path)["type"] == "dir"
    except ApiError as e:
        if e.kind != "NotFound":
            raise
        is_dir = False
    return f"{path.rstrip('/')}/{name}" if is_dir else path


def _upload(client: Any, source: Path, path: str, force: bool) -> dict[str, Any]:
    with open(source, "rb") as f, transfer_progress("put", source.stat().st_size) as advance:
        reply: dict[str, Any] = client.put(path, _counting(f, advance), overwrite=force)
    return reply


@file_command()
@api_errors
def get(
    path: str,
    local: Annotated[str, typer.Argument(help="A local file or directory, or - for standard output.")],
    force: Annotated[bool, typer.Option("-f", "--force", help="Overwrite existing local files.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Copy a file, or a directory and everything below it, out of nsd (into LOCAL when it is an
    existing directory). Each file is written to NAME.part, then renamed; like put, an existing
    local file is kept unless -f."""
    if local == "-":
        cat(path)
        return
    client = G.client()
    target = Path(local)
    if target.is_dir():
        target = target / (path.rstrip("/").rsplit("/", 1)[-1] or "root")
    if not target.parent.is_dir():
        fail(f"no such local directory: {target.parent}")
    info = client.stat(path)
    if info["type"] == "file":
        emit(as_json, {"path": path, "local": str(target), "bytes": _download(client, path, target, info, force)})
        return
    if info["type"] != "dir":
        fail(f"{path} is a {info['type']}, not a file or directory")
    copied = 0
    target.mkdir(exist_ok=True)
    for d, entries in _listing(client, path, False, True):
        here = target / d[len(path.rstrip("/")) :].lstrip("/")
        here.mkdir(parents=True, exist_ok=True)
        for e in (e for e in entries if e["type"] == "file"):
            copied += _download(client, f"{d.rstrip('/')}/{e['name']}", here / e["name"], e, force)
    emit(as_json, {"path": path, "local": str(target), "bytes": copied})


def _download(client: Any, path: str, target: Path, info: dict[str, Any], force: bool) -> int:
    if target.exists() and not force:
        fail(f"{target} exists (use -f to overwrite)")
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
    return copied


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
def tail(
    path: str,
    bytes_: Annotated[int, typer.Option("-c", "--bytes", help="How many bytes.")] = 1024,
    follow: Annotated[bool, typer.Option("-f", help="Keep printing what is appended (Ctrl-C ends).")] = False,
    interval: Annotated[float, typer.Option("--interval", help="Seconds between looks, with -f.")] = 1.0,
) -> None:
    """The last bytes of a file; with -f, then whatever is appended to it."""
    client = G.client()
    size = client.stat(path)["size"]
    offset = max(0, size - bytes_)
    while True:
        for chunk in client.read(path, offset):
            sys.stdout.buffer.write(chunk)
            offset += len(chunk)
        sys.stdout.buffer.flush()
        if not follow:
            return
        time.sleep(interval)
        if client.stat(path)["size"] < offset:
            offset = 0  # truncated or replaced: start again, as tail -f does


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
def du(
    paths: list[str],
    summary: Annotated[bool, typer.Option("-s", help="One total per PATH (the default; as hdfs dfs -du -s).")] = False,
    human: Annotated[bool, typer.Option("-h", help="Sizes in KiB, MiB, GiB.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Bytes used below each PATH (one total per argument)."""
    client = G.client()
    rows = [{"path": path, "bytes": _walk(path)[2]} for pattern in paths for path in expand(client, pattern)]
    if as_json:
        emit(True, rows)
        return
    for r in rows:
        size = human_bytes(r["bytes"]) if human else str(r["bytes"])
        typer.echo(f"{size:>14}  {r['path']}")


@file_command()
@api_errors
def df(
    human: Annotated[bool, typer.Option("-h", help="Sizes in KiB, MiB, GiB.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Capacity, used and available bytes of the root under-storage (as hdfs dfs -df)."""
    d = G.client().get("/fs/df")
    if as_json:
        emit(True, d)
        return
    size = human_bytes if human else str
    used = f"{100 * d['used'] / d['capacity']:.0f}%" if d["capacity"] else "-"
    typer.echo(f"{'Filesystem':<28} {'Size':>12} {'Used':>12} {'Available':>12}  Use%")
    typer.echo(f"{G.server:<28} {size(d['capacity']):>12} {size(d['used']):>12} {size(d['remaining']):>12}  {used}")


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
def chmod(
    mode: Annotated[str, typer.Argument(help="Octal (640) or symbolic (u+x,go-w,a=r,+t).")],
    paths: list[str],
    recursive: Annotated[bool, typer.Option("-R", help="Everything below each PATH too.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Set permission bits, as chmod(1) and hdfs dfs -chmod take them."""
    try:
        change = parse_mode(mode)
    except ValueError as e:
        fail(str(e), 2)
    client = G.client()
    replies = []
    for path in _targets(client, paths, recursive):
        info = client.stat(path, follow=False)
        if info["type"] == "symlink":
            continue  # as chmod -R: links are not followed, and have no bits of their own
        replies.append(client.post("/fs/setattr", {"path": path, "mode": change(info["mode"], info["type"] == "dir")}))
    emit(as_json, replies[0] if len(replies) == 1 else replies)


def parse_mode(text: str) -> Callable[[int, bool], int]:
    """chmod's MODE as a function of (old bits, is a directory): octal sets them all; symbolic
    clauses [ugoa]*[+-=][rwxXst]* (comma-separated) change some. ValueError for anything else."""
    if text and all(c in "01234567" for c in text):
        bits = int(text, 8)
        if bits > 0o7777:
            raise ValueError(f"mode out of range: {text!r}")
        return lambda old, is_dir: bits
    clauses = []
    for clause in text.split(","):
        who, rest = "", clause
        while rest and rest[0] in "ugoa":
            who, rest = who + rest[0], rest[1:]
        if not rest or rest[0] not in "+-=" or any(c not in "rwxXst" for c in rest[1:]):
            raise ValueError(f"mode must be octal or symbolic such as u+x,go-w, not {text!r}")
        clauses.append((who or "a", rest[0], rest[1:]))

    def apply(old: int, is_dir: bool) -> int:
        bits = old & 0o7777
        for who, op, perms in clauses:
            mask = 0
            for w in "ugo" if "a" in who else who:
                shift = {"u": 6, "g": 3, "o": 0}[w]
                for p in perms:
                    if p == "r":
                        mask |= 4 << shift
                    elif p == "w":
                        mask |= 2 << shift
                    elif p == "x" or (p == "X" and (is_dir or old & 0o111)):
                        mask |= 1 << shift
                    elif p == "s" and w in "ug":
                        mask |= 0o4000 if w == "u" else 0o2000
                if op == "=":
                    bits &= ~((7 << shift) | (0o4000 if w == "u" else 0o2000 if w == "g" else 0))
            if "t" in perms:
                mask |= 0o1000
            if op == "-":
                bits &= ~mask
            else:
                bits |= mask
        return bits

    return apply


def _targets(client: Any, patterns: list[str], recursive: bool) -> list[str]:
    """The paths PATTERNS name (globs expanded), and with `recursive` everything below them."""
    out = []
    for path in (p for pattern in patterns for p in expand(client, pattern)):
        out.append(path)
        if recursive:
            out += [
                f"{d.rstrip('/')}/{e['name']}"
                for d, entries in _listing(client, path, False, True)
                if d  # "" is a file listed as itself: nothing below it
                for e in entries
            ]
    return out


class _ChunkReader:
    """A file-like `read(n)` over an iterator of chunks (a download feeding an upload)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks, self.rest = chunks, b""

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self.rest) < n:
            chunk = next(self.chunks, None)
            if chunk is None:
                break
            self.rest += chunk
        out, self.rest = (self.rest, b"") if n < 0 else (self.rest[:n], self.rest[n:])
        return out


@file_command()
@api_errors
def cp(
    paths: Annotated[list[str], typer.Argument(help="SRC... DST")],
    recursive: Annotated[bool, typer.Option("-r", "-R", help="Copy directories and everything below.")] = False,
    force: Annotated[bool, typer.Option("-f", help="Overwrite existing files.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Copy files (and with -r directory trees) within nsd, across mounts too: the bytes stream
    through this command, read from one path and written to the other."""
    from nsd.cli.client import ApiError

    if len(paths) < 2:
        fail("give SRC... DST", 2)
    client = G.client()
    *sources, dst = paths
    try:
        into = client.stat(dst)["type"] == "dir"
    except ApiError as e:
        if e.kind != "NotFound":
            raise
        into = False
    if len(sources) > 1 and not into:
        fail(f"{dst} is not a directory: several sources need one", 2)
    copied = []
    for src in (p for pattern in sources for p in expand(client, pattern)):
        target = f"{dst.rstrip('/')}/{src.rstrip('/').rsplit('/', 1)[-1]}" if into else dst
        info = client.stat(src)
        if info["type"] == "dir":
            if not recursive:
                fail(f"{src} is a directory (use -r)", 2)
            client.post("/fs/mkdir", {"path": target, "parents": True})
            for d, entries in _listing(client, src, False, True):
                below = target + d[len(src.rstrip("/")) :]
                for entry in entries:
                    there = f"{below}/{entry['name']}"
                    if entry["type"] == "dir":
                        client.post("/fs/mkdir", {"path": there, "parents": True})
                    elif entry["type"] == "file":
                        client.put(there, _ChunkReader(client.read(f"{d}/{entry['name']}")), overwrite=force)
                        copied.append(there)
        else:
            client.put(target, _ChunkReader(client.read(src)), overwrite=force)
            copied.append(target)
    emit(as_json, {"copied": copied})


@file_command()
@api_errors
def chown(
    owner: str,
    paths: list[str],
    recursive: Annotated[bool, typer.Option("-R", help="Everything below each PATH too.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Set owner and/or group: USER, USER:GROUP or :GROUP (names or numbers), by the daemon's user
    map (a Hadoop user name it has never seen is given an id, as HDFS takes any name)."""
    user, _, group = owner.partition(":")
    if not user and not group:
        fail("give USER, USER:GROUP or :GROUP", 2)
    change: dict[str, Any] = {}
    if user:
        change.update({"uid": int(user)} if user.isdigit() else {"owner": user})
    if group:
        change.update({"gid": int(group)} if group.isdigit() else {"group": group})
    client = G.client()
    replies = [client.post("/fs/setattr", {"path": path, **change}) for path in _targets(client, paths, recursive)]
    emit(as_json, replies[0] if len(replies) == 1 else replies)


@file_command()
@api_errors
def chgrp(
    group: str,
    paths: list[str],
    recursive: Annotated[bool, typer.Option("-R", help="Everything below each PATH too.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Set the group (a name or a number)."""
    chown(":" + group, paths, recursive, as_json)


@file_command()
@api_errors
def checksum(paths: list[str], as_json: JsonOpt = False) -> None:
    """Each file's MD5-of-MD5-of-CRC32C checksum: what WebHDFS GETFILECHECKSUM and
    `hdfs dfs -checksum` give for the same bytes."""
    client = G.client()
    rows = [{"path": p, **client.get("/fs/checksum", path=p)["FileChecksum"]} for p in paths]
    if as_json:
        emit(True, rows)
        return
    for r in rows:
        typer.echo(f"{r['path']}\t{r['algorithm']}\t{r['bytes']}")


@file_command()
@api_errors
def truncate(
    path: str,
    size: Annotated[int, typer.Option("-s", "--size", help="The new length in bytes.")],
    as_json: JsonOpt = False,
) -> None:
    """Cut a file to SIZE bytes (or extend it with zeros)."""
    if size < 0:
        fail("--size must not be negative", 2)
    emit(as_json, G.client().post("/fs/setattr", {"path": path, "size": size}))


@file_command()
@api_errors
def getfattr(path: str, as_json: JsonOpt = False) -> None:
    """Extended attributes (as getfattr -d and hdfs dfs -getfattr -d)."""
    found = G.client().get("/fs/xattrs", path=path)
    emit(as_json, found, "\n".join(f'{k}="{v}"' for k, v in found.items()))


@file_command()
@api_errors
def setfattr(
    path: str,
    name: Annotated[str, typer.Option("-n", help="Attribute name, e.g. user.origin.")],
    value: Annotated[str | None, typer.Option("-v", help="Its value (0x... for bytes).")] = None,
    remove: Annotated[bool, typer.Option("-x", help="Remove the attribute instead.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Set (-n NAME -v VALUE) or remove (-x -n NAME) an extended attribute."""
    if remove == (value is not None):
        fail("give -v VALUE to set, or -x to remove", 2)
    body: dict[str, Any] = {"path": path, "name": name}
    if value is not None:
        body["value"] = value
    emit(as_json, G.client().post("/fs/xattrs", body))


@file_command()
@api_errors
def find(
    paths: list[str],
    name: Annotated[str, typer.Option("-name", "--name", help="A glob the entry's name must match.")] = "*",
    as_json: JsonOpt = False,
) -> None:
    """Every path below PATHS whose name matches (as hdfs dfs -find -name)."""
    import fnmatch

    client = G.client()
    below = _targets(client, paths, True)
    found = sorted(p for p in below if fnmatch.fnmatchcase(p.rstrip("/").rsplit("/", 1)[-1], name))
    emit(as_json, found, "\n".join(found) if found else None)


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
