"""`nsd doctor`: what can be checked from inside the daemon, each with a verdict and a hint."""

from __future__ import annotations

import asyncio
import os
import shutil
from typing import TYPE_CHECKING, Any

from nsd import errors
from nsd.cache import health

if TYPE_CHECKING:
    from nsd.datadir import DataDir
    from nsd.vfs import Vfs

UFS_TIMEOUT = 5.0
LOW_DISK, CRITICAL_DISK = 1 << 30, 100 << 20


def _check(name: str, status: str, detail: str) -> dict[str, str]:
    return {"check": name, "status": status, "detail": detail}


async def diagnose(vfs: Vfs, datadir: DataDir, listener_checks: list[dict[str, str]]) -> list[dict[str, Any]]:
    """Every check, in order. `listener_checks`: the protocols' probes of the daemon's own
    listeners (nsd.protocols.admin.probes), which come first."""
    out: list[dict[str, Any]] = list(listener_checks)
    free = shutil.disk_usage(datadir.path).free
    status = "fail" if free < CRITICAL_DISK else "warn" if free < LOW_DISK else "ok"
    out.append(_check("data dir disk space", status, f"{free / 2**30:.1f} GiB free in {datadir.path}"))
    writable = os.access(datadir.path, os.W_OK) and os.access(datadir.journal, os.W_OK)
    out.append(_check("data dir writable", "ok" if writable else "fail", str(datadir.path)))
    mode = datadir.token_file.stat().st_mode & 0o777
    out.append(_check("admin token private", "ok" if mode == 0o600 else "fail", f"{datadir.token_file} mode {mode:o}"))
    store = vfs.store
    if store.failed is not None:
        out.append(_check("journal", "fail", f"failed: {store.failed}"))
    elif (refused := store.refusal()) is not None:
        out.append(_check("journal", "fail", refused))
    else:
        lag = store.writer.last_txid - store.writer.durable_txid
        out.append(_check("journal", "ok", f"txid {store.writer.last_txid}, {lag} not yet on disk"))
    if vfs.cache is not None:
        out.extend(await asyncio.to_thread(health.tier_checks, vfs.cache.blocks.stats()))
    if vfs.persister is not None:
        out.append(health.persist_check(vfs.persister, vfs.ns))
    pending = vfs.reconciler.orphans()
    if pending:
        last = next((vfs.reconciler.errors[i] for i in pending if i in vfs.reconciler.errors), "retrying")
        out.append(_check("interrupted changes", "warn", f"{len(pending)} not reconciled with the UFS yet: {last}"))
    else:
        out.append(_check("interrupted changes", "ok", "none open"))
    for view in vfs.mount_table():
        out.append(await _probe_mount(vfs, view.mount_id, view.path, view.uri))
    return out


async def _probe_mount(vfs: Vfs, mount_id: int, path: str, uri: str) -> dict[str, str]:
    name = f"mount {path}"
    try:
        await asyncio.wait_for(vfs.mounts.ufs(mount_id).stat(""), UFS_TIMEOUT)
    except TimeoutError:
        return _check(name, "fail", f"{uri} did not answer within {UFS_TIMEOUT:.0f} s")
    except errors.NsdError as e:
        return _check(name, "fail", f"{uri}: {e.message}")
    return _check(name, "ok", f"{uri} reachable")
