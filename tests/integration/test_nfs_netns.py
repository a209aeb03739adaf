"""NFS export allow-lists as the network sees them: nsd and two clients in their own network
namespaces joined by veth pairs (Debian iproute2), one client inside the export's network and
one outside it, using Debian's real libnfs-utils clients (`ip netns exec`).

Needs root (CI runs as root) for `ip netns`; the test creates and removes everything it uses.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon import Daemon, start

TESTS = Path(__file__).resolve().parent.parent
# nsd is 10.77.1.1 to the allowed client (10.77.1.2) and 10.77.2.1 to the refused one (10.77.2.2)
ALLOWED_NET, REFUSED_NET = "10.77.1", "10.77.2"


def sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if check and out.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({out.returncode}): {out.stderr}")
    return out


class Net:
    """Namespaces srv, ok and no; veth srv<->ok on 10.77.1.0/24 and srv<->no on 10.77.2.0/24."""

    def __init__(self) -> None:
        tag = secrets.token_hex(3)
        self.srv, self.ok, self.no = f"nsd-s-{tag}", f"nsd-a-{tag}", f"nsd-r-{tag}"
        self.made: list[str] = []
        for ns in (self.srv, self.ok, self.no):
            sh("ip", "netns", "add", ns)
            self.made.append(ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        for client, net, dev in ((self.ok, ALLOWED_NET, f"va{tag}"), (self.no, REFUSED_NET, f"vr{tag}")):
            sh("ip", "link", "add", f"{dev}s", "netns", self.srv, "type", "veth", "peer", f"{dev}c", "netns", client)
            sh("ip", "-n", self.srv, "addr", "add", f"{net}.1/24", "dev", f"{dev}s")
            sh("ip", "-n", client, "addr", "add", f"{net}.2/24", "dev", f"{dev}c")
            sh("ip", "-n", self.srv, "link", "set", f"{dev}s", "up")
            sh("ip", "-n", client, "link", "set", f"{dev}c", "up")

    def run(self, ns: str, *cmd: str) -> subprocess.CompletedProcess[str]:
        return sh("ip", "netns", "exec", ns, *cmd, check=False)

    def python(self, ns: str, code: str) -> subprocess.CompletedProcess[str]:
        return self.run(ns, sys.executable, "-c", f"import sys; sys.path.insert(0, {str(TESTS)!r})\n{code}")

    def close(self) -> None:
        for ns in self.made:  # deleting a namespace deletes the veth ends inside it
            sh("ip", "netns", "del", ns, check=False)


@pytest.fixture
def net() -> Iterator[Net]:
    if os.geteuid() != 0:
        pytest.fail("network namespaces need root (CI runs as root)")
    n = Net()
    try:
        yield n
    finally:
        n.close()


@pytest.fixture
def server(net: Net, tmp_path: Path) -> Iterator[Daemon]:
    # root_squash is the default for this export (only the shipped 127.0.0.1 one says no_root_squash)
    env = {"NSD_NFS_EXPORTS": f"/ {ALLOWED_NET}.0/24(rw)", "NSD_BIND": "0.0.0.0"}
    d = start(tmp_path / "data", env=env, prefix=("ip", "netns", "exec", net.srv))
    try:
        token = d.token
        setup = net.python(
            net.srv,
            "import requests\n"
            f"s = requests.Session(); s.headers['Authorization'] = 'Bearer {token}'\n"
            f"base = 'http://127.0.0.1:{d.url.rsplit(':', 1)[1]}/api/v1'\n"
            "s.post(base + '/fs/mkdir', json={'path': '/pub', 'mode': 0o777}).raise_for_status()\n",
        )
        assert setup.returncode == 0, setup.stderr
        yield d
    finally:
        d.stop()


def url(d: Daemon, path: str, net: str = ALLOWED_NET) -> str:
    return f"nfs://{net}.1{path}?nfsport={d.nfs_port}&mountport={d.nfs_port}"


def test_allowed_client_works_refused_client_is_refused(net: Net, server: Daemon, tmp_path: Path) -> None:
    src = tmp_path / "payload"
    src.write_bytes(os.urandom(300_000))
    # the client inside 10.77.1.0/24: copy in, read back, list
    out = net.run(net.ok, "nfs-cp", str(src), url(server, "/pub/f"))
    assert out.returncode == 0, out.stderr
    cat = subprocess.run(
        ["ip", "netns", "exec", net.ok, "nfs-cat", url(server, "/pub/f")], capture_output=True, timeout=120
    )
    assert cat.returncode == 0 and cat.stdout == src.read_bytes()
    listing = net.run(net.ok, "nfs-ls", url(server, "/pub"))
    assert listing.returncode == 0
    row = next(line.split() for line in listing.stdout.splitlines() if line.endswith(" f"))
    assert row[2:4] == ["65534", "65534"]  # root from the client was squashed to nobody

    # the client in 10.77.2.0/24 reaches nsd (NULL answers) but is refused at MOUNT
    null = net.python(
        net.no,
        "from rpcclient import RpcClient\n"
        f"with RpcClient({server.nfs_port}, host='{REFUSED_NET}.1') as c: print(c.call(100003, 3, 0).accepted)",
    )
    assert null.stdout.strip() == "True", null.stderr
    for cmd in (("nfs-ls", url(server, "/pub", REFUSED_NET)), ("nfs-cat", url(server, "/pub/f", REFUSED_NET)),
                ("nfs-cp", str(src), url(server, "/pub/g", REFUSED_NET))):  # fmt: skip
        refused = net.run(net.no, *cmd)
        assert refused.returncode != 0 and "MNT3ERR_ACCES" in refused.stderr, (cmd, refused.stderr)

    # ... and at every NFS call, even with a handle it got from elsewhere: AUTH_ERROR (AUTH_TOOWEAK)
    got = net.python(
        net.ok,
        "from rpcclient import RpcClient\n"
        f"with RpcClient({server.nfs_port}, host='{ALLOWED_NET}.1') as c: print(c.mount(b'/pub').hex())",
    )
    assert got.returncode == 0, got.stderr
    handle = got.stdout.strip()
    probe = net.python(
        net.no,
        "import struct\n"
        "from rpcclient import RpcClient, fh, dirop\n"
        "from nsd.protocols.rpc import oncrpc\n"
        "from nsd.protocols.xdr import Packer, Unpacker\n"
        f"h = bytes.fromhex('{handle}')\n"
        f"with RpcClient({server.nfs_port}, host='{REFUSED_NET}.1') as c:\n"
        "    p = Packer(); p.string(b'/pub')\n"
        "    print('MNT', Unpacker(c.call(100005, 3, 1, bytes(p.buf)).body).uint32())\n"
        "    readdir = fh(h) + struct.pack('>Q8sI', 0, bytes(8), 4096)\n"
        "    create = dirop(h, b'x') + struct.pack('>I', 1) + bytes(24)\n"
        "    for proc, args in ((1, fh(h)), (3, dirop(h, b'f')), (16, readdir), (8, create)):\n"
        "        r = c.call(100003, 3, proc, args)\n"
        "        print(proc, r.accepted, r.stat, r.detail)\n",
    )
    assert probe.returncode == 0, probe.stderr
    lines = probe.stdout.splitlines()
    assert lines[0] == "MNT 13"  # MNT3ERR_ACCES
    for line in lines[1:]:
        _, accepted, stat, detail = line.split(" ", 3)
        assert (accepted, stat, detail) == ("False", "1", "(5,)"), line  # MSG_DENIED AUTH_ERROR AUTH_TOOWEAK
    assert len(lines) == 5
