"""What every NFSv3 procedure shares: the vfs, the exports, handles, identities, error replies.

A procedure turns its handle(s) into `Target`s here: the handle is checked (BADHANDLE, STALE),
its export must still exist and be exported to the calling host (ACCES otherwise), and the
inode must be alive with the handle's generation (STALE). The caller's AUTH_SYS identity is
squashed per the export's rule.

A client outside an export's allow-list is refused at every call that names one of its handles
with an RPC AUTH_ERROR (AUTH_TOOWEAK), as nfs-ganesha answers; MOUNT refuses it with
MNT3ERR_ACCES. Permission checks are the vfs's: procedures pass the squashed caller along.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nsd import errors
from nsd.core.wcc import Watch
from nsd.namespace import Inode
from nsd.namespace.names import utf8
from nsd.protocols.errmap import nfsstat3
from nsd.protocols.nfs3.attrs import NO_ATTR, NO_WCC, AttrCache, post_op_attr, pre_op_attr
from nsd.protocols.nfs3.const import NfsError, Status
from nsd.protocols.nfs3.entries import EntryCache, Page
from nsd.protocols.nfs3.exports import Export, Rule
from nsd.protocols.nfs3.handles import HandleCodec
from nsd.protocols.nfs3.slowreads import SlowReads
from nsd.protocols.nfs3.versioned import VersionedCache
from nsd.protocols.rpc.oncrpc import AUTH_TOOWEAK, AuthError
from nsd.protocols.rpc.server import CallContext
from nsd.protocols.xdr import U32
from nsd.vfs import Caller, Vfs


@dataclass(slots=True)
class Target:
    """A resolved handle: the object, the export it was reached through, and who asks."""

    export: Export
    rule: Rule
    node: Inode
    caller: Caller

    @property
    def ino(self) -> int:
        return self.node.ino

    def require_writable(self) -> None:
        if not self.rule.rw:
            raise NfsError(Status.ROFS, f"export {self.export.path} is read-only for this client")


class ToLeader(Exception):
    """A cluster follower met a change only the leader can make (NotLeader): relay the call."""


def status_of(exc: BaseException) -> Status:
    if isinstance(exc, NfsError):
        return exc.status
    if isinstance(exc, errors.NotLeader):
        raise ToLeader(exc.message) from exc  # nothing changed here yet: the leader answers instead
    try:
        return Status(nfsstat3(exc))
    except ValueError:
        return Status.SERVERFAULT


def status_word(exc: BaseException) -> bytes:
    return U32.pack(status_of(exc))


OK = U32.pack(Status.OK)
Failure = (NfsError, errors.NsdError)

# What a GETATTR, LOOKUP or ACCESS reply follows from: the client's host (its export rule), the
# procedure, the credential's ids (squashing, permissions) and the arguments byte for byte.
ReplyKey = tuple[Any, ...]
NOT_KEPT: ReplyKey = ()  # the key of a call whose reply is never kept
MAX_KEYED_ARGS = 512  # those calls' arguments are shorter (a LOOKUP's: 4 + 64 + 4 + 256)


def decode_name(raw: bytes | memoryview) -> str:
    """A file name (or symlink target) from the wire. The namespace and its journal hold
    Unicode only, so bytes that are not UTF-8 are refused (INVAL) before anything is touched."""
    try:
        return str(raw, "utf-8")
    except UnicodeDecodeError:
        raise NfsError(Status.INVAL, "name is not valid UTF-8") from None


class Nfs3Service:
    def __init__(
        self,
        vfs: Vfs,
        exports: list[Export],
        codec: HandleCodec,
        statfs_path: Path,
        slow_reads: SlowReads | None = None,
    ) -> None:
        self.vfs = vfs
        self.exports = {e.id: e for e in exports}
        self.codec = codec
        self.statfs_path = statfs_path
        # not `or`: an empty SlowReads is falsy (it has __len__), and the configured one must stay
        self.slow_reads = slow_reads if slow_reads is not None else SlowReads()
        self.attrs = AttrCache()  # post_op_attr of inodes encoded lately
        self.entries = EntryCache(codec)  # READDIRPLUS entries encoded lately
        # READDIR(PLUS) replies' entries, and whole GETATTR, LOOKUP and ACCESS replies, while nothing changed
        self.pages: VersionedCache[tuple[int, ...], Page] = VersionedCache(16 << 20)
        self.replies: VersionedCache[ReplyKey, bytes] = VersionedCache(4 << 20)
        self.ahead: set[asyncio.Task[None]] = set()  # pages read ahead (readdir._read_ahead)

    # ---- handles ----------------------------------------------------------------------------

    async def resolve(self, ctx: CallContext, fh: bytes | memoryview) -> Target:
        """The live object a handle names, for this caller. NfsError or core errors otherwise.

        The vfs re-checks the object against its under-storage when the mount's sync interval
        says so; an object gone from there is STALE to the handle's holder."""
        return self.resolve_known(ctx, fh) or await self.resolve_due(ctx, fh)

    async def resolve_due(self, ctx: CallContext, fh: bytes | memoryview) -> Target:
        """`resolve` for an object `resolve_known` found due for a re-check."""
        export_id, ino, gen = self.codec.decode(fh)
        export, rule = self._route(ctx, export_id)
        try:
            node = await self.vfs.getattr(ino)
        except errors.NotFound:
            raise NfsError(Status.STALE, f"inode {ino} is gone from the under-storage") from None
        return self._target(ctx, export, rule, node, gen)

    def resolve_known(self, ctx: CallContext, fh: bytes | memoryview) -> Target | None:
        """`resolve` without a coroutine, the hot path: None when the object is due for a
        re-check against its under-storage (then `await resolve_due`)."""
        export_id, ino, gen = self.codec.decode(fh)
        export, rule = self._route(ctx, export_id)
        node = self.vfs.peek_fresh(ino)
        return None if node is None else self._target(ctx, export, rule, node, gen)

    def _route(self, ctx: CallContext, export_id: int) -> tuple[Export, Rule]:
        """The handle's export and the rule it has for the calling host (checked first)."""
        export = self.exports.get(export_id)
        if export is None:
            raise NfsError(Status.STALE, f"no export {export_id}")
        rule = export.rule_for(ctx.peer_host)
        if rule is None:
            raise AuthError(AUTH_TOOWEAK, f"{export.path} is not exported to {ctx.peer_host}")
        return export, rule

    @staticmethod
    def _target(ctx: CallContext, export: Export, rule: Rule, node: Inode, gen: int) -> Target:
        if node.gen != gen:
            raise NfsError(Status.STALE, f"inode {node.ino} generation {node.gen}, handle has {gen}")
        return Target(export, rule, node, rule.caller(ctx.cred))

    def handle(self, export: Export, node: Inode) -> bytes:
        return self.codec.encode(export.id, node.ino, node.gen)

    def export_root(self, export: Export) -> Inode:
        return self.vfs.peek_path(export.path)

    async def lookup(self, target: Target, name: str) -> Inode:
        """LOOKUP semantics: "." is the directory, ".." its parent but never above the export root."""
        if name == ".." and target.node.ino == self.export_root(target.export).ino:
            return target.node
        return await self.vfs.lookup(target.ino, name, caller=target.caller)

    def parent(self, target: Target) -> Inode:
        """The ".." entry of a directory as READDIR lists it (no search permission needed)."""
        if target.node.ino == self.export_root(target.export).ino:
            return target.node
        return target.node.parent

    # ---- whole replies of the calls that read metadata -----------------------------------------

    def kept_reply(self, ctx: CallContext) -> tuple[int, ReplyKey, bytes | None]:
        """The namespace's version now, this call's key in `replies`, and the reply kept for it
        (None: build it, then `keep_reply`)."""
        version, call = self.vfs.version, ctx.call
        raw = call.record[call.args_offset :]
        if len(raw) > MAX_KEYED_ARGS:
            return version, NOT_KEPT, None
        cred = call.cred
        if cred is None:
            key: ReplyKey = (ctx.peer_host, call.proc, bytes(raw))
        else:
            key = (ctx.peer_host, call.proc, cred.uid, cred.gid, cred.gids, bytes(raw))
        return version, key, self.replies.get(version, key)

    def answers_sent_again(self) -> dict[str, int]:
        """How many answers were sent as kept, by kind (for /metrics)."""
        return {"reply": self.replies.hits, "page": self.pages.hits}

    def keep_reply(self, version: int, key: ReplyKey, reply: bytes, node: Inode) -> None:
        """Keep a reply built at `version` for the same call again, unless the namespace moved
        while it was built or `node` is re-checked against its under-storage on a clock (its
        answer may change with no change here)."""
        if key and self.vfs.version == version and not self.vfs.rechecks(node):
            self.replies.put(version, key, reply, len(reply) + len(key[-1]))

    # ---- attributes -------------------------------------------------------------------------

    @staticmethod
    def fsid(export: Export) -> int:
        return export.id

    def attr(self, target: Target) -> bytes:
        """post_op_attr of the target as it is now, from memory: right after an operation there is
        nothing to re-check against the under-storage (and a removed object has none)."""
        try:
            node = self.vfs.peek(target.ino)
        except errors.NsdError:
            return NO_ATTR
        return self.attrs.post_op_attr(node, target.export.id)

    def attr_of(self, export: Export, node: Inode) -> bytes:
        return self.attrs.post_op_attr(node, export.id)

    def maybe_attr(self, target: Target | None) -> bytes:
        return NO_ATTR if target is None else self.attr(target)

    def wcc(self, watch: Watch, target: Target | None) -> bytes:
        """wcc_data of `target`: its attributes just before and just after this call's change,
        taken at the change (see nsd.core.wcc). When the call changed nothing there is no pre-op part,
        only the attributes now, so a client never takes some other change for this one."""
        if target is None:
            return NO_WCC
        pair = watch.pair(target.ino)
        if pair is None:
            return NO_ATTR + self.attr(target)
        before, after = pair
        return pre_op_attr(before) + (NO_ATTR if after is None else post_op_attr(after, target.export.id))

    # ---- misc -------------------------------------------------------------------------------

    def statvfs(self) -> os.statvfs_result:
        return os.statvfs(self.statfs_path)

    @staticmethod
    def name_bytes(name: str) -> bytes:
        return utf8(name)
