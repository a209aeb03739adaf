"""Metadata backups: one compressed file holding a consistent checkpoint, the mount table
(inside the checkpoint image), the effective configuration and the data dir's identity files.

Taken while the daemon runs: the writer rolls and the log is folded into a checkpoint at some
txid T, so the backup is exactly the namespace as of T whatever writes continue. File content
lives in the under-storage and is not copied: a restored data dir serves it from the same
stores (its root mount URI is kept).

Archive members: `nsd-backup.json` (manifest), `journal/{T:016x}.ckpt`, `root.uri`, and
`nfs.secret` when present (so NFS handles stay valid). Restore is offline, into an empty dir.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import time
from pathlib import Path
from typing import Any

from nsd import __version__
from nsd.datadir import FORMAT_VERSION, DataDir, write_durably
from nsd.errors import Exists, Invalid, NotFound
from nsd.journal.checkpoint import checkpoint_name, read_checkpoint

MANIFEST = "nsd-backup.json"
IDENTITY_FILES = ("root.uri", "nfs.secret")


def write_archive(datadir: DataDir, txid: int, config: dict[str, Any], out: Path) -> Path:
    """Pack checkpoint `txid` and the identity files into `out` (mode 0600: it may hold secrets)."""
    ckpt = datadir.journal / checkpoint_name(txid)
    if not ckpt.exists():
        raise NotFound(f"no checkpoint at txid {txid}")
    manifest = {
        "format": 1,
        "data_dir_format": FORMAT_VERSION,
        "nsd_version": __version__,
        "txid": txid,
        "created_ns": time.time_ns(),
        "config": config,
    }
    tmp = out.with_name(out.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
        data = json.dumps(manifest, indent=2).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size, info.mtime, info.mode = len(data), int(time.time()), 0o600
        tar.addfile(info, io.BytesIO(data))
        tar.add(ckpt, arcname=f"journal/{ckpt.name}")
        for name in IDENTITY_FILES:
            if (datadir.path / name).exists():
                tar.add(datadir.path / name, arcname=name)
        raw.flush()
        os.fsync(raw.fileno())
    os.replace(tmp, out)
    return out


def restore_archive(archive: Path, data_dir: Path) -> dict[str, Any]:
    """Unpack a backup into a new data dir (absent or empty). Returns the manifest.

    The checkpoint is read back in full before anything is written, so a damaged archive
    never leaves a half-restored dir. A new admin token is made.
    """
    target = DataDir(data_dir)
    if target.path.exists() and any(target.path.iterdir()):
        raise Exists(f"restore needs an empty data dir; {target.path} is not empty")
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            members = {m.name: m for m in tar.getmembers() if m.isfile()}
            manifest = json.loads(_read(tar, members, MANIFEST))
            ckpt_name = f"journal/{checkpoint_name(manifest['txid'])}"
            ckpt = _read(tar, members, ckpt_name)
            identity = {n: _read(tar, members, n) for n in IDENTITY_FILES if n in members}
    except (OSError, tarfile.TarError, ValueError, KeyError) as e:
        raise Invalid(f"not a usable nsd backup: {archive}: {e}") from None
    if manifest.get("data_dir_format") != FORMAT_VERSION:
        raise Invalid(f"backup of data dir format {manifest.get('data_dir_format')}; this nsd reads {FORMAT_VERSION}")
    root_uri = identity.get("root.uri", b"").decode().strip()
    if not root_uri:
        raise Invalid("backup has no root.uri")
    target.format(root_uri)
    path = target.journal / checkpoint_name(manifest["txid"])
    write_durably(path, ckpt)
    read_checkpoint(path)  # sound, or Corrupt before the daemon ever starts on it
    if "nfs.secret" in identity:
        write_durably(target.path / "nfs.secret", identity["nfs.secret"], mode=0o600)
    return dict(manifest)


def _read(tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo], name: str) -> bytes:
    member = members.get(name)
    if member is None:
        raise KeyError(f"missing {name}")
    f = tar.extractfile(member)
    if f is None:
        raise KeyError(f"unreadable {name}")
    return f.read()
