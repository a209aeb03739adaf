"""Commands that run the daemon or work on a stopped daemon's data dir."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from nsd import config as config_mod
from nsd.cli.app import EXIT_FAILED, DataDirOpt, G, JsonOpt, app, emit, fail, journal_app
from nsd.errors import NsdError


def _setting_help(name: str) -> str:
    """A serve flag's help, from the config setting it overrides (one text for both)."""
    s = config_mod.BY_NAME[name]
    return f"{s.help} Default: {s.default!r}; env {s.env}; config file: {s.section}.{s.name}."


@app.command()
def serve(
    config: Annotated[
        Path | None,
        typer.Option("--config", help="TOML config file; NSD_* variables override it, and these flags both."),
    ] = None,
    data_dir: Annotated[str | None, typer.Option("--data-dir", help=_setting_help("data_dir"))] = None,
    bind: Annotated[str | None, typer.Option("--bind", help=_setting_help("bind"))] = None,
    http_port: Annotated[int | None, typer.Option("--http-port", help=_setting_help("http_port"))] = None,
    nfs_port: Annotated[int | None, typer.Option("--nfs-port", help=_setting_help("nfs_port"))] = None,
    portmapper: Annotated[
        bool | None, typer.Option("--portmapper/--no-portmapper", help=_setting_help("portmapper"))
    ] = None,
    log_level: Annotated[str | None, typer.Option("--log-level", help=_setting_help("log_level"))] = None,
    log_format: Annotated[str | None, typer.Option("--log-format", help=_setting_help("log_format"))] = None,
) -> None:
    """Run the daemon (formats an empty data dir first). Every other setting comes from --config
    or the environment (`nsd conf show` on a running daemon lists them)."""
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
    as_json: JsonOpt = False,
) -> None:
    """Create a new, empty data dir."""
    from nsd.daemon import format_data_dir
    from nsd.datadir import DataDir

    dd = DataDir(Path(data_dir))
    try:
        format_data_dir(dd, root_ufs or (dd.path / "ufs").as_uri())
    except NsdError as e:
        fail(e.message)
    emit(as_json, {"data_dir": str(dd.path), "root_ufs": dd.root_ufs}, f"formatted {dd.path}")


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
def journal_dump(
    data_dir: DataDirOpt = None,
    paths: Annotated[
        bool, typer.Option("--paths/--no-paths", help="Name the path each record acts on (replays the log).")
    ] = True,
    as_json: JsonOpt = False,
) -> None:
    """Print every journal record, oldest first, with the path it acts on and modes in octal."""
    from nsd.journal.dump import dump_records

    dd = _offline(data_dir)
    for item in dump_records(dd.journal, paths=paths):
        typer.echo(json.dumps(item) if as_json else _dump_line(item))


def _dump_line(item: dict[str, Any]) -> str:
    if "error" in item:
        return f"!! {item['error']}"
    if "checkpoint" in item:
        return f"-- checkpoint txid={item['checkpoint']} {item['file']}"
    if "segment" in item:
        return f"-- segment {item['segment']}"
    fields = " ".join(f"{k}={_dump_value(k, v)}" for k, v in item["fields"].items())
    where = f"{item['path']} -> {item['to']}  " if "to" in item else f"{item['path']}  " if "path" in item else ""
    return f"{item['txid']:>10} {item['op']:<14} {where}{fields}"


def _dump_value(key: str, value: Any) -> str:
    """A field as Python would write it, but modes in octal (in UfsSync's added entries too)."""
    if key == "mode" and isinstance(value, int):
        return f"0o{value:o}"
    if key == "add" and isinstance(value, list):  # entries [name, ino, mode, uid, gid, size, mtime, fingerprint]
        shown = [[*e[:2], _Octal(e[2]), *e[3:]] if len(e) > 2 and isinstance(e[2], int) else e for e in value]
        return repr(shown)
    return repr(value)


class _Octal(int):
    def __repr__(self) -> str:
        return f"0o{int(self):o}"


@journal_app.command("verify")
def journal_verify(data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Check every checkpoint and segment; exit 1 on corruption."""
    from nsd.journal.recovery import verify

    dd = _offline(data_dir)
    report = verify(dd.journal)
    if as_json:
        fields = ("checkpoint_txid", "last_txid", "ops", "segments", "checkpoints", "warnings", "errors")
        emit(True, {"ok": report.ok, **{k: getattr(report, k) for k in fields}})
        raise typer.Exit(0 if report.ok else EXIT_FAILED)
    for line in report.warnings:
        typer.echo(f"warning: {line}")
    for line in report.errors:
        typer.echo(f"error: {line}", err=True)
    if report.errors:
        raise typer.Exit(EXIT_FAILED)
    typer.echo(f"ok: {report.summary}")


@journal_app.command("checkpoint")
def journal_checkpoint(data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
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
    took = time.monotonic() - started
    emit(as_json, {"checkpoint_txid": txid, "seconds": round(took, 3)}, f"checkpoint at txid {txid} in {took:.2f}s")


@journal_app.command("repair")
def journal_repair(data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Cut the log at the first corrupt record (a copy of what is cut is kept in journal/torn/)."""
    import dataclasses

    from nsd.journal.recovery import repair

    dd = _offline(data_dir)
    report = repair(dd.journal)
    emit(as_json, dataclasses.asdict(report) | {"saved": [str(p) for p in report.saved]}, str(report))
