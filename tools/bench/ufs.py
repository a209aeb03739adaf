"""Under-storage adapter benchmark on a real S3 endpoint (moto's server on loopback): prints
figures, asserts nothing.

    python tools/bench/ufs.py [--objects 100000] [--read-mib 64]

- listing a prefix of N objects through the S3 adapter (open_ufs, with its retry wrapper):
  time to first entry and total (without tracing), then peak Python heap (tracemalloc, a
  second run) and the RSS growth; pyarrow's C++ side is not seen by tracemalloc, RSS shows it;
- reading a 64 MiB object through the adapter in 1 MiB ranges (what vfs asks for) and in
  8 MiB ranges, against one straight pyarrow read of the whole object, as a ratio (and pyarrow
  itself in 1 MiB ranges, which shows the endpoint's cost per request).

The objects are put straight into moto's in-process store (moto's server runs in this
process), because 100k PUTs through HTTP take minutes and measure moto, not nsd.
The "through nsd" half (WebHDFS/NFS in front) is added with the mount table.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import sys
import time
import tracemalloc
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from nsd.ufs import Ufs, open_ufs

KEYS = {"access_key": "AKIABENCHMARK0000000", "secret_key": "bench-secret"}
ACCOUNT = "123456789012"  # moto's default account


def start_moto() -> tuple[object, str]:
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"{host}:{port}"
    s3 = boto3.client(
        "s3",
        endpoint_url=f"http://{endpoint}",
        aws_access_key_id=KEYS["access_key"],
        aws_secret_access_key=KEYS["secret_key"],
        region_name="us-east-1",
    )
    s3.create_bucket(Bucket="bench")
    return server, endpoint


def fill(objects: int) -> None:
    from moto.s3.models import s3_backends

    backend = s3_backends[ACCOUNT]["global"]
    for i in range(objects):
        backend.put_object("bench", f"big/obj-{i:07d}", b"x" * 10)


async def list_all(ufs: Ufs) -> tuple[float, float, int]:
    t0 = time.perf_counter()
    first = 0.0
    n = 0
    async for _ in ufs.list("big"):
        if n == 0:
            first = time.perf_counter() - t0
        n += 1
    return first, time.perf_counter() - t0, n


async def bench_list(ufs: Ufs, endpoint: str, objects: int) -> None:
    import pyarrow.fs as pafs

    fs = pafs.S3FileSystem(endpoint_override=endpoint, scheme="http", region="us-east-1", **KEYS)
    t0 = time.perf_counter()
    n = len(fs.get_file_info(pafs.FileSelector("bench/big")))
    took = time.perf_counter() - t0
    print(f"list {n} objects straight with pyarrow (whole prefix in one call): {took:.2f} s")
    first, total, n = await list_all(ufs)
    print(f"list {n} objects: first entry {first:.2f} s, total {total:.2f} s ({n / total:,.0f} entries/s)")
    gc.collect()
    rss0 = psutil.Process().memory_info().rss
    tracemalloc.start()
    await list_all(ufs)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss1 = psutil.Process().memory_info().rss
    print(
        f"list {objects} objects: peak Python heap {peak / 2**20:.1f} MiB ({peak / max(objects, 1):.0f} B/entry), "
        f"RSS growth {(rss1 - rss0) / 2**20:.1f} MiB"
    )


async def bench_read(ufs: Ufs, endpoint: str, mib: int) -> None:
    import pyarrow.fs as pafs

    data = os.urandom(1 << 20) * mib
    size = len(data)

    async def body():  # type: ignore[no-untyped-def]
        for i in range(0, size, 8 << 20):
            yield data[i : i + (8 << 20)]

    await ufs.write("blob", body())
    fs = pafs.S3FileSystem(endpoint_override=endpoint, scheme="http", region="us-east-1", **KEYS)
    t0 = time.perf_counter()
    with fs.open_input_file("bench/blob") as f:
        direct = f.read()
    straight = time.perf_counter() - t0
    assert len(direct) == size
    print(f"read {mib} MiB straight with pyarrow: {straight:.2f} s ({mib / straight:.0f} MiB/s)")
    t0 = time.perf_counter()
    with fs.open_input_file("bench/blob") as f:
        ranged = sum(len(f.read_at(1 << 20, off)) for off in range(0, size, 1 << 20))
    took = time.perf_counter() - t0
    assert ranged == size
    print(f"read {mib} MiB straight with pyarrow in 1 MiB ranges: {took:.2f} s ({took / straight:.2f}x one read)")
    for step in (1 << 20, 8 << 20):
        t0 = time.perf_counter()
        got = 0
        for off in range(0, size, step):
            got += len(await ufs.read("blob", off, step))
        took = time.perf_counter() - t0
        assert got == size
        print(
            f"read {mib} MiB through the adapter in {step >> 20} MiB ranges: {took:.2f} s "
            f"({mib / took:.0f} MiB/s), {took / straight:.2f}x pyarrow's time"
        )


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--objects", type=int, default=100_000)
    ap.add_argument("--read-mib", type=int, default=64)
    args = ap.parse_args()
    server, endpoint = start_moto()
    try:
        t0 = time.perf_counter()
        fill(args.objects)
        print(f"filled s3://bench/big with {args.objects} objects in {time.perf_counter() - t0:.1f} s")
        ufs = open_ufs("s3://bench", {"endpoint_override": endpoint, "scheme": "http", **KEYS})
        await bench_list(ufs, endpoint, args.objects)
        await bench_read(ufs, endpoint, args.read_mib)
        await ufs.close()
    finally:
        server.stop()  # type: ignore[attr-defined]


if __name__ == "__main__":
    asyncio.run(main())
