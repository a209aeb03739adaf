"""The through-the-vfs sections of tools/bench/cache.py (run that file, not this one)."""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from nsd.blockstore import BlockStore, TierSpec
from nsd.core.cache.policy import ReadType, WriteType
from nsd.core.cache.service import CacheSettings
from nsd.core.metastore import MetaStore, initial_checkpoint
from nsd.core.mounttable import MountTable
from nsd.daemon import assemble_vfs
from nsd.ops.cache import controls
from nsd.ufs.adapters import memory
from nsd.vfs import Caller, Vfs

MiB = 1 << 20
PIECE = 4 * MiB  # what WebHDFS OPEN asks the vfs for
ME = Caller(os.getuid(), os.getgid())


def gbps(nbytes: int, seconds: float) -> str:
    return f"{nbytes / seconds / 1e9:6.2f} GB/s"


def rss() -> str:
    return f"RSS {psutil.Process().memory_info().rss / MiB:7.0f} MiB"


async def open_vfs(
    base: Path, block: int, memory: int, write_type: WriteType = WriteType.THROUGH, read_ahead: int = 4
) -> Vfs:
    journal = base / "journal"
    if not journal.exists():
        journal.mkdir(parents=True)
        initial_checkpoint(journal, root_uid=os.getuid(), root_gid=os.getgid())
        (base / "ufs").mkdir()
    store = await MetaStore.open(journal, fsync=True)
    mounts = MountTable(store.ns, (base / "ufs").as_uri())
    blocks = BlockStore(memory_bytes=memory, tiers=[TierSpec(base / "blocks", 64 << 30)])
    await blocks.open()
    settings = CacheSettings(block_size=block, write_type=write_type, read_ahead_blocks=read_ahead)
    vfs = assemble_vfs(store, mounts, base / "staging", blocks=blocks, cache_settings=settings)
    vfs.start()
    return vfs


async def close_vfs(vfs: Vfs) -> None:
    await vfs.close()
    assert vfs.cache is not None
    await vfs.cache.blocks.close()
    await vfs.mounts.close()
    await vfs.store.close(checkpoint=True)


async def read_through(vfs: Vfs, path: str, read_type: ReadType | None = None, piece: int = PIECE) -> tuple[float, int]:
    node = await vfs.stat(path, caller=ME)
    t0 = time.perf_counter()
    pos = 0
    while pos < node.size:
        data, _ = await vfs.read_at(node.ino, pos, piece, caller=ME, read_type=read_type)
        pos += len(data)
    return time.perf_counter() - t0, pos


def hit_ratio(vfs: Vfs) -> str:
    assert vfs.cache is not None
    r = vfs.cache.report()
    return f"hit ratio {100 * r['hit_ratio']:5.1f}%"


def start_s3(data: bytes) -> tuple[Any, str, dict[str, str]]:
    from cache_s3 import start_moto_with

    return start_moto_with(data)


def direct_fs(kind: str, base: Path, endpoint: str, options: dict[str, str]) -> tuple[Any, str]:
    """The peer nsd is measured against: pyarrow reading the same bytes straight from the store."""
    import pyarrow.fs as pafs

    if kind == "local":
        return pafs.LocalFileSystem(), str(base / "ufs" / "big")
    fs = pafs.S3FileSystem(
        endpoint_override=endpoint,
        scheme="http",
        region="us-east-1",
        access_key=options["access_key"],
        secret_key=options["secret_key"],
    )
    return fs, "bench/big"


async def bench_vfs(args: argparse.Namespace, kind: str) -> None:
    total, block = args.mib * MiB, args.block_mib * MiB
    base = Path(tempfile.mkdtemp(prefix=f"nsd-bench-vfs-{kind}-", dir=args.dir))
    data = os.urandom(total)
    server = None
    endpoint, options = "", dict[str, str]()
    try:
        vfs = await open_vfs(base, block, memory=2 * total)
        if kind == "local":
            (base / "ufs" / "big").write_bytes(data)
            path = "/big"
        else:
            server, endpoint, options = start_s3(data)
            await vfs.mount("/s3", "s3://bench", caller=ME, options=options)
            path = "/s3/big"
        print(f"{args.mib} MiB file on {kind}, {args.block_mib} MiB blocks, read in 4 MiB pieces; {rss()}")
        took, n = await read_through(vfs, path)
        cold = took
        print(f"cold read (from the UFS, cached on the way)  {gbps(n, took)}   {hit_ratio(vfs)}   {rss()}")
        await close_vfs(vfs)  # a restart: the memory tier is empty, the page cache is warm
        vfs = await open_vfs(base, block, memory=2 * total)
        took, n = await read_through(vfs, path)
        disk = took
        print(f"warm read, disk tier (re-hashed)            {gbps(n, took)}   {hit_ratio(vfs)}   {rss()}")
        await read_through(vfs, path, ReadType.CACHE_PROMOTE)
        best = min([(await read_through(vfs, path))[0] for _ in range(args.rounds)])
        print(f"read, memory tier (best of {args.rounds})             {gbps(total, best)}   {hit_ratio(vfs)}   {rss()}")
        nfs = min([(await read_through(vfs, path, piece=MiB))[0] for _ in range(args.rounds)])
        print(f"read, memory tier, 1 MiB pieces (NFS READ)  {gbps(total, nfs)}   (4 MiB pieces pass the block itself)")
        # Ratios use the 1 MiB-piece memory figure: 4 MiB pieces hand over the stored block itself
        # (no copy at all), which says nothing a client could see.
        print(f"cached/UFS speed: disk tier {cold / disk:5.1f}x, memory tier {cold / nfs:6.1f}x")
        fs, key = direct_fs(kind, base, endpoint, options)
        t0 = time.perf_counter()
        with fs.open_input_file(key) as f:
            got = f.read()
        direct = time.perf_counter() - t0
        assert len(got) == total
        del got
        where = "object (one GET)" if kind == "s3" else "file (page cache)"
        print(f"direct pyarrow read of the {where:<17}  {gbps(total, direct)}")
        if kind == "s3":
            t0 = time.perf_counter()
            with fs.open_input_file(key) as f:
                for off in range(0, total, block):
                    f.read_at(min(block, total - off), off)
            ranged = time.perf_counter() - t0
            print(f"direct pyarrow, one request per block       {gbps(total, ranged)}   (moto's cost per request)")
        print(
            f"speed vs direct pyarrow: first read through nsd {direct / cold:5.2f}x, "
            f"disk tier {direct / disk:5.1f}x, memory tier {direct / nfs:6.1f}x"
        )
        await close_vfs(vfs)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(base, ignore_errors=True)


@contextlib.asynccontextmanager
async def remote_vfs(
    args: argparse.Namespace, files: dict[str, bytes], memory_bytes: int, read_ahead: int = 4
) -> AsyncIterator[Vfs]:
    """A new vfs with `files` in a memory store mounted at /remote, whose reads wait
    `--ufs-latency-ms` first (a remote store's first byte)."""
    base = Path(tempfile.mkdtemp(prefix="nsd-bench-remote-", dir=args.dir))
    name = "bench-" + secrets.token_hex(4)
    try:
        vfs = await open_vfs(base, args.block_mib * MiB, memory=memory_bytes, read_ahead=read_ahead)
        for key, data in files.items():
            memory.store(name).put(key, data)
        latency = str(args.ufs_latency_ms / 1000)
        await vfs.mount("/remote", f"memory://{name}", caller=ME, options={"fault_read_latency_s": latency})
        yield vfs
        await close_vfs(vfs)
    finally:
        memory.drop_store(name)
        shutil.rmtree(base, ignore_errors=True)


async def cold_read(args: argparse.Namespace, data: bytes, remote: bool, ahead: int) -> float:
    """Seconds for a first read of `data` through a new vfs: from a local directory, or from
    the remote-like memory store."""
    if remote:
        async with remote_vfs(args, {"big": data}, 2 * len(data), ahead) as vfs:
            took, n = await read_through(vfs, "/remote/big")
    else:
        base = Path(tempfile.mkdtemp(prefix="nsd-bench-ahead-", dir=args.dir))
        try:
            vfs = await open_vfs(base, args.block_mib * MiB, memory=2 * len(data), read_ahead=ahead)
            (base / "ufs" / "big").write_bytes(data)
            os.sync()  # the copy's writeback is not the read's to wait for
            took, n = await read_through(vfs, "/big")
            await close_vfs(vfs)
        finally:
            shutil.rmtree(base, ignore_errors=True)
    assert n == len(data)
    return took


async def bench_ahead(args: argparse.Namespace) -> None:
    ahead = CacheSettings().read_ahead_blocks
    data = os.urandom(args.mib * MiB)
    print(
        f"first read of {args.mib} MiB in 4 MiB pieces, {args.block_mib} MiB blocks, {ahead} blocks fetched "
        f"ahead vs none (the peer: nsd without it), {args.rounds} alternating rounds, medians"
    )
    for remote in (False, True):
        took: dict[int, list[float]] = {ahead: [], 0: []}
        for _ in range(args.rounds):
            for n in (ahead, 0):
                took[n].append(await cold_read(args, data, remote, n))
        on, off = statistics.median(took[ahead]), statistics.median(took[0])
        where = f"memory store, {args.ufs_latency_ms:g} ms a read" if remote else "local directory"
        print(f"{where:<28} ahead {gbps(len(data), on)}   none {gbps(len(data), off)}   {off / on:5.2f}x")


async def timed_load(args: argparse.Namespace, files: dict[str, bytes]) -> float:
    """Seconds for `nsd load -r` of `files` in the remote-like memory store, through a new vfs."""
    async with remote_vfs(args, {f"d/{k}": v for k, v in files.items()}, 256 * MiB) as vfs:
        t0 = time.perf_counter()
        summary = await controls.load_path(vfs, "/remote/d", recursive=True)
        took = time.perf_counter() - t0
    assert summary["bytes_from_ufs"] == sum(map(len, files.values())) and not summary["failed"]
    return took


async def bench_load(args: argparse.Namespace) -> None:
    in_flight = controls.LOADS_IN_FLIGHT
    small = {f"f{i:04}": os.urandom(64 << 10) for i in range(args.small_files)}
    large = {"big": os.urandom(args.mib * MiB)}
    print(
        f"nsd load -r from a memory store whose reads wait {args.ufs_latency_ms:g} ms; {in_flight} blocks "
        f"at once vs one (the peer: the same nsd, one block at a time), {args.rounds} alternating rounds, medians"
    )
    for label, files in ((f"{len(small)} files of 64 KiB", small), (f"one file of {args.mib} MiB", large)):
        took: dict[int, list[float]] = {in_flight: [], 1: []}
        for _ in range(args.rounds):
            for n in (in_flight, 1):
                controls.LOADS_IN_FLIGHT = n
                took[n].append(await timed_load(args, files))
        controls.LOADS_IN_FLIGHT = in_flight
        many, one = statistics.median(took[in_flight]), statistics.median(took[1])
        if len(files) > 1:
            fast, slow = f"{len(files) / many:6.0f} files/s", f"{len(files) / one:6.0f} files/s"
        else:
            nbytes = sum(map(len, files.values()))
            fast, slow = gbps(nbytes, many), gbps(nbytes, one)
        print(f"{label:<24} {fast}   one at a time {slow}   {one / many:5.2f}x")


async def bench_dedup(args: argparse.Namespace) -> None:
    total, block = args.mib * MiB, args.block_mib * MiB
    base = Path(tempfile.mkdtemp(prefix="nsd-bench-dedup-", dir=args.dir))
    try:
        vfs = await open_vfs(base, block, memory=0)
        data = os.urandom(total)
        for name in ("a", "b"):
            (base / name).mkdir()
            (base / name / "big").write_bytes(data)
            await vfs.mount(f"/{name}", (base / name).as_uri(), caller=ME)
            await read_through(vfs, f"/{name}/big")
        assert vfs.cache is not None
        r = vfs.cache.report()
        print(
            f"two mounts, same {args.mib} MiB file: logical {r['logical_bytes'] / MiB:.0f} MiB, "
            f"physical {r['physical_bytes'] / MiB:.0f} MiB, dedup ratio {r['dedup_ratio']:.2f}"
        )
        await close_vfs(vfs)
    finally:
        shutil.rmtree(base, ignore_errors=True)


async def bench_ingest(args: argparse.Namespace) -> None:
    total, block = args.mib * MiB, args.block_mib * MiB
    base = Path(tempfile.mkdtemp(prefix="nsd-bench-ingest-", dir=args.dir))
    try:
        data = os.urandom(total)
        pieces = [data[i : i + MiB] for i in range(0, total, MiB)]
        t0 = time.perf_counter()
        fd = os.open(base / "raw", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        for p in pieces:
            os.write(fd, p)
        os.fsync(fd)
        os.close(fd)
        raw = time.perf_counter() - t0
        print(f"raw write + 1 fsync                         {gbps(total, raw)}")
        vfs = await open_vfs(base / "nsd", block, memory=0, write_type=WriteType.MUST_CACHE)

        async def body() -> Any:
            for p in pieces:
                yield p

        t0 = time.perf_counter()
        await vfs.write_file("/ingest", body(), caller=ME)
        took = time.perf_counter() - t0
        print(f"MUST_CACHE write (blake3, put+fsync, journal) {gbps(total, took)}   {took / raw:5.2f}x raw time")
        await close_vfs(vfs)
    finally:
        shutil.rmtree(base, ignore_errors=True)
