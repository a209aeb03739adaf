"""`nsd journal backup FILE` (asks the running daemon) and `nsd journal restore FILE` (offline)."""

from __future__ import annotations

import json
import os
import tarfile
import zlib
from pathlib import Path
from typing import Annotated, Any

import typer

from nsd.cli.app import EXIT_FAILED, EXIT_UNREACHABLE, G, JsonOpt, fail, human_bytes, journal_app
from nsd.cli.fs import transfer_progress
from nsd.errors import NsdError

PIECE = 1 << 20


class _Unpacked:
    """Follows the gzip stream as it arrives: counts uncompressed bytes (the progress bar's unit,
    as the daemon's size is uncompressed), keeps the first ones (the manifest), and tells whether
    the stream ended whole (gzip's trailer and CRC), so a cut download is never taken for a backup."""

    def __init__(self) -> None:
        self._z = zlib.decompressobj(31)
        self.head = bytearray()

    def feed(self, piece: bytes) -> int:
        raw = self._z.decompress(piece)
        if len(self.head) < 1 << 16:
            self.head += raw[: (1 << 16) - len(self.head)]
        return len(raw)

    @property
    def whole(self) -> bool:
        return self._z.eof and not self._z.unused_data

    def manifest(self) -> dict[str, Any]:
        info = tarfile.TarInfo.frombuf(bytes(self.head[: tarfile.BLOCKSIZE]), "utf-8", "strict")
        start = tarfile.BLOCKSIZE
        return dict(json.loads(bytes(self.head[start : start + info.size])))


@journal_app.command("backup")
def journal_backup(
    file: Path,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="No progress bar.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Back up the running daemon: a consistent checkpoint, mounts, config, and the blocks of
    files not yet persisted (MUST_CACHE, ASYNC_THROUGH data), to FILE (mode 0600)."""
    from nsd.cli.client import ApiError, TransferError

    tmp = file.with_name(file.name + ".part")
    unpacked = _Unpacked()
    size = 0
    try:
        response = G.client().stream("POST", "/journal/backup")
        total = int(response.headers.get("X-Nsd-Backup-Bytes", 0))
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out, transfer_progress("backup", total, quiet=quiet) as advance:
            for piece in response.iter_content(PIECE):
                out.write(piece)
                size += len(piece)
                advance(unpacked.feed(piece))
            if not unpacked.whole:
                fail("the backup stream was cut short (see the daemon's log); nothing written")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, file)
    except ApiError as e:
        fail(str(e), EXIT_FAILED if e.status else EXIT_UNREACHABLE)
    except (*TransferError, zlib.error) as e:
        fail(f"the backup stream broke: {e}; nothing written")
    finally:
        tmp.unlink(missing_ok=True)
    try:
        head = unpacked.manifest()
    except (ValueError, tarfile.TarError):  # a manifest beyond the first 64 KiB: report what the headers say
        head = {"txid": int(response.headers.get("X-Nsd-Txid", 0))}
    result = {
        "file": str(file),
        "txid": head["txid"],
        "bytes": size,
        "blocks": head.get("blocks", 0),
        "block_bytes": head.get("block_bytes", 0),
        "lost_blocks": len(head.get("lost_blocks", [])),
    }
    if as_json:
        typer.echo(json.dumps(result))
        return
    typer.echo(
        f"backup of txid {result['txid']} written to {file} ({human_bytes(size)}; "
        f"{result['blocks']:,} blocks of unpersisted files, {human_bytes(result['block_bytes'])})"
    )
    if result["lost_blocks"]:
        typer.echo(f"nsd: warning: {result['lost_blocks']} blocks of unpersisted files were already lost", err=True)


@journal_app.command("restore")
def journal_restore(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False)],
    data_dir: Annotated[str, typer.Option("--data-dir", help="A new, empty data dir.")],
    config: Annotated[
        Path | None, typer.Option("--config", help="The config the restored daemon will run with (its cache tiers).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Restore a backup into a new data dir (offline), blocks of unpersisted files into its cache
    tiers; start `nsd serve --data-dir` on it after."""
    from nsd import config as config_mod
    from nsd.core.cache.setup import tier_specs
    from nsd.ops.backup import restore_archive

    try:
        cfg = config_mod.load(config, flags={"data_dir": data_dir})
        tiers = tier_specs(cfg.cache_dirs, cfg.data_path, cfg.cache_disk_bytes)
        done = restore_archive(file, Path(data_dir), tiers)
    except NsdError as e:
        fail(e.message)
    result = {
        "data_dir": str(Path(data_dir).resolve()),
        "txid": done["txid"],
        "blocks": done["blocks_restored"],
        "block_bytes": done["block_bytes_restored"],
        "lost_blocks": len(done["lost_blocks"]),
    }
    if as_json:
        typer.echo(json.dumps(result))
        return
    typer.echo(
        f"restored txid {result['txid']} into {result['data_dir']}: {result['blocks']:,} blocks of "
        f"unpersisted files ({human_bytes(result['block_bytes'])})"
    )
    if result["lost_blocks"]:
        typer.echo(
            f"nsd: warning: {result['lost_blocks']} blocks were lost before the backup was taken; "
            "`nsd fsck` names the files that cannot be read",
            err=True,
        )
