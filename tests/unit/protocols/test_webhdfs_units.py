"""WebHDFS pure pieces: HDFS checksum, parameters, paths, JSON helpers, identities."""

from __future__ import annotations

import asyncio
import os
import pwd
import random
from pathlib import Path

import pytest
from hdfs_reference import reference_checksum

from nsd import errors
from nsd.core.permissions import Permissions
from nsd.core.users import UserMap
from nsd.namespace import Namespace
from nsd.protocols.webhdfs import encode as js
from nsd.protocols.webhdfs.auth import Authenticator, Identity, Unauthenticated, load_tokens, parse_proxy_users
from nsd.protocols.webhdfs.checksum import Md5Md5Crc32c
from nsd.protocols.webhdfs.context import Remote
from nsd.protocols.webhdfs.params import BadParam, Params
from nsd.protocols.webhdfs.routes import parse_path
from nsd.protocols.webhdfs.xattr import normalize_name, parse_flags


@pytest.mark.parametrize("size", [1, 511, 512, 513, 4096, 4097, 3 * 4096, 3 * 4096 + 700])
@pytest.mark.parametrize("block_size", [1024, 4096])
def test_checksum_matches_the_definition_for_any_split(size: int, block_size: int) -> None:
    rng = random.Random(size * block_size)
    data = rng.randbytes(size)
    summer = Md5Md5Crc32c(block_size)
    pos = 0
    while pos < size:  # pieces of random sizes, crossing chunk and block edges
        n = rng.randint(1, 3000)
        summer.feed(data[pos : pos + n])
        pos += n
    got = summer.result()
    algorithm, raw = reference_checksum(data, block_size)
    assert (got.algorithm, got.bytes) == (algorithm, raw)
    assert got.length == 28
    multi = size > block_size
    assert got.algorithm == f"MD5-of-{block_size // 512 if multi else 0}MD5-of-512CRC32C"


def test_checksum_of_nothing_is_hadoops_constant() -> None:
    got = Md5Md5Crc32c(1 << 27).result()
    assert got.algorithm == "MD5-of-0MD5-of-0CRC32"
    assert got.bytes.hex() == "00000000" + "0" * 16 + "70bc8f4b72a86921468bf8e8441dce51"


def test_checksum_refuses_a_block_size_that_is_not_whole_chunks() -> None:
    with pytest.raises(ValueError):
        Md5Md5Crc32c(1000)


def test_params_parse_like_hadoop() -> None:
    p = Params([("OP", "open"), ("Overwrite", "TRUE"), ("user.name", "a"), ("user.name", "b"), ("n", "12")])
    assert p.get("op") == "open" and p.get("user.name") == "a" and p.getall("user.name") == ["a", "b"]
    assert p.flag("overwrite", False) is True and p.flag("recursive", False) is False
    assert p.long("n", minimum=0) == 12 and p.long("missing", 7) == 7
    with pytest.raises(BadParam):
        Params([("b", "yes")]).flag("b", False)
    with pytest.raises(BadParam):
        Params([("n", "-1")]).long("n", minimum=0)
    with pytest.raises(BadParam):
        Params([("n", "1e3")]).long("n")
    with pytest.raises(BadParam):
        Params([("n", str(1 << 63))]).long("n")
    assert Params([("permission", "1777")]).permission() == 0o1777
    for bad in ("888", "12", "07777", "rwx"):
        with pytest.raises(BadParam):
            Params([("permission", bad)]).permission()
    with pytest.raises(BadParam):
        Params([("destination", "relative/p")]).path("destination")
    assert isinstance(BadParam("x"), errors.Invalid)


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        ("/webhdfs/v1", "/"),
        ("/webhdfs/v1/", "/"),
        ("/webhdfs/v1//a///b/?op=x", "/a/b"),
        ("/webhdfs/v1/a%20b/%C3%A9", "/a b/é"),
        ("/webhdfs/v1/%2541", "/%41"),
    ],
)
def test_paths_decode_once(raw: str, path: str) -> None:
    assert parse_path(raw) == path


@pytest.mark.parametrize("raw", ["/webhdfs/v1/..", "/webhdfs/v1/a/%2E/b", "/webhdfs/v1/a%00", "/webhdfs/v1/%ff"])
def test_hostile_paths_are_refused(raw: str) -> None:
    with pytest.raises(Remote) as e:
        parse_path(raw)
    assert e.value.status == 400 and e.value.java == "org.apache.hadoop.fs.InvalidPathException"


def test_permission_and_status_json() -> None:
    assert js.permission(0o100644) == "644" and js.permission(0o41777) == "1777" and js.permission(0o40000) == "0"
    ns = Namespace(root_uid=os.getuid(), root_gid=os.getgid(), time_ns=1_700_000_000_123_456_789)
    status = js.file_status(ns.root, "", 4096, UserMap())
    assert status["modificationTime"] == 1_700_000_000_123
    assert status["owner"] == pwd.getpwuid(os.getuid()).pw_name
    assert status["type"] == "DIRECTORY" and status["blockSize"] == 0


def test_blocks_cover_the_asked_range() -> None:
    assert js.blocks(10, 4, 0, 100) == [(0, 4), (4, 4), (8, 2)]
    assert js.blocks(10, 4, 5, 1) == [(4, 4)]
    assert js.blocks(10, 4, 10, 5) == []
    assert js.blocks(0, 4, 0, 5) == []


def test_xattr_codec_and_names() -> None:
    assert js.decode_xattr("0x00ff") == b"\x00\xff" and js.decode_xattr("0sAP8=") == b"\x00\xff"
    assert js.decode_xattr('"quoted"') == b"quoted" and js.decode_xattr("bare") == b"bare"
    assert js.decode_xattr(None) == b""
    with pytest.raises(errors.Invalid):
        js.decode_xattr("0xzz")
    assert js.encode_xattr(b"\x00\xff", "HEX") == "0x00ff" and js.encode_xattr(b"ab", None) == '"ab"'
    assert normalize_name("USER.Mixed") == "user.Mixed"
    for bad in ("user", "user.", "other.x", ".x"):
        with pytest.raises(BadParam):
            normalize_name(bad)
    assert parse_flags(None) == (True, True) and parse_flags("create") == (True, False)
    assert parse_flags("CREATE,REPLACE") == (True, True)
    with pytest.raises(BadParam):
        parse_flags("UPSERT")


def test_identities_from_passwd() -> None:
    me = pwd.getpwuid(os.getuid())
    auth = Authenticator(UserMap(), Permissions().is_super)

    def resolve(user: str | None, doas: str | None, host: str = "127.0.0.1") -> Identity:
        return asyncio.run(auth.identify(None, user, doas, host))

    who = resolve(me.pw_name, None)
    assert (who.name, who.caller.uid, who.caller.gid) == (me.pw_name, me.pw_uid, me.pw_gid)
    assert resolve(str(me.pw_uid), None).name == me.pw_name
    assert resolve("987654", None).caller.uid == 987654  # no account: the number itself
    assert resolve(None, None).name == "dr.who"
    with pytest.raises(errors.Denied):
        resolve("no-such-user-here", None)
    assert resolve(me.pw_name, "987654").caller.uid == 987654  # the superuser may proxy
    with pytest.raises(errors.Denied):
        resolve("987654", me.pw_name)


def test_proxy_users_by_host_user_and_group() -> None:
    users = UserMap("oozie=2001; hue=2002; alice=3001:3001:etl; bob=3002", "etl=5000", system=False)
    rules = parse_proxy_users("oozie hosts=10.0.0.0/8,127.0.0.1 users=alice; hue hosts=* groups=etl")
    auth = Authenticator(users, Permissions(users).is_super, proxy_users=rules)
    assert asyncio.run(auth.identify(None, "oozie", "alice", "10.1.2.3")).caller.uid == 3001
    assert asyncio.run(auth.identify(None, "oozie", "alice", "::ffff:127.0.0.1")).name == "alice"
    with pytest.raises(errors.Denied) as e:
        asyncio.run(auth.identify(None, "oozie", "alice", "192.168.1.1"))
    assert e.value.message == "Unauthorized connection for super-user: oozie from IP 192.168.1.1"
    with pytest.raises(errors.Denied) as e:
        asyncio.run(auth.identify(None, "oozie", "bob", "10.1.2.3"))
    assert e.value.message == "User: oozie is not allowed to impersonate bob"
    assert asyncio.run(auth.identify(None, "hue", "alice", "8.8.8.8")).name == "alice"  # alice is in etl
    with pytest.raises(errors.Denied):
        asyncio.run(auth.identify(None, "hue", "bob", "8.8.8.8"))
    with pytest.raises(errors.Denied):
        asyncio.run(auth.identify(None, "bob", "alice", "127.0.0.1"))  # not a proxy user at all
    for bad in ("oozie users=*", "oozie hosts=nowhere", "oozie hosts=* colour=blue"):
        with pytest.raises(errors.Invalid):
            parse_proxy_users(bad)


def test_bearer_tokens(tmp_path: Path) -> None:
    users = UserMap("alice=3001; svc=3003", system=False)
    f = tmp_path / "tokens"
    f.write_text("# user token\nalice  alice-token-0123456789\nsvc svc-token-abcdefghijkl\n")
    f.chmod(0o644)
    with pytest.raises(errors.Invalid) as e:
        load_tokens(f)
    assert "chmod 600" in e.value.message and "alice-token" not in e.value.message
    f.chmod(0o600)
    auth = Authenticator(users, Permissions(users).is_super, mode="token", tokens=load_tokens(f))
    assert asyncio.run(auth.identify("Bearer alice-token-0123456789", None, None, "h")).name == "alice"
    # user.name is ignored
    assert asyncio.run(auth.identify("bearer svc-token-abcdefghijkl", "alice", None, "h")).name == "svc"
    for header in (None, "", "Bearer", "Basic alice-token-0123456789", "Bearer alice-token-012345678X"):
        with pytest.raises(Unauthenticated):
            asyncio.run(auth.identify(header, "alice", None, "h"))
    with pytest.raises(errors.Invalid):
        Authenticator(users, Permissions(users).is_super, mode="token")  # no tokens
    with pytest.raises(errors.Invalid):
        Authenticator(users, Permissions(users).is_super, mode="kerberos")
    f.write_text("alice short\n")
    with pytest.raises(errors.Invalid):
        load_tokens(f)
