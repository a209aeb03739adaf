"""READDIRPLUS read-ahead: while the client reads a page, the next one is built into the page
cache, and a page built ahead is served only while nothing changed since."""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path

from nsd.protocols.nfs3 import readdir
from nsd.protocols.nfs3.const import Proc
from nsd.protocols.nfs3.exports import DEFAULT_EXPORTS, parse_exports
from nsd.protocols.nfs3.handles import HandleCodec
from nsd.protocols.nfs3.service import Nfs3Service
from nsd.protocols.rpc.oncrpc import AuthSys, RpcCall
from nsd.protocols.rpc.server import CallContext
from nsd.protocols.xdr import Unpacker
from nsd.vfs import Caller, Vfs

ROOT = Caller(0, 0)
FILES = 200  # about five pages of 2 KiB


def service(vfs: Vfs, tmp_path: Path) -> Nfs3Service:
    return Nfs3Service(vfs, parse_exports(DEFAULT_EXPORTS), HandleCodec(bytes(32)), tmp_path)


async def readdirplus(s: Nfs3Service, fh: bytes, cookie: int, maxcount: int = 2048) -> Unpacker:
    args = struct.pack(">I", len(fh)) + fh + struct.pack(">Q8sII", cookie, bytes(8), maxcount, maxcount)
    call = RpcCall(1, 100003, 3, Proc.READDIRPLUS, 1, AuthSys(0, b"t", 0, 0, ()), args, 0)
    body = await readdir.readdirplus3(s, CallContext(call, call.args(), "127.0.0.1", 2049))
    return Unpacker(body if isinstance(body, bytes) else b"".join(body))


def entries(u: Unpacker) -> tuple[list[tuple[str, int, int]], bool]:
    """(name, cookie, mode) of each entry of a READDIRPLUS reply, and its eof."""
    assert u.uint32() == 0
    if u.bool():
        u.fixed(84)  # the directory's fattr3
    u.fixed(8)
    out = []
    while u.bool():
        u.uint64()
        name = u.string(255).decode()
        cookie = u.uint64()
        assert u.bool()
        attrs = u.fixed(84)
        mode = struct.unpack_from(">I", attrs, 4)[0]
        if u.bool():
            u.opaque(64)
        out.append((name, cookie, mode))
    return out, u.bool()


async def listing(s: Nfs3Service, fh: bytes) -> list[list[tuple[str, int, int]]]:
    """Every page of the directory, waiting after each for the page read ahead."""
    pages, cookie, eof = [], 0, False
    while not eof:
        page, eof = entries(await readdirplus(s, fh, cookie))
        pages.append(page)
        cookie = page[-1][1]
        await asyncio.gather(*s.ahead)
    return pages


async def make_dir(vfs: Vfs, s: Nfs3Service) -> bytes:
    d = await vfs.mkdir("/d", caller=ROOT)
    for i in range(FILES):
        await vfs.create(d.ino, f"file-{i:04d}", caller=ROOT)
    return s.codec.encode(1, d.ino, d.gen)


async def test_each_page_after_the_first_comes_from_the_read_ahead(vfs: Vfs, tmp_path: Path) -> None:
    s = service(vfs, tmp_path)
    fh = await make_dir(vfs, s)
    pages = await listing(s, fh)
    assert len(pages) >= 4
    names = [name for page in pages for name, _, _ in page]
    assert names[:2] == [".", ".."] and sorted(names[2:]) == [f"file-{i:04d}" for i in range(FILES)]
    assert s.pages.hits == len(pages) - 1  # every page but the first was waiting in the cache
    assert not s.ahead
    assert await listing(s, fh) == pages  # again: from the cache, nothing read ahead twice
    assert s.pages.hits == 2 * (len(pages) - 1) and not s.ahead
    # At the end of the directory nothing is read ahead: the last page ended it.
    u = await readdirplus(s, fh, pages[-2][-1][1])
    assert entries(u) == (pages[-1], True) and not s.ahead


async def test_a_page_read_ahead_is_not_served_after_a_change(vfs: Vfs, tmp_path: Path) -> None:
    s = service(vfs, tmp_path)
    fh = await make_dir(vfs, s)
    first, second = (await listing(s, fh))[:2]
    await vfs.create(vfs.ns.root.ino, "elsewhere", caller=ROOT)  # the cache is emptied
    assert entries(await readdirplus(s, fh, 0))[0] == first
    await asyncio.gather(*s.ahead)  # the second page is built ahead
    name = second[3][0]
    await vfs.setattr(f"/d/{name}", caller=ROOT, mode=0o600)
    hits = s.pages.hits
    got, eof = entries(await readdirplus(s, fh, first[-1][1]))
    assert s.pages.hits == hits and not eof  # built again, not taken from the read-ahead
    assert [(n, c) for n, c, _ in got] == [(n, c) for n, c, _ in second]
    assert dict((n, m & 0o7777) for n, _, m in got)[name] == 0o600
