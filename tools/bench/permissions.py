"""What permission checks cost on the metadata hot path, in-process (no sockets).

Builds a namespace with a directory chain DEPTH deep (mode 0755, owned by another user) and
measures, for a superuser (checks skipped) and an ordinary user (every check made):
- `vfs.resolve` of the deepest path (search permission on each of DEPTH directories),
- `vfs.lookup` of one entry (search permission on its directory),
- `Permissions.require` alone.
Prints calls per second and the ordinary/superuser ratio. Asserts nothing; a busy machine
makes every number smaller, so compare the ratio rather than the absolute rates.

    .venv/bin/python tools/bench/permissions.py [--depth 16] [--seconds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from nsd.core.metastore import MetaStore, initial_checkpoint
from nsd.core.mounttable import MountTable
from nsd.core.permissions import Permissions, X
from nsd.core.users import SYSTEM, Caller
from nsd.daemon import assemble_vfs

USER = Caller(4242, 4242, (4242,))


async def rate(call: Callable[[], Awaitable[object]], seconds: float) -> float:
    n, deadline, start = 0, time.perf_counter() + seconds, time.perf_counter()
    while time.perf_counter() < deadline:
        for _ in range(200):
            await call()
        n += 200
    return n / (time.perf_counter() - start)


async def main(depth: int, seconds: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "journal").mkdir()
        (root / "ufs").mkdir()
        initial_checkpoint(root / "journal", root_uid=0, root_gid=0)
        store = await MetaStore.open(root / "journal", fsync=False)
        vfs = assemble_vfs(store, MountTable(store.ns, (root / "ufs").as_uri()), root / "staging", perms=Permissions())
        path = "/" + "/".join(f"d{i}" for i in range(depth))
        deepest = await vfs.mkdir(path, caller=SYSTEM, parents=True)
        await vfs.mkdir(path + "/leaf", caller=SYSTEM)
        await vfs.readdir(deepest.ino, caller=SYSTEM)  # listed once, so lookups stay in memory
        perms = vfs.perms
        print(f"depth {depth}, {seconds:.0f} s per measurement")
        print(f"{'operation':<28}{'superuser/s':>14}{'ordinary/s':>14}{'ratio':>8}")
        cases: list[tuple[str, Callable[[Caller], Callable[[], Awaitable[object]]]]] = [
            (f"resolve ({depth} dirs)", lambda who: lambda: vfs.resolve(path, caller=who)),
            ("lookup", lambda who: lambda: vfs.lookup(deepest.ino, "leaf", caller=who)),
            ("Permissions.require", lambda who: lambda: _sync(perms.require, deepest, who, X)),
        ]
        for name, make in cases:
            sup = await rate(make(SYSTEM), seconds)
            usr = await rate(make(USER), seconds)
            print(f"{name:<28}{sup:>14,.0f}{usr:>14,.0f}{usr / sup:>8.2f}")
        await vfs.close()
        await store.close(checkpoint=False)


async def _sync(fn: Callable[..., object], *args: object) -> object:
    return fn(*args)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--depth", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=2.0)
    a = ap.parse_args()
    asyncio.run(main(a.depth, a.seconds))
