"""GETATTR, LOOKUP and ACCESS replies given again (Nfs3Service.replies): while nothing changed
they are sent as kept, and a reply sent is always the one the call would build now, whoever
asks, whatever changed, and for a file re-checked against its under-storage on a clock."""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from vfsenv import ME, chunks, close_vfs, open_vfs

from nsd.protocols.nfs3 import procs_meta
from nsd.protocols.nfs3.const import Proc
from nsd.protocols.nfs3.exports import parse_exports
from nsd.protocols.nfs3.handles import HandleCodec
from nsd.protocols.nfs3.service import Nfs3Service
from nsd.protocols.rpc.oncrpc import AuthError, AuthSys, RpcCall
from nsd.protocols.rpc.server import CallContext
from nsd.vfs import SYSTEM, Caller, Vfs

OTHER = Caller(2000, 2000)
EXPORTS = "/ 127.0.0.1(rw) 127.0.0.2(ro)"
PROCS = {Proc.GETATTR: procs_meta.getattr3, Proc.LOOKUP: procs_meta.lookup3, Proc.ACCESS: procs_meta.access3}


@pytest.fixture
async def vfs(tmp_path: Path) -> AsyncIterator[Vfs]:
    v = await open_vfs(tmp_path)
    yield v
    await close_vfs(v)


def service(vfs: Vfs, tmp_path: Path) -> Nfs3Service:
    return Nfs3Service(vfs, parse_exports(EXPORTS), HandleCodec(bytes(32)), tmp_path)


def xdr_opaque(raw: bytes) -> bytes:
    return struct.pack(">I", len(raw)) + raw + bytes(-len(raw) % 4)


async def call(s: Nfs3Service, proc: Proc, args: bytes, who: Caller = ME, host: str = "127.0.0.1") -> bytes:
    cred = AuthSys(0, b"client", who.uid, who.gid, ())
    rpc = RpcCall(1, 100003, 3, proc, 1, cred, args, 0)
    body = await PROCS[proc](s, CallContext(rpc, rpc.args(), host, 2049))
    assert isinstance(body, bytes)
    return body


class Asker:
    """The same GETATTR, LOOKUP and ACCESS calls to a service that keeps replies and to a fresh one
    each time (which builds them): what the first sends must be what the second builds."""

    def __init__(self, vfs: Vfs, tmp_path: Path) -> None:
        self.vfs, self.tmp_path = vfs, tmp_path
        self.kept = service(vfs, tmp_path)

    def handle(self, path: str) -> bytes:
        export = next(iter(self.kept.exports.values()))
        return self.kept.handle(export, self.vfs.peek_path(path))

    async def same(self, proc: Proc, args: bytes, who: Caller = ME, host: str = "127.0.0.1") -> bytes:
        sent = await call(self.kept, proc, args, who, host)
        assert sent == await call(service(self.vfs, self.tmp_path), proc, args, who, host)
        return sent

    async def all_same(self, d: bytes, name: str, f: bytes, who: Caller = ME) -> list[bytes]:
        return [
            await self.same(Proc.GETATTR, xdr_opaque(f), who),
            await self.same(Proc.LOOKUP, xdr_opaque(d) + xdr_opaque(name.encode()), who),
            await self.same(Proc.ACCESS, xdr_opaque(f) + struct.pack(">I", 0x3F), who),
        ]


async def test_a_reply_is_sent_again_only_while_nothing_changed(vfs: Vfs, tmp_path: Path) -> None:
    await vfs.mkdir("/d", caller=ME)
    await vfs.write_file("/d/f", chunks(b"data"), caller=ME)
    asker = Asker(vfs, tmp_path)
    d, f = asker.handle("/d"), asker.handle("/d/f")
    first = await asker.all_same(d, "f", f)
    assert await asker.all_same(d, "f", f) == first and asker.kept.replies.hits == 3  # kept, sent again

    changes = [
        vfs.setattr("/d/f", mode=0o600, caller=ME),
        vfs.setattr("/d", mode=0o711, caller=ME),  # the directory's attributes in LOOKUP's reply
        vfs.write_at(vfs.peek_path("/d/f").ino, 4, b"more", stable=False, caller=ME),  # not journaled
        vfs.setattr("/d/f", atime=123, caller=ME),
    ]
    for change in changes:
        hits = asker.kept.replies.hits
        await change
        replies = await asker.all_same(d, "f", f)
        assert replies != first and asker.kept.replies.hits == hits
        first = replies
    await vfs.write_file("/elsewhere", chunks(b"x"), caller=ME)  # a change these replies do not show
    hits = asker.kept.replies.hits
    assert await asker.all_same(d, "f", f) == first and asker.kept.replies.hits == hits  # built again
    await vfs.rename("/d/f", "/d/g", caller=ME)
    moved = await asker.all_same(d, "g", f)
    assert (await asker.same(Proc.LOOKUP, xdr_opaque(d) + xdr_opaque(b"f")))[:4] == struct.pack(">I", 2)  # NOENT
    await vfs.remove("/d/g", caller=ME)
    gone = await asker.all_same(d, "g", f)
    assert all(r[:4] != struct.pack(">I", 0) for r in gone) and gone != moved


async def test_a_reply_kept_for_one_caller_or_host_is_not_sent_to_another(vfs: Vfs, tmp_path: Path) -> None:
    await vfs.mkdir("/private", caller=ME, mode=0o700)
    await vfs.write_file("/private/f", chunks(b"data"), caller=ME)
    asker = Asker(vfs, tmp_path)
    d, f = asker.handle("/private"), asker.handle("/private/f")
    lookup = xdr_opaque(d) + xdr_opaque(b"f")
    assert (await asker.same(Proc.LOOKUP, lookup))[:4] == struct.pack(">I", 0)
    assert (await asker.same(Proc.LOOKUP, lookup, OTHER))[:4] == struct.pack(">I", 13)  # ACCES: no search
    access = xdr_opaque(f) + struct.pack(">I", 0x3F)
    mine, theirs = await asker.same(Proc.ACCESS, access), await asker.same(Proc.ACCESS, access, OTHER)
    assert mine != theirs
    writable = await asker.same(Proc.ACCESS, access)
    read_only = await asker.same(Proc.ACCESS, access, host="127.0.0.2")  # the ro rule: no MODIFY
    assert writable[-4:] != read_only[-4:]
    getattr_args, hits = xdr_opaque(f), asker.kept.replies.hits
    assert await asker.same(Proc.GETATTR, getattr_args) == await asker.same(Proc.GETATTR, getattr_args)
    hits += 1  # the second GETATTR
    assert asker.kept.replies.hits == hits
    with pytest.raises(AuthError):  # not exported to this host, though the same call's reply is kept
        await call(asker.kept, Proc.GETATTR, getattr_args, host="127.0.0.3")
    assert asker.kept.replies.hits == hits


async def test_a_file_re_checked_on_a_clock_is_never_answered_from_a_kept_reply(vfs: Vfs, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "a").write_bytes(b"old")
    await vfs.mount("/m", outside.as_uri(), caller=SYSTEM, options={"sync_interval": "0"})
    await vfs.stat("/m/a", caller=ME)
    asker = Asker(vfs, tmp_path)
    f = asker.handle("/m/a")
    before = await asker.same(Proc.GETATTR, xdr_opaque(f))
    (outside / "a").write_bytes(b"new and longer")  # out of band: the namespace has not moved
    after = await asker.same(Proc.GETATTR, xdr_opaque(f))
    assert struct.unpack_from(">Q", before, 24)[0] == 3 and struct.unpack_from(">Q", after, 24)[0] == 14
    assert asker.kept.replies.hits == 0
