"""Crash under load: NFS and WebHDFS clients change files while nsd is SIGKILLed and restarted.

Used by tests/stress/test_crash_mixed.py (a short run) and tools/crash_long.py (hundreds of kills).

Each worker is a process (the libnfs bindings hold the GIL through every call) that owns one
directory and changes it through both doors, picking a door per operation: NFS through the PyPI
`libnfs` bindings (FILE_SYNC writes via O_SYNC, or UNSTABLE writes + COMMIT, appends, renames,
removes, mkdir) and WebHDFS through HdfsCLI (CREATE, APPEND, RENAME, DELETE, MKDIRS). Before an
operation a worker reports what it would make true ("begin"), after its acknowledgement "ack":

- NFS: a FILE_SYNC WRITE reply, a COMMIT reply (on the connection the writes went over: the
  libnfs context never reconnects, so the verifier cannot have changed unseen), or the reply to
  CREATE, SETATTR, RENAME, REMOVE, MKDIR;
- WebHDFS: 201 for CREATE, 200 for the rest.

The driver keeps the model: acknowledged state per path, and for every operation begun but not
acknowledged, the set of states it may have left (before or after, never anything else). After
each kill: `nsd journal verify` on the data dir; after each restart (same ports, as a client
expects): every path checked through a door chosen at random (whole content, byte for byte),
every directory listed and compared, and `nsd fsck` must be clean.
"""

from __future__ import annotations

import contextlib
import faulthandler
import getpass
import multiprocessing as mp
import os
import pickle
import random
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import libnfs  # type: ignore[import-untyped]
import libnfs.libnfs as raw  # type: ignore[import-untyped]
from daemon import Daemon, free_ports, fsck_problems, nsd, start
from hdfs import InsecureClient

DIR = "<dir>"  # the state of a path that is a directory; bytes for a file, None for nothing
State = bytes | str | None
ENV = {"NSD_SEGMENT_BYTES": "65536", "NSD_CHECKPOINT_ENTRIES": "300", "NSD_LOG_LEVEL": "warning"}
SIZES = [0, 1, 100, 4096, 65536, 200_000]
MAX_FILES = 40  # per worker: beyond this, removes are favoured, so checking stays cheap
USER = getpass.getuser()
WORKER_EXIT_SECONDS = 60.0


class Unexpected(Exception):
    """A client call failed while the daemon was up: a bug, not a crash effect."""


# ---- clients ----------------------------------------------------------------------------------


class Nfs:
    """One libnfs context that never reconnects: after a kill every call fails."""

    def __init__(self, port: int) -> None:
        url = f"nfs://127.0.0.1/?nfsport={port}&mountport={port}&autoreconnect=0"
        self.nfs = libnfs.NFS(url)
        self.ctx = self.nfs._nfs
        self.wmax = min(raw.nfs_get_writemax(self.ctx) or 65536, 256 * 1024)

    def _open(self, path: str, flags: int) -> Any:
        fh = raw.new_NFSFileHandle()
        rc = raw.nfs_open(self.ctx, path, flags, fh)
        if rc == -2 and flags & os.O_CREAT:
            rc = raw.nfs_create(self.ctx, path, flags, 0o644, fh)
        _ok(rc, f"open {path}")
        return raw.NFSFileHandle_value(fh)

    def create(self, path: str, *, sync: bool) -> Any:
        """Open for writing, created or truncated (CREATE or SETATTR size 0, answered)."""
        return self._open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | (os.O_SYNC if sync else 0))

    def write_all(self, fh: Any, path: str, data: bytes, *, sync: bool) -> None:
        """One WRITE (FILE_SYNC when opened with sync), else WRITE then COMMIT; closes `fh`."""
        try:
            if data:
                _ok(raw.nfs_write(self.ctx, fh, len(data), bytearray(data)), f"write {path}", want=len(data))
            if not sync:
                _ok(raw.nfs_fsync(self.ctx, fh), f"commit {path}")
        finally:
            raw.nfs_close(self.ctx, fh)

    def append(self, path: str, data: bytes) -> None:
        fh = self._open(path, os.O_WRONLY | os.O_APPEND | os.O_SYNC)
        try:
            _ok(raw.nfs_write(self.ctx, fh, len(data), bytearray(data)), f"append {path}", want=len(data))
        finally:
            raw.nfs_close(self.ctx, fh)

    def rename(self, src: str, dst: str) -> None:
        _ok(raw.nfs_rename(self.ctx, src, dst), f"rename {src}")

    def remove(self, path: str) -> None:
        _ok(self.nfs.unlink(path), f"remove {path}")

    def mkdir(self, path: str) -> None:
        _ok(self.nfs.mkdir(path), f"mkdir {path}")

    def read(self, path: str) -> bytes | None:
        try:
            st = self.nfs.stat(path)
        except OSError:
            return None
        fh = self._open(path, os.O_RDONLY)
        out = bytearray()
        try:
            while len(out) < st["size"]:
                buf = bytearray(min(1 << 20, st["size"] - len(out)))
                n = raw.nfs_pread(self.ctx, fh, len(out), len(buf), buf)
                _ok(n, f"read {path}")
                if n == 0:
                    break
                out += buf[:n]
        finally:
            raw.nfs_close(self.ctx, fh)
        return bytes(out)


def _ok(rc: int, what: str, want: int | None = None) -> None:
    if rc < 0 or (want is not None and rc != want):
        raise OSError(-rc if rc < 0 else 5, f"{what}: {os.strerror(-rc) if rc < 0 else f'{rc} of {want} bytes'}")


def webhdfs(http_url: str) -> InsecureClient:
    return InsecureClient(http_url, user=USER, timeout=30)


# ---- workers ----------------------------------------------------------------------------------


@dataclass
class Round:
    http_url: str
    nfs_port: int
    killing: Any  # mp.Event: set just before the kill, so later failures are expected
    number: int = 0  # names made in this round carry it, so no two rounds make the same name


class EventLog:
    """A worker's reports, appended to its own file (no queue feeder threads to hang at exit);
    the driver reads them once the worker is gone. Order within a worker is all that matters:
    workers own disjoint paths."""

    def __init__(self, path: Path) -> None:
        self.f = open(path, "ab")  # noqa: SIM115 - closed by the process exit

    def put(self, event: tuple[Any, ...]) -> None:
        pickle.dump(event, self.f)
        self.f.flush()

    @staticmethod
    def read(path: Path) -> Iterator[tuple[Any, ...]]:
        with open(path, "rb") as f:
            while True:
                try:
                    yield pickle.load(f)
                except EOFError:
                    return


def worker(wid: int, seed: int, root: str, view: dict[str, State], r: Round, log: Path) -> None:
    """Change `root` until the daemon dies; report begin/ack/fail for every step."""
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    faulthandler.enable()  # a client library crash shows where
    events = EventLog(log)
    keep: list[Worker] = []  # alive until os._exit below, see there
    try:
        keep.append(Worker(wid, random.Random(seed), root, view, r, events))
        keep[0].run()
    except Exception as e:
        events.put(("fail", wid, 0, r.killing.is_set(), f"{type(e).__name__}: {e}"))
    events.put(("end", wid))
    # libnfs 4.0 crashes destroying a context whose server was killed (NFS.__del__): leave
    # without running destructors; everything worth keeping is in the event log already.
    os._exit(0)


class Worker:
    def __init__(
        self, wid: int, rng: random.Random, root: str, view: dict[str, State], r: Round, events: EventLog
    ) -> None:
        self.wid, self.rng, self.root, self.view, self.r, self.events = wid, rng, root, view, r, events
        self.nfs = Nfs(r.nfs_port)
        self.web = webhdfs(r.http_url)
        self.seq = 0

    def files(self) -> list[str]:
        return sorted(p for p, s in self.view.items() if isinstance(s, bytes))

    def dirs(self) -> list[str]:
        return sorted(p for p, s in self.view.items() if s == DIR and p != self.root)

    def name(self, prefix: str) -> str:
        return f"{prefix}{self.wid}-{self.r.number}-{self.seq}"

    def run(self) -> None:
        rng = self.rng
        while not self.r.killing.is_set():
            self.seq += 1
            files, dirs = self.files(), self.dirs()
            kind = rng.choices(
                ["put", "append", "rename", "remove", "mkdir", "rendir"],
                [4, 3, 2, 4 if len(files) > MAX_FILES else 1, 1, 0.3],
            )[0]
            if (kind in ("append", "rename", "remove") and not files) or (kind == "rendir" and not dirs):
                kind = "put"
            nfs = rng.random() < 0.5
            if kind == "put" and nfs:
                ok = self.nfs_put(files, dirs)
            else:
                changes, act = self.plan(kind, nfs, files, dirs)
                ok = self.step(changes, act)
            if not ok and self.r.killing.is_set():
                return

    def plan(
        self, kind: str, nfs: bool, files: list[str], dirs: list[str]
    ) -> tuple[dict[str, State], Callable[[], Any]]:
        """What the operation would make true, and the client call that does it."""
        rng, view, web = self.rng, self.view, self.web
        if kind == "put":  # WebHDFS CREATE, overwriting or new
            path = (
                rng.choice(files)
                if files and rng.random() < 0.3
                else f"{rng.choice([self.root, *dirs])}/" + self.name("f")
            )
            data = rng.randbytes(rng.choice(SIZES))
            return {path: data}, partial(web.write, path, data=data, overwrite=True)
        if kind == "append":
            path = rng.choice(files)
            data = rng.randbytes(rng.choice([1, 100, 5000, 70000]))
            old = view[path]
            assert isinstance(old, bytes)
            act = partial(self.nfs.append, path, data) if nfs else partial(web.write, path, data=data, append=True)
            return {path: old + data}, act
        if kind == "rename":
            src = rng.choice(files)
            dst = f"{rng.choice([self.root, *dirs])}/" + self.name("r")
            return {src: None, dst: view[src]}, partial(self.nfs.rename if nfs else web.rename, src, dst)
        if kind == "remove":
            path = rng.choice(files)
            return {path: None}, partial(self.nfs.remove if nfs else web.delete, path)
        if kind == "mkdir":
            path = f"{self.root}/" + self.name("d")
            return {path: DIR}, partial(self.nfs.mkdir if nfs else web.makedirs, path)
        src = rng.choice(dirs)
        dst = f"{self.root}/" + self.name("m")
        changes: dict[str, State] = {p: None for p in view if p == src or p.startswith(src + "/")}
        changes.update({dst + p[len(src) :]: view[p] for p in list(changes)})
        return changes, partial(self.nfs.rename if nfs else web.rename, src, dst)

    def step(self, changes: dict[str, State], act: Callable[[], Any], key: Any = None) -> bool:
        """Report, act, report; on failure the paths are unknown to this worker from now on."""
        key = key or self.seq
        self.events.put(("begin", self.wid, key, changes))
        try:
            act()
        except Exception as e:
            self.events.put(("fail", self.wid, key, self.r.killing.is_set(), f"{type(e).__name__}: {e}"))
            for p in changes:
                self.view.pop(p, None)
            return False
        self.events.put(("ack", self.wid, key))
        for p, s in changes.items():
            if s is None:
                self.view.pop(p, None)
            else:
                self.view[p] = s
        return True

    def nfs_put(self, files: list[str], dirs: list[str]) -> bool:
        """Two acknowledged steps: CREATE or SETATTR(size 0), then FILE_SYNC WRITE or WRITE + COMMIT."""
        rng = self.rng
        path = (
            rng.choice(files) if files and rng.random() < 0.3 else f"{rng.choice([self.root, *dirs])}/" + self.name("f")
        )
        data = rng.randbytes(min(rng.choice(SIZES), self.nfs.wmax))  # one WRITE call
        sync = rng.random() < 0.5
        fh: list[Any] = []
        if not self.step({path: b""}, lambda: fh.append(self.nfs.create(path, sync=sync)), key=(self.seq, 1)):
            return False
        return self.step({path: data}, lambda: self.nfs.write_all(fh[0], path, data, sync=sync), key=(self.seq, 2))


# ---- the driver -------------------------------------------------------------------------------


@dataclass
class Model:
    state: dict[str, State] = field(default_factory=dict)  # acknowledged
    maybe: dict[str, set[State]] = field(default_factory=dict)  # begun, not acknowledged
    open_ops: dict[tuple[int, int], dict[str, State]] = field(default_factory=dict)

    def begin(self, key: tuple[int, int], changes: dict[str, State]) -> None:
        self.open_ops[key] = changes
        for p, s in changes.items():
            self.maybe.setdefault(p, {self.state.get(p)}).add(s)

    def ack(self, key: tuple[int, int]) -> None:
        for p, s in self.open_ops.pop(key).items():
            if s is None:
                self.state.pop(p, None)
            else:
                self.state[p] = s
            self.maybe.pop(p, None)

    def settle(self, observed: dict[str, State]) -> None:
        """After a restart: what each open operation left is what the daemon now shows."""
        self.open_ops.clear()
        for p in self.maybe:
            s = observed[p]
            if s is None:
                self.state.pop(p, None)
            else:
                self.state[p] = s
        self.maybe.clear()


@dataclass
class Stats:
    kills: int = 0
    acked: int = 0
    begun: int = 0
    readbacks: int = 0
    in_flight_at_kill: int = 0
    fsck_clean: int = 0
    unexpected: list[str] = field(default_factory=list)


class CrashRun:
    def __init__(self, base: Path, *, workers: int = 4, seed: int = 1, log: Callable[[str], None] = print) -> None:
        self.data = base / "data"
        self.workers = workers
        self.rng = random.Random(seed)
        self.model = Model()
        self.stats = Stats()
        self.http_port, self.nfs_port = free_ports(2)
        self.log = log
        self.roots = [f"/crash/w{i}" for i in range(workers)]
        self.ctx = mp.get_context("fork")

    def _start(self) -> Daemon:
        return start(self.data, env=ENV, http_port=self.http_port, nfs_port=self.nfs_port)

    def run(self, kills: int, *, load_seconds: tuple[float, float] = (0.5, 2.5)) -> Stats:
        d = self._start()
        try:
            web = webhdfs(d.url)
            for root in self.roots:
                web.makedirs(root)
                self.model.state[root] = DIR
            for _ in range(kills):
                self._round(d, load_seconds)
                d = self._restart()
                self._check(d)
        finally:
            if d.proc.poll() is None:
                d.stop()
        assert d.proc.returncode == 0, f"nsd exited with {d.proc.returncode}"
        return self.stats

    def _doors(self, d: Daemon) -> list[Daemon]:
        """The daemon each worker talks to this round (a cluster spreads them over its nodes)."""
        return [d] * self.workers

    def _kill(self, d: Daemon) -> None:
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait(30)

    def _verify_killed(self) -> None:
        verify = nsd("journal", "verify", "--data-dir", str(self.data))
        assert verify.returncode == 0, verify.stdout.decode() + verify.stderr.decode()

    def _round(self, d: Daemon, load_seconds: tuple[float, float]) -> None:
        killing = self.ctx.Event()
        logs = [self.data.parent / f"events-{self.stats.kills}-{wid}" for wid in range(self.workers)]
        procs = []
        for wid, (root, door) in enumerate(zip(self.roots, self._doors(d), strict=True)):
            r = Round(door.url, door.nfs_port, killing, self.stats.kills)
            view = {p: s for p, s in self.model.state.items() if p == root or p.startswith(root + "/")}
            args = (wid, self.rng.getrandbits(32), root, view, r, logs[wid])
            p = self.ctx.Process(target=worker, args=args)
            p.start()
            procs.append(p)
        time.sleep(self.rng.uniform(*load_seconds))
        killing.set()
        self._kill(d)
        self.stats.kills += 1
        for wid, p in enumerate(procs):
            p.join(WORKER_EXIT_SECONDS)
            if p.is_alive():
                self.stats.unexpected.append(f"worker {wid} still running {WORKER_EXIT_SECONDS:.0f} s after the kill")
                os.kill(p.pid, signal.SIGUSR1)  # its stacks go to stderr (faulthandler), then it goes
                time.sleep(1)
                p.kill()
                p.join(30)
            if p.exitcode != 0:
                self.stats.unexpected.append(f"worker {wid} exited with {p.exitcode}")
        for log in logs:
            self._apply(EventLog.read(log))
            log.unlink()
        self.stats.in_flight_at_kill += len(self.model.open_ops)
        self._verify_killed()

    def _apply(self, events: Iterator[tuple[Any, ...]]) -> None:
        for ev in events:
            kind, wid = ev[0], ev[1]
            if kind == "begin":
                self.model.begin((wid, ev[2]), ev[3])
                self.stats.begun += 1
            elif kind == "ack":
                self.model.ack((wid, ev[2]))
                self.stats.acked += 1
            elif kind == "fail" and not ev[3]:
                self.stats.unexpected.append(f"worker {wid}: {ev[4]}")

    def _restart(self) -> Daemon:
        return self._start()

    def _check(self, d: Daemon) -> None:
        web = webhdfs(d.url)
        nfs = Nfs(d.nfs_port)
        readers = {"webhdfs": lambda p: _web_read(web, p), "nfs": nfs.read}
        observed: dict[str, State] = {}
        for path, allowed in sorted(self.model.maybe.items()):
            seen = _observe(web, path)
            assert seen in allowed, f"{path}: an unacknowledged change left {_show(seen)}, allowed {allowed!r:.300}"
            observed[path] = seen
        self.model.settle(observed)
        for path, s in sorted(self.model.state.items()):
            if isinstance(s, bytes):
                door = self.rng.choice(list(readers))
                got = readers[door](path)
                self.stats.readbacks += 1
                assert got == s, f"{path} via {door}: {_show(got)}, acknowledged {len(s)} bytes"
        for path, s in self.model.state.items():
            if s == DIR:
                listed = {e for e in web.list(path)}
                want = {p.rsplit("/", 1)[1] for p in self.model.state if p.rsplit("/", 1)[0] == path}
                assert listed == want, f"{path} lists {sorted(listed ^ want)} differently from the model"
        problems = fsck_problems(d)
        assert not problems, problems
        self.stats.fsck_clean += 1
        assert not self.stats.unexpected, self.stats.unexpected[:5]
        self.log(
            f"kill {self.stats.kills}: {self.stats.acked} acked, {self.stats.readbacks} read back, "
            f"{len(self.model.state)} paths, {self.stats.in_flight_at_kill} in flight at kills so far"
        )


def _web_read(web: InsecureClient, path: str) -> bytes | None:
    from hdfs import HdfsError

    try:
        with web.read(path) as r:
            return bytes(r.read())
    except HdfsError as e:
        if "does not exist" in str(e):
            return None
        raise


def _observe(web: InsecureClient, path: str) -> State:
    st = web.status(path, strict=False)
    if st is None:
        return None
    if st["type"] == "DIRECTORY":
        return DIR
    return _web_read(web, path)


def _show(s: State) -> str:
    if isinstance(s, bytes):
        return f"{len(s)} bytes"
    return repr(s)


@contextlib.contextmanager
def quiet_children() -> Iterator[None]:
    """Workers inherit the signal handlers; the driver's Ctrl-C should not print from each."""
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
