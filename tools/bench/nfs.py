"""NFS benchmark: nsd against nfs-ganesha with the same libnfs client, same file, same disk.

Needs (installed by nothing here; as root on Debian):

    apt-get install -y libnfs-utils libnfs-dev gcc nfs-ganesha nfs-ganesha-vfs rpcbind strace

Measures, for each server: sequential write of a SIZE file (`nfs-cp` in: UNSTABLE 1 MiB
WRITEs then COMMIT; after a `sync`, so no server inherits another's writeback, and `--quiet`
seconds of rest, 5 by default: see below), sequential
read of it while cached (`nfs-cat` to /dev/null, best of --reads), the same for a file
copied into the store behind the server's back (nsd: its root under-storage, read once to fill
the cache first; ganesha: its export directory) and for an object put in an S3 bucket nsd
mounts (moto's server in this process; ganesha reads the same bytes from its export directory
again), listings with `nfs-ls` of directories of 10,000 files put in the store the same way
(entries per second: the first listing, which nsd answers by discovering the directory in its
under-storage, the median of 4 new directories a round; and the best of three more), GETATTR
and LOOKUP calls per second at 1 and 32 outstanding calls on one connection, and CREATE + REMOVE
pairs the same way (each server's durability per change: nsd's journal record is fsynced before
the reply; ganesha's VFS export makes the file with open(O_CREAT) and does not sync the
directory; the row `C+R syncs/pair` counts, with strace, the fsync-family calls each server makes
per pair), with their median and 99th percentile latency: tools/bench/nfsops.c, built here
against libnfs, drives libnfs's asynchronous RPC calls (a client in C, so its own cost per call
stays small next to the server's). All servers run together and each measurement is taken on
one right after the other, so a busy machine skews them alike. Prints each and the ratio to
ganesha (for latency rows lower is better).
`--nsd NAME:KEY=VALUE,...` adds another nsd with those settings (environment variables), e.g.
`--nsd nopoll:NSD_NFS_BUSY_POLL_US=0`, to see what a setting is worth in the same run.
`--cpus 1` runs every server and client on CPU 1 only: on a VM, waking a process on another,
idle vCPU costs tens of microseconds, and where the scheduler puts a server's threads next to
the client decides most of a one-call-in-flight round trip; on one CPU both servers are measured
without that (docs/architecture.md, NFS performance). How long an idle vCPU takes to wake is the
guest's idle policy, printed under the table: with the `haltpoll` cpuidle driver a vCPU polls up
to `guest_halt_poll_ns` before it halts (the governor's default is 200 us; 0 means it halts at
once, and every wake-up is an exit to the hypervisor). `--guest-halt-poll-ns N` sets it for the
run and puts it back after (root, such a guest only), to measure the servers' own cost per call.
`--calls-only` measures the listing, GETATTR, LOOKUP and CREATE+REMOVE rows alone (minutes, not a quarter
of an hour). `--writes-only` measures the write row alone. On a VM the virtual disk's own
caching makes a write right after another one much faster or slower (docs/architecture.md, NFS
performance): hence the rest before each write; give the row many rounds.
Asserts nothing. If ganesha cannot run, says why and prints nsd's numbers alone.

    .venv/bin/python tools/bench/nfs.py [--size-mib 1024] [--dir /var/tmp] [--ops-seconds 3] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nsd.protocols.rpc import oncrpc
from nsd.protocols.xdr import Packer, Unpacker

MiB = 1 << 20
NFS, MOUNT = 100003, 100005
MKDIR = 9
CRED = oncrpc.AuthSys(0, b"bench", 0, 0, ())
GANESHA_PORTS = {"nfs": 20490, "mnt": 20048, "nlm": 20049, "rquota": 20875}


@dataclass
class Target:
    name: str
    port: int
    export: str  # what MNT is given and what URLs start with
    store_dir: Path  # a file put here (out of band) appears under store_prefix in the export
    store_prefix: str
    pid: int = 0  # the server's process (0: not known)
    s3_prefix: str | None = None  # where an object put in the bench's S3 bucket appears (None: no S3 mount)
    cli: list[str] = field(default_factory=list)  # the nsd CLI command for this server
    results: dict[str, float] = field(default_factory=dict)
    spread: dict[str, tuple[float, float]] = field(default_factory=dict)  # min, max over rounds

    def url(self, path: str) -> str:
        return f"nfs://127.0.0.1{self.export.rstrip('/')}/{path}?nfsport={self.port}&mountport={self.port}"


# ---- an RPC client for the set-up (MNT, MKDIR) ---------------------------------------------


class AsyncRpc:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.xid = int.from_bytes(os.urandom(3), "big")

    @classmethod
    async def connect(cls, port: int) -> AsyncRpc:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    def send(self, prog: int, vers: int, proc: int, args: bytes) -> None:
        self.xid += 1
        self.writer.write(oncrpc.encode_call(self.xid, prog, vers, proc, args, cred=CRED))

    async def recv(self) -> bytes:
        body = b""
        while True:
            mark = struct.unpack(">I", await self.reader.readexactly(4))[0]
            body += await self.reader.readexactly(mark & 0x7FFFFFFF)
            if mark & 0x80000000:
                reply = oncrpc.decode_reply(body)
                if not reply.accepted or reply.stat != oncrpc.SUCCESS:
                    raise RuntimeError(f"rpc failed: {reply}")
                return reply.body

    async def call(self, prog: int, vers: int, proc: int, args: bytes) -> Unpacker:
        self.send(prog, vers, proc, args)
        return Unpacker(await self.recv())

    def close(self) -> None:
        self.writer.close()


def _opaque(*items: bytes) -> bytes:
    p = Packer()
    for item in items:
        p.opaque(item)
    return bytes(p.buf)


async def mount(rpc: AsyncRpc, export: str) -> bytes:
    u = await rpc.call(MOUNT, 3, 1, _opaque(export.encode()))
    if u.uint32() != 0:
        raise RuntimeError(f"MNT {export} failed")
    return u.opaque(64)


NFSOPS_SOURCE = Path(__file__).with_name("nfsops.c")


def build_nfsops(workdir: Path) -> Path:
    """Compile nfsops.c; RuntimeError saying why if it cannot be built."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise RuntimeError("no C compiler (apt-get install gcc)")
    binary = workdir / "nfsops"
    built = subprocess.run([cc, "-O2", "-o", str(binary), str(NFSOPS_SOURCE), "-lnfs"], capture_output=True, text=True)
    if built.returncode != 0:
        raise RuntimeError(f"cannot build nfsops.c (apt-get install libnfs-dev): {built.stderr.strip()[:300]}")
    return binary


def ops_per_second(
    nfsops: Path, nfs_port: int, mnt_port: int, export: str, mode: str, outstanding: int, seconds: float, name: str
) -> dict[str, float]:
    """Calls per second with `outstanding` in flight (mode getattr or lookup: of `name`; create:
    CREATE + REMOVE pairs of files of its own), and their latency percentiles: {"ops_per_s",
    "p50_us", "p90_us", "p99_us", "max_us", "calls"}."""
    cmd = [str(nfsops), "127.0.0.1", str(nfs_port), str(mnt_port), export, name]
    cmd += [mode, str(outstanding), str(seconds)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    return {k: float(v) for k, v in (field.split("=", 1) for field in out.split())}


# ---- servers --------------------------------------------------------------------------------


@dataclass
class S3:
    """A bucket in moto's S3 server (run in this process), for the S3-mount read row."""

    client: Any
    bucket: str
    options: dict[str, str]  # `nsd mount add -o` options that reach it


@contextlib.contextmanager
def s3_bucket() -> Iterator[S3]:
    """moto's S3 server with a bucket; RuntimeError if moto is not installed (make test installs it)."""
    try:
        sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
        from s3server import S3_KEYS, s3_client, start_moto
    except ImportError as e:
        raise RuntimeError(f"moto is not installed ({e})") from None
    server, endpoint = start_moto()
    try:
        client = s3_client(endpoint, S3_KEYS)
        client.create_bucket(Bucket="bench")
        yield S3(client, "bench", {"endpoint_override": endpoint, "scheme": "http", **S3_KEYS})
    finally:
        server.stop()


@contextlib.contextmanager
def nsd_server(
    workdir: Path,
    name: str = "nsd",
    env: dict[str, str] | None = None,
    *,
    reuse: bool = False,
    s3: S3 | None = None,
) -> Iterator[Target]:
    """An nsd on `workdir/NAME-data` exporting /bench, with a local under-storage mounted at
    /bench/store (and `s3`'s bucket at /bench/s3); `reuse`: start again on the data dir an
    earlier call made (and left so)."""
    data = workdir / f"{name}-data"
    log = open(workdir / f"{name}.log", "a")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "nsd.cli", "serve", "--data-dir", str(data), "--http-port", "0", "--nfs-port", "0"],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env={**os.environ, "NSD_LOG_LEVEL": "warning", **(env or {})},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if "ready" not in line:
            raise RuntimeError(f"nsd did not start: {(workdir / f'{name}.log').read_text()}")
        fields = dict(p.split("=", 1) for p in line.split() if "=" in p)
        port = int(fields["nfs"].rsplit(":", 1)[1])
        # a local under-storage mounted at /bench/store: files put there are found by lookups
        store = workdir / f"{name}-store"
        cli = [sys.executable, "-m", "nsd.cli", "--server", fields["http"], "--data-dir", str(data)]
        if not reuse:
            asyncio.run(_mkdir(port, "/", "bench"))
            store.mkdir()
            subprocess.run([*cli, "mount", "add", "/bench/store", store.as_uri()], check=True, capture_output=True)
            if s3 is not None:
                options = [arg for k, v in s3.options.items() for arg in ("-o", f"{k}={v}")]
                mount = [*cli, "mount", "add", "/bench/s3", f"s3://{s3.bucket}", *options]
                subprocess.run(mount, check=True, capture_output=True)
        s3_prefix = None if s3 is None else "s3/"
        yield Target(name, port, "/bench", store, "store/", pid=proc.pid, s3_prefix=s3_prefix, cli=cli)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(120)
        log.close()


async def _mkdir(port: int, export: str, name: str) -> None:
    rpc = await AsyncRpc.connect(port)
    try:
        root = await mount(rpc, export)
        await rpc.call(NFS, 3, MKDIR, _opaque(root, name.encode()) + b"\0" * 24)
    finally:
        rpc.close()


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


# ganesha's metadata cache holds every entry listed, as nsd's namespace does: at its default of
# 100,000 entries it evicts from the third round of listings on (4 directories of 10,000 a round).
GANESHA_CONF = """
NFS_CORE_PARAM {{ Protocols = 3; Bind_addr = 127.0.0.1; NFS_Port = {nfs}; MNT_Port = {mnt};
    NLM_Port = {nlm}; Rquota_Port = {rquota}; Enable_NLM = false; Enable_RQUOTA = false;
    Enable_UDP = false; Mount_Path_Pseudo = true; Plugins_Dir = {plugins}; }}
NFSv4 {{ Graceless = true; RecoveryRoot = {dir}/recov; }}
EXPORT {{ Export_Id = 1; Path = {dir}/export; Pseudo = /export; Protocols = 3; Transports = TCP;
    Access_Type = RW; Squash = No_Root_Squash; SecType = sys; FSAL {{ Name = VFS; }} }}
LOG {{ Default_Log_Level = EVENT; }}
MDCACHE {{ Entries_HWMark = 1000000; }}
"""


@contextlib.contextmanager
def ganesha_server(workdir: Path) -> Iterator[Target]:
    """nfs-ganesha exporting workdir/ganesha/export; raises RuntimeError saying why it cannot."""
    binary = shutil.which("ganesha.nfsd")
    plugins = Path("/usr/lib/x86_64-linux-gnu/ganesha")
    if binary is None or not (plugins / "libfsalvfs.so").exists():
        raise RuntimeError("nfs-ganesha (nfs-ganesha, nfs-ganesha-vfs) is not installed")
    busy = [p for p in GANESHA_PORTS.values() if not _port_free(p)]
    if busy:
        raise RuntimeError(f"ports {busy} are taken")
    gdir = workdir / "ganesha"
    (gdir / "export").mkdir(parents=True)
    (gdir / "recov").mkdir()
    conf = gdir / "ganesha.conf"
    conf.write_text(GANESHA_CONF.format(dir=gdir, plugins=plugins, **GANESHA_PORTS))
    rpcbind = None
    if _port_free(111):  # ganesha will not start without a portmapper to register with
        rpcbind_bin = shutil.which("rpcbind")
        if rpcbind_bin is None:
            raise RuntimeError("rpcbind is not installed and no portmapper runs")
        Path("/run/rpcbind").mkdir(parents=True, exist_ok=True)
        rpcbind = subprocess.Popen([rpcbind_bin, "-f", "-w"], stderr=subprocess.DEVNULL)
        for _ in range(100):
            if not _port_free(111):
                break
            time.sleep(0.05)
    pidfile = gdir / "ganesha.pid"
    cmd = [binary, "-L", str(gdir / "ganesha.log"), "-f", str(conf), "-p", str(pidfile), "-N", "NIV_EVENT"]
    try:
        subprocess.run(cmd, check=True, timeout=60)
        target = Target("ganesha", GANESHA_PORTS["nfs"], "/export", gdir / "export", "")
        for _ in range(200):  # ganesha answers after its grace period set-up
            if _answers(target.port) and _answers(GANESHA_PORTS["mnt"]):
                break
            time.sleep(0.1)
        else:
            raise RuntimeError(f"ganesha did not answer; see {gdir / 'ganesha.log'}")
        target.pid = int(pidfile.read_text().strip())
        yield target
    finally:
        with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
            pid = int(pidfile.read_text().strip())
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                os.kill(pid, 0)
                time.sleep(0.1)
        if rpcbind is not None:
            rpcbind.terminate()
            rpcbind.wait(30)


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


# ---- measurements ---------------------------------------------------------------------------


def _url_for(target: Target, name: str) -> str:
    if target.name == "ganesha":
        return f"nfs://127.0.0.1/export/{name}?nfsport={target.port}&mountport={GANESHA_PORTS['mnt']}"
    return target.url(name)


def _timed(cmd: list[str], stdout: int | None = None, limit: float = 3600.0) -> float:
    """Seconds `cmd` took, seen by a blocking wait for its exit (killed after `limit`).
    Not subprocess.run(timeout=): its wait polls with sleeps that double up to 50 ms, so every
    timing came out at the next poll (31.5, 63.5 ms, then steps of 50 ms); a 1 GiB read row fell
    on three levels whatever the server, and a listing of 30-60 ms read as 63.5."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=stdout if stdout is not None else subprocess.DEVNULL)
    watchdog = threading.Timer(limit, proc.kill)
    watchdog.start()
    try:
        returncode = proc.wait()
    finally:
        watchdog.cancel()
    took = time.perf_counter() - start
    if returncode:
        raise subprocess.CalledProcessError(returncode, cmd)
    return took


def measure(
    targets: list[Target],
    source: Path,
    size: int,
    reads: int,
    seconds: float,
    rounds: int = 1,
    nfsops: Path | None = None,
    s3: S3 | None = None,
    files: bool = True,
    rest: float = 0.0,
    writes_only: bool = False,
) -> None:
    """Each measurement on every server back to back, so a busy machine hurts them alike; with
    several rounds, the servers take turns going first and each result is the median.
    `files=False`: the call rows only (the file they stat is written but not timed).
    `rest`: seconds of quiet before each timed write. `writes_only`: the write row alone."""
    samples: dict[tuple[str, str], list[float]] = {}

    def note(t: Target, key: str, value: float) -> None:
        samples.setdefault((t.name, key), []).append(value)

    for r in range(rounds):
        order = targets if r % 2 == 0 else targets[::-1]
        name = f"bench-file-{r}"
        if writes_only:
            write_row(order, name, source, size, note, rest)
            continue
        if files:
            file_rows(order, r, name, source, size, reads, s3, note, rest)
        else:
            for t in order:
                subprocess.run(["nfs-cp", str(source), _url_for(t, name)], check=True, capture_output=True)
        listing_rows(order, r, note)
        if nfsops is not None:
            ops_rows(nfsops, order, name, seconds, note)
    if nfsops is not None and shutil.which("strace") is not None:
        for t in targets:
            mnt_port = GANESHA_PORTS["mnt"] if t.name == "ganesha" else t.port
            note(t, "C+R syncs/pair @1", syncs_per_pair(nfsops, t, mnt_port, "bench-file-0"))
    for t in targets:
        for (who, key), values in samples.items():
            if who == t.name:
                t.results[key] = statistics.median(values)
                t.spread[key] = (min(values), max(values))


def write_row(
    order: list[Target],
    name: str,
    source: Path,
    size: int,
    note: Callable[[Target, str, float], None],
    rest: float = 0.0,
) -> None:
    """`source` copied in as `name` with nfs-cp, each server in turn, after `rest` seconds."""
    for t in order:
        # Each write starts with no dirty page cache: what the last one (or the out-of-band
        # copies of the round before) left for writeback would slow this one's COMMIT and its
        # writes, and the row would depend on the order more than on the server.
        os.sync()
        time.sleep(rest)
        note(t, "write MiB/s", size / MiB / _timed(["nfs-cp", str(source), _url_for(t, name)]))


def file_rows(
    order: list[Target],
    r: int,
    name: str,
    source: Path,
    size: int,
    reads: int,
    s3: S3 | None,
    note: Callable[[Target, str, float], None],
    rest: float = 0.0,
) -> None:
    """Round `r` of the write and cached-read rows: `name` written over NFS (after `rest` s of
    quiet), a file put in the store, an object in the S3 bucket."""
    write_row(order, name, source, size, note, rest)
    for t in order:
        best = min(_timed(["nfs-cat", _url_for(t, name)]) for _ in range(reads))
        note(t, "read MiB/s", size / MiB / best)
    # A file that lives in the store (nsd: its root under-storage; ganesha: its export),
    # read once to fill the cache, then best of `reads` passes.
    ufs_name = f"ufs-file-{r}"
    for t in order:
        shutil.copyfile(source, t.store_dir / ufs_name)
    for t in order:
        _timed(["nfs-cat", _url_for(t, t.store_prefix + ufs_name)])
        best = min(_timed(["nfs-cat", _url_for(t, t.store_prefix + ufs_name)]) for _ in range(reads))
        note(t, "UFS file read MiB/s", size / MiB / best)
    # The same through an S3 mount (moto); ganesha has none: it serves the same bytes from its
    # export directory again, so the ratio compares with what a local server does.
    s3_name = "s3-file"  # put and loaded once (moto is slow), read cached in every round
    if s3 is not None and r == 0:
        with source.open("rb") as f:
            s3.client.put_object(Bucket=s3.bucket, Key=s3_name, Body=f)
    for t in order:
        if t.s3_prefix is None and t.name != "ganesha":
            continue
        path = t.s3_prefix + s3_name if t.s3_prefix is not None else t.store_prefix + s3_name
        if r == 0 and t.s3_prefix is None:
            shutil.copyfile(source, t.store_dir / s3_name)
            _timed(["nfs-cat", _url_for(t, path)])
        elif r == 0:  # `nsd load` fills the cache: moto serves a range of a 1 GiB object at ~7 MiB/s
            subprocess.run([*t.cli, "load", f"{t.export}/{path}"], check=True, capture_output=True)
        best = min(_timed(["nfs-cat", _url_for(t, path)]) for _ in range(reads))
        note(t, "S3 file read MiB/s", size / MiB / best)


LISTED = 10_000  # entries in the directory the listing rows list
FIRST_LISTINGS = 4  # new directories each server lists per round: one listing is a ~0.1 s sample


def listing_rows(order: list[Target], r: int, note: Callable[[Target, str, float], None]) -> None:
    """`nfs-ls` (READDIRPLUS pages of 8 KiB) of directories of LISTED files put in the store
    behind the server's back: the first listing (nsd: discovery of what its under-storage has),
    the median of FIRST_LISTINGS directories taken by the servers in turn, then the best of
    three more listings of the last one (what the server knows)."""
    names = [f"listed-{r}-{k}" for k in range(FIRST_LISTINGS)]
    for t in order:
        for name in names:
            d = t.store_dir / name
            d.mkdir()
            for i in range(LISTED):
                (d / f"part-{i:05d}-c000.snappy.parquet").write_bytes(b"")
    os.sync()
    firsts: dict[str, list[float]] = {t.name: [] for t in order}
    for name in names:
        for t in order:
            firsts[t.name].append(_timed(["nfs-ls", _url_for(t, t.store_prefix + name)]))
    for t in order:
        note(t, "list entries/s, first", LISTED / statistics.median(firsts[t.name]))
        url = _url_for(t, t.store_prefix + names[-1])
        note(t, "list entries/s, again", LISTED / min(_timed(["nfs-ls", url]) for _ in range(3)))


def ops_rows(
    nfsops: Path, order: list[Target], name: str, seconds: float, note: Callable[[Target, str, float], None]
) -> None:
    """GETATTR and LOOKUP of `name`, CREATE+REMOVE pairs: 1 and 32 calls in flight, each server in turn."""
    for mode, label in (("getattr", "GETATTR"), ("lookup", "LOOKUP"), ("create", "CREATE+REMOVE")):
        for outstanding in (1, 32):
            for t in order:
                mnt_port = GANESHA_PORTS["mnt"] if t.name == "ganesha" else t.port
                got = ops_per_second(nfsops, t.port, mnt_port, t.export, mode, outstanding, seconds, name)
                note(t, f"{label} ops/s @{outstanding}", got["ops_per_s"])
                note(t, f"{label} p50 us @{outstanding}", got["p50_us"])
                note(t, f"{label} p99 us @{outstanding}", got["p99_us"])


SYNC_CALLS = ("fsync", "fdatasync", "sync_file_range", "syncfs", "sync", "msync")


def syncs_per_pair(nfsops: Path, t: Target, mnt_port: int, name: str, seconds: float = 2.0) -> float:
    """The fsync-family system calls a server makes per CREATE + REMOVE pair at one call in
    flight, counted by strace over all its threads (strace slows it: the count is what matters)."""
    with tempfile.NamedTemporaryFile(prefix="strace-", suffix=".txt") as out:
        trace = ["strace", "-f", "-c", "-e", "trace=" + ",".join(SYNC_CALLS), "-o", out.name, "-p", str(t.pid)]
        tracer = subprocess.Popen(trace, stderr=subprocess.DEVNULL)
        try:
            time.sleep(1.0)  # attached to every thread
            got = ops_per_second(nfsops, t.port, mnt_port, t.export, "create", 1, seconds, name)
        finally:
            tracer.send_signal(signal.SIGINT)
            tracer.wait(60)
        calls = 0
        for line in Path(out.name).read_text().splitlines():
            fields = line.split()
            if fields and fields[-1] in SYNC_CALLS and fields[-2].isdigit():  # ... calls [errors] syscall
                calls += int(fields[3])
    return calls / got["calls"]


HALT_POLL = Path("/sys/module/haltpoll/parameters/guest_halt_poll_ns")


def guest_idle_policy() -> str:
    """What an idle CPU does here: the cpuidle driver and, for haltpoll, how long it polls."""
    try:
        driver = Path("/sys/devices/system/cpu/cpuidle/current_driver").read_text().strip()
    except OSError:
        return "unknown (no cpuidle in /sys)"
    if driver == "haltpoll" and HALT_POLL.exists():
        return f"cpuidle driver haltpoll, guest_halt_poll_ns={HALT_POLL.read_text().strip()}"
    return f"cpuidle driver {driver}"


@contextlib.contextmanager
def guest_halt_poll(ns: int) -> Iterator[None]:
    """Set the guest's halt polling to `ns` for the run; put the old value back after."""
    try:
        before = HALT_POLL.read_text().strip()
        HALT_POLL.write_text(str(ns))
    except OSError as e:
        why = f"cannot set {HALT_POLL} ({e.strerror}): needs root on a guest with haltpoll"
        raise SystemExit(f"--guest-halt-poll-ns: {why}") from None
    try:
        yield
    finally:
        HALT_POLL.write_text(before)


def _variant(spec: str) -> tuple[str, dict[str, str]]:
    """NAME:KEY=VALUE,... -> (NAME, {KEY: VALUE})"""
    name, _, settings = spec.partition(":")
    if not name or name in ("nsd", "ganesha") or "=" not in settings:
        raise argparse.ArgumentTypeError(f"expected NAME:KEY=VALUE[,KEY=VALUE...], got {spec!r}")
    return name, dict(kv.split("=", 1) for kv in settings.split(","))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--dir", default=None, help="work dir (all servers' data go here: the same disk)")
    ap.add_argument("--reads", type=int, default=3, help="read passes; the best counts (cached)")
    ap.add_argument("--ops-seconds", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=1, help="repeat everything; print medians (and the range)")
    ap.add_argument("--no-ganesha", action="store_true")
    ap.add_argument("--nsd", type=_variant, action="append", default=[], help="another nsd: NAME:KEY=VALUE,...")
    ap.add_argument("--cpus", default=None, help="run servers and clients on these CPUs only, e.g. 1 (see docs)")
    ap.add_argument("--guest-halt-poll-ns", type=int, default=None, help="set the guest's halt polling for the run")
    ap.add_argument("--calls-only", action="store_true", help="only the listing and call rows")
    ap.add_argument("--writes-only", action="store_true", help="only the write row")
    ap.add_argument("--quiet", type=float, default=5.0, help="seconds of rest (after a sync) before each write")
    args = ap.parse_args()
    if args.cpus:  # every server and client started from here inherits it
        os.sched_setaffinity(0, {int(c) for c in args.cpus.split(",")})
    size = MiB if args.calls_only else args.size_mib * MiB  # the calls stat this file; its size does not matter
    notes = []
    with contextlib.ExitStack() as policy:
        if args.guest_halt_poll_ns is not None:
            policy.enter_context(guest_halt_poll(args.guest_halt_poll_ns))
        notes.append(f"guest idle policy: {guest_idle_policy()}")
        run(args, size, notes)


def run(args: argparse.Namespace, size: int, notes: list[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="nsd-bench-nfs-", dir=args.dir) as tmp:
        work = Path(tmp)
        source = work / "source"
        with source.open("wb") as f:
            block = os.urandom(4 * MiB)
            for _ in range(size // len(block)):
                f.write(block)
            f.write(block[: size % len(block)])
        nfsops: Path | None = None
        try:
            nfsops = None if args.writes_only else build_nfsops(work)
        except RuntimeError as e:
            notes.append(f"GETATTR/LOOKUP/CREATE not measured: {e}")
        if not args.calls_only:
            only = "the write row only, " if args.writes_only else ""
            notes.append(f"{only}each write after a sync and {args.quiet:g} s of rest")
        if not args.writes_only and shutil.which("strace") is None:
            notes.append("C+R syncs/pair not counted: strace is not installed")
        with contextlib.ExitStack() as stack:
            s3: S3 | None = None
            try:
                if not (args.calls_only or args.writes_only):  # only the S3 read row needs the bucket
                    s3 = stack.enter_context(s3_bucket())
            except RuntimeError as e:
                notes.append(f"S3 mount not measured: {e}")
            targets = [stack.enter_context(nsd_server(work, s3=s3))]
            targets += [stack.enter_context(nsd_server(work, name, env, s3=s3)) for name, env in args.nsd]
            if args.no_ganesha:
                notes.append("ganesha not measured: --no-ganesha")
            else:
                try:
                    targets.append(stack.enter_context(ganesha_server(work)))
                except (RuntimeError, subprocess.CalledProcessError, OSError) as e:
                    notes.append(f"ganesha not measured: {e}")
            measure(
                targets, source, size, args.reads, args.ops_seconds, args.rounds, nfsops, s3, not args.calls_only,
                args.quiet, args.writes_only,
            )  # fmt: skip
    report(targets, size // MiB, notes, args.rounds)


def report(targets: list[Target], size_mib: int, notes: list[str], rounds: int = 1) -> None:
    what = f", median of {rounds} rounds (min-max)" if rounds > 1 else ""
    print(f"NFSv3 benchmark, libnfs client, {size_mib} MiB file, loopback{what}")
    peer = next((t for t in targets if t.name == "ganesha"), None)
    ours = [t for t in targets if t is not peer]
    width = 28 if rounds > 1 else 14
    header = f"{'':22}" + "".join(f"{t.name:>{width}}" for t in targets)
    print(header + ("".join(f"{t.name + '/ganesha':>16}" for t in ours) if peer else ""))
    for k in targets[0].results:
        cells = []
        for t in targets:
            cell = f"{t.results[k]:,.1f}"
            if rounds > 1:
                lo, hi = t.spread[k]
                cell += f" ({lo:,.0f}-{hi:,.0f})"
            cells.append(f"{cell:>{width}}")
        row = f"{k:22}" + "".join(cells)
        if peer is not None:
            base = peer.results[k]  # 0 for ganesha's syncs: no ratio
            row += "".join(f"{t.results[k] / base:>15.2f}x" if base else f"{'-':>16}" for t in ours)
        print(row)
    for note in notes:
        print(note)


if __name__ == "__main__":
    main()
