"""WebHDFS benchmark against a real daemon on loopback: prints figures, asserts nothing.

    python tools/bench/webhdfs.py [--size-mib 1024] [--requests 3000] [--concurrency 1,16,128] [--dir DIR]

- OPEN throughput of one cached large file: raw aiohttp client (the server's ceiling), HdfsCLI
  and fsspec; and the same file from nginx over the same disk when `nginx` is on the PATH, as
  the ratio nsd / plain static server;
- CREATE throughput (one large upload, chunked, through HdfsCLI);
- GETFILESTATUS and LISTSTATUS (a 100-entry directory) requests/s with p50/p99 latency at
  each concurrency (one keep-alive connection per concurrent client).

Goal (issue 7): OPEN >= 1 GB/s on loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))

from daemon import Daemon, start

MIB = 1 << 20
USER = "root" if os.getuid() == 0 else os.environ.get("USER", "nobody")


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p * len(values)))]


def rate(label: str, nbytes: int, seconds: float) -> None:
    print(f"  {label:<34} {nbytes / seconds / 1e9:6.2f} GB/s  ({nbytes / MIB:.0f} MiB in {seconds:.2f} s)")


async def read_all(url: str) -> tuple[int, float]:
    t0 = time.perf_counter()
    n = 0
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        r.raise_for_status()
        async for chunk in r.content.iter_chunked(4 * MIB):
            n += len(chunk)
    return n, time.perf_counter() - t0


def bench_create(d: Daemon, local: Path) -> None:
    from hdfs import InsecureClient

    client = InsecureClient(d.url, user=USER)
    t0 = time.perf_counter()
    client.upload("/bench/big", str(local), overwrite=True, chunk_size=4 * MIB)
    rate("CREATE (HdfsCLI upload, chunked)", local.stat().st_size, time.perf_counter() - t0)


def bench_open(d: Daemon, size: int) -> float:
    from fsspec.implementations.webhdfs import WebHDFS
    from hdfs import InsecureClient

    data_url = f"{d.url}/webhdfs/v1/bench/big?op=OPEN&user.name={USER}&data=true"
    asyncio.run(read_all(data_url))  # warm the page cache
    n, seconds = asyncio.run(read_all(data_url))
    rate("OPEN, aiohttp client", n, seconds)
    best = n / seconds
    client = InsecureClient(d.url, user=USER)
    t0 = time.perf_counter()
    n = 0
    with client.read("/bench/big", chunk_size=4 * MIB) as reader:
        for chunk in reader:
            n += len(chunk)
    rate("OPEN, HdfsCLI read", n, time.perf_counter() - t0)
    u = urlsplit(d.url)
    fs = WebHDFS(host=u.hostname, port=u.port, user=USER, skip_instance_cache=True)
    t0 = time.perf_counter()
    n = 0
    with fs.open("/bench/big", "rb", block_size=64 * MIB) as f:
        while chunk := f.read(64 * MIB):
            n += len(chunk)
    rate("OPEN, fsspec read (64 MiB ranges)", n, time.perf_counter() - t0)
    return best


def bench_nginx(ufs_dir: Path, nsd_rate: float) -> None:
    nginx = shutil.which("nginx")
    if nginx is None:
        print("  nginx not on PATH: no static-server comparison")
        return
    work = Path(tempfile.mkdtemp(prefix="nsd-bench-nginx-"))
    conf = work / "nginx.conf"
    user = "user root root;" if os.getuid() == 0 else ""  # workers must read the data dir
    conf.write_text(
        f"daemon off; {user} worker_processes 1; pid {work}/pid; error_log {work}/error.log;\n"
        f"events {{}}\nhttp {{ access_log off; sendfile on; client_body_temp_path {work};\n"
        f"  server {{ listen 127.0.0.1:18089; root {ufs_dir}; }} }}\n"
    )
    proc = subprocess.Popen([nginx, "-c", str(conf), "-p", str(work)], stderr=subprocess.DEVNULL)
    try:
        time.sleep(1)
        url = "http://127.0.0.1:18089/bench/big"
        asyncio.run(read_all(url))
        n, seconds = asyncio.run(read_all(url))
        rate("OPEN-equivalent from nginx", n, seconds)
        print(f"  nsd / nginx ratio: {nsd_rate / (n / seconds):.2f}")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)


async def metadata(base: str, path: str, op: str, total: int, concurrency: int) -> None:
    url = f"{base}/webhdfs/v1{path}?op={op}&user.name={USER}"
    latencies: list[float] = []
    todo = iter(range(total))

    async def one_client() -> None:
        connector = aiohttp.TCPConnector(limit=1)
        async with aiohttp.ClientSession(connector=connector) as s:
            for _ in todo:
                t0 = time.perf_counter()
                async with s.get(url) as r:
                    await r.read()
                    assert r.status == 200
                latencies.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*(one_client() for _ in range(concurrency)))
    seconds = time.perf_counter() - t0
    print(
        f"  {op:<14} c={concurrency:<4} {len(latencies) / seconds:8.0f} req/s"
        f"  p50 {pct(latencies, 0.5) * 1e3:6.2f} ms  p99 {pct(latencies, 0.99) * 1e3:6.2f} ms"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--concurrency", default="1,16,128")
    ap.add_argument("--dir", default=None, help="where the data dir goes (default: a temp dir)")
    args = ap.parse_args()
    root = Path(args.dir or tempfile.mkdtemp(prefix="nsd-bench-webhdfs-"))
    d = start(root / "data")
    try:
        local = root / "big.bin"
        with open(local, "wb") as f:
            block = os.urandom(4 * MIB)
            for _ in range(args.size_mib // 4):
                f.write(block)
        print(f"nsd {d.url}, file {args.size_mib} MiB")
        bench_create(d, local)
        local.unlink()
        best = bench_open(d, args.size_mib * MIB)
        bench_nginx(d.data_dir / "ufs", best)
        import requests

        for i in range(100):
            requests.put(f"{d.url}/webhdfs/v1/bench/dir/e{i:03d}?op=MKDIRS&user.name={USER}").raise_for_status()
        for c in (int(x) for x in args.concurrency.split(",")):
            asyncio.run(metadata(d.url, "/bench/big", "GETFILESTATUS", args.requests, c))
            asyncio.run(metadata(d.url, "/bench/dir", "LISTSTATUS", args.requests, c))
    finally:
        d.stop()
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
