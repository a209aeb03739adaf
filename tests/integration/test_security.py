"""Security through the doors, against a real daemon and real clients: one user map for NFS and
WebHDFS, permission checks at every door, the admin token, bearer tokens and proxy users, TLS,
start-up refusals, and secrets that must never show."""

from __future__ import annotations

import os
import pwd
import re
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from daemon import Daemon, nsd, start
from hdfs import Client, HdfsError, InsecureClient
from rpcclient import RpcClient, dirop, fh, skip_fattr

from nsd.protocols.nfs3.const import Proc, Status
from nsd.protocols.rpc.oncrpc import AuthSys

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


def test_unknown_webhdfs_users_are_given_ids_as_hdfs_takes_any_name(server: Daemon) -> None:
    r = webhdfs(server, "PUT", "/shared/x", "MKDIRS", user="nobody-knows-me")
    assert r.status_code == 200 and r.json() == {"boolean": True}
    status = webhdfs(server, "GET", "/shared/x", "GETFILESTATUS").json()["FileStatus"]
    assert (status["owner"], status["group"]) == ("nobody-knows-me", "nobody-knows-me")
    uid = nfs_getattr(server, "/shared/x")[3]
    assert 200000 <= uid <= 299999  # auto_id_range's default


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
        # a file alice keeps to herself: its data is not read for bob, cached or not
        InsecureClient(server.url, user="alice").write("/shared/alices-secret", data=b"s", permission="600")
        u = c.nfs(Proc.LOOKUP, dirop(shared, b"alices-secret"))
        assert u.uint32() == Status.OK
        secret = u.opaque(64)
        for _ in range(2):
            u = c.nfs(Proc.READ, fh(secret) + struct.pack(">QI", 0, 16))
            assert u.uint32() == Status.ACCES
            if u.bool():
                skip_fattr(u)
            assert u.remaining() == 0  # a failure body: no count, no data
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
    r = requests.post(f"{server.url}/api/v1/fs/mkdir", json={"path": "/shared/nope"})
    assert r.status_code == 401 and r.json()["error"]["message"] == "admin token required"
    for headers in ({"Authorization": "Bearer wrong"}, {"Authorization": server.token}):
        r = requests.post(f"{server.url}/api/v1/fs/mkdir", json={"path": "/shared/nope"}, headers=headers)
        assert r.status_code == 401 and r.json()["error"]["message"].startswith("admin token rejected")


# ---- WebHDFS authentication: bearer tokens, proxy users ----------------------------------------------

TOKENS = {"alice": "alice-0123456789abcdef", "oozie": "oozie-0123456789abcdef", "hue": "hue-0123456789abcdefgh"}


def bearer(user: str) -> requests.Session:
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {TOKENS[user]}"
    return s


def test_bearer_tokens_and_proxy_users(tmp_path: Path) -> None:
    token_file = tmp_path / "tokens"
    token_file.write_text("".join(f"{u} {t}\n" for u, t in TOKENS.items()))
    token_file.chmod(0o600)
    env = {
        "NSD_USERS": USERS + "; oozie=4103; hue=4104",
        "NSD_WEBHDFS_AUTH": "token",
        "NSD_WEBHDFS_TOKEN_FILE": str(token_file),
        "NSD_WEBHDFS_PROXY_USERS": "oozie hosts=127.0.0.1 users=alice; hue hosts=10.0.0.0/8 users=*",
    }
    d = start(tmp_path / "data", env=env)
    try:
        admin(d, "/fs/mkdir", {"path": "/shared", "mode": 0o777})
        base = f"{d.url}/webhdfs/v1"
        for headers in ({}, {"Authorization": "Bearer not-a-token-of-ours"}, {"Authorization": "Basic abc"}):
            r = requests.get(f"{base}/shared", params={"op": "LISTSTATUS", "user.name": "alice"}, headers=headers)
            assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
            assert remote(r)["exception"] == "SecurityException"
        client = Client(d.url, session=bearer("alice"))  # HdfsCLI with the token on every request
        client.write("/shared/a.txt", data=b"by token")
        with client.read("/shared/a.txt") as f:
            assert f.read() == b"by token"
        assert client.status("/shared/a.txt")["owner"] == "alice"
        # a valid token without the permission is 403, never 401
        r = bearer("alice").put(f"{base}/not-here", params={"op": "MKDIRS"})
        assert r.status_code == 403 and remote(r)["exception"] == "AccessControlException"
        # oozie may act as alice (from this host), not as bob
        r = bearer("oozie").put(f"{base}/shared/by-oozie", params={"op": "MKDIRS", "doas": "alice"})
        assert r.status_code == 200 and client.status("/shared/by-oozie")["owner"] == "alice"
        r = bearer("oozie").put(f"{base}/shared/x", params={"op": "MKDIRS", "doas": "bob"})
        assert r.status_code == 403 and remote(r)["message"] == "User: oozie is not allowed to impersonate bob"
        r = bearer("hue").put(f"{base}/shared/y", params={"op": "MKDIRS", "doas": "alice"})
        assert r.status_code == 403
        assert remote(r)["message"] == "Unauthorized connection for super-user: hue from IP 127.0.0.1"
        r = bearer("alice").put(f"{base}/shared/z", params={"op": "MKDIRS", "doas": "bob"})
        assert r.status_code == 403 and "impersonate" in remote(r)["message"]
        log = d.log.read_text()
        assert all(t not in log for t in TOKENS.values())
    finally:
        d.stop()


# ---- TLS (swebhdfs) -------------------------------------------------------------------------------


def make_certificates(where: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 signed by it: (ca, cert, key) PEM files."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "nsd test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    import ipaddress

    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = where / "ca.pem", where / "server.pem", where / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    paths[2].chmod(0o600)
    return paths


def test_tls_swebhdfs_with_real_clients(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fsspec.implementations.webhdfs import WebHDFS

    # requests lets these override a session's own `verify`; a plain machine has neither set
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)

    ca, cert, key = make_certificates(tmp_path)
    d = start(tmp_path / "data", env={"NSD_TLS_CERT_FILE": str(cert), "NSD_TLS_KEY_FILE": str(key)})
    try:
        assert d.url.startswith("https://127.0.0.1:")
        session = requests.Session()
        session.verify = str(ca)
        client = InsecureClient(d.url, user=ME, session=session)  # HdfsCLI over HTTPS
        client.write("/tls/hello", data=b"over TLS" * 1000)
        with client.read("/tls/hello", offset=3, length=5) as f:
            assert f.read() == b"r TLS"
        first = session.put(
            f"{d.url}/webhdfs/v1/tls/two", params={"op": "CREATE", "user.name": ME}, allow_redirects=False
        )
        assert first.status_code == 307 and first.headers["Location"].startswith("https://127.0.0.1:")
        url = urlsplit(d.url)
        fs = WebHDFS(url.hostname, url.port, user=ME, use_https=True, session_verify=str(ca), skip_instance_cache=True)
        with fs.open("/tls/from-fsspec", "wb") as f:
            f.write(b"fsspec says hi")
        assert fs.cat("/tls/from-fsspec") == b"fsspec says hi"
        assert sorted(p.rsplit("/", 1)[-1] for p in fs.ls("/tls", detail=False)) == ["from-fsspec", "hello"]
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(f"{d.url}/webhdfs/v1/?op=GETHOMEDIRECTORY")  # not a CA the machine trusts
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(f"http://127.0.0.1:{url.port}/webhdfs/v1/?op=GETHOMEDIRECTORY", timeout=10)
        r = session.post(
            f"{d.url}/api/v1/fs/mkdir", json={"path": "/tls/admin"}, headers={"Authorization": f"Bearer {d.token}"}
        )
        assert r.status_code == 201  # the admin API rides the same TLS port
        untrusted = nsd("ls", "/tls", daemon=d)  # the CLI checks the certificate too
        assert untrusted.returncode == 3 and b"CERTIFICATE_VERIFY_FAILED" in untrusted.stderr
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca))  # as for requests-based tools
        listed = nsd("ls", "/tls", daemon=d)
        assert listed.stdout.decode().split() == ["admin", "from-fsspec", "hello"], listed.stderr
    finally:
        d.stop()


# ---- start-up refusals ------------------------------------------------------------------------------


def refused_start(data_dir: Path, env: dict[str, str]) -> str:
    """Run `nsd serve` that must refuse to start: its exit code and stderr."""
    cmd = [sys.executable, "-m", "nsd.cli", "serve", "--data-dir", str(data_dir), "--http-port", "0", "--nfs-port", "0"]
    out = subprocess.run(cmd, capture_output=True, timeout=60, env={**os.environ, **env}, text=True)
    assert out.returncode != 0, out.stdout
    assert "ready" not in out.stdout
    return out.stderr


def test_start_up_refusals_say_why(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert nsd("format", "--data-dir", str(data)).returncode == 0
    token = data / "admin.token"
    token.chmod(0o644)
    assert f"chmod 600 {token}" in refused_start(data, {})
    token.chmod(0o600)
    tokens = tmp_path / "tokens"
    tokens.write_text("alice secret-token-0123456789\n")
    tokens.chmod(0o640)
    err = refused_start(data, {"NSD_WEBHDFS_AUTH": "token", "NSD_WEBHDFS_TOKEN_FILE": str(tokens)})
    assert "chmod 600" in err and "secret-token" not in err
    assert "needs webhdfs_token_file" in refused_start(data, {"NSD_WEBHDFS_AUTH": "token"})
    assert "webhdfs_auth must be one of" in refused_start(data, {"NSD_WEBHDFS_AUTH": "kerberos"})
    assert "hosts=" in refused_start(data, {"NSD_WEBHDFS_PROXY_USERS": "oozie users=*"})
    assert "unknown user 'no-such-admin'" in refused_start(data, {"NSD_SUPERUSER": "no-such-admin"})
    assert "users:" in refused_start(data, {"NSD_USERS": "alice=notanumber"})
    _, cert, key = make_certificates(tmp_path)
    assert "both tls_cert_file and tls_key_file" in refused_start(data, {"NSD_TLS_CERT_FILE": str(cert)})
    key.chmod(0o644)
    err = refused_start(data, {"NSD_TLS_CERT_FILE": str(cert), "NSD_TLS_KEY_FILE": str(key)})
    assert "open to others" in err
    key.chmod(0o600)
    err = refused_start(data, {"NSD_TLS_CERT_FILE": str(key), "NSD_TLS_KEY_FILE": str(key)})
    assert "cannot load the TLS certificate" in err
    assert not re.search(r"Traceback", err)


# ---- credentials never show --------------------------------------------------------------------------

PLANTED = {
    "s3_access": "AKIAPLANTED0ACCESS99",
    "s3_secret": "PLANTED-s3-secret-value-0001",
    "s3_session": "PLANTED-s3-session-token-0002",
    "wrong_s3_secret": "PLANTED-s3-secret-wrong-0003",
    "uri_password": "PLANTEDuriPassword0004",
    "webhdfs_token": "PLANTED-webhdfs-token-0005",
    "bad_webhdfs_token": "PLANTED-bad-webhdfs-token-0006",
    "bad_admin_token": "PLANTED-bad-admin-token-0007",
}


def test_credentials_never_show_in_logs_outputs_metrics_or_errors(tmp_path: Path) -> None:
    import boto3
    from moto.server import ThreadedMotoServer

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    token_file = tmp_path / "tokens"
    token_file.write_text(f"alice {PLANTED['webhdfs_token']}\n")
    token_file.chmod(0o600)
    env = {
        "NSD_LOG_LEVEL": "debug",
        "NSD_AUDIT_LOG": "true",
        "NSD_USERS": USERS,
        "NSD_WEBHDFS_AUTH": "token",
        "NSD_WEBHDFS_TOKEN_FILE": str(token_file),
    }
    d = start(tmp_path / "data", env=env)
    outputs: list[str] = []
    try:
        host, port = moto.get_host_and_port()
        boto3.client(
            "s3",
            endpoint_url=f"http://{host}:{port}",
            aws_access_key_id=PLANTED["s3_access"],
            aws_secret_access_key=PLANTED["s3_secret"],
            region_name="us-east-1",
        ).create_bucket(Bucket="planted")
        opts = [f"endpoint_override={host}:{port}", "scheme=http", f"access_key={PLANTED['s3_access']}"]
        opts += [f"secret_key={PLANTED['s3_secret']}", f"session_token={PLANTED['s3_session']}"]
        out = nsd("mount", "add", "/s3", "s3://planted/data", *[x for o in opts for x in ("-o", o)], daemon=d)
        assert out.returncode == 0, out.stderr
        outputs += [out.stdout.decode(), out.stderr.decode()]
        # a mount that fails: its error must not carry the credentials either
        bad = [f"endpoint_override=127.0.0.1:{free_port()}", "scheme=http", "retries=1", "timeout_s=5"]
        bad += [f"access_key={PLANTED['s3_access']}", f"secret_key={PLANTED['wrong_s3_secret']}"]
        out = nsd("mount", "add", "/bad", "s3://planted/x", *[x for o in bad for x in ("-o", o)], daemon=d)
        assert out.returncode != 0
        outputs += [out.stdout.decode(), out.stderr.decode()]
        out = nsd("mount", "add", "/w", f"webhdfs://alice:{PLANTED['uri_password']}@127.0.0.1:{free_port()}/", daemon=d)
        outputs += [out.stdout.decode(), out.stderr.decode()]
        # use the S3 mount and WebHDFS with good and bad credentials
        admin(d, "/fs/setattr", {"path": "/s3", "mode": 0o777})
        s = bearer_session(PLANTED["webhdfs_token"])
        assert s.put(f"{d.url}/webhdfs/v1/s3/f", params={"op": "CREATE"}, data=b"x").status_code == 201
        assert nsd("cat", "/s3/f", daemon=d).stdout == b"x"
        r = bearer_session(PLANTED["bad_webhdfs_token"]).get(f"{d.url}/webhdfs/v1/s3", params={"op": "LISTSTATUS"})
        assert r.status_code == 401
        outputs.append(r.text)
        r = requests.post(
            f"{d.url}/api/v1/fs/mkdir",
            json={"path": "/x"},
            headers={"Authorization": f"Bearer {PLANTED['bad_admin_token']}"},
        )
        assert r.status_code == 401
        outputs.append(r.text)
        for args in (("mount", "ls"), ("report",), ("report", "--json"), ("doctor",), ("ls", "/s3")):
            out = nsd(*args, daemon=d)
            outputs += [out.stdout.decode(), out.stderr.decode()]
        for page in ("/metrics", "/", "/api/v1/report", "/api/v1/conf", "/api/v1/mounts", "/api/v1/doctor"):
            outputs.append(requests.get(d.url + page).text)
        assert "secret_key=****" in "".join(outputs)  # the masked form is what shows
    finally:
        d.stop()
        moto.stop()
    outputs.append(d.log.read_text())
    text = "\n".join(outputs)
    assert "webhdfs" in text and "s3://planted" in text  # the outputs are the real ones
    leaked = [(name, line[:200]) for name, v in PLANTED.items() for line in text.splitlines() if v in line]
    assert leaked == [], leaked
    assert d.token not in text


def bearer_session(token: str) -> requests.Session:
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {token}"
    return s


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---- hostile paths at every door -----------------------------------------------------------------------


def raw_get(d: Daemon, target: str) -> tuple[int, dict[str, Any]]:
    """GET exactly `target` (no client-side normalisation of dots or escapes)."""
    import http.client
    import json

    u = urlsplit(d.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    conn.request("GET", target)
    r = conn.getresponse()
    return r.status, json.loads(r.read() or b"{}")


def test_hostile_paths_webhdfs(server: Daemon) -> None:
    for target in (
        "/webhdfs/v1/shared/%2e%2e/etc?op=LISTSTATUS",
        "/webhdfs/v1/shared%2F..%2F..%2Fetc?op=LISTSTATUS",
        "/webhdfs/v1/shared/..%2f?op=GETFILESTATUS",
        "/webhdfs/v1/shared/a%00b?op=GETFILESTATUS",
        "/webhdfs/v1/shared/%ff%fe?op=GETFILESTATUS",
    ):
        status, body = raw_get(server, target + f"&user.name={ME}")
        assert status == 400 and body["RemoteException"]["exception"] == "InvalidPathException", target
    long_name = "n" * 256
    r = webhdfs(server, "PUT", f"/shared/{long_name}", "MKDIRS")
    assert r.status_code == 400 and remote(r)["exception"] == "PathComponentTooLongException"
    r = webhdfs(server, "PUT", "/shared/" + "/".join(["d" * 200] * 21), "MKDIRS")
    assert r.status_code == 400 and "too long" in remote(r)["message"]
    # decoded exactly once: "%252e%252e" is a file literally named "%2e%2e", inside /shared
    status, _ = raw_get(server, f"/webhdfs/v1/shared/%252e%252e?op=MKDIRS&user.name={ME}")
    assert status == 400  # MKDIRS is a PUT: the GET is refused, not misread
    r = requests.put(f"{server.url}/webhdfs/v1/shared/%252e%252e", params={"op": "MKDIRS", "user.name": ME})
    assert r.status_code == 200
    names = [
        s["pathSuffix"] for s in webhdfs(server, "GET", "/shared", "LISTSTATUS").json()["FileStatuses"]["FileStatus"]
    ]
    assert "%2e%2e" in names
    for op, method, params in (
        ("RENAME", "PUT", {"destination": "/shared/../escaped"}),
        ("RENAME", "PUT", {"destination": "/shared/a\0b"}),
        ("CONCAT", "POST", {"sources": "/shared/../x"}),
    ):
        r = webhdfs(server, method, "/shared/%2e%2e", op, **params)
        assert r.status_code == 400, (op, params, r.text)


def test_hostile_paths_admin_api(server: Daemon) -> None:
    for target in (
        "/api/v1/fs/stat?path=/shared/%2e%2e/etc",
        "/api/v1/fs/stat?path=/a%00b",
        "/api/v1/fs/list?path=etc",
    ):
        status, body = raw_get(server, target)
        assert status == 400 and body["error"]["type"] in ("Invalid", "NameTooLong"), target
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {server.token}"
    for endpoint, body in (
        ("/fs/rename", {"src": "/shared", "dst": "/shared/../../x"}),
        ("/fs/link", {"existing": "/shared/../x", "path": "/y"}),
        ("/fs/symlink", {"path": "/shared/a\0b", "target": "x"}),
        ("/mounts", {"path": "/shared/../m", "uri": "memory://x"}),
    ):
        r = session.post(f"{server.url}/api/v1{endpoint}", json=body)
        assert r.status_code == 400, (endpoint, r.text)


def test_hostile_paths_nfs_mount(server: Daemon) -> None:
    from nsd.protocols.xdr import Packer, Unpacker

    with RpcClient(server.nfs_port) as c:
        for path, status in ((b"/../etc", 22), (b"/shared/..", 22), (b"/a\0b", 22), (b"/" + b"n" * 256, 63)):
            p = Packer()
            p.string(path)
            assert Unpacker(c.call(100005, 3, 1, bytes(p.buf)).body).uint32() == status, path
        p = Packer()
        p.string(b"/" * 1025)  # over MNTPATHLEN: the arguments do not decode
        assert c.call(100005, 3, 1, bytes(p.buf)).stat == 4  # GARBAGE_ARGS
        assert c.mount(b"/shared")  # the connection lives on
