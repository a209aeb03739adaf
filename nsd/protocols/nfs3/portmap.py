"""Portmapper v2 (RFC 1833): NULL, GETPORT and DUMP over TCP, for clients that ask port 111.

nsd's portmapper knows only nsd's own programs; SET and UNSET from others are refused.
When port 111 is taken (an rpcbind runs), `register` tells that portmapper about nsd instead.
"""

from __future__ import annotations

import logging
import struct

from nsd.protocols.rpc import client, oncrpc
from nsd.protocols.rpc.server import CallContext, Procedure, Program, ReplyBody
from nsd.protocols.xdr import U32, Packer, Unpacker

log = logging.getLogger("nsd.portmap")

PROGRAM = 100000
VERSION = 2
IPPROTO_TCP = 6
PMAPPROC_NULL, PMAPPROC_SET, PMAPPROC_UNSET, PMAPPROC_GETPORT, PMAPPROC_DUMP = 0, 1, 2, 3, 4

_MAPPING = struct.Struct(">IIII")  # prog, vers, prot, port

Mapping = tuple[int, int, int, int]


def mapping_args(u: Unpacker) -> Mapping:
    prog, vers, prot, port = u.struct(_MAPPING)
    return prog, vers, prot, port


class PortmapService:
    def __init__(self, mappings: list[Mapping]) -> None:
        self.mappings = mappings

    def getport(self, ctx: CallContext) -> ReplyBody:
        prog, vers, prot, _ = mapping_args(ctx.args)
        for p, v, pr, port in self.mappings:
            if (p, v, pr) == (prog, vers, prot):
                return U32.pack(port)
        return U32.pack(0)

    def dump(self, ctx: CallContext) -> ReplyBody:
        p = Packer()
        for m in self.mappings:
            p.bool(True)
            p.raw(_MAPPING.pack(*m))
        p.bool(False)
        return p.buf

    def refuse(self, ctx: CallContext) -> ReplyBody:
        mapping_args(ctx.args)
        return U32.pack(0)


def program(service: PortmapService) -> Program:
    procs = {
        PMAPPROC_NULL: Procedure(lambda ctx: b"", name="NULL"),
        PMAPPROC_SET: Procedure(service.refuse, name="SET"),
        PMAPPROC_UNSET: Procedure(service.refuse, name="UNSET"),
        PMAPPROC_GETPORT: Procedure(service.getport, name="GETPORT"),
        PMAPPROC_DUMP: Procedure(service.dump, name="DUMP"),
    }
    return Program(PROGRAM, VERSION, procs, name="portmap")


async def register(host: str, port: int, mappings: list[Mapping], *, unset: bool = False) -> bool:
    """SET (or UNSET) each mapping with the portmapper at host:port; True if it accepted all."""
    try:
        pm = await client.RpcClient.connect(host, port)
    except (OSError, TimeoutError) as e:
        log.warning("no portmapper at %s:%d: %s", host, port, e)
        return False
    ok = True
    proc = PMAPPROC_UNSET if unset else PMAPPROC_SET
    try:
        for m in mappings:
            reply = await pm.call(PROGRAM, VERSION, proc, _MAPPING.pack(*m))
            ok = ok and reply.accepted and reply.stat == oncrpc.SUCCESS and reply.body[-4:] == U32.pack(1)
    except client.ERRORS as e:
        log.warning("registering with the portmapper at %s:%d failed: %s", host, port, e)
        ok = False
    finally:
        await pm.close()
    return ok
