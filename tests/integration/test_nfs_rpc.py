"""NFSv3 and RPC edge cases over a raw socket: what a hostile or unusual client sees."""

from __future__ import annotations

import os
import re
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from daemon import Daemon, nsd, start
from rpcclient import (
    MOUNT,
    NFS,
    SATTR_NONE,
    RpcClient,
    dirop,
    fh,
    post_op_attr,
    post_op_fh,
    skip_fattr,
    wcc,
)

from nsd.protocols.nfs3.const import Proc, Status
from nsd.protocols.rpc import oncrpc
from nsd.protocols.rpc.oncrpc import AuthSys
from nsd.protocols.xdr import Packer, Unpacker

GUARDED, EXCLUSIVE = 1, 2
UNSTABLE, FILE_SYNC = 0, 2


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = start(tmp_path_factory.mktemp("nfs") / "data")
    yield d
    if d.proc.poll() is None:
        assert d.stop() == 0


@pytest.fixture
def client(server: Daemon) -> Iterator[RpcClient]:
    with RpcClient(server.nfs_port) as c:
        yield c


def create(
    c: RpcClient, d: bytes, name: bytes, how: int = GUARDED, verf: bytes = b"", xid: int | None = None
) -> Unpacker:
    tail = struct.pack(">I", how) + (verf if how == EXCLUSIVE else SATTR_NONE)
    return c.nfs(Proc.CREATE, dirop(d, name) + tail, xid=xid)


def created_handle(u: Unpacker) -> bytes:
    assert u.uint32() == Status.OK
    handle = post_op_fh(u)
    assert handle is not None
    return handle


def mkdir(c: RpcClient, d: bytes, name: bytes) -> bytes:
    return created_handle(c.nfs(Proc.MKDIR, dirop(d, name) + SATTR_NONE))


def lookup(c: RpcClient, d: bytes, name: bytes) -> tuple[int, bytes | None]:
    u = c.nfs(Proc.LOOKUP, dirop(d, name))
    status = u.uint32()
    return status, (u.opaque(64) if status == Status.OK else None)


def getattr_status(c: RpcClient, handle: bytes) -> int:
    return c.nfs(Proc.GETATTR, fh(handle)).uint32()


# ---- RPC layer ---------------------------------------------------------------------------------


def test_rpc_errors_leave_the_connection_usable(client: RpcClient) -> None:
    assert client.call(NFS, 3, Proc.NULL).stat == oncrpc.SUCCESS
    assert client.call(200000, 1, 0).stat == oncrpc.PROG_UNAVAIL
    mismatch = client.call(NFS, 2, 0)
    assert (mismatch.stat, mismatch.detail) == (oncrpc.PROG_MISMATCH, (3, 3))
    assert client.call(NFS, 3, 99).stat == oncrpc.PROC_UNAVAIL
    assert client.call(MOUNT, 3, 99).stat == oncrpc.PROC_UNAVAIL
    assert client.call(NFS, 3, Proc.GETATTR, b"\0\0").stat == oncrpc.GARBAGE_ARGS
    assert client.call(NFS, 3, Proc.NULL).stat == oncrpc.SUCCESS


def test_rpc_version_and_auth_rejections(client: RpcClient) -> None:
    bad_version = bytearray(oncrpc.encode_call(5, NFS, 3, 0))
    bad_version[4 + 8 : 4 + 12] = struct.pack(">I", 3)
    client.send_raw(bytes(bad_version))
    reply = oncrpc.decode_reply(client.recv_record())
    assert (reply.accepted, reply.stat, reply.detail) == (False, oncrpc.RPC_MISMATCH, (2, 2))

    too_many_gids = AuthSys(0, b"h", 1000, 1000, tuple(range(17)))
    client.send_raw(oncrpc.encode_call(6, NFS, 3, 0, cred=too_many_gids))
    reply = oncrpc.decode_reply(client.recv_record())
    assert (reply.accepted, reply.stat, reply.detail) == (False, oncrpc.AUTH_ERROR, (oncrpc.AUTH_BADCRED,))

    kerberos = bytearray(oncrpc.encode_call(7, NFS, 3, 0))
    kerberos[4 + 24 : 4 + 28] = struct.pack(">I", 6)  # RPCSEC_GSS
    client.send_raw(bytes(kerberos))
    reply = oncrpc.decode_reply(client.recv_record())
    assert (reply.accepted, reply.stat) == (False, oncrpc.AUTH_ERROR)
    assert client.call(NFS, 3, Proc.NULL).stat == oncrpc.SUCCESS


def test_oversized_fragment_closes_the_connection(client: RpcClient) -> None:
    client.send_raw(struct.pack(">I", 0x80000000 | (64 << 20)) + b"\0" * 64)
    with pytest.raises(ConnectionError):
        client.recv_record()


def test_pipelined_calls_all_answered(client: RpcClient) -> None:
    for xid in range(100, 400):
        client.send_raw(oncrpc.encode_call(xid, NFS, 3, Proc.NULL))
    xids = {oncrpc.decode_reply(client.recv_record()).xid for _ in range(300)}
    assert xids == set(range(100, 400))


def test_one_burst_of_mixed_calls_gets_every_reply(client: RpcClient) -> None:
    # Replies to calls that arrive together leave in one write; errors and successes alike.
    burst = b"".join(
        oncrpc.encode_call(xid, NFS, 3, Proc.NULL)
        if xid % 3 == 0
        else oncrpc.encode_call(xid, 424242, 1, 0)  # no such program
        if xid % 3 == 1
        else oncrpc.encode_call(xid, NFS, 3, Proc.GETATTR, b"\0\0")  # truncated arguments
        for xid in range(1000, 1300)
    )
    client.send_raw(burst)
    replies = {r.xid: r for r in (oncrpc.decode_reply(client.recv_record()) for _ in range(300))}
    assert sorted(replies) == list(range(1000, 1300))
    for xid, r in replies.items():
        expected = [oncrpc.SUCCESS, oncrpc.PROG_UNAVAIL, oncrpc.GARBAGE_ARGS][xid % 3]
        assert (r.accepted, r.stat) == (True, expected), xid


# ---- handles ------------------------------------------------------------------------------------


def test_bad_handles(client: RpcClient) -> None:
    root = client.mount()
    assert len(root) == 32 and len(root) % 4 == 0
    assert getattr_status(client, root) == Status.OK
    assert getattr_status(client, root[:-4]) == Status.BADHANDLE
    assert getattr_status(client, b"") == Status.BADHANDLE
    flipped = bytearray(root)
    flipped[-1] ^= 1
    assert getattr_status(client, bytes(flipped)) == Status.STALE
    forged = bytearray(root)
    forged[11] ^= 7  # another inode id, same MAC: refused
    assert getattr_status(client, bytes(forged)) == Status.STALE
    assert client.call(NFS, 3, Proc.GETATTR, fh(root + b"\0" * 40)).stat == oncrpc.GARBAGE_ARGS


def test_deleted_object_is_stale(client: RpcClient) -> None:
    root = client.mount()
    d = mkdir(client, root, b"stale")
    f = created_handle(create(client, d, b"gone"))
    assert getattr_status(client, f) == Status.OK
    u = client.nfs(Proc.REMOVE, dirop(d, b"gone"))
    assert u.uint32() == Status.OK
    assert getattr_status(client, f) == Status.STALE
    read = client.nfs(Proc.READ, fh(f) + struct.pack(">QI", 0, 10))
    assert read.uint32() == Status.STALE and post_op_attr(read) is None


def test_handles_survive_a_restart(tmp_path: Path) -> None:
    d = start(tmp_path / "data")
    try:
        with RpcClient(d.nfs_port) as c:
            root = c.mount()
            sub = mkdir(c, root, b"kept")
            f = created_handle(create(c, sub, b"file"))
            excl = created_handle(create(c, sub, b"excl", EXCLUSIVE, b"12345678"))
            u = write(c, f, 0, b"unstable", UNSTABLE)
            assert u.uint32() == Status.OK
            wcc(u)
            assert (u.uint32(), u.uint32()) == (8, UNSTABLE)
            verf_before = u.fixed(8)
        assert (tmp_path / "data" / "nfs.secret").stat().st_mode & 0o777 == 0o600
        assert d.stop() == 0
        d = start(tmp_path / "data")
        with RpcClient(d.nfs_port) as c:
            assert c.mount() == root
            assert getattr_status(c, f) == Status.OK
            assert lookup(c, sub, b"file") == (Status.OK, f)
            # The EXCLUSIVE verifier was stored durably: a late retransmit still gets its file.
            assert created_handle(create(c, sub, b"excl", EXCLUSIVE, b"12345678")) == excl
            # A new life, a new write verifier: the client learns to resend unstable data.
            u = c.nfs(Proc.COMMIT, fh(f) + struct.pack(">QI", 0, 0))
            assert u.uint32() == Status.OK
            wcc(u)
            assert u.fixed(8) != verf_before
    finally:
        if d.proc.poll() is None:
            d.stop()


# ---- names --------------------------------------------------------------------------------------


def test_hostile_names(client: RpcClient) -> None:
    root = client.mount()
    d = mkdir(client, root, b"names")
    for name, status in [
        (b"", Status.INVAL),
        (b".", Status.EXIST),  # as creat(2) of "." or ".." on a local file system
        (b"..", Status.EXIST),
        (b"a/b", Status.INVAL),
        (b"nul\0byte", Status.INVAL),
        (b"x" * 256, Status.NAMETOOLONG),
        (b"\xff\xfe not UTF-8", Status.INVAL),
    ]:
        u = create(client, d, name)
        assert u.uint32() == status, name
        _, post = wcc(u)
        assert post is not None  # failure replies carry the directory's wcc_data
    assert created_handle(create(client, d, "ünï €".encode()))
    assert lookup(client, d, "ünï €".encode())[0] == Status.OK
    assert lookup(client, d, b"\xff\xfe not UTF-8")[0] == Status.INVAL
    assert created_handle(create(client, d, b"y" * 255))


def test_subdirectory_export_is_a_boundary_and_read_only(tmp_path: Path) -> None:
    exports = "/ 127.0.0.1(rw,no_root_squash); /pub 127.0.0.1(ro)"
    d = start(tmp_path / "data", env={"NSD_NFS_EXPORTS": exports})
    try:
        nsd("mkdir", "-p", "/pub/inner", daemon=d)
        with RpcClient(d.nfs_port) as c:
            pub = c.mount(b"/pub")
            assert lookup(c, pub, b"..") == (Status.OK, pub)  # no way out of the export
            inner = lookup(c, pub, b"inner")[1]
            assert inner is not None
            assert lookup(c, inner, b"..") == (Status.OK, pub)
            assert lookup(c, pub, b".") == (Status.OK, pub)
            u = create(c, pub, b"nope")
            assert u.uint32() == Status.ROFS and wcc(u)[1] is not None
            u = c.nfs(Proc.ACCESS, fh(pub) + struct.pack(">I", 0x3F))
            assert u.uint32() == Status.OK and post_op_attr(u) is not None
            assert u.uint32() & 0x1C == 0  # no MODIFY, EXTEND or DELETE on a read-only export
            root = c.mount(b"/")
            assert lookup(c, root, b"..") == (Status.OK, root)
            assert created_handle(create(c, root, b"yes"))
    finally:
        d.stop()


def test_mount_errors(client: RpcClient) -> None:
    p = Packer()
    p.string(b"/no/such/dir")
    assert Unpacker(client.call(MOUNT, 3, 1, bytes(p.buf)).body).uint32() == 2  # MNT3ERR_NOENT
    export = Unpacker(client.call(MOUNT, 3, 5).body)
    assert export.bool() and export.string(1024) == b"/"


# ---- procedures ---------------------------------------------------------------------------------


def test_exclusive_create_is_idempotent_per_verifier(client: RpcClient) -> None:
    root = client.mount()
    d = mkdir(client, root, b"excl")
    first = created_handle(create(client, d, b"f", EXCLUSIVE, b"verifier"))
    again = created_handle(create(client, d, b"f", EXCLUSIVE, b"verifier"))
    assert again == first
    assert create(client, d, b"f", EXCLUSIVE, b"another!").uint32() == Status.EXIST


def test_duplicate_request_cache(client: RpcClient) -> None:
    root = client.mount()
    d = mkdir(client, root, b"drc")
    first = created_handle(create(client, d, b"once", xid=0xD0C))
    # A retransmission (same xid, same arguments) gets the first reply, not EXIST.
    assert created_handle(create(client, d, b"once", xid=0xD0C)) == first
    assert create(client, d, b"once", xid=0xD0D).uint32() == Status.EXIST
    rm = client.nfs(Proc.REMOVE, dirop(d, b"once"), xid=0xD0E).uint32()
    assert rm == Status.OK and client.nfs(Proc.REMOVE, dirop(d, b"once"), xid=0xD0E).uint32() == Status.OK
    assert client.nfs(Proc.REMOVE, dirop(d, b"once"), xid=0xD0F).uint32() == Status.NOENT


def write(c: RpcClient, f: bytes, offset: int, data: bytes, stable: int) -> Unpacker:
    p = Packer(bytearray(fh(f)))
    p.uint64(offset)
    p.uint32(len(data))
    p.uint32(stable)
    p.opaque(data)
    return c.nfs(Proc.WRITE, bytes(p.buf))


def test_write_stability_and_verifier(client: RpcClient) -> None:
    root = client.mount()
    d = mkdir(client, root, b"writes")
    f = created_handle(create(client, d, b"f"))
    u = write(client, f, 0, b"hello ", UNSTABLE)
    assert u.uint32() == Status.OK
    pre, post = wcc(u)
    assert pre is not None and pre[0] == 0 and post is not None and post[5] == 6
    count, committed = u.uint32(), u.uint32()
    verf = u.fixed(8)
    assert (count, committed) == (6, UNSTABLE)
    u = write(client, f, 6, b"world", FILE_SYNC)
    assert u.uint32() == Status.OK
    wcc(u)
    assert (u.uint32(), u.uint32(), u.fixed(8)) == (5, FILE_SYNC, verf)
    u = client.nfs(Proc.COMMIT, fh(f) + struct.pack(">QI", 0, 0))
    assert u.uint32() == Status.OK
    wcc(u)
    assert u.fixed(8) == verf
    u = client.nfs(Proc.READ, fh(f) + struct.pack(">QI", 0, 100))
    assert u.uint32() == Status.OK
    post_op_attr(u)
    assert (u.uint32(), u.bool(), u.opaque(100)) == (11, True, b"hello world")
    u = client.nfs(Proc.READ, fh(f) + struct.pack(">QI", 0, 5))
    assert u.uint32() == Status.OK
    post_op_attr(u)
    assert (u.uint32(), u.bool(), u.opaque(100)) == (5, False, b"hello")
    u = client.nfs(Proc.READ, fh(f) + struct.pack(">QI", 6, 5))  # the read that returns the last byte
    assert u.uint32() == Status.OK
    post_op_attr(u)
    assert (u.uint32(), u.bool()) == (5, True)


def _burst(c: RpcClient, calls: list[tuple[int, bytes]]) -> list[Unpacker]:
    """Send every call in one write (so the server runs them concurrently); replies by call order."""
    xids = []
    out = b""
    for proc, args in calls:
        c.xid += 1
        xids.append(c.xid)
        out += oncrpc.encode_call(c.xid, NFS, 3, proc, args, cred=c.cred)
    c.send_raw(out)
    replies = {}
    for _ in calls:
        r = oncrpc.decode_reply(c.recv_record())
        assert r.accepted and r.stat == oncrpc.SUCCESS
        replies[r.xid] = Unpacker(r.body)
    return [replies[x] for x in xids]


def _wcc_triple(attrs: tuple[int, ...]) -> tuple[int, ...]:
    """(size, mtime s, mtime ns, ctime s, ctime ns) of a fattr3, as pre_op_attr has them."""
    return (attrs[5], *attrs[13:17])


def _assert_chain(
    start: tuple[int, ...], end: tuple[int, ...], pairs: list[tuple[tuple[int, ...], tuple[int, ...]]]
) -> None:
    """Each change's wcc pair follows the previous one's: from `start`, through every pair, to `end`."""
    by_pre = {pre: post for pre, post in pairs}
    assert len(by_pre) == len(pairs), f"two replies claim the same pre-op attributes: {pairs}"
    at, seen = start, 0
    while at in by_pre:
        at, seen = by_pre[at], seen + 1
    assert (seen, at) == (len(pairs), end), f"wcc pairs do not chain from {start} to {end}: {pairs}"


def test_concurrent_changes_of_one_directory_have_chained_wcc(client: RpcClient) -> None:
    """pre-op attributes are taken at the change itself: with many changes to one directory in
    flight together, each reply's pre is exactly the post of the change before it."""
    root = client.mount()
    d = mkdir(client, root, b"wccdir")
    for name in (b"r0", b"r1", b"r2"):
        created_handle(create(client, d, name))
    u = client.nfs(Proc.GETATTR, fh(d))
    assert u.uint32() == Status.OK
    start = _wcc_triple(skip_fattr(u))
    tail = struct.pack(">I", GUARDED) + SATTR_NONE
    calls = [(Proc.CREATE, dirop(d, b"c%d" % i) + tail) for i in range(6)]
    calls += [(Proc.MKDIR, dirop(d, b"m%d" % i) + SATTR_NONE) for i in range(3)]
    calls += [(Proc.REMOVE, dirop(d, b"r%d" % i)) for i in range(3)]
    pairs = []
    for (proc, _), u in zip(calls, _burst(client, calls), strict=True):
        assert u.uint32() == Status.OK
        if proc != Proc.REMOVE:  # CREATE/MKDIR: the new object's handle and attributes first
            assert post_op_fh(u) is not None and post_op_attr(u) is not None
        pre, post = wcc(u)
        assert pre is not None and post is not None
        pairs.append((pre, _wcc_triple(post)))
    u = client.nfs(Proc.GETATTR, fh(d))
    assert u.uint32() == Status.OK
    _assert_chain(start, _wcc_triple(skip_fattr(u)), pairs)


def test_concurrent_writes_have_chained_wcc(client: RpcClient) -> None:
    root = client.mount()
    d = mkdir(client, root, b"wccwrites")
    f = created_handle(create(client, d, b"f"))
    calls = []
    for i in range(8):
        p = Packer(bytearray(fh(f)))
        p.uint64(i * 4096)
        p.uint32(4096)
        p.uint32(UNSTABLE if i % 3 else FILE_SYNC)
        p.opaque(bytes([i]) * 4096)
        calls.append((Proc.WRITE, bytes(p.buf)))
    u = client.nfs(Proc.GETATTR, fh(f))
    assert u.uint32() == Status.OK
    start = _wcc_triple(skip_fattr(u))
    pairs = []
    for u in _burst(client, calls):
        assert u.uint32() == Status.OK
        pre, post = wcc(u)
        assert pre is not None and post is not None
        pairs.append((pre, _wcc_triple(post)))
    u = client.nfs(Proc.GETATTR, fh(f))
    assert u.uint32() == Status.OK
    end = _wcc_triple(skip_fattr(u))
    assert end[0] == 8 * 4096
    _assert_chain(start, end, pairs)


def test_unstable_writes_answered_together_are_all_read_back_at_once(client: RpcClient) -> None:
    """1 MiB UNSTABLE WRITEs in flight together are answered while their bytes may still be
    going to the stage file: a READ sent after the replies sees every byte, before and after
    the COMMIT, and the record buffers are reused meanwhile."""
    root = client.mount()
    f = created_handle(create(client, root, b"behind"))
    blobs = [os.urandom(1 << 20) for _ in range(6)]
    calls = []
    for i, blob in enumerate(blobs):
        p = Packer(bytearray(fh(f)))
        p.uint64(i << 20)
        p.uint32(len(blob))
        p.uint32(UNSTABLE)
        p.opaque(blob)
        calls.append((Proc.WRITE, bytes(p.buf)))
    for u in _burst(client, calls):
        assert u.uint32() == Status.OK
    for when in ("before COMMIT", "after COMMIT"):
        for i, blob in reversed(list(enumerate(blobs))):  # the last written first
            u = client.nfs(Proc.READ, fh(f) + struct.pack(">QI", i << 20, 1 << 20))
            assert u.uint32() == Status.OK
            post_op_attr(u)
            assert (u.uint32(), u.bool(), u.opaque(1 << 20) == blob) == (1 << 20, i == 5, True), when
        if when == "before COMMIT":
            u = client.nfs(Proc.COMMIT, fh(f) + struct.pack(">QI", 0, 0))
            assert u.uint32() == Status.OK


def test_a_change_that_changed_nothing_has_no_pre_op_attributes(client: RpcClient) -> None:
    root = client.mount()
    d = mkdir(client, root, b"wccnone")
    u = client.nfs(Proc.REMOVE, dirop(d, b"missing"))
    assert u.uint32() == Status.NOENT
    pre, post = wcc(u)
    assert pre is None and post is not None


def test_setattr_guard_and_times(client: RpcClient) -> None:
    root = client.mount()
    d = mkdir(client, root, b"guard")
    f = created_handle(create(client, d, b"f"))
    attrs = skip_fattr(_getattr(client, f))
    ctime = attrs[15:17]
    mode_and_times = struct.pack(">IIIIIIIIIII", 1, 0o600, 0, 0, 0, 2, 1234, 5, 2, 4321, 6)
    bad_guard = struct.pack(">III", 1, ctime[0] + 1, ctime[1])
    u = client.nfs(Proc.SETATTR, fh(f) + mode_and_times + bad_guard)
    assert u.uint32() == Status.NOT_SYNC
    assert wcc(u)[1] is not None
    good_guard = struct.pack(">III", 1, *ctime)
    assert client.nfs(Proc.SETATTR, fh(f) + mode_and_times + good_guard).uint32() == Status.OK
    attrs = skip_fattr(_getattr(client, f))
    assert attrs[1] == 0o600 and attrs[11:15] == (1234, 5, 4321, 6)
    assert attrs[15:17] > ctime


def test_setattr_guard_is_checked_atomically_with_a_truncate(client: RpcClient) -> None:
    """A guarded truncate sent right behind a WRITE waits for the write and then sees its ctime:
    NOT_SYNC, and the written data stays (checking the guard before waiting would cut it)."""
    root = client.mount()
    d = mkdir(client, root, b"guardrace")
    f = created_handle(create(client, d, b"f"))
    ctime = skip_fattr(_getattr(client, f))[15:17]
    p = Packer(bytearray(fh(f)))
    p.uint64(0)
    p.uint32(65536)
    p.uint32(FILE_SYNC)
    p.opaque(b"x" * 65536)
    truncate_guarded = fh(f) + struct.pack(">IIIIQII", 0, 0, 0, 1, 0, 0, 0) + struct.pack(">III", 1, *ctime)
    wrote, truncated = _burst(client, [(Proc.WRITE, bytes(p.buf)), (Proc.SETATTR, truncate_guarded)])
    assert wrote.uint32() == Status.OK
    assert truncated.uint32() == Status.NOT_SYNC
    assert skip_fattr(_getattr(client, f))[5] == 65536


def _getattr(c: RpcClient, handle: bytes) -> Unpacker:
    u = c.nfs(Proc.GETATTR, fh(handle))
    assert u.uint32() == Status.OK
    return u


def test_failures_carry_their_bodies(client: RpcClient) -> None:
    root = client.mount()
    d = mkdir(client, root, b"fail")
    u = client.nfs(Proc.RMDIR, dirop(d, b"absent"))
    assert u.uint32() == Status.NOENT and wcc(u)[1] is not None
    u = client.nfs(Proc.RENAME, dirop(d, b"absent") + dirop(root, b"x"))
    assert u.uint32() == Status.NOENT
    assert wcc(u)[1] is not None and wcc(u)[1] is not None
    u = client.nfs(Proc.LOOKUP, dirop(d, b"absent"))
    assert u.uint32() == Status.NOENT and post_op_attr(u) is not None
    f = created_handle(create(client, d, b"file"))
    u = client.nfs(Proc.READDIR, fh(f) + struct.pack(">Q8sI", 0, bytes(8), 4096))
    assert u.uint32() == Status.NOTDIR and post_op_attr(u) is not None
    u = client.nfs(Proc.MKNOD, dirop(d, b"tty") + struct.pack(">I", 4) + SATTR_NONE + struct.pack(">II", 4, 1))
    assert u.uint32() == Status.NOTSUPP and wcc(u)[1] is not None  # a character device


def test_mknod_makes_fifos_and_sockets(client: RpcClient) -> None:
    root = client.mount()
    d = mkdir(client, root, b"special")
    mode_0600 = struct.pack(">IIIIIII", 1, 0o600, 0, 0, 0, 0, 0)  # sattr3: mode set; uid, gid, size, times not
    handles = {}
    for name, ftype in ((b"pipe", 7), (b"sock", 6)):
        u = client.nfs(Proc.MKNOD, dirop(d, name) + struct.pack(">I", ftype) + mode_0600)
        assert u.uint32() == Status.OK
        handles[name] = post_op_fh(u)
        attrs = post_op_attr(u)
        assert attrs is not None and attrs[0] == ftype and attrs[1] == 0o600 and attrs[5] == 0
        pre, post = wcc(u)
        assert pre is not None and post is not None and post[13:15] > pre[1:3]  # the directory's mtime moved
    u = client.nfs(Proc.MKNOD, dirop(d, b"pipe") + struct.pack(">I", 7) + SATTR_NONE)
    assert u.uint32() == Status.EXIST
    u = client.nfs(Proc.MKNOD, dirop(d, b"file") + struct.pack(">I", 1))
    assert u.uint32() == Status.BADTYPE
    pipe = handles[b"pipe"]
    assert pipe is not None
    assert lookup(client, d, b"pipe") == (Status.OK, pipe)
    u = client.nfs(Proc.READ, fh(pipe) + struct.pack(">QI", 0, 10))
    assert u.uint32() == Status.INVAL  # no content here: a client opens a FIFO on its own machine
    assert client.nfs(Proc.RENAME, dirop(d, b"sock") + dirop(d, b"sock2")).uint32() == Status.OK
    assert client.nfs(Proc.REMOVE, dirop(d, b"pipe")).uint32() == Status.OK
    assert getattr_status(client, pipe) == Status.STALE


def test_readdir_sizes_and_cookies(client: RpcClient) -> None:
    root = client.mount()
    d = mkdir(client, root, b"rd")
    names = {f"n{i:03d}".encode() for i in range(300)}
    for n in names:
        created_handle(create(client, d, n))
    # Too small for even one entry: TOOSMALL with the directory's attributes.
    u = client.nfs(Proc.READDIR, fh(d) + struct.pack(">Q8sI", 0, bytes(8), 100))
    assert u.uint32() == Status.TOOSMALL and post_op_attr(u) is not None
    seen: list[bytes] = []
    cookies: list[int] = []
    cookie, pages = 0, 0
    while True:
        count = 1024
        u = client.nfs(Proc.READDIR, fh(d) + struct.pack(">Q8sI", cookie, bytes(8), count))
        body_len = u.remaining()
        assert u.uint32() == Status.OK and body_len <= count
        post_op_attr(u)
        assert u.fixed(8) == bytes(8)
        while u.bool():
            u.uint64()
            seen.append(u.string(255))
            cookie = u.uint64()
            cookies.append(cookie)
        pages += 1
        if u.bool():
            break
    assert pages > 5
    assert sorted(seen) == sorted([b".", b"..", *names])
    assert len(set(cookies)) == len(cookies) and 0 not in cookies
    # READDIRPLUS: each entry with attributes and a handle that works.
    u = client.nfs(Proc.READDIRPLUS, fh(d) + struct.pack(">Q8sII", 0, bytes(8), 8192, 65536))
    assert u.uint32() == Status.OK
    post_op_attr(u)
    u.fixed(8)
    plus = 0
    while u.bool():
        u.uint64()
        name = u.string(255)
        u.uint64()
        assert post_op_attr(u) is not None
        handle = post_op_fh(u)
        assert handle is not None and (name in (b".", b"..") or getattr_status(client, handle) == Status.OK)
        plus += 1
    assert plus > 10


@pytest.mark.parametrize(("maxcount", "dircount"), [(1024, 0), (8192, 600), (4096, 65536)])
def test_readdirplus_pages_fit_both_limits(client: RpcClient, maxcount: int, dircount: int) -> None:
    # Names from 1 to 255 bytes: every entry once, in pages that keep to maxcount (the whole
    # reply) and dircount (fileid, name and cookie of each entry; 0: no such limit).
    root = client.mount()
    d = mkdir(client, root, f"rdp-{maxcount}-{dircount}".encode())
    names = {(f"{i:03d}" + "n" * (i % 253)).encode() for i in range(300)}
    for n in names:
        created_handle(create(client, d, n))
    seen: list[bytes] = []
    cookie, pages = 0, 0
    while True:
        u = client.nfs(Proc.READDIRPLUS, fh(d) + struct.pack(">Q8sII", cookie, bytes(8), dircount, maxcount))
        body_len, dir_bytes = u.remaining(), 0
        assert u.uint32() == Status.OK and body_len <= maxcount
        post_op_attr(u)
        u.fixed(8)
        while u.bool():
            u.uint64()
            seen.append(u.string(255))
            cookie = u.uint64()
            dir_bytes += 8 + 4 + (len(seen[-1]) + 3) // 4 * 4 + 8
            assert post_op_attr(u) is not None and post_op_fh(u) is not None
        assert dircount == 0 or dir_bytes <= dircount
        pages += 1
        if u.bool():
            break
    assert pages > 3
    assert sorted(seen) == sorted([b".", b"..", *names])


def test_auth_sys_identity_drives_permissions(server: Daemon) -> None:
    with RpcClient(server.nfs_port) as admin:
        root = admin.mount()
        d = mkdir(admin, root, b"perm")  # 0755, owned by root
    user = AuthSys(0, b"client", 1000, 1000, ())
    with RpcClient(server.nfs_port, cred=user) as c:
        u = create(c, d, b"f")
        assert u.uint32() == Status.ACCES
        u = c.nfs(Proc.ACCESS, fh(d) + struct.pack(">I", 0x3F))
        assert u.uint32() == Status.OK
        post_op_attr(u)
        assert u.uint32() == 0x01 | 0x02  # READ and LOOKUP only
    with RpcClient(server.nfs_port, cred=None) as anon:  # AUTH_NONE: nobody
        assert create(anon, d, b"g").uint32() == Status.ACCES
    with RpcClient(server.nfs_port) as admin:
        u = admin.nfs(Proc.SETATTR, fh(d) + struct.pack(">IIIIIIIII", 1, 0o777, 0, 0, 0, 0, 0, 0, 0))
        assert u.uint32() == Status.OK
    with RpcClient(server.nfs_port, cred=user) as c:
        f = created_handle(create(c, d, b"f"))
        attrs = skip_fattr(_getattr(c, f))
        assert attrs[3:5] == (1000, 1000)  # owned by the caller


def test_a_private_directory_is_neither_searched_nor_listed(server: Daemon) -> None:
    """LOOKUP in a directory the caller may not search is ACCES, for a name the namespace knows
    (answered without a coroutine) and for one it does not (the under-storage is asked), and
    nothing about the entry is given away; READDIR and READDIRPLUS of it are ACCES too. The owner
    gets the answers."""
    with RpcClient(server.nfs_port) as admin:
        root = admin.mount()
        d = mkdir(admin, root, b"private")
        created_handle(create(admin, d, b"known"))
        u = admin.nfs(Proc.SETATTR, fh(d) + struct.pack(">IIIIIIIII", 1, 0o700, 0, 0, 0, 0, 0, 0, 0))
        assert u.uint32() == Status.OK
        assert lookup(admin, d, b"known")[0] == Status.OK
        assert lookup(admin, d, b"missing")[0] == Status.NOENT
        assert admin.nfs(Proc.READDIR, fh(d) + struct.pack(">Q8sI", 0, bytes(8), 4096)).uint32() == Status.OK
    other = AuthSys(0, b"client", 2000, 2000, ())
    with RpcClient(server.nfs_port, cred=other) as c:
        for name in (b"known", b"missing", b"."):
            u = c.nfs(Proc.LOOKUP, dirop(d, name))
            assert u.uint32() == Status.ACCES, name
            assert post_op_attr(u) is not None  # the directory's attributes, as for any failure
            assert u.remaining() == 0
        for proc, args in (
            (Proc.READDIR, struct.pack(">Q8sI", 0, bytes(8), 4096)),
            (Proc.READDIRPLUS, struct.pack(">Q8sII", 0, bytes(8), 4096, 8192)),
        ):
            u = c.nfs(proc, fh(d) + args)
            assert u.uint32() == Status.ACCES, proc
            assert post_op_attr(u) is not None and u.remaining() == 0


def test_every_change_to_a_directory_needs_write_permission_there(server: Daemon) -> None:
    """MKDIR, SYMLINK, MKNOD, LINK, RENAME (out of, into and within), REMOVE and RMDIR in a 0755
    directory someone else owns are ACCES with the directory's wcc data, and change nothing: the
    owner finds every entry as it was and no new one."""
    with RpcClient(server.nfs_port) as admin:
        root = admin.mount()
        d = mkdir(admin, root, b"guarded")  # 0755, owned by root
        created_handle(create(admin, d, b"file"))
        mkdir(admin, d, b"sub")
        u = admin.nfs(Proc.LOOKUP, dirop(d, b"file"))
        assert u.uint32() == Status.OK
        file = u.opaque(64)
        mine = mkdir(admin, root, b"open")
        u = admin.nfs(Proc.SETATTR, fh(mine) + struct.pack(">IIIIIIIII", 1, 0o777, 0, 0, 0, 0, 0, 0, 0))
        assert u.uint32() == Status.OK
    user = AuthSys(0, b"client", 1000, 1000, ())
    with RpcClient(server.nfs_port, cred=user) as c:
        target = b"elsewhere"
        symlink = SATTR_NONE + struct.pack(">I", len(target)) + target + bytes(-len(target) % 4)
        calls = {
            "MKDIR": (Proc.MKDIR, dirop(d, b"new-dir") + SATTR_NONE),
            "SYMLINK": (Proc.SYMLINK, dirop(d, b"new-link") + symlink),
            "MKNOD": (Proc.MKNOD, dirop(d, b"new-fifo") + struct.pack(">I", 7) + SATTR_NONE),
            "LINK": (Proc.LINK, fh(file) + dirop(d, b"new-hardlink")),
            "RENAME within": (Proc.RENAME, dirop(d, b"file") + dirop(d, b"renamed")),
            "RENAME out": (Proc.RENAME, dirop(d, b"file") + dirop(mine, b"taken")),
            "RENAME in": (Proc.RENAME, dirop(mine, b"absent") + dirop(d, b"file")),
            "REMOVE": (Proc.REMOVE, dirop(d, b"file")),
            "RMDIR": (Proc.RMDIR, dirop(d, b"sub")),
        }
        created_handle(create(c, mine, b"absent"))  # RENAME in: a file of the caller's own
        for what, (proc, args) in calls.items():
            u = c.nfs(proc, args)
            assert u.uint32() == Status.ACCES, what
            if proc == Proc.LINK:
                assert post_op_attr(u) is not None  # the file's attributes, then the directory's wcc
            wcc(u)
            if proc == Proc.RENAME:
                wcc(u)  # the other directory's
            assert u.remaining() == 0, what
    with RpcClient(server.nfs_port) as admin:
        for name in (b"file", b"sub"):
            assert lookup(admin, d, name)[0] == Status.OK, name
        for name in (b"new-dir", b"new-link", b"new-fifo", b"new-hardlink", b"renamed"):
            assert lookup(admin, d, name)[0] == Status.NOENT, name
        assert lookup(admin, mine, b"taken")[0] == Status.NOENT
        assert lookup(admin, mine, b"absent")[0] == Status.OK
        assert skip_fattr(_getattr(admin, file))[2] == 1  # nlink: no new link


def test_mount_dump_umnt_and_umntall(server: Daemon) -> None:
    with RpcClient(server.nfs_port) as c:
        c.mount(b"/")
        nsd("mkdir", "-p", "/dumped", daemon=server)
        c.mount(b"/dumped")
        dump = Unpacker(c.call(MOUNT, 3, 2).body)
        mounts = set()
        while dump.bool():
            mounts.add((dump.string(255), dump.string(1024)))
        assert {(b"127.0.0.1", b"/"), (b"127.0.0.1", b"/dumped")} <= mounts
        p = Packer()
        p.string(b"/dumped")
        assert c.call(MOUNT, 3, 3, bytes(p.buf)).stat == oncrpc.SUCCESS
        dump = Unpacker(c.call(MOUNT, 3, 2).body)
        left = set()
        while dump.bool():
            left.add((dump.string(255), dump.string(1024)))
        assert (b"127.0.0.1", b"/dumped") not in left
        assert c.call(MOUNT, 3, 4).stat == oncrpc.SUCCESS
        assert Unpacker(c.call(MOUNT, 3, 2).body).bool() is False


def test_builtin_portmapper(tmp_path: Path) -> None:
    d = start(tmp_path / "data", "--portmapper", env={"NSD_PORTMAP_PORT": "0"})
    try:
        line_port = d.portmap_port
        assert line_port
        with RpcClient(line_port) as pm:
            for prog, vers in ((NFS, 3), (MOUNT, 3)):
                reply = pm.call(100000, 2, 3, struct.pack(">IIII", prog, vers, 6, 0))
                assert Unpacker(reply.body).uint32() == d.nfs_port
            reply = pm.call(100000, 2, 3, struct.pack(">IIII", 100227, 3, 6, 0))  # NFS_ACL: not served
            assert Unpacker(reply.body).uint32() == 0
            u = Unpacker(pm.call(100000, 2, 4).body)
            listed = []
            while u.bool():
                listed.append(u.struct(struct.Struct(">IIII")))
            assert (NFS, 3, 6, d.nfs_port) in listed and (MOUNT, 3, 6, d.nfs_port) in listed
            set_reply = pm.call(100000, 2, 1, struct.pack(">IIII", 123, 1, 6, 999))
            assert Unpacker(set_reply.body).uint32() == 0  # others may not register
    finally:
        d.stop()


def replies_sent_again(server: Daemon) -> float:
    text = requests.get(f"{server.url}/metrics", timeout=30).text
    found = re.search(r'^nsd_nfs_answers_sent_again_total\{kind="reply"\} (\S+)$', text, re.M)
    assert found is not None, text
    return float(found.group(1))


def test_nfs_calls_show_in_metrics(server: Daemon) -> None:
    with RpcClient(server.nfs_port) as c:
        root = c.mount()
        mkdir(c, root, b"metrics-sent-again")  # a change: what was kept before is not sent
        before = replies_sent_again(server)
        assert getattr_status(c, root) == Status.OK
        assert getattr_status(c, root) == Status.OK  # the same call, nothing changed: sent again
        assert replies_sent_again(server) == before + 1
        assert lookup(c, root, b"no-such-entry")[0] == Status.NOENT
    text = requests.get(f"{server.url}/metrics", timeout=30).text
    assert 'nsd_requests_total{op="GETATTR",protocol="nfs3"}' in text
    assert 'nsd_request_errors_total{error="NFS3ERR_NOENT",op="LOOKUP",protocol="nfs3"}' in text
    assert 'nsd_requests_total{op="MNT",protocol="mount3"}' in text
    # busy polling is on by default (nfs_busy_poll_us) and what it cost is counted
    polled = re.search(r"^nsd_nfs_busy_poll_idle_seconds_total (\S+)$", text, re.M)
    assert polled is not None and float(polled.group(1)) > 0
    assert requests.get(f"{server.url}/api/v1/status", timeout=30).json()["event_loop"] == "uvloop"


def test_mounts_give_xdev_and_rofs(server: Daemon, tmp_path: Path) -> None:
    (tmp_path / "rw").mkdir()
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro" / "seen.txt").write_bytes(b"from the store")
    for path, uri, extra in (("/mnt-rw", tmp_path / "rw", []), ("/mnt-ro", tmp_path / "ro", ["--readonly"])):
        out = nsd("mount", "add", path, uri.as_uri(), *extra, daemon=server)
        assert out.returncode == 0, out.stderr
    with RpcClient(server.nfs_port) as c:
        root = c.mount()
        rw = lookup(c, root, b"mnt-rw")[1]
        ro = lookup(c, root, b"mnt-ro")[1]
        assert rw is not None and ro is not None
        created_handle(create(c, rw, b"moving"))
        u = c.nfs(Proc.RENAME, dirop(rw, b"moving") + dirop(root, b"moved"))
        assert u.uint32() == Status.XDEV
        assert wcc(u)[1] is not None and wcc(u)[1] is not None
        u = create(c, ro, b"new")
        assert u.uint32() == Status.ROFS and wcc(u)[1] is not None
        seen = lookup(c, ro, b"seen.txt")[1]  # discovered in the store on lookup
        assert seen is not None
        u = c.nfs(Proc.READ, fh(seen) + struct.pack(">QI", 0, 100))
        assert u.uint32() == Status.OK
        post_op_attr(u)
        assert (u.uint32(), u.bool(), u.opaque(100)) == (14, True, b"from the store")


def _rpcinfo() -> str:
    return subprocess.run(["rpcinfo", "-p", "127.0.0.1"], capture_output=True, text=True, timeout=30).stdout


@pytest.fixture
def rpcbind() -> Iterator[None]:
    """Debian's rpcbind on port 111 (started here unless one already runs)."""
    started = None
    if subprocess.run(["rpcinfo", "-p", "127.0.0.1"], capture_output=True, timeout=30).returncode != 0:
        started = subprocess.Popen(["rpcbind", "-f", "-w"])
        deadline = time.monotonic() + 10
        while "portmapper" not in _rpcinfo():
            assert time.monotonic() < deadline, "rpcbind did not start"
            time.sleep(0.1)
    try:
        yield
    finally:
        if started is not None:
            started.terminate()
            started.wait(30)


def test_registers_with_a_running_rpcbind_and_unregisters_at_stop(rpcbind: None, tmp_path: Path) -> None:
    d = start(tmp_path / "data", "--portmapper")  # port 111 is rpcbind's: nsd registers there
    try:
        lines = [line.split() for line in _rpcinfo().splitlines()[1:]]
        assert ["100003", "3", "tcp", str(d.nfs_port), "nfs"] in lines
        assert ["100005", "3", "tcp", str(d.nfs_port), "mountd"] in lines
        # an unmodified client finds the ports through rpcbind: no nfsport/mountport in the URL
        listing = subprocess.run(["nfs-ls", "nfs://127.0.0.1/"], capture_output=True, text=True, timeout=60)
        assert listing.returncode == 0, listing.stderr
    finally:
        d.stop()
    assert str(d.nfs_port) not in _rpcinfo()


def test_a_client_outside_the_export_is_refused_at_every_call(tmp_path: Path) -> None:
    """Handles of an export this client is not in get AUTH_ERROR (AUTH_TOOWEAK), as nfs-ganesha
    answers, whatever the procedure; MNT gets MNT3ERR_ACCES. The handle here is a real one
    (made with the data dir's secret), as a client that was allowed earlier would hold."""
    from nsd.protocols.nfs3.handles import HandleCodec, load_secret

    d = start(tmp_path / "data", env={"NSD_NFS_EXPORTS": "/ 127.0.0.1(rw,no_root_squash); /far 10.9.9.0/24(rw)"})
    try:
        nsd("mkdir", "-p", "/far/x", daemon=d)
        with RpcClient(d.nfs_port) as c:
            p = Packer()
            p.string(b"/far")
            assert Unpacker(c.call(MOUNT, 3, 1, bytes(p.buf)).body).uint32() == 13  # MNT3ERR_ACCES
            root = c.mount(b"/")
            status, far_via_root = lookup(c, root, b"far")
            assert status == Status.OK and far_via_root is not None  # reachable inside export 1
            ino = struct.unpack(">Q", far_via_root[4:12])[0]
            forged = HandleCodec(load_secret(d.data_dir)).encode(2, ino, 1)  # the same dir as export 2
            for proc, args in (
                (Proc.GETATTR, fh(forged)),
                (Proc.LOOKUP, dirop(forged, b"x")),
                (Proc.READDIR, fh(forged) + struct.pack(">Q8sI", 0, bytes(8), 4096)),
                (Proc.CREATE, dirop(forged, b"new") + struct.pack(">I", GUARDED) + SATTR_NONE),
                (Proc.FSINFO, fh(forged)),
            ):
                reply = c.call(NFS, 3, proc, args)
                assert not reply.accepted and reply.stat == oncrpc.AUTH_ERROR, proc
                assert reply.detail == (oncrpc.AUTH_TOOWEAK,), proc
            assert c.call(NFS, 3, Proc.NULL).accepted  # NULL names no export
            assert getattr_status(c, root) == Status.OK  # the connection lives on
    finally:
        d.stop()


def test_squashing_per_export_rule(tmp_path: Path) -> None:
    exports = "/ 127.0.0.1(rw); /all 127.0.0.1(rw,all_squash,anonuid=4000,anongid=4001)"
    d = start(tmp_path / "data", env={"NSD_NFS_EXPORTS": exports})
    try:
        nsd("mkdir", "-p", "/all", daemon=d)
        requests.post(
            d.url + "/api/v1/fs/setattr",
            json={"path": "/all", "mode": 0o777},
            headers={"Authorization": f"Bearer {d.token}"},
        ).raise_for_status()
        requests.post(
            d.url + "/api/v1/fs/setattr",
            json={"path": "/", "mode": 0o777},
            headers={"Authorization": f"Bearer {d.token}"},
        ).raise_for_status()
        with RpcClient(d.nfs_port) as root_client:  # uid 0 on an export without no_root_squash
            attrs = skip_fattr(
                _getattr(root_client, created_handle(create(root_client, root_client.mount(b"/"), b"r")))
            )
            assert attrs[3:5] == (65534, 65534)  # root_squash is the default: root became nobody
        with RpcClient(d.nfs_port, cred=AuthSys(0, b"c", 1234, 1234, ())) as c:
            attrs = skip_fattr(_getattr(c, created_handle(create(c, c.mount(b"/all"), b"a"))))
            assert attrs[3:5] == (4000, 4001)  # all_squash: everyone is anonuid/anongid
            attrs = skip_fattr(_getattr(c, created_handle(create(c, c.mount(b"/"), b"u"))))
            assert attrs[3:5] == (1234, 1234)
    finally:
        d.stop()
