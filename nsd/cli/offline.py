"""Commands that run the daemon or work on a stopped daemon's data dir."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from nsd import config as config_mod
from nsd.cli.app import EXIT_FAILED, EXIT_USAGE, DataDirOpt, G, JsonOpt, app, emit, fail, journal_app
from nsd.errors import NsdError


def _help(name: str) -> str:
    """A serve flag's help: the setting's own, and where else it can be set."""
    s = config_mod.BY_NAME[name]
    return f"{s.help} (env {s.env}; {name} in section {s.section} of --config; default {s.default!r})"


@app.command()
def serve(
    config: Annotated[
        Path | None, typer.Option("--config", help="TOML config file (conf/nsd.toml lists every setting).")
    ] = None,
    data_dir: Annotated[str | None, typer.Option("--data-dir", help=_help("data_dir"))] = None,
    bind: Annotated[str | None, typer.Option("--bind", help=_help("bind"))] = None,
    http_port: Annotated[int | None, typer.Option("--http-port", help=_help("http_port"))] = None,
    nfs_port: Annotated[int | None, typer.Option("--nfs-port", help=_help("nfs_port"))] = None,
    portmapper: Annotated[bool | None, typer.Option("--portmapper/--no-portmapper", help=_help("portmapper"))] = None,
    log_level: Annotated[str | None, typer.Option("--log-level", help=_help("log_level"))] = None,
    log_format: Annotated[str | None, typer.Option("--log-format", help=_help("log_format"))] = None,
    etcd: Annotated[str | None, typer.Option("--etcd", help=_help("etcd"))] = None,
    cluster: Annotated[str | None, typer.Option("--cluster", help=_help("cluster"))] = None,
    node: Annotated[str | None, typer.Option("--node", help=_help("node"))] = None,
) -> None:
    """Run the daemon (formats an empty data dir first; with --etcd, as a node of a cluster)."""
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
                "etcd": etcd,
                "cluster": cluster,
                "node": node,
            },
        )
    except NsdError as e:
        fail(e.message, EXIT_USAGE)  # a setting that cannot be: nothing was started
    logs.setup(cfg.log_level, cfg.log_format)
    try:
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
def journal_dump(data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Print every journal record, oldest first."""
    from nsd.journal.dump import dump_records

    dd = _offline(data_dir)
    paths = _PathsAtEachRecord(dd.journal)
    for item in dump_records(dd.journal):
        if "txid" in item:
            item["paths"] = paths.of(item["txid"], item["op"], item["fields"])
        typer.echo(json.dumps(item) if as_json else _dump_line(item))


class _PathsAtEachRecord:
    """The paths a record names (its parent/name, inode or directory), as the namespace stood
    just before it: the oldest checkpoint, replayed record by record alongside the dump."""

    def __init__(self, journal: Path) -> None:
        from nsd.journal.checkpoint import list_checkpoints, read_checkpoint
        from nsd.journal.ops import OPS
        from nsd.namespace import Namespace

        self.ops = {cls.__name__: cls for cls in OPS.values()}
        self.ns: Any = None
        self.txid = 0
        checkpoints = list_checkpoints(journal)
        if checkpoints:
            try:
                self.txid, chunks = read_checkpoint(checkpoints[0][1])
                self.ns = Namespace.from_image(chunks)
            except NsdError:
                self.ns = None  # a damaged checkpoint: the dump says so; no paths then

    def of(self, txid: int, op_name: str, fields: dict[str, Any]) -> dict[str, str]:
        ns = self.ns
        if ns is None or txid <= self.txid:
            return {}
        found = {}
        for key, (parent, name) in {
            "path": ("parent", "name"),
            "src": ("src_parent", "src_name"),
            "dst": ("dst_parent", "dst_name"),
        }.items():
            if parent in fields and name in fields and fields[parent] in ns.inodes:
                found[key] = ns.path_of(fields[parent]).rstrip("/") + "/" + fields[name]
        for ino_key in ("ino", "dir_ino"):
            if "path" not in found and fields.get(ino_key) in ns.inodes:
                found["path"] = ns.path_of(fields[ino_key])
        try:
            ns.apply(self.ops[op_name](**fields))
        except (NsdError, KeyError, TypeError):
            self.ns = None  # cannot follow the log past here: later records show ids only
        return found


def _dump_line(item: dict[str, Any]) -> str:
    if "error" in item:
        return f"!! {item['error']}"
    if "checkpoint" in item:
        return f"-- checkpoint txid={item['checkpoint']} {item['file']}"
    if "segment" in item:
        return f"-- segment {item['segment']}"
    fields = " ".join(
        f"{k}={v:o}" if k == "mode" and isinstance(v, int) else f"{k}={v!r}" for k, v in item["fields"].items()
    )
    where = " ".join(f"{k}={v}" for k, v in item.get("paths", {}).items())
    return f"{item['txid']:>10} {item['op']:<10} {where + ' ' if where else ''}{fields}"


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
    from nsd.core.metastore import fold, purge
    from nsd.journal.recovery import recover

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
