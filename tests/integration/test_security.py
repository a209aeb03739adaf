"""Security through the doors, against a real daemon and real clients: one user map for NFS and
WebHDFS, permission checks at every door, the admin token, bearer tokens and proxy users, TLS,
start-up refusals, and secrets that must never show."""

from __future__ import annotations

import os
import pwd
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from daemon import Daemon, nsd, start
from hdfs import HdfsError, InsecureClient
from rpcclient import RpcClient, dirop, fh, skip_fattr

from nsd.protocols.nfs3.const import Proc, Status
from nsd.protocols.oncrpc import AuthSys

ME = pwd.getpwuid(os.getuid()).pw_name
USERS = "alice=4101:4101:staff; bob=4102:4102"
GROUPS = "staff=4200"


def admin(d: Daemon, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
    r = requests.post(f"{d.url}/api/v1{endpoint}", json=body, headers={"Authorization": f"Bearer {d.token}"})
    assert r.status_code < 300, r.text
    return r.json()  # type: ignore[no-any-return]


def webhdfs(d: Daemon, method: str, path: str, op: str, user: str | None = ME, **params: Any) -> requests.Response:
    if user is not None:
        params["user.name"] = user
    return requests.request(method, f"{d.url}/webhdfs/v1{path}", params={"op": op, **params}, allow_redirects=True)


def remote(r: requests.Response) -> dict[str, str]:
    return r.json()["RemoteException"]  # type: ignore[no-any-return]


def nfs_getattr(d: Daemon, path: str) -> tuple[int, ...]:
    """fattr3 of `path` (mode, uid, gid at 1, 3, 4) through LOOKUPs from the export root."""
    with RpcClient(d.nfs_port) as c:
        handle = c.mount(b"/")
        for name in filter(None, path.split("/")):
            u = c.nfs(Proc.LOOKUP, dirop(handle, name.encode()))
            assert u.uint32() == Status.OK
            handle = u.opaque(64)
        u = c.nfs(Proc.GETATTR, fh(handle))
        assert u.uint32() == Status.OK
        return skip_fattr(u)


def run(*cmd: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(cmd, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = start(tmp_path_factory.mktemp("sec") / "data", env={"NSD_USERS": USERS, "NSD_GROUPS": GROUPS})
    admin(d, "/fs/mkdir", {"path": "/shared", "mode": 0o777})
    yield d
    d.stop()


# ---- format and identities ------------------------------------------------------------------------


def test_format_makes_the_root_the_running_users_0755(tmp_path: Path) -> None:
    out = nsd("format", "--data-dir", str(tmp_path / "data"))
    assert out.returncode == 0, out.stderr
    d = start(tmp_path / "data")
    try:
        attrs = nfs_getattr(d, "/")
        assert (attrs[1] & 0o7777, attrs[3], attrs[4]) == (0o755, os.getuid(), os.getgid())
        st = webhdfs(d, "GET", "/", "GETFILESTATUS").json()["FileStatus"]
        assert (st["owner"], st["permission"]) == (ME, "755")
    finally:
        d.stop()


def test_a_file_has_one_owner_at_both_doors(server: Daemon, tmp_path: Path) -> None:
    """Created over NFS by uid 4101 it is alice's over WebHDFS; created over WebHDFS by bob it
    is uid 4102 over NFS: both doors read the one user map."""
    src = tmp_path / "hello.txt"
    src.write_bytes(b"from nfs\n")
    url = f"nfs://127.0.0.1/shared/from-nfs?nfsport={server.nfs_port}&mountport={server.nfs_port}&uid=4101&gid=4200"
    out = run("nfs-cp", str(src), url)
    assert out.returncode == 0, out.stderr
    st = webhdfs(server, "GET", "/shared/from-nfs", "GETFILESTATUS").json()["FileStatus"]
    assert (st["owner"], st["group"]) == ("alice", "staff")

    InsecureClient(server.url, user="bob").write("/shared/from-web", data=b"from webhdfs\n")
    attrs = nfs_getattr(server, "/shared/from-web")
    assert (attrs[3], attrs[4]) == (4102, 4102)
    listing = run("nfs-ls", f"nfs://127.0.0.1/shared?nfsport={server.nfs_port}&mountport={server.nfs_port}")
    assert listing.returncode == 0
    rows = {line.split()[-1]: line.split() for line in listing.stdout.decode().splitlines() if line.strip()}
    assert rows["from-web"][2:4] == ["4102", "4102"] and rows["from-nfs"][2:4] == ["4101", "4200"]


def test_unknown_webhdfs_users_are_refused(server: Daemon) -> None:
    r = webhdfs(server, "PUT", "/shared/x", "MKDIRS", user="nobody-knows-me")
    assert r.status_code == 403 and remote(r) == {
        "exception": "AccessControlException",
        "javaClassName": "org.apache.hadoop.security.AccessControlException",
        "message": "Unknown user: nobody-knows-me",
    }


# ---- permissions at each door ------------------------------------------------------------------------


def test_webhdfs_denials_are_403_in_hadoops_words(server: Daemon) -> None:
    alice = InsecureClient(server.url, user="alice")
    alice.makedirs("/shared/alice", permission="755")
    alice.write("/shared/alice/notes", data=b"private", permission="640")
    r = webhdfs(server, "PUT", "/shared/alice/bob-was-here", "CREATE", user="bob")
    assert r.status_code == 403 and remote(r)["exception"] == "AccessControlException"
    assert remote(r)["message"] == (
        'Permission denied: user=bob, access=WRITE_EXECUTE, inode="/shared/alice":alice:4101:drwxr-xr-x'
    )
    bob = InsecureClient(server.url, user="bob")
    with pytest.raises(HdfsError, match="Permission denied: user=bob, access=READ"), bob.read("/shared/alice/notes"):
        pass
    for op, method, extra in (
        ("SETPERMISSION", "PUT", {"permission": "777"}),
        ("SETOWNER", "PUT", {"owner": "bob"}),
        ("DELETE", "DELETE", {}),
        ("RENAME", "PUT", {"destination": "/shared/stolen"}),
        ("SETXATTR", "PUT", {"xattr.name": "user.x", "xattr.value": "1", "flag": "CREATE"}),
        ("APPEND", "POST", {}),
        ("TRUNCATE", "POST", {"newlength": "0"}),
    ):
        r = webhdfs(server, method, "/shared/alice/notes", op, user="bob", **extra)
        assert r.status_code == 403, (op, r.text)
        assert remote(r)["exception"] == "AccessControlException", op
    assert alice.content("/shared/alice")["length"] == 7  # nothing changed
    # staff (alice's group) may read: 0640 with group staff
    alice.set_owner("/shared/alice/notes", group="staff")
    carol = webhdfs(server, "GET", "/shared/alice/notes", "OPEN", user="4300")  # uid 4300: not staff
    assert carol.status_code == 403


def test_checkaccess_answers_from_the_real_checks(server: Daemon) -> None:
    alice = InsecureClient(server.url, user="alice")
    alice.makedirs("/shared/ca", permission="750")
    alice.write("/shared/ca/f", data=b"x", permission="640")
    for user, path, action, status in (
        ("alice", "/shared/ca/f", "rw-", 200),
        ("alice", "/shared/ca/f", "--x", 403),
        ("alice", "/shared/ca", "rwx", 200),
        ("bob", "/shared/ca", "r--", 403),
        ("bob", "/shared/ca/f", "r--", 403),  # no search permission on /shared/ca
        ("bob", "/shared", "rwx", 200),
        (ME, "/shared/ca/f", "rwx", 200),  # the superuser
    ):
        r = webhdfs(server, "GET", path, "CHECKACCESS", user=user, fsaction=action)
        assert r.status_code == status, (user, path, action, r.text)
        if status == 403:
            assert remote(r)["exception"] == "AccessControlException"
    assert webhdfs(server, "GET", "/shared/none", "CHECKACCESS", fsaction="r--").status_code == 404


def test_nfs_denials_follow_the_same_rules(server: Daemon) -> None:
    InsecureClient(server.url, user="alice").write("/shared/alices-file", data=b"a", permission="644")
    bob = AuthSys(0, b"client", 4102, 4102, ())
    with RpcClient(server.nfs_port, cred=bob) as c:
        root = c.mount(b"/")
        u = c.nfs(Proc.LOOKUP, dirop(root, b"shared"))
        assert u.uint32() == Status.OK
        shared = u.opaque(64)
        u = c.nfs(Proc.LOOKUP, dirop(shared, b"alices-file"))
        assert u.uint32() == Status.OK
        f = u.opaque(64)
        write = fh(f) + struct.pack(">QII", 0, 2, 1) + struct.pack(">I", 1) + b"b\0\0\0"
        assert c.nfs(Proc.WRITE, write).uint32() == Status.ACCES
        chmod = fh(f) + struct.pack(">IIIIIIIII", 1, 0o777, 0, 0, 0, 0, 0, 0, 0)
        assert c.nfs(Proc.SETATTR, chmod).uint32() == Status.PERM
        u = c.nfs(Proc.ACCESS, fh(f) + struct.pack(">I", 0x3F))
        assert u.uint32() == Status.OK
        if u.bool():
            skip_fattr(u)
        assert u.uint32() == 0x01  # READ only: the answer the checks give
        # sticky: bob may not remove alice's file from a world-writable sticky directory
        admin(server, "/fs/setattr", {"path": "/shared", "mode": 0o1777})
        try:
            assert c.nfs(Proc.REMOVE, dirop(shared, b"alices-file")).uint32() == Status.ACCES
        finally:
            admin(server, "/fs/setattr", {"path": "/shared", "mode": 0o777})


def test_admin_reads_without_the_token_act_as_nobody(server: Daemon) -> None:
    InsecureClient(server.url, user="alice").makedirs("/shared/closed", permission="700")
    anon = requests.get(f"{server.url}/api/v1/fs/list", params={"path": "/shared/closed"})
    assert anon.status_code == 403 and anon.json()["error"]["type"] == "Denied"
    r = requests.get(
        f"{server.url}/api/v1/fs/list",
        params={"path": "/shared/closed"},
        headers={"Authorization": f"Bearer {server.token}"},
    )
    assert r.status_code == 200
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": server.token}):
        r = requests.post(f"{server.url}/api/v1/fs/mkdir", json={"path": "/shared/nope"}, headers=headers)
        assert r.status_code == 401 and r.json()["error"]["message"] == "admin token required"
