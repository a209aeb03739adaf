"""`nsd doctor`'s look at the cache: each tier's directory, its room, and persists that keep failing.

A disk tier is checked as the store will use it: the directory exists, a file can be created
in it (a real write, so a read-only mount or a full disk shows, whoever nsd runs as), and its
file system has room for what the tier may still grow by (capacity - used). A tier configured
larger than its disk fills the disk instead of evicting. The memory tier is checked against the
machine's memory.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nsd.units import human_bytes

if TYPE_CHECKING:
    from nsd.cache.persister import Persister
    from nsd.namespace import Namespace

CRITICAL_FREE = 100 << 20  # below this a tier that may still grow fails the check
MEMORY_SHARE = 0.75  # a memory tier above this share of the machine's memory is a warning
FAILING_TRIES = 3
SHOWN = 5  # files named in the persist check's detail


def _check(name: str, status: str, detail: str) -> dict[str, str]:
    return {"check": name, "status": status, "detail": detail}


def tier_checks(stats: dict[str, Any]) -> list[dict[str, str]]:
    """One check per disk tier, then one for the memory tier, from the block store's stats()
    (taken on the loop). Does file I/O: run it in a thread."""
    out = [_disk_tier(f"cache tier disk{i}", t) for i, t in enumerate(stats["tiers"])]
    out.append(_memory_tier(stats["memory"]["capacity"]))
    return out


def _disk_tier(name: str, tier: dict[str, Any]) -> dict[str, str]:
    path = Path(tier["path"])
    capacity, used = tier["capacity"], tier["used"]
    if not path.is_dir():
        return _check(name, "fail", f"{path} is missing: blocks cannot be stored (restart nsd to recreate it)")
    probe = path / f".doctor-{secrets.token_hex(4)}.tmp"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        probe.unlink()
    except OSError as e:
        return _check(name, "fail", f"{path} is not writable: {e.strerror}")
    free = shutil.disk_usage(path).free
    room = max(0, capacity - used)
    where = f"{path}: {human_bytes(used)} of {human_bytes(capacity)} used, {human_bytes(free)} free on its file system"
    if room and free < CRITICAL_FREE:
        return _check(name, "fail", f"{where}; the disk is full before the tier is")
    if free < room:
        return _check(
            name,
            "warn",
            f"{where}; the tier may grow by {human_bytes(room)}: lower its capacity (cache_dirs / cache_disk_bytes) "
            "or free space, or the disk fills before eviction starts",
        )
    return _check(name, "ok", where)


def _memory_tier(capacity: int) -> dict[str, str]:
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    detail = f"{human_bytes(capacity)} of {human_bytes(total)} memory"
    if capacity > MEMORY_SHARE * total:
        return _check("cache tier memory", "warn", f"{detail}: leave room for the namespace (cache_memory_bytes)")
    return _check("cache tier memory", "ok", detail)


def persist_check(persister: Persister, ns: Namespace) -> dict[str, str]:
    """Pending persists, and those that failed FAILING_TRIES times in a row with why."""
    pending = len(ns.persist_pending)
    failing = persister.failing(FAILING_TRIES)
    if not failing:
        return _check("pending persists", "ok", f"{pending} pending, none failing")
    shown = "; ".join(
        f"{ns.path_of(ino) if ino in ns.inodes else f'inode {ino}'} ({n} tries): {error}"
        for ino, n, error in failing[:SHOWN]
    )
    more = f" and {len(failing) - SHOWN} more" if len(failing) > SHOWN else ""
    return _check(
        "pending persists",
        "warn",
        f"{len(failing)} of {pending} keep failing (their data is only in the cache): {shown}{more}",
    )
