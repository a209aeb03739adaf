"""The `nsd` command: the daemon, offline data-dir tools, and a client of the admin API.

Exit codes: 0 success, 1 the operation failed (one line on stderr says why), 2 bad usage,
3 the daemon could not be reached.
"""

from __future__ import annotations

import json
import os
import stat as st
import sys
import time
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from nsd import config as config_mod
from nsd.client import ApiError, Client, find_token
from nsd.errors import NsdError

app = typer.Typer(no_args_is_help=True, add_completion=True, help="nsd: one namespace over many under-storages.")
journal_app = typer.Typer(no_args_is_help=True, help="Offline tools for the journal of a stopped daemon.")
app.add_typer(journal_app, name="journal")

EXIT_FAILED, EXIT_UNREACHABLE = 1, 3

ServerOpt = Annotated[str, typer.Option("--server", envvar="NSD_SERVER", help="Admin API URL.")]
TokenOpt = Annotated[str | None, typer.Option("--token", envvar="NSD_TOKEN", help="Admin token.")]
DataDirOpt = Annotated[str | None, typer.Option("--data-dir", envvar="NSD_DATA_DIR", help="Data dir.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


class Globals:
    server = "http://127.0.0.1:9870"
    token: str | None = None
    data_dir: str | None = None

    def client(self) -> Client:
        return Client(self.server, find_token(self.token, self.data_dir))


G = Globals()


@app.callback()
def main_options(
    server: ServerOpt = "http://127.0.0.1:9870",
    token: TokenOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    G.server, G.token, G.data_dir = server, token, data_dir


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    typer.echo(f"nsd: {message}", err=True)
    raise typer.Exit(code)


def api_errors(fn: Any) -> Any:
    """Turn daemon errors into one line and an exit code."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ApiError as e:
            fail(str(e), EXIT_FAILED if e.status else EXIT_UNREACHABLE)
        except NsdError as e:
            fail(e.message)

    return wrapper


# ---- daemon and offline tools -------------------------------------------------------------


@app.command()
def serve(
    config: Annotated[Path | None, typer.Option("--config", help="TOML config file.")] = None,
    data_dir: Annotated[str | None, typer.Option("--data-dir")] = None,
    bind: Annotated[str | None, typer.Option("--bind")] = None,
    http_port: Annotated[int | None, typer.Option("--http-port")] = None,
    nfs_port: Annotated[int | None, typer.Option("--nfs-port")] = None,
    portmapper: Annotated[
        bool | None, typer.Option("--portmapper/--no-portmapper", help="Serve a portmapper on port 111.")
    ] = None,
    log_level: Annotated[str | None, typer.Option("--log-level")] = None,
    log_format: Annotated[str | None, typer.Option("--log-format")] = None,
) -> None:
    """Run the daemon (formats an empty data dir first)."""
    from nsd import daemon, logs

    try:
        cfg = config_mod.load(
            config,
            flags={
                "data_dir": data_dir or G.data_dir,
                "bind": bind,
                "http_port": http_port,
                "nfs_port": nfs_port,
                "portmapper": portmapper,
                "log_level": log_level,
                "log_format": log_format,
            },
        )
        logs.setup(cfg.log_level, cfg.log_format)
        code = daemon.main(cfg)
    except NsdError as e:
        fail(e.message)
    raise typer.Exit(code)


@app.command("format")
def format_cmd(
    data_dir: Annotated[str, typer.Option("--data-dir", envvar="NSD_DATA_DIR")] = "./nsd-data",
    root_ufs: Annotated[str | None, typer.Option("--root-ufs", help="URI mounted at /.")] = None,
) -> None:
    """Create a new, empty data dir."""
    from nsd.daemon import format_data_dir
    from nsd.datadir import DataDir

    dd = DataDir(Path(data_dir))
    try:
        format_data_dir(dd, root_ufs or (dd.path / "ufs").as_uri())
    except NsdError as e:
        fail(e.message)
    typer.echo(f"formatted {dd.path}")


def _offline(data_dir: str | None) -> Any:
    """The data dir of a stopped daemon, locked for the duration of the command."""
    from nsd.datadir import DataDir

    dd = DataDir(Path(data_dir or G.data_dir or "./nsd-data"))
    try:
        dd.check_version()
        dd.lock()
    except NsdError as e:
        fail(e.message)
    return dd


@journal_app.command("dump")
def journal_dump(data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Print every journal record, oldest first."""
    from nsd.journal.dump import dump_records

    dd = _offline(data_dir)
    for item in dump_records(dd.journal):
        typer.echo(json.dumps(item) if as_json else _dump_line(item))


def _dump_line(item: dict[str, Any]) -> str:
    if "error" in item:
        return f"!! {item['error']}"
    if "checkpoint" in item:
        return f"-- checkpoint txid={item['checkpoint']} {item['file']}"
    if "segment" in item:
        return f"-- segment {item['segment']}"
    fields = " ".join(f"{k}={v!r}" for k, v in item["fields"].items())
    return f"{item['txid']:>10} {item['op']:<10} {fields}"


@journal_app.command("verify")
def journal_verify(data_dir: DataDirOpt = None) -> None:
    """Check every checkpoint and segment; exit 1 on corruption."""
    from nsd.journal.recovery import verify

    dd = _offline(data_dir)
    report = verify(dd.journal)
    for line in report.warnings:
        typer.echo(f"warning: {line}")
    for line in report.errors:
        typer.echo(f"error: {line}", err=True)
    if report.errors:
        raise typer.Exit(EXIT_FAILED)
    typer.echo(f"ok: {report.summary}")


@journal_app.command("checkpoint")
def journal_checkpoint(data_dir: DataDirOpt = None) -> None:
    """Fold the log into a new checkpoint (offline)."""
    from nsd.journal.recovery import recover
    from nsd.metastore import fold, purge

    dd = _offline(data_dir)
    try:
        recover(dd.journal)  # cut a torn tail first, as start-up would
        started = time.monotonic()
        txid = fold(dd.journal)
        purge(dd.journal)
    except NsdError as e:
        fail(e.message)
    typer.echo(f"checkpoint at txid {txid} in {time.monotonic() - started:.2f}s")


@journal_app.command("repair")
def journal_repair(data_dir: DataDirOpt = None) -> None:
    """Cut the log at the first corrupt record (a copy of what is cut is kept in journal/torn/)."""
    from nsd.journal.recovery import repair

    dd = _offline(data_dir)
    typer.echo(repair(dd.journal))


# ---- client commands ----------------------------------------------------------------------


def _mode_string(entry: dict[str, Any]) -> str:
    kind = {"dir": st.S_IFDIR, "symlink": st.S_IFLNK}.get(entry["type"], st.S_IFREG)
    return st.filemode(kind | entry["mode"])


def _long_line(entry: dict[str, Any]) -> str:
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry["mtime_ns"] / 1e9))
    name = entry["name"] + (f" -> {entry['target']}" if "target" in entry else "")
    return (
        f"{_mode_string(entry)} {entry['nlink']:>3} {entry['uid']:>6} {entry['gid']:>6} "
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
    path: str, parents: Annotated[bool, typer.Option("-p", help="Make parents; no error if it exists.")] = False
) -> None:
    """Create a directory."""
    G.client().post("/fs/mkdir", {"path": path, "parents": parents})


@app.command()
@api_errors
def put(
    local: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    path: str,
    force: Annotated[bool, typer.Option("-f", "--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Copy a local file into nsd."""
    with open(local, "rb") as f:
        G.client().put(path, f, overwrite=force)


@app.command()
@api_errors
def get(path: str, local: Path) -> None:
    """Copy a file out of nsd (written to LOCAL.part, then renamed)."""
    tmp = local.with_name(local.name + ".part")
    try:
        with open(tmp, "wb") as f:
            for chunk in G.client().read(path):
                f.write(chunk)
        os.replace(tmp, local)
    finally:
        tmp.unlink(missing_ok=True)


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
    path: str, recursive: Annotated[bool, typer.Option("-r", "-R", help="Remove directories and contents.")] = False
) -> None:
    """Remove a file, a symlink or (with -r) a directory tree."""
    G.client().post("/fs/remove", {"path": path, "recursive": recursive})


@app.command()
@api_errors
def mv(src: str, dst: str) -> None:
    """Rename or move (into DST when DST is a directory)."""
    G.client().post("/fs/rename", {"src": src, "dst": dst})


def main() -> None:
    app()


if __name__ == "__main__":
    main()
