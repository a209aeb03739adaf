"""MOUNT v3 (RFC 1813 appendix I): hands out root handles of exports and their subdirectories.

Served on the NFS port too, so clients that take explicit ports need no portmapper. MNT of a
path picks the export with the longest path prefix of it, checks the client against its rules
and answers with the handle of the directory (subdirectories of an export can be mounted)
and AUTH_SYS as the only flavor. The mount list (DUMP) is informational, in memory only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from nsd import errors
from nsd.namespace.names import split_path
from nsd.protocols.errmap import nfsstat3
from nsd.protocols.nfs3.exports import Export, Network
from nsd.protocols.nfs3.handles import HandleCodec
from nsd.protocols.nfs3.service import ToLeader
from nsd.protocols.rpc.oncrpc import AUTH_SYS
from nsd.protocols.rpc.server import CallContext, Procedure, ProcFunc, Program, ReplyBody
from nsd.protocols.xdr import U32, Packer, Unpacker
from nsd.vfs import Vfs

log = logging.getLogger("nsd.mount")

PROGRAM = 100005
VERSION = 3
MNTPATHLEN = 1024
MNTNAMLEN = 255

MNT3_OK, MNT3ERR_NOENT, MNT3ERR_IO, MNT3ERR_ACCES, MNT3ERR_NOTDIR = 0, 2, 5, 13, 20
MNT3ERR_INVAL, MNT3ERR_NAMETOOLONG, MNT3ERR_SERVERFAULT = 22, 63, 10006
_VALID = frozenset({0, 1, 2, 5, 13, 20, 22, 63, 10004, 10006})


def dirpath_args(u: Unpacker) -> bytes:
    return u.string(MNTPATHLEN)


class MountService:
    def __init__(self, vfs: Vfs, exports: list[Export], codec: HandleCodec) -> None:
        self.vfs = vfs
        self.exports = exports
        self.codec = codec
        self.mounts: set[tuple[str, str]] = set()

    def export_for(self, path: str) -> Export | None:
        """The export whose path is the longest component-wise prefix of `path`."""
        best: Export | None = None
        for e in self.exports:
            if (path == e.path or path.startswith(e.path.rstrip("/") + "/")) and (
                best is None or len(e.path) > len(best.path)
            ):
                best = e
        return best

    async def mnt(self, ctx: CallContext) -> ReplyBody:
        raw = dirpath_args(ctx.args)
        try:
            path = "/" + "/".join(split_path(raw.decode("utf-8", "surrogateescape") or "/"))
            export = self.export_for(path)
            rule = export.rule_for(ctx.peer_host) if export is not None else None
            if export is None or rule is None:
                log.info("refused mount of %s by %s", path, ctx.peer_host)
                return U32.pack(MNT3ERR_ACCES)
            node = await self.vfs.resolve(path, caller=rule.caller(ctx.cred))  # discovers, as LOOKUP does
            if not node.is_dir:
                return U32.pack(MNT3ERR_NOTDIR)
        except errors.NotLeader as e:
            raise ToLeader(e.message) from e  # a cluster follower: the leader discovers it
        except errors.NsdError as e:
            status = nfsstat3(e)
            return U32.pack(status if status in _VALID else MNT3ERR_IO)
        self.mounts.add((ctx.peer_host, path))
        p = Packer(bytearray(U32.pack(MNT3_OK)))
        p.opaque(self.codec.encode(export.id, node.ino, node.gen))
        p.uint32(1)
        p.uint32(AUTH_SYS)
        return p.buf

    def dump(self, ctx: CallContext) -> ReplyBody:
        p = Packer()
        for host, path in sorted(self.mounts):
            p.bool(True)
            p.string(host.encode()[:MNTNAMLEN])
            p.string(path.encode("utf-8", "surrogateescape")[:MNTPATHLEN])
        p.bool(False)
        return p.buf

    def umnt(self, ctx: CallContext) -> ReplyBody:
        raw = dirpath_args(ctx.args)
        path = raw.decode("utf-8", "surrogateescape")
        self.mounts.discard((ctx.peer_host, path))
        return b""

    def umntall(self, ctx: CallContext) -> ReplyBody:
        self.mounts = {m for m in self.mounts if m[0] != ctx.peer_host}
        return b""

    def export(self, ctx: CallContext) -> ReplyBody:
        p = Packer()
        for e in self.exports:
            p.bool(True)
            p.string(e.path.encode("utf-8", "surrogateescape"))
            for rule in e.rules:
                p.bool(True)
                p.string(_group_name(rule.network))
            p.bool(False)
        p.bool(False)
        return p.buf


def _group_name(network: Network | None) -> bytes:
    if network is None:
        return b"*"
    if network.prefixlen == network.max_prefixlen:
        return str(network.network_address).encode()  # a host, written as exports(5) would
    return str(network).encode()


def busy(proc: int) -> bytes:
    """What MNT answers when it cannot now (a cluster follower without a way to the leader)."""
    return U32.pack(MNT3ERR_IO)


def program(service: MountService, wrap: Callable[[ProcFunc, int], ProcFunc] | None = None) -> Program:
    """The MOUNT program (100005 v3); `wrap` (cluster mode) may take MNT elsewhere."""
    procs = {
        0: Procedure(lambda ctx: b"", name="NULL"),
        1: Procedure(wrap(service.mnt, 1) if wrap else service.mnt, name="MNT"),
        2: Procedure(service.dump, name="DUMP"),
        3: Procedure(service.umnt, name="UMNT"),
        4: Procedure(service.umntall, name="UMNTALL"),
        5: Procedure(service.export, name="EXPORT"),
    }
    return Program(PROGRAM, VERSION, procs, name="mount3")
