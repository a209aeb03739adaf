"""Start a real `nsd serve` in a subprocess for integration, crash and benchmark runs."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

READY_TIMEOUT = 60.0


@dataclass
class Daemon:
    proc: subprocess.Popen[str]
    url: str
    data_dir: Path
    log: Path
    nfs_port: int = 0
    portmap_port: int | None = None

    def nfs_url(self, path: str = "/") -> str:
        """A libnfs URL for `path` (export "/") that needs no portmapper."""
        return f"nfs://127.0.0.1{path}?nfsport={self.nfs_port}&mountport={self.nfs_port}"

    @property
    def token(self) -> str:
        return (self.data_dir / "admin.token").read_text().strip()

    def session(self) -> requests.Session:
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {self.token}"
        return s

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(30)


def free_port() -> int:
    """A TCP port nobody listens on right now (for a daemon that must come back on the same one)."""
    return free_ports(1)[0]


def free_ports(n: int) -> list[int]:
    """`n` different such ports: each socket stays bound until all are, or two calls of
    free_port() in a row may get the same port (it happened: a node's HTTP and NFS ports)."""
    with contextlib.ExitStack() as held:
        socks = [held.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]


def start(
    data_dir: Path,
    *args: str,
    env: dict[str, str] | None = None,
    prefix: tuple[str, ...] = (),
    http_port: int = 0,
    nfs_port: int = 0,
) -> Daemon:
    """Run `nsd serve` (on ephemeral ports unless given) and wait for its `ready` line (`prefix`:
    a command that runs it, such as `ip netns exec NS`)."""
    log = data_dir.parent / f"{data_dir.name}.log"
    cmd = [*prefix, sys.executable, "-m", "nsd.cli", "serve", "--data-dir", str(data_dir)]
    cmd += ["--http-port", str(http_port), "--nfs-port", str(nfs_port), *args]
    full_env = {**os.environ, "NSD_LOG_LEVEL": "info", **(env or {})}
    with open(log, "a") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=full_env)
    assert proc.stdout is not None
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if "ready" in line:
            fields = dict(p.split("=", 1) for p in line.split() if "=" in p)
            nfs_port = int(fields["nfs"].rsplit(":", 1)[1])
            portmap = int(fields["portmap"].rsplit(":", 1)[1]) if "portmap" in fields else None
            return Daemon(proc, fields["http"], data_dir, log, nfs_port, portmap)
    proc.kill()
    raise RuntimeError(f"nsd did not become ready; log:\n{log.read_text()}")


def nsd(*args: str, daemon: Daemon | None = None, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run the `nsd` CLI as a user would."""
    env = dict(os.environ)
    if daemon is not None:
        env["NSD_SERVER"] = daemon.url
        env["NSD_DATA_DIR"] = str(daemon.data_dir)
    return subprocess.run(
        [sys.executable, "-m", "nsd.cli", *args], capture_output=True, env=env, input=input, timeout=120
    )


def listing_helpers(pid: int) -> list[int]:
    """The pids of the local listing helpers (`local_scan.py`) the process `pid` runs."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid == pid and b"local_scan" in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def fsck_problems(daemon: Daemon) -> list[dict[str, object]]:
    """`nsd fsck --json` problems left unrepaired (its exit code says the same)."""
    out = nsd("fsck", "--json", daemon=daemon)
    report = json.loads(out.stdout)
    problems = [p for p in report["problems"] if not p["repaired"]]
    assert (out.returncode == 0) == (not problems), out.stdout
    return problems
