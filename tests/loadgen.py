"""Mixed NFS + WebHDFS load against a running daemon: many concurrent clients, each with its own
connection and directory, for a fixed time. Used by tools/bench/load.py (numbers) and
tests/stress/test_load.py (behaviour: no errors, bounded memory).

NFS clients speak ONC RPC over their own TCP connection (one call at a time, as a simple client
would): GETATTR, LOOKUP, READ, CREATE + FILE_SYNC WRITE, REMOVE. WebHDFS clients use aiohttp
with one keep-alive connection: GETFILESTATUS, OPEN, LISTSTATUS, CREATE (two steps), APPEND,
DELETE. Clients are spread over worker processes (asyncio in each), so the generator is not
one core's worth of Python.
"""

from __future__ import annotations

import asyncio
import os
import random
import struct
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context

import aiohttp

from nsd.protocols.rpc import oncrpc
from nsd.protocols.rpc.client import RpcClient
from nsd.protocols.xdr import Packer, Unpacker

NFS, MOUNT = 100003, 100005
GETATTR, LOOKUP, READ, WRITE, CREATE, MKDIR, REMOVE = 1, 3, 6, 7, 8, 9, 12
CRED = oncrpc.AuthSys(0, b"load", 0, 0, ())
USER = "root" if os.getuid() == 0 else os.environ.get("USER", "nobody")
PAYLOAD = 4096
RPC_TIMEOUT = 120.0  # seconds one NFS reply may take under load before the client counts an error


@dataclass
class Result:
    ops: dict[str, list[float]] = field(default_factory=dict)  # op -> latencies (s)
    errors: dict[str, int] = field(default_factory=dict)
    samples: list[str] = field(default_factory=list)  # a few error messages

    def record(self, op: str, seconds: float) -> None:
        self.ops.setdefault(op, []).append(seconds)

    def error(self, op: str, why: str) -> None:
        self.errors[op] = self.errors.get(op, 0) + 1
        if len(self.samples) < 10:
            self.samples.append(f"{op}: {why}")

    def merge(self, other: Result) -> None:
        for op, lat in other.ops.items():
            self.ops.setdefault(op, []).extend(lat)
        for op, n in other.errors.items():
            self.errors[op] = self.errors.get(op, 0) + n
        self.samples.extend(other.samples[: max(0, 10 - len(self.samples))])

    @property
    def total_ops(self) -> int:
        return sum(len(v) for v in self.ops.values())

    @property
    def total_errors(self) -> int:
        return sum(self.errors.values())


def _opaque(*items: bytes) -> bytes:
    p = Packer()
    for item in items:
        p.opaque(item)
    return bytes(p.buf)


class Rpc:
    """Version 3 calls (NFS, MOUNT) over nsd's RPC client; a reply other than SUCCESS raises."""

    def __init__(self, client: RpcClient) -> None:
        self.client = client

    async def call(self, prog: int, proc: int, args: bytes) -> Unpacker:
        reply = await self.client.call(prog, 3, proc, args)
        if not reply.accepted or reply.stat != oncrpc.SUCCESS:
            raise RuntimeError(f"rpc reply {reply}")
        return Unpacker(reply.body)


async def _nfs_client(port: int, cid: int, until: float, res: Result) -> None:
    client = await RpcClient.connect("127.0.0.1", port, timeout=RPC_TIMEOUT, cred=CRED)
    rpc = Rpc(client)
    rng = random.Random(cid)
    try:
        u = await rpc.call(MOUNT, 1, _opaque(b"/"))
        assert u.uint32() == 0
        root = u.opaque(64)
        u = await rpc.call(NFS, LOOKUP, _opaque(root, b"load"))
        assert u.uint32() == 0, "the load directory is missing"
        load = u.opaque(64)
        name = f"nfs-{cid}".encode()
        u = await rpc.call(NFS, MKDIR, _opaque(load, name) + struct.pack(">IIIIII", 0, 0, 0, 0, 0, 0))
        assert u.uint32() == 0, "MKDIR failed"
        home = u.opaque(64) if u.bool() else b""
        files: list[tuple[bytes, bytes]] = []  # (handle, name)
        n = 0
        while time.monotonic() < until:
            op = rng.choices(["GETATTR", "LOOKUP", "READ", "CREATE+WRITE", "REMOVE"], [3, 3, 3, 1, 1])[0]
            if op in ("READ", "REMOVE") and not files:
                op = "CREATE+WRITE"
            started = time.perf_counter()
            try:
                if op == "GETATTR":
                    status = (await rpc.call(NFS, GETATTR, _opaque(home))).uint32()
                elif op == "LOOKUP":
                    status = (await rpc.call(NFS, LOOKUP, _opaque(load, name))).uint32()
                elif op == "READ":
                    fh = rng.choice(files)[0]
                    status = (await rpc.call(NFS, READ, _opaque(fh) + struct.pack(">QI", 0, PAYLOAD))).uint32()
                elif op == "CREATE+WRITE":
                    n += 1
                    fname = f"f{n}".encode()
                    u = await rpc.call(NFS, CREATE, _opaque(home, fname) + struct.pack(">I", 0) + bytes(24))
                    status = u.uint32()
                    if status == 0 and u.bool():
                        fh = u.opaque(64)
                        args = _opaque(fh) + struct.pack(">QII", 0, PAYLOAD, 2) + _opaque(os.urandom(PAYLOAD))
                        status = (await rpc.call(NFS, WRITE, args)).uint32()
                        if status == 0:
                            files.append((fh, fname))
                else:
                    _, fname = files.pop(rng.randrange(len(files)))
                    status = (await rpc.call(NFS, REMOVE, _opaque(home, fname))).uint32()
            except Exception as e:
                res.error(f"nfs {op}", repr(e))
                return
            if status != 0:
                res.error(f"nfs {op}", f"nfsstat3 {status}")
            else:
                res.record(f"nfs {op}", time.perf_counter() - started)
    finally:
        await client.close()


async def _web_client(base: str, cid: int, until: float, res: Result) -> None:
    rng = random.Random(cid)
    home = f"/load/web-{cid}"
    q = {"user.name": USER}
    conn = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(base, connector=conn, timeout=aiohttp.ClientTimeout(total=60)) as s:

        async def create(path: str, data: bytes) -> int:
            async with s.put(
                f"/webhdfs/v1{path}", params={**q, "op": "CREATE", "overwrite": "true"}, allow_redirects=False
            ) as r:
                if r.status != 307:
                    return r.status
                location = r.headers["Location"]
            async with s.put(location, data=data) as r:
                return r.status

        async with s.put(f"/webhdfs/v1{home}", params={**q, "op": "MKDIRS"}) as r:
            assert r.status == 200
        files: list[str] = []
        n = 0
        while time.monotonic() < until:
            op = rng.choices(["GETFILESTATUS", "OPEN", "LISTSTATUS", "CREATE", "APPEND", "DELETE"], [3, 3, 1, 1, 1, 1])[
                0
            ]
            if op in ("OPEN", "APPEND", "DELETE") and not files:
                op = "CREATE"
            started = time.perf_counter()
            ok: set[int] = {200}
            try:
                if op in ("GETFILESTATUS", "LISTSTATUS", "OPEN"):
                    target = rng.choice(files) if op == "OPEN" else home
                    async with s.get(f"/webhdfs/v1{target}", params={**q, "op": op}) as r:
                        status = r.status
                        await r.read()
                elif op == "CREATE":
                    n += 1
                    path = f"{home}/f{n}"
                    status, ok = await create(path, os.urandom(PAYLOAD)), {201}
                    if status == 201:
                        files.append(path)
                elif op == "APPEND":
                    async with s.post(
                        f"/webhdfs/v1{rng.choice(files)}", params={**q, "op": op}, allow_redirects=False
                    ) as r:
                        location = r.headers.get("Location", "")
                    async with s.post(location, data=os.urandom(512)) as r:
                        status = r.status
                else:
                    path = files.pop(rng.randrange(len(files)))
                    async with s.delete(f"/webhdfs/v1{path}", params={**q, "op": op}) as r:
                        status = r.status
                        await r.read()
            except Exception as e:
                res.error(f"webhdfs {op}", repr(e))
                return
            if status not in ok:
                res.error(f"webhdfs {op}", f"HTTP {status}")
            else:
                res.record(f"webhdfs {op}", time.perf_counter() - started)


async def _clients(http_url: str, nfs_port: int, ids: list[int], until: float) -> Result:
    res = Result()
    tasks = [
        _nfs_client(nfs_port, cid, until, res) if cid % 2 == 0 else _web_client(http_url, cid, until, res)
        for cid in ids
    ]
    for outcome in await asyncio.gather(*tasks, return_exceptions=True):
        if isinstance(outcome, BaseException):
            res.error("client", repr(outcome))
    return res


def _worker(http_url: str, nfs_port: int, ids: list[int], until: float) -> Result:
    return asyncio.run(_clients(http_url, nfs_port, ids, until))


def run_load(http_url: str, nfs_port: int, clients: int, seconds: float, processes: int = 2) -> tuple[Result, float]:
    """`clients` clients (even ids NFS, odd WebHDFS) for `seconds`; (merged results, wall seconds).

    The directory /load must exist."""
    until = time.monotonic() + seconds
    groups = [list(range(p, clients, processes)) for p in range(processes)]
    started = time.monotonic()
    total = Result()
    with ProcessPoolExecutor(processes, mp_context=get_context("fork")) as pool:
        for res in pool.map(_worker, [http_url] * processes, [nfs_port] * processes, groups, [until] * processes):
            total.merge(res)
    return total, time.monotonic() - started


def percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]
