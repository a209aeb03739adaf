"""Real etcd for tests: one member or a cluster of three, on loopback, each in a temp data dir.

Each member runs `etcd` (Debian's etcd-server) as a subprocess on fixed ports, so a stopped
member restarted on the same ports and data dir is the same member coming back.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
from daemon import free_ports

READY_TIMEOUT = 30.0


@dataclass
class Member:
    name: str
    data_dir: Path
    client_port: int
    peer_port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        self.proc = None

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)


@dataclass
class EtcdCluster:
    members: list[Member]
    state: str = "new"
    token: str = field(default_factory=lambda: f"nsd-test-{time.monotonic_ns()}")

    @property
    def endpoints(self) -> str:
        """The client URLs, comma-separated, as `nsd serve --etcd` takes them."""
        return ",".join(m.url for m in self.members)

    def _initial_cluster(self) -> str:
        return ",".join(f"{m.name}={m.peer_url}" for m in self.members)

    def start(self, member: Member) -> None:
        """Start (or restart) one member on its ports and data dir."""
        cmd = [
            binary(),
            "--name", member.name,
            "--data-dir", str(member.data_dir),
            "--listen-client-urls", member.url,
            "--advertise-client-urls", member.url,
            "--listen-peer-urls", member.peer_url,
            "--initial-advertise-peer-urls", member.peer_url,
            "--initial-cluster", self._initial_cluster(),
            "--initial-cluster-state", self.state,
            "--initial-cluster-token", self.token,
            "--heartbeat-interval", "50",
            "--election-timeout", "500",
        ]  # fmt: skip
        with open(member.log, "ab") as log:
            member.proc = subprocess.Popen(cmd, stdout=log, stderr=log)

    def start_all(self) -> None:
        for m in self.members:
            self.start(m)
        deadline = time.monotonic() + READY_TIMEOUT
        while not all(healthy(m) for m in self.members):
            for m in self.members:
                if m.proc is not None and m.proc.poll() is not None:
                    raise RuntimeError(f"etcd {m.name} exited; log:\n{m.log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"etcd did not become healthy; log:\n{self.members[0].log.read_text()[-3000:]}")
            time.sleep(0.1)
        self.state = "existing"  # a member started again rejoins, it does not found a new cluster

    def stop_all(self) -> None:
        for m in self.members:
            m.kill()

    def wait_healthy(self, member: Member, timeout: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not healthy(member):
            if time.monotonic() > deadline:
                raise RuntimeError(f"etcd {member.name} did not come back; log:\n{member.log.read_text()[-3000:]}")
            time.sleep(0.1)


def binary() -> str:
    path = shutil.which("etcd") or "/usr/bin/etcd"
    if not Path(path).exists():
        raise RuntimeError("etcd is not installed: apt-get install -y etcd-server")
    return path


def healthy(member: Member) -> bool:
    try:
        r = requests.get(f"{member.url}/health", timeout=1)
        return r.status_code == 200 and r.json().get("health") == "true"
    except (requests.RequestException, ValueError):
        return False


def start_etcd(root: Path, size: int = 1) -> EtcdCluster:
    """A healthy etcd of `size` members under `root`; the caller calls stop_all()."""
    root.mkdir(parents=True, exist_ok=True)
    members = []
    ports = free_ports(2 * size)  # all at once: none is bound until start_all
    for i in range(size):
        name = f"etcd{i}"
        members.append(Member(name, root / name, ports[2 * i], ports[2 * i + 1], root / f"{name}.log"))
    cluster = EtcdCluster(members)
    cluster.start_all()
    return cluster
