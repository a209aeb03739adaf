"""Typed journal operations: the only way the namespace changes.

Each op is a small frozen dataclass with a fixed op code. Its payload is the msgpack
encoding of its fields, in declaration order. Op codes are append-only: a retired code
stays reserved (listed in RESERVED_CODES) and is never given to a new op.

Every value an op needs to be replayed deterministically (inode ids, timestamps in ns)
is decided when the op is planned and travels inside it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import msgpack

from nsd.errors import Corrupt

SECRET_WORDS = ("key", "secret", "token", "password", "credential")


def mask_options(options: dict[str, Any]) -> dict[str, Any]:
    """Options as they may be shown: any value whose name suggests a secret is masked."""
    return {k: "****" if any(w in k.lower() for w in SECRET_WORDS) else v for k, v in options.items()}


# Codes that were used once and must never be reused.
RESERVED_CODES: frozenset[int] = frozenset({0})


@dataclass(frozen=True, slots=True)
class Op:
    CODE: ClassVar[int] = 0
    __match_args__: ClassVar[tuple[str, ...]]

    def encode(self) -> bytes:
        # __match_args__: the dataclass's field names in declaration order (all are init fields),
        # without the cost of dataclasses.fields() on every op journaled
        return msgpack.packb([getattr(self, name) for name in self.__match_args__])

    def to_dict(self) -> dict[str, Any]:
        """Field name -> value, for `nsd journal dump` (secrets masked)."""
        out = {"op": type(self).__name__, **dataclasses.asdict(self)}
        if isinstance(out.get("options"), dict):
            out["options"] = mask_options(out["options"])
        return out


@dataclass(frozen=True, slots=True)
class MkNode(Op):
    """Create a file, directory or symlink `name` in directory `parent` as inode `ino`.

    `mode` includes the S_IFMT type bits. The new inode gets atime = mtime = ctime = time_ns,
    and the parent's mtime and ctime become time_ns.
    """

    CODE: ClassVar[int] = 1
    parent: int
    name: str
    ino: int
    mode: int
    uid: int
    gid: int
    time_ns: int
    target: str | None = None  # symlink target


@dataclass(frozen=True, slots=True)
class Link(Op):
    """Add a hard link `name` in `parent` to the existing file `ino`."""

    CODE: ClassVar[int] = 2
    parent: int
    name: str
    ino: int
    time_ns: int


@dataclass(frozen=True, slots=True)
class Unlink(Op):
    """Remove the non-directory entry `name` from `parent`; the inode goes at nlink 0."""

    CODE: ClassVar[int] = 3
    parent: int
    name: str
    time_ns: int


@dataclass(frozen=True, slots=True)
class Rmdir(Op):
    """Remove the empty directory `name` from `parent`."""

    CODE: ClassVar[int] = 4
    parent: int
    name: str
    time_ns: int


@dataclass(frozen=True, slots=True)
class Rename(Op):
    """Move an entry; an existing destination (file, or empty directory) is replaced."""

    CODE: ClassVar[int] = 5
    src_parent: int
    src_name: str
    dst_parent: int
    dst_name: str
    time_ns: int


@dataclass(frozen=True, slots=True)
class SetAttr(Op):
    """Change attributes of `ino`; None leaves a field as it is. ctime always becomes ctime."""

    CODE: ClassVar[int] = 6
    ino: int
    mode: int | None
    uid: int | None
    gid: int | None
    size: int | None
    atime: int | None
    mtime: int | None
    ctime: int


@dataclass(frozen=True, slots=True)
class SetContent(Op):
    """New content for file `ino` has been stored: its size, its mtime and where it lives.

    `fingerprint` is the under-storage fingerprint (size, mtime_ns, etag) after the write,
    or None when the UFS does not hold the content. `layout` is the block layout
    (list of [offset, length, digest]), or None when the file has no cached blocks.
    """

    CODE: ClassVar[int] = 7
    ino: int
    size: int
    time_ns: int
    fingerprint: list[Any] | None = None
    layout: list[Any] | None = None


@dataclass(frozen=True, slots=True)
class UfsSync(Op):
    """What a look at the under-storage found in directory `dir_ino` (one record per listing page).

    `add`: new entries, each [name, ino, mode, uid, gid, size, mtime_ns, fingerprint];
    `update`: entries whose UFS fingerprint changed, each [name, size, mtime_ns, fingerprint]
    (their cached blocks become invalid); `remove`: names gone from the UFS (with their subtrees).
    Discovery is not a change by a client: the directory's own times stay as they are.
    """

    CODE: ClassVar[int] = 8
    dir_ino: int
    add: list[Any]
    update: list[Any]
    remove: list[str]
    time_ns: int


@dataclass(frozen=True, slots=True)
class AddMount(Op):
    """Mount `uri` at entry `name` of directory `parent`, as mount `mount_id`.

    `ino` is the mount point: an existing empty directory, or a new one created by this op.
    `options` may hold credentials: they stay in the journal (inside the private data dir) and
    are masked everywhere they are shown.
    """

    CODE: ClassVar[int] = 9
    mount_id: int
    parent: int
    name: str
    ino: int
    uri: str
    readonly: bool
    options: dict[str, str]
    uid: int
    gid: int
    time_ns: int


@dataclass(frozen=True, slots=True)
class RemoveMount(Op):
    """Unmount: the mount point and everything below it leave the namespace (never the UFS)."""

    CODE: ClassVar[int] = 10
    mount_id: int
    time_ns: int


@dataclass(frozen=True, slots=True)
class CacheBlock(Op):
    """Block [offset, offset+length) of file `ino` is cached as `digest`, read under `fingerprint`.

    Applies only while the file still has that fingerprint: a block read from an older version
    of the UFS object never enters the layout, even if its record lands after the update.
    """

    CODE: ClassVar[int] = 11
    ino: int
    offset: int
    length: int
    digest: str
    fingerprint: list[Any] | None


@dataclass(frozen=True, slots=True)
class DropLayout(Op):
    """Forget the cached blocks of file `ino` (`nsd free`); the UFS copy stays the truth."""

    CODE: ClassVar[int] = 12
    ino: int


@dataclass(frozen=True, slots=True)
class SetPin(Op):
    """Pin (or unpin) file or directory `ino`: a pinned file's blocks are never evicted; files
    and directories created in a pinned directory later are pinned as they are created."""

    CODE: ClassVar[int] = 13
    ino: int
    pinned: bool


@dataclass(frozen=True, slots=True)
class Persisted(Op):
    """Unpersisted file `ino` (written with MUST_CACHE or ASYNC_THROUGH) is now in the under-storage
    with `fingerprint`: its blocks may be evicted from now on, and a pending persist request is done.

    `token` names the content that was uploaded (see layouts.content_token): the op is planned only
    while the file still holds that content, so a persist that raced a newer write never applies.
    """

    CODE: ClassVar[int] = 14
    ino: int
    token: str
    fingerprint: list[Any]


@dataclass(frozen=True, slots=True)
class RequestPersist(Op):
    """Persist unpersisted file `ino` in the background (ASYNC_THROUGH). The request is part of the
    namespace until a Persisted op for the file applies (or the file goes), so it survives restarts."""

    CODE: ClassVar[int] = 15
    ino: int


@dataclass(frozen=True, slots=True)
class SetTtl(Op):
    """Inode `ino` (file or directory) expires at `expires_ns`: then its cached data is freed
    (`action` "free") or it is deleted ("delete"). `expires_ns` None removes the TTL."""

    CODE: ClassVar[int] = 16
    ino: int
    expires_ns: int | None
    action: str


@dataclass(frozen=True, slots=True)
class ReserveInodes(Op):
    """Inode ids from `first` up to `limit` (exclusive) may be given out; ids below `first` not
    given yet never will be. A daemon reserves the next run as it goes (`first` is the next id)
    and, when it starts or becomes a cluster's leader, skips what the last reservation may have
    shown a client before a crash lost its record (`first` is that reservation's limit)."""

    CODE: ClassVar[int] = 17
    first: int
    limit: int


# ---- extended attributes (codes 20-29) ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SetXAttr(Op):
    """Set extended attribute `name` of `ino` to `value` (created or replaced); ctime becomes time_ns."""

    CODE: ClassVar[int] = 20
    ino: int
    name: str
    value: bytes
    time_ns: int


@dataclass(frozen=True, slots=True)
class RemoveXAttr(Op):
    """Remove the existing extended attribute `name` of `ino`; ctime becomes time_ns."""

    CODE: ClassVar[int] = 21
    ino: int
    name: str
    time_ns: int


# ---- under-storage intents (codes 30-39) ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class UfsIntent(Op):
    """nsd is about to change the under-storage where the journal cannot follow atomically.

    Durable before the UFS is touched; the op that records the outcome carries an IntentDone
    in the same batch. An intent still pending at start-up means a crash (or a failure) came
    between the two, and the entries it names are brought back in line with the UFS.
    `kind` and `args`: "content" [ino], "append" [ino, at], "remove" [dir_ino, name],
    "rename" [src_dir, src_name, dst_dir, dst_name].
    """

    CODE: ClassVar[int] = 30
    id: int
    kind: str
    args: list[Any]


@dataclass(frozen=True, slots=True)
class IntentDone(Op):
    """The intent `id` is resolved: its outcome is in the journal (or was reconciled)."""

    CODE: ClassVar[int] = 31
    id: int


# ---- identities (codes 40-49) ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AllocateIds(Op):
    """Names nobody configured and the machine does not know (a Hadoop job's user from another
    cluster) get an id each, once, from `auto_id_range`: `entries` is [[name, id], ...]. The
    user's primary group is the group of the same name, with the same id."""

    CODE: ClassVar[int] = 40
    entries: list[Any]


OPS: dict[int, type[Op]] = {
    cls.CODE: cls
    for cls in (
        MkNode,
        Link,
        Unlink,
        Rmdir,
        Rename,
        SetAttr,
        SetContent,
        UfsSync,
        AddMount,
        RemoveMount,
        CacheBlock,
        DropLayout,
        SetPin,
        Persisted,
        RequestPersist,
        SetTtl,
        ReserveInodes,
        SetXAttr,
        RemoveXAttr,
        UfsIntent,
        IntentDone,
        AllocateIds,
    )
}
assert not RESERVED_CODES & OPS.keys()


def decode_op(code: int, payload: bytes) -> Op:
    """Rebuild an op from its code and payload; anything malformed raises Corrupt."""
    cls = OPS.get(code)
    if cls is None:
        raise Corrupt(f"unknown op code {code}")
    try:
        values = msgpack.unpackb(payload, use_list=True)
        return cls(*values)
    except (ValueError, TypeError, msgpack.UnpackException) as e:
        raise Corrupt(f"bad payload for op {cls.__name__}: {e}") from None
