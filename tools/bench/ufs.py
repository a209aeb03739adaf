"""Under-storage adapter benchmark on a real S3 endpoint (moto's server on loopback): prints
figures, asserts nothing.

    python tools/bench/ufs.py [--objects 100000] [--read-mib 64]

- listing a prefix of N objects through the S3 adapter (open_ufs, with its retry wrapper):
  time to first entry and total (without tracing), then peak Python heap (tracemalloc, a
  second run) and the RSS growth; pyarrow's C++ side is not seen by tracemalloc, RSS shows it;
- reading a 64 MiB object through the adapter in 1 MiB ranges (what vfs asks for) and in
  8 MiB ranges, against one straight pyarrow read of the whole object, as a ratio (and pyarrow
  itself in 1 MiB ranges, which shows the endpoint's cost per request).

Through a running nsd (a daemon subprocess with the bucket mounted at /s3):

- listing the N-object prefix from cold (first listing, straight from S3) through the admin API
  (GET /api/v1/fs/list pages of 1000) and through WebHDFS LISTSTATUS_BATCH (on a second bucket,
  so that listing is cold too): time to the first page, total, and the daemon's peak RSS
  (sampled every 20 ms) over its RSS before; then the same listing again, warm (from the
  namespace, sync_interval -1);
- reading the 64 MiB object through nsd (admin API content, WebHDFS OPEN) against one
  straight pyarrow read of it, as a ratio.

The objects are put straight into moto's in-process store (moto's server runs in this
process), because 100k PUTs through HTTP take minutes and measure moto, not nsd. moto scans
every key of a bucket for each listing page, so its listing of 100k keys costs O(n^2) and
dominates the totals; time to first page and RSS are the figures that show nsd.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

import psutil
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))

from daemon import Daemon, start
from s3server import ACCOUNT, s3_client
from s3server import S3_KEYS as KEYS
from s3server import start_moto as start_moto_server

from nsd.ufs import Ufs, open_ufs

USER = "root" if os.getuid() == 0 else os.environ.get("USER", "nobody")


def start_moto() -> tuple[object, str]:
    """moto's S3 server (tests/s3server.py) with the buckets `bench` and `bench2`."""
    server, endpoint = start_moto_server()
    s3 = s3_client(endpoint, KEYS)
    s3.create_bucket(Bucket="bench")
    s3.create_bucket(Bucket="bench2")
    return server, endpoint


def fill(objects: int, bucket: str = "bench") -> None:
    from moto.s3.models import s3_backends

    backend = s3_backends[ACCOUNT]["global"]
    for i in range(objects):
        backend.put_object(bucket, f"big/obj-{i:07d}", b"x" * 10)


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


async def write_blob(ufs: Ufs, mib: int) -> int:
    data = os.urandom(1 << 20) * mib
    size = len(data)

    async def body():  # type: ignore[no-untyped-def]
        for i in range(0, size, 8 << 20):
            yield data[i : i + (8 << 20)]

    await ufs.write("blob", body())
    return size


async def bench_read(ufs: Ufs, endpoint: str, mib: int) -> None:
    import pyarrow.fs as pafs

    size = await write_blob(ufs, mib)
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


class PeakRss:
    """The peak RSS of a process, sampled every 20 ms in a thread while the block runs."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.before = self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)


def list_admin(d: Daemon, path: str) -> tuple[float, float, int]:
    s = requests.Session()
    t0 = time.perf_counter()
    first, n, after = 0.0, 0, ""
    while True:
        page = s.get(f"{d.url}/api/v1/fs/list", params={"path": path, "limit": 1000, "start_after": after}).json()
        if n == 0:
            first = time.perf_counter() - t0
        n += len(page["entries"])
        if not page["more"]:
            return first, time.perf_counter() - t0, n
        after = page["entries"][-1]["name"]


def list_webhdfs(d: Daemon, path: str) -> tuple[float, float, int]:
    s = requests.Session()
    url = f"{d.url}/webhdfs/v1{path}"
    t0 = time.perf_counter()
    first, n, params = 0.0, 0, {"op": "LISTSTATUS_BATCH", "user.name": USER}
    while True:
        listing = s.get(url, params=params).json()["DirectoryListing"]
        if n == 0:
            first = time.perf_counter() - t0
        statuses = listing["partialListing"]["FileStatuses"]["FileStatus"]
        n += len(statuses)
        if not listing["remainingEntries"]:
            return first, time.perf_counter() - t0, n
        params = {**params, "startAfter": statuses[-1]["pathSuffix"]}


def bench_nsd_list(d: Daemon, objects: int) -> None:
    for door, lister, path in (("admin API", list_admin, "/s3/big"), ("WebHDFS", list_webhdfs, "/s3b/big")):
        # Listing the mount's root first loads boto3 and builds its client (~30 MiB, once).
        requests.get(f"{d.url}/api/v1/fs/list", params={"path": path.rsplit("/", 1)[0]}).raise_for_status()
        with PeakRss(d.proc.pid) as rss:
            first, total, n = lister(d, path)
        grown = rss.peak - rss.before
        print(
            f"nsd {door}: list {n} objects cold: first page {first:.2f} s, total {total:.2f} s; "
            f"daemon peak RSS +{grown / 2**20:.0f} MiB ({grown / max(n, 1):.0f} B/entry), "
            f"peak {rss.peak / 2**20:.0f} MiB"
        )
        first, total, n = lister(d, path)
        print(f"nsd {door}: list {n} objects warm: first page {first:.3f} s, total {total:.2f} s")


def bench_nsd_read(d: Daemon, endpoint: str, mib: int) -> None:
    import pyarrow.fs as pafs

    fs = pafs.S3FileSystem(endpoint_override=endpoint, scheme="http", region="us-east-1", **KEYS)
    t0 = time.perf_counter()
    with fs.open_input_file("bench/blob") as f:
        size = len(f.read())
    straight = time.perf_counter() - t0
    print(f"read {mib} MiB straight with pyarrow: {straight:.2f} s ({mib / straight:.0f} MiB/s)")
    urls = {
        "admin API": (f"{d.url}/api/v1/fs/content", {"path": "/s3/blob"}),
        "WebHDFS OPEN": (f"{d.url}/webhdfs/v1/s3/blob", {"op": "OPEN", "user.name": USER}),
    }
    for door, (url, params) in urls.items():
        t0 = time.perf_counter()
        with requests.get(url, params=params, stream=True) as r:
            r.raise_for_status()
            got = sum(len(c) for c in r.iter_content(1 << 20))
        took = time.perf_counter() - t0
        assert got == size
        print(
            f"read {mib} MiB through nsd ({door}): {took:.2f} s ({mib / took:.0f} MiB/s), "
            f"{took / straight:.2f}x pyarrow's time"
        )


def through_nsd(endpoint: str, objects: int, mib: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        d = start(Path(tmp) / "data")
        try:
            s = requests.Session()
            s.headers["Authorization"] = f"Bearer {(Path(tmp) / 'data' / 'admin.token').read_text().strip()}"
            base = {"endpoint_override": endpoint, "scheme": "http", **KEYS, "tmp_sweep_s": "-1"}
            for path, bucket in (("/s3", "bench"), ("/s3b", "bench2")):
                body = {"path": path, "uri": f"s3://{bucket}", "options": base}
                s.post(f"{d.url}/api/v1/mounts", json=body).raise_for_status()
            bench_nsd_list(d, objects)
            bench_nsd_read(d, endpoint, mib)
        finally:
            d.stop()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--objects", type=int, default=100_000)
    ap.add_argument("--read-mib", type=int, default=64)
    ap.add_argument("--part", choices=("adapter", "nsd", "all"), default="all")
    args = ap.parse_args()
    server, endpoint = start_moto()
    try:
        t0 = time.perf_counter()
        fill(args.objects)
        print(f"filled s3://bench/big with {args.objects} objects in {time.perf_counter() - t0:.1f} s")
        ufs = open_ufs("s3://bench", {"endpoint_override": endpoint, "scheme": "http", **KEYS})
        if args.part in ("adapter", "all"):
            await bench_list(ufs, endpoint, args.objects)
            await bench_read(ufs, endpoint, args.read_mib)
        else:
            await write_blob(ufs, args.read_mib)
        await ufs.close()
        if args.part in ("nsd", "all"):
            fill(args.objects, "bench2")
            await asyncio.to_thread(through_nsd, endpoint, args.objects, args.read_mib)
    finally:
        server.stop()  # type: ignore[attr-defined]


if __name__ == "__main__":
    asyncio.run(main())
