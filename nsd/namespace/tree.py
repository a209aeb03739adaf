"""The namespace tree: inodes by id, directories by name.

Theory of operation: callers never change the tree directly. `plan_*()` validates a change
against the current tree and returns the op(s) that make it, changing nothing; the caller
journals the op and hands it to `apply()`, the only mutator, which is deterministic so that
replaying the journal rebuilds the same tree. `apply()` re-checks every op before touching
anything (replay of a bad log raises Corrupt and leaves the tree as it was).

Link counts follow POSIX: a directory has 2 + its number of subdirectories, anything else one
per directory entry naming it. An inode whose count reaches 0 leaves `inodes` at once
(NFS has no open files to keep it alive). Inode ids are never reused.
"""

from __future__ import annotations

import stat
from collections.abc import Callable, Iterable, Iterator
from itertools import count, islice
from typing import Any

from nsd.errors import (
    Corrupt,
    CrossDevice,
    Exists,
    Invalid,
    IsDir,
    Loop,
    NameTooLong,
    NotDir,
    NotEmpty,
    NotFound,
    NotPermitted,
    NotSupported,
    NsdError,
    Stale,
)
from nsd.journal.ops import (
    AddMount,
    AllocateIds,
    CacheBlock,
    DropLayout,
    IntentDone,
    Link,
    MkNode,
    Op,
    Persisted,
    RemoveMount,
    RemoveXAttr,
    Rename,
    RequestPersist,
    ReserveInodes,
    Rmdir,
    SetAttr,
    SetContent,
    SetPin,
    SetTtl,
    SetXAttr,
    UfsIntent,
    UfsSync,
    Unlink,
)
from nsd.namespace import identities, image, inode_ids, intents, layouts, mounts
from nsd.namespace.inode import (
    ROOT_INO,
    S_IFMT,
    SPECIAL_KINDS,
    Children,
    DirInode,
    FileInode,
    Inode,
    SpecialInode,
    SymlinkInode,
)
from nsd.namespace.names import PATH_MAX, join_path, split_path, utf8, validate_name
from nsd.namespace.table import MASK, SHIFT, InodeTable

MAX_SYMLINKS = 40  # as Linux: the 41st link followed in one resolution is a loop
XATTR_MAX_BYTES = 16384  # name + value, as HDFS's dfs.namenode.fs-limits.max-xattr-size
XATTRS_PER_INODE = 32  # as HDFS's dfs.namenode.fs-limits.max-xattrs-per-inode

PERMS = 0o7777
_VERSIONS = count(1)  # one sequence for every Namespace of the process: a version never repeats
NAMES_SHARED = 1 << 16  # names kept for sharing (Namespace.recent_names): ~6 MB at most
Search = Callable[[DirInode], None]  # called for each directory a path walk looks into

Entry = tuple[int, str, Inode]


class Namespace:
    """The whole tree in memory. Not thread-safe; one event loop owns it."""

    def __init__(self, *, root_uid: int = 0, root_gid: int = 0, root_mode: int = 0o755, time_ns: int = 0) -> None:
        # Modes, uids and gids repeat across millions of inodes; one int object each.
        self.interned: dict[int, int] = {}
        # Names made by recent creates and renames, so one name used in many directories
        # (part-00000.parquet, _SUCCESS) is one str object; bounded: cleared at NAMES_SHARED.
        self.recent_names: dict[str, str] = {}
        mode = self.intern(stat.S_IFDIR | (root_mode & PERMS))
        uid, gid = self.intern(root_uid), self.intern(root_gid)
        self.root = DirInode(ROOT_INO, 1, mode, uid, gid, 2, 0, time_ns, time_ns, time_ns, 0, None, None, "")
        self.inodes = InodeTable()  # ino -> Inode, ~8 bytes an inode (a dict costs ~40)
        self.inodes[ROOT_INO] = self.root
        self.next_ino = ROOT_INO + 1
        self.ino_limit = 0  # ids at or above it are not reserved yet (nsd.namespace.inode_ids); 0: never reserved
        # Moved by every change of the tree or of an inode's attributes (each op applied, and
        # `changed()` for what is not journaled), never to a value any namespace had: caches of
        # answers derived from them compare it.
        self.version = next(_VERSIONS)
        # The op a plan function just checked against the tree as it is (a listing page's
        # UfsSync): applied next, with nothing changed in between, its checks need not run twice.
        self.checked_op: Op | None = None
        # Every link of each inode that has more than one: where to move the primary link
        # (Inode.parent/name) when that entry goes. Hard links are rare; this stays small.
        self.links: dict[int, list[tuple[DirInode, str]]] = {}
        self.mounts: dict[int, mounts.Mount] = {}
        self.pinned: set[int] = set()
        self.layout_listener: layouts.LayoutListener | None = None
        # digest -> references from unpersisted or pinned files (derived; see layouts.py)
        self.kept: dict[str, int] = {}
        self.persist_pending: set[int] = set()  # unpersisted files waiting for the background persister
        self.ttls: dict[int, tuple[int, str]] = {}  # ino -> (expires_ns, "free" | "delete")
        self.next_mount_id = mounts.ROOT_MOUNT + 1
        # Extended attributes by inode id, only for inodes that have any: most have none, and
        # a slot on every inode would cost memory across millions of them.
        self.xattrs: dict[int, dict[str, bytes]] = {}
        # Open under-storage intents (nsd.namespace.intents): id -> (kind, args). Usually empty.
        self.intents: dict[int, tuple[str, list[Any]]] = {}
        self.next_intent = 1
        # Ids given to names nobody knows here (nsd.namespace.identities): name -> id.
        self.auto_ids: dict[str, int] = {}
        self._appliers: dict[type[Op], Callable[[Any], None]] = {
            MkNode: self._apply_mknod,
            Link: self._apply_link,
            Unlink: self._apply_unlink,
            Rmdir: self._apply_rmdir,
            Rename: self._apply_rename,
            SetAttr: self._apply_setattr,
            SetContent: self._apply_set_content,
            UfsSync: lambda op: mounts.apply_ufs_sync(self, op),
            AddMount: lambda op: mounts.apply_add_mount(self, op),
            RemoveMount: lambda op: mounts.apply_remove_mount(self, op),
            CacheBlock: lambda op: layouts.apply_cache_block(self, op),
            DropLayout: lambda op: layouts.apply_drop_layout(self, op),
            SetPin: lambda op: layouts.apply_set_pin(self, op),
            Persisted: lambda op: layouts.apply_persisted(self, op),
            RequestPersist: lambda op: layouts.apply_request_persist(self, op),
            SetTtl: lambda op: layouts.apply_set_ttl(self, op),
            SetXAttr: self._apply_setxattr,
            RemoveXAttr: self._apply_removexattr,
            UfsIntent: lambda op: intents.apply_intent(self, op),
            IntentDone: lambda op: intents.apply_done(self, op),
            AllocateIds: lambda op: identities.apply_allocate(self, op),
            ReserveInodes: lambda op: inode_ids.apply_reserve(self, op),
        }
        self._checked_appliers: dict[type[Op], Callable[[Any], None]] = {
            UfsSync: lambda op: mounts.apply_ufs_sync(self, op, check=False),
        }

    def intern(self, value: int) -> int:
        """The one int object kept for `value` (see `interned`)."""
        return self.interned.setdefault(value, value)

    def share_name(self, name: str) -> str:
        """An equal name made recently, else `name` (see `recent_names`). Cost: a dict lookup."""
        names = self.recent_names
        if len(names) >= NAMES_SHARED:
            names.clear()
        return names.setdefault(name, name)

    def forget_side_state(self, ino: int) -> None:
        """A directory (or other non-file) inode left the tree: drop what side tables hold for it."""
        self.xattrs.pop(ino, None)
        self.ttls.pop(ino, None)
        self.pinned.discard(ino)

    # ---- lookups -------------------------------------------------------------------------

    def get(self, ino: int) -> Inode:
        """The live inode `ino`; Stale if it never existed or is gone. O(1)."""
        try:  # InodeTable.__getitem__ inline: a Python call less on every NFS call
            node = self.inodes.pages[ino >> SHIFT][ino & MASK]
        except (KeyError, TypeError):
            raise Stale(f"no inode {ino!r}") from None
        if node is None:
            raise Stale(f"no inode {ino!r}")
        return node

    def get_dir(self, ino: int) -> DirInode:
        """The live directory `ino`; Stale, or NotDir if it is something else. O(1)."""
        node = self.get(ino)
        if not isinstance(node, DirInode):
            raise NotDir(f"inode {ino} is not a directory")
        return node

    def lookup(self, dir_ino: int, name: str) -> Inode:
        """The entry `name` of directory `dir_ino` ("." and ".." are the directory and its parent).

        Raises Stale, NotDir, NotFound, or Invalid/NameTooLong for a name that cannot exist. O(1).
        """
        d = self.get_dir(dir_ino)
        node = d.children.get(name)
        if node is not None:
            return node
        if name == ".":
            return d
        if name == "..":
            return d.parent
        validate_name(name)
        path = self._child_path(d, name)
        raise NotFound(f"no such file or directory: {path}", path=path)

    def resolve(self, path: str, *, follow: bool = True, search: Search | None = None) -> Inode:
        """The inode at absolute `path`.

        Symlinks are followed in every component but the last, and in the last too when
        `follow`; relative targets start at the link's directory. Raises NotFound, NotDir, Loop
        (over MAX_SYMLINKS links), Invalid/NameTooLong. `search(d)` is called for every
        directory the walk looks into, before it looks (permission checks raise from it).
        Cost: O(components + link targets).
        """
        return self._walk(self.root, split_path(path), follow, path, search)

    def resolve_parent(self, path: str) -> tuple[DirInode, str]:
        """The directory that holds (or would hold) the last component of `path`, and that name.

        The last component need not exist. Raises Invalid for "/", NotDir if the parent is not
        a directory, and whatever `resolve` raises for the parent.
        """
        parts = split_path(path)
        if not parts:
            raise Invalid("the root has no parent", path=path)
        parent = self._walk(self.root, parts[:-1], True, path)
        if not isinstance(parent, DirInode):
            raise NotDir(f"not a directory: parent of {path}", path=path)
        return parent, parts[-1]

    def path_of(self, ino: int) -> str:
        """The path of `ino` through its primary link (a directory has only that one). Cost: its depth."""
        node = self.get(ino)
        if isinstance(node, DirInode):
            return self._dir_path(node)
        return self._child_path(node.parent, node.name)

    def _walk(self, start: DirInode, parts: list[str], follow: bool, path: str, search: Search | None = None) -> Inode:
        todo = parts[::-1]  # components left, next one last; link targets are pushed on it
        cur: Inode = start
        links = 0
        while todo:
            name = todo.pop()
            if not isinstance(cur, DirInode):
                raise NotDir(f"not a directory: component before {name!r} in {path}", path=path)
            if search is not None:
                search(cur)
            if name == ".":
                continue
            if name == "..":
                cur = cur.parent
                continue
            child = cur.children.get(name)
            if child is None:
                missing = NotFound(f"no such file or directory: {self._child_path(cur, name)} (in {path})", path=path)
                missing.missing = (cur.ino, name)  # where discovery in the under-storage would look
                raise missing
            if isinstance(child, SymlinkInode) and (todo or follow):
                links += 1
                if links > MAX_SYMLINKS:
                    raise Loop(f"too many levels of symbolic links: {path}", path=path)
                if child.target.startswith("/"):
                    cur = self.root
                todo.extend(p for p in reversed(child.target.split("/")) if p)
                continue
            cur = child
        return cur

    def _dir_path(self, d: DirInode) -> str:
        names = []
        while d is not self.root:
            names.append(d.name)
            d = d.parent
        return "/" + "/".join(reversed(names))

    def _child_path(self, d: DirInode, name: str) -> str:
        return join_path(self._dir_path(d), name)

    # ---- planning: validate, change nothing, return op(s) -----------------------------------

    def plan_mknod(
        self,
        parent_ino: int,
        name: str,
        mode: int,
        uid: int,
        gid: int,
        time_ns: int,
        target: str | None = None,
    ) -> MkNode:
        """Create a file, directory, symlink, FIFO or socket (mode includes S_IFMT) as the next inode id.

        Raises Stale/NotDir for the parent, Invalid/NameTooLong for the name or target, Exists,
        NotSupported for other file types.
        """
        op = MkNode(parent_ino, name, self.next_ino, mode, uid, gid, time_ns, target)
        self._check_mknod(op)
        return op

    def plan_mkdirs(self, path: str, mode: int, uid: int, gid: int, time_ns: int) -> list[MkNode]:
        """`mkdir -p`: one MkNode per missing directory of `path`, with consecutive inode ids.

        Existing directories (or symlinks to them) along the way are fine; an existing
        non-directory raises NotDir in the middle and Exists at the end. [] if all exist.
        """
        parts = split_path(path)
        cur = self.root
        i = 0
        while i < len(parts):
            child = cur.children.get(parts[i])
            if child is None:
                break
            if isinstance(child, SymlinkInode):
                child = self._walk(cur, [parts[i]], True, path)
            if not isinstance(child, DirInode):
                where = join_path("/", *parts[: i + 1])
                if i < len(parts) - 1:
                    raise NotDir(f"not a directory: {where}", path=where)
                raise Exists(f"exists and is not a directory: {where}", path=where)
            cur = child
            i += 1
        ops = []
        parent = cur.ino
        ino = self.next_ino
        dir_mode = stat.S_IFDIR | (mode & PERMS)
        for name in parts[i:]:
            ops.append(MkNode(parent, name, ino, dir_mode, uid, gid, time_ns))
            parent, ino = ino, ino + 1
        if ops:
            _check_owner(uid, gid)
        return ops

    def plan_link(self, ino: int, parent_ino: int, name: str, time_ns: int) -> Link:
        """A new name for the non-directory `ino`. NotPermitted for directories (as link(2))."""
        op = Link(parent_ino, name, ino, time_ns)
        self._check_link(op)
        return op

    def plan_unlink(self, parent_ino: int, name: str, time_ns: int) -> Unlink:
        """Remove a non-directory entry. Raises NotFound, IsDir."""
        op = Unlink(parent_ino, name, time_ns)
        self._check_unlink(op)
        return op

    def plan_rmdir(self, parent_ino: int, name: str, time_ns: int) -> Rmdir:
        """Remove an empty directory. Raises NotFound, NotDir, NotEmpty."""
        op = Rmdir(parent_ino, name, time_ns)
        self._check_rmdir(op)
        return op

    def plan_rename(self, src_parent: int, src_name: str, dst_parent: int, dst_name: str, time_ns: int) -> Rename:
        """rename(2): move an entry, replacing a file by a non-directory or an empty dir by a dir.

        Renaming an entry onto itself (or onto another link to the same inode) is a valid no-op.
        Raises NotFound, NotEmpty, IsDir (non-directory over a directory), NotDir (directory over
        a non-directory), Invalid (a directory into its own subtree).
        """
        op = Rename(src_parent, src_name, dst_parent, dst_name, time_ns)
        self._check_rename(op)
        return op

    def plan_setattr(
        self,
        ino: int,
        *,
        mode: int | None = None,
        uid: int | None = None,
        gid: int | None = None,
        size: int | None = None,
        atime: int | None = None,
        mtime: int | None = None,
        time_ns: int,
    ) -> SetAttr:
        """Change attributes; None keeps one. Only permission bits of `mode` (0o7777) count.

        ctime becomes time_ns; changing the size also sets mtime to time_ns unless `mtime` is
        given. Size is for regular files only (IsDir for a directory, Invalid otherwise).
        """
        node = self.get(ino)
        if mode is not None:
            _check_nonneg("mode", mode)
            mode = (node.mode & S_IFMT) | (mode & PERMS)
        if size is not None and mtime is None and size != node.size:
            mtime = time_ns
        op = SetAttr(ino, mode, uid, gid, size, atime, mtime, time_ns)
        self._check_setattr(op)
        return op

    def plan_set_content(
        self,
        ino: int,
        size: int,
        time_ns: int,
        fingerprint: list[Any] | None = None,
        layout: list[Any] | None = None,
    ) -> SetContent:
        """New content for file `ino` (size, mtime = ctime = time_ns, fingerprint, layout)."""
        op = SetContent(ino, size, time_ns, fingerprint, layout)
        self._check_set_content(op)
        return op

    def plan_setxattr(self, ino: int, name: str, value: bytes, time_ns: int) -> SetXAttr:
        """Create or replace xattr `name` of `ino`. Invalid for a bad name or value, NoSpace-like
        Invalid past the per-inode count or size limits."""
        op = SetXAttr(ino, name, value, time_ns)
        self._check_setxattr(op)
        return op

    def plan_removexattr(self, ino: int, name: str, time_ns: int) -> RemoveXAttr:
        """Remove the xattr `name` of `ino`; NotFound if it has none of that name."""
        op = RemoveXAttr(ino, name, time_ns)
        self._check_removexattr(op)
        return op

    def get_xattrs(self, ino: int) -> dict[str, bytes]:
        """The xattrs of live inode `ino` (a copy; empty if none). Raises Stale. O(its xattrs)."""
        self.get(ino)
        return dict(self.xattrs.get(ino, ()))

    # ---- checks shared by planning and apply (raise NsdError, change nothing) --------------

    def _check_mknod(self, op: MkNode) -> DirInode:
        parent = self.get_dir(op.parent)
        validate_name(op.name)
        if op.name in parent.children:
            path = self._child_path(parent, op.name)
            raise Exists(f"file exists: {path}", path=path)
        if type(op.mode) is not int or not 0 <= op.mode <= S_IFMT | PERMS:
            raise Invalid(f"invalid mode {op.mode!r}")
        kind = op.mode & S_IFMT
        if kind == stat.S_IFLNK:
            _check_target(op.target)
        elif kind in (stat.S_IFREG, stat.S_IFDIR) or kind in SPECIAL_KINDS:
            if op.target is not None:
                raise Invalid(f"only a symlink has a target: {self._child_path(parent, op.name)}")
        elif kind == 0:
            raise Invalid(f"mode {op.mode:o} has no file type")
        else:
            raise NotSupported(f"file type {kind:o} is not supported: {self._child_path(parent, op.name)}")
        _check_owner(op.uid, op.gid)
        return parent

    def _check_link(self, op: Link) -> tuple[DirInode, Inode]:
        node = self.get(op.ino)
        if isinstance(node, DirInode):
            raise NotPermitted(f"hard link to a directory: {self._dir_path(node)}")
        parent = self.get_dir(op.parent)
        validate_name(op.name)
        if op.name in parent.children:
            path = self._child_path(parent, op.name)
            raise Exists(f"file exists: {path}", path=path)
        if node.mount != parent.mount:
            raise CrossDevice(f"cannot link across mounts: {self._child_path(parent, op.name)}")
        return parent, node

    def _entry(self, parent_ino: int, name: str) -> tuple[DirInode, Inode]:
        parent = self.get_dir(parent_ino)
        node = parent.children.get(name)
        if node is None:
            validate_name(name)
            path = self._child_path(parent, name)
            raise NotFound(f"no such file or directory: {path}", path=path)
        return parent, node

    def _check_unlink(self, op: Unlink) -> tuple[DirInode, Inode]:
        parent, node = self._entry(op.parent, op.name)
        if isinstance(node, DirInode):
            path = self._child_path(parent, op.name)
            raise IsDir(f"is a directory: {path}", path=path)
        return parent, node

    def _check_rmdir(self, op: Rmdir) -> tuple[DirInode, DirInode]:
        parent, node = self._entry(op.parent, op.name)
        if not isinstance(node, DirInode):
            path = self._child_path(parent, op.name)
            raise NotDir(f"not a directory: {path}", path=path)
        if node.children:
            path = self._child_path(parent, op.name)
            raise NotEmpty(f"directory not empty: {path}", path=path)
        self._not_a_mount_point(node, "remove")
        return parent, node

    def _not_a_mount_point(self, node: Inode, action: str) -> None:
        if mounts.is_mount_point(self, node):
            path = self.path_of(node.ino)
            raise Invalid(f"cannot {action} mount point {path}: unmount it instead", path=path)

    def _check_rename(self, op: Rename) -> tuple[DirInode, Inode, DirInode, Inode | None] | None:
        """(src dir, node, dst dir, replaced node or None), or None for a no-op."""
        src, node = self._entry(op.src_parent, op.src_name)
        dst = self.get_dir(op.dst_parent)
        validate_name(op.dst_name)
        if src is dst and op.src_name == op.dst_name:
            return None
        old = dst.children.get(op.dst_name)
        if old is node:
            return None  # two links to one inode: rename(2) does nothing
        self._not_a_mount_point(node, "rename")
        if old is not None:
            self._not_a_mount_point(old, "replace")
        if node.mount != dst.mount:
            raise CrossDevice(
                f"cannot rename across mounts: {self._child_path(src, op.src_name)} -> "
                f"{self._child_path(dst, op.dst_name)}"
            )
        if isinstance(node, DirInode):
            for m in self.mounts.values():
                d = m.point.parent
                while d is not self.root and d is not node:
                    d = d.parent
                if d is node:
                    raise Invalid(f"cannot move {self._dir_path(node)}: {self._dir_path(m.point)} is mounted below it")
        if isinstance(node, DirInode) and dst is not src:
            d = dst  # as Linux, this comes before the checks on what the destination holds
            while True:
                if d is node:
                    raise Invalid(f"cannot move {self._dir_path(node)} into its own subtree {self._dir_path(dst)}")
                if d is self.root:
                    break
                d = d.parent
        if old is not None:
            path = self._child_path(dst, op.dst_name)
            if isinstance(node, DirInode):
                if not isinstance(old, DirInode):
                    raise NotDir(f"not a directory: {path}", path=path)
                if old.children:
                    raise NotEmpty(f"directory not empty: {path}", path=path)
            elif isinstance(old, DirInode):
                raise IsDir(f"is a directory: {path}", path=path)
        return src, node, dst, old

    def _check_setattr(self, op: SetAttr) -> Inode:
        node = self.get(op.ino)
        if op.size is not None:
            if isinstance(node, DirInode):
                raise IsDir(f"cannot set the size of a directory: {self._dir_path(node)}")
            if not isinstance(node, FileInode):
                raise Invalid(f"cannot set the size of inode {op.ino}: not a regular file")
            _check_nonneg("size", op.size)
            if layouts.unpersisted(node) and op.size != node.size:
                raise Invalid(f"inode {op.ino} lives in blocks: its size changes with new content only")
        if op.mode is not None:
            _check_nonneg("mode", op.mode)
        _check_owner(op.uid, op.gid)
        return node

    def _check_setxattr(self, op: SetXAttr) -> Inode:
        node = self.get(op.ino)
        if not isinstance(op.name, str) or not op.name or "\0" in op.name:
            raise Invalid(f"invalid xattr name {op.name!r}")
        if not isinstance(op.value, bytes):
            raise Invalid(f"xattr value must be bytes, not {type(op.value).__name__}")
        if len(utf8(op.name)) + len(op.value) > XATTR_MAX_BYTES:
            raise Invalid(f"xattr {op.name!r} is over {XATTR_MAX_BYTES} bytes (name + value)")
        have = self.xattrs.get(op.ino, {})
        if op.name not in have and len(have) >= XATTRS_PER_INODE:
            raise Invalid(f"inode {op.ino} already has {XATTRS_PER_INODE} xattrs, the most allowed")
        return node

    def _check_removexattr(self, op: RemoveXAttr) -> Inode:
        node = self.get(op.ino)
        if op.name not in self.xattrs.get(op.ino, {}):
            raise NotFound(f"no xattr {op.name!r} on inode {op.ino}")
        return node

    def _check_set_content(self, op: SetContent) -> FileInode:
        node = self.get(op.ino)
        if isinstance(node, DirInode):
            raise IsDir(f"a directory has no content: {self._dir_path(node)}")
        if not isinstance(node, FileInode):
            raise Invalid(f"inode {op.ino} is not a regular file")
        _check_nonneg("size", op.size)
        if op.fingerprint is not None and not isinstance(op.fingerprint, list):
            raise Invalid(f"fingerprint is not a list: {op.fingerprint!r}")
        layouts.check_layout(op.layout, op.size, complete=op.fingerprint is None and op.layout is not None)
        return node

    # ---- apply: the only mutator ------------------------------------------------------------

    def changed(self) -> None:
        """An inode's attributes changed outside `apply` (an unstable write, not journaled)."""
        self.version = next(_VERSIONS)
        self.checked_op = None

    def apply(self, op: Op) -> None:
        """Make `op` true in memory; deterministic, so journal replay gives the same tree.

        Raises Corrupt (and changes nothing) if the op does not fit the current tree.
        Cost: O(log n) in the size of the directories involved.
        """
        checked, self.checked_op = self.checked_op is op, None
        applier = (checked and self._checked_appliers.get(type(op))) or self._appliers.get(type(op))
        if applier is None:
            raise Corrupt(f"cannot apply unknown op {op!r}")
        self.version = next(_VERSIONS)
        try:
            applier(op)
        except Corrupt:
            raise
        except (NsdError, TypeError, ValueError, AttributeError) as e:
            # Raised by the checks, before anything changed.
            raise Corrupt(f"cannot apply {op!r}: {e}") from e

    def _apply_mknod(self, op: MkNode) -> None:
        parent = self._check_mknod(op)
        ino = op.ino
        if type(ino) is not int or ino < self.next_ino:
            raise Corrupt(f"cannot apply {op!r}: inode id {ino} is not above the last one given")
        inode_ids.check_new_ids(self, ino)
        _check_time(op.time_ns)
        t = op.time_ns
        mode, uid, gid = self.intern(op.mode), self.intern(op.uid), self.intern(op.gid)
        name = self.share_name(op.name)
        kind = mode & S_IFMT
        node: Inode
        if kind == stat.S_IFDIR:
            node = DirInode(ino, 1, mode, uid, gid, 2, 0, t, t, t, parent.mount, None, parent, name)
            parent.nlink += 1
        elif kind == stat.S_IFLNK:
            assert op.target is not None
            size = len(utf8(op.target))
            node = SymlinkInode(ino, 1, mode, uid, gid, 1, size, t, t, t, parent.mount, None, op.target)
        elif kind in SPECIAL_KINDS:
            node = SpecialInode(ino, 1, mode, uid, gid, 1, 0, t, t, t, parent.mount, None)
        else:
            node = FileInode(ino, 1, mode, uid, gid, 1, 0, t, t, t, parent.mount, None, None)
        if not isinstance(node, DirInode):
            node.parent, node.name = parent, name
        parent.add_child(name, node)
        self.inodes[ino] = node
        layouts.inherit_pin(self, parent, node)
        parent.mtime = parent.ctime = t
        self.next_ino = ino + 1

    def _apply_link(self, op: Link) -> None:
        parent, node = self._check_link(op)
        _check_time(op.time_ns)
        t = op.time_ns
        parent.add_child(op.name, node)
        self.links.setdefault(node.ino, [(node.parent, node.name)]).append((parent, op.name))
        node.nlink += 1
        node.ctime = t
        parent.mtime = parent.ctime = t

    def _apply_unlink(self, op: Unlink) -> None:
        parent, node = self._check_unlink(op)
        _check_time(op.time_ns)
        t = op.time_ns
        parent.remove_child(op.name)
        self.drop_link(node, parent, op.name, t)
        parent.mtime = parent.ctime = t

    def _apply_rmdir(self, op: Rmdir) -> None:
        parent, node = self._check_rmdir(op)
        _check_time(op.time_ns)
        t = op.time_ns
        parent.remove_child(op.name)
        parent.nlink -= 1
        node.nlink = 0
        del self.inodes[node.ino]
        self.forget_side_state(node.ino)
        parent.mtime = parent.ctime = t

    def _apply_rename(self, op: Rename) -> None:
        found = self._check_rename(op)
        _check_time(op.time_ns)
        if found is None:
            return
        src, node, dst, old = found
        t = op.time_ns
        src.remove_child(op.src_name)
        if old is not None:
            dst.remove_child(op.dst_name)
            if isinstance(old, DirInode):
                dst.nlink -= 1
                old.nlink = 0
                del self.inodes[old.ino]
                self.forget_side_state(old.ino)
            else:
                self.drop_link(old, dst, op.dst_name, t)
        name = self.share_name(op.dst_name)
        dst.add_child(name, node)
        if isinstance(node, DirInode):
            src.nlink -= 1
            dst.nlink += 1
        self._move_link(node, src, op.src_name, dst, name)
        node.ctime = t
        src.mtime = src.ctime = t
        dst.mtime = dst.ctime = t

    def drop_link(self, node: Inode, parent: DirInode, name: str, t: int) -> None:
        """Entry `name` of `parent` no longer names the non-directory `node` (already removed
        from `parent.children`): at nlink 0 the inode goes, with its blocks and xattrs."""
        node.nlink -= 1
        if node.nlink == 0:
            del self.inodes[node.ino]
            layouts.forget(self, node)
            self.xattrs.pop(node.ino, None)
            return
        node.ctime = t
        links = self.links[node.ino]
        links.remove((parent, name))
        if node.parent is parent and node.name == name:
            node.parent, node.name = links[0]
        if len(links) == 1:
            del self.links[node.ino]

    def _move_link(self, node: Inode, src: DirInode, src_name: str, dst: DirInode, dst_name: str) -> None:
        links = self.links.get(node.ino)
        if links is not None:
            links[links.index((src, src_name))] = (dst, dst_name)
        if node.parent is src and node.name == src_name:
            node.parent, node.name = dst, dst_name

    def _apply_setattr(self, op: SetAttr) -> None:
        node = self._check_setattr(op)
        for v in (op.atime, op.mtime):
            if v is not None:
                _check_time(v)
        _check_time(op.ctime)
        t = op.ctime
        if op.mode is not None:
            node.mode = self.intern((node.mode & S_IFMT) | (op.mode & PERMS))
        if op.uid is not None:
            node.uid = self.intern(op.uid)
        if op.gid is not None:
            node.gid = self.intern(op.gid)
        if op.size is not None or op.mtime is not None:
            node.detach_fingerprint()
        if op.size is not None:
            if op.size != node.size and isinstance(node, FileInode) and node.layout is not None:
                layouts.change(self, node, layout=None)  # blocks cut for the old size
            node.size = op.size
        if op.atime is not None:
            node.atime = t if op.atime == t else op.atime
        if op.mtime is not None:
            node.mtime = t if op.mtime == t else op.mtime
        node.ctime = t

    def _apply_set_content(self, op: SetContent) -> None:
        node = self._check_set_content(op)
        _check_time(op.time_ns)
        node.detach_fingerprint()
        node.size = op.size
        node.mtime = node.ctime = op.time_ns
        layouts.change(self, node, fingerprint=op.fingerprint, layout=op.layout)

    def _apply_setxattr(self, op: SetXAttr) -> None:
        node = self._check_setxattr(op)
        _check_time(op.time_ns)
        self.xattrs.setdefault(op.ino, {})[op.name] = op.value
        node.ctime = op.time_ns

    def _apply_removexattr(self, op: RemoveXAttr) -> None:
        node = self._check_removexattr(op)
        _check_time(op.time_ns)
        have = self.xattrs[op.ino]
        del have[op.name]
        if not have:
            del self.xattrs[op.ino]
        node.ctime = op.time_ns

    # ---- listing ----------------------------------------------------------------------------

    def list_names(
        self, dir_ino: int, start_after: str | None = None, limit: int | None = None
    ) -> list[tuple[str, Inode]]:
        """Up to `limit` entries in name order, after `start_after` (which need not exist).

        Cost: O(log n + limit).
        """
        d = self.get_dir(dir_ino)
        if limit is not None and limit < 0:
            raise Invalid(f"negative limit {limit}")
        children = d.children
        names = children.irange(minimum=start_after, inclusive=(False, True))
        return [(name, children[name]) for name in islice(names, limit)]

    def readdir(self, dir_ino: int, cookie: int = 0, limit: int = 1024) -> tuple[list[Entry], bool]:
        """Entries (cookie, name, inode) in cookie order after `cookie`, and whether that is all.

        Cookies depend only on names (see names.name_cookie), so a listing resumed from any
        cookie, even one of an entry deleted since, returns each entry that existed throughout
        exactly once. Entries sharing a cookie come in one batch, which may then exceed `limit`.
        Cost: O(n log n) on a directory's first call, then O(log n + limit).
        """
        d = self.get_dir(dir_ino)
        if limit < 1:
            raise Invalid(f"readdir limit must be positive, not {limit}")
        index = d.cookie_index()
        children = d.children
        out: list[Entry] = []
        cookies = index.irange(minimum=cookie, inclusive=(False, True))
        for c in cookies:
            names = index[c]
            if isinstance(names, str):
                if len(out) >= limit:
                    return out, False
                out.append((c, names, children[names]))
            else:
                if out and len(out) + len(names) > limit:
                    return out, False
                out.extend((c, n, children[n]) for n in names)
        return out, True

    # ---- invariants -------------------------------------------------------------------------

    def check(self) -> None:
        """Assert every invariant of the tree; AssertionError says which. Cost: O(inodes)."""
        root = self.root
        if self.inodes.get(ROOT_INO) is not root or root.parent is not root or root.name != "":
            raise AssertionError("inode 1 is not the root, or the root is not its own parent")
        reached: dict[int, Inode] = {ROOT_INO: root}
        links: dict[int, int] = {}
        todo = [root]
        while todo:
            d = todo.pop()
            if type(d.children) is not Children:
                raise AssertionError(f"{self._dir_path(d)}: children is not a Children")
            if d.children._index is not None and list(d.children._index) != sorted(dict.keys(d.children)):
                raise AssertionError(f"{self._dir_path(d)}: name index out of sync")
            subdirs = 0
            for name, child in d.children.items():
                try:
                    validate_name(name)
                except NsdError as e:
                    raise AssertionError(f"{self._dir_path(d)}: bad entry name {name!r}: {e}") from None
                if not isinstance(child, Inode) or self.inodes.get(child.ino) is not child:
                    raise AssertionError(f"{self._child_path(d, name)}: {child!r} is not in inodes")
                if isinstance(child, DirInode):
                    if child.ino in reached or child.parent is not d or child.name != name:
                        raise AssertionError(
                            f"{self._child_path(d, name)}: directory {child.ino} linked twice, or its "
                            f"parent ({child.parent.ino}) or name ({child.name!r}) is wrong"
                        )
                    subdirs += 1
                    todo.append(child)
                else:
                    links[child.ino] = links.get(child.ino, 0) + 1
                    if child.nlink > 1 and (d, name) not in self.links.get(child.ino, ()):
                        raise AssertionError(f"{self._child_path(d, name)}: link missing from the links index")
                reached[child.ino] = child
            if d.nlink != 2 + subdirs:
                raise AssertionError(f"{self._dir_path(d)}: nlink {d.nlink} != 2 + {subdirs} subdirectories")
            if d.cookies is not None:
                fresh = DirInode(0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, None, None, "")
                fresh.children = d.children
                if fresh.cookie_index() != d.cookies:
                    raise AssertionError(f"{self._dir_path(d)}: cookie index out of sync")
        if reached.keys() != self.inodes.keys():
            raise AssertionError(f"unreachable inodes: {sorted(set(self.inodes) - set(reached))}")
        for ino, node in self.inodes.items():
            _check_inode(ino, node, self.next_ino, links.get(ino, 0))
            if ino != ROOT_INO and node.parent.children.get(node.name) is not node:
                raise AssertionError(f"inode {ino}: primary link {node.name!r} in {node.parent.ino} is not it")
        for ino, attrs in self.xattrs.items():
            if ino not in self.inodes or not attrs or not isinstance(attrs, dict):
                raise AssertionError(f"xattrs of inode {ino}: inode gone, or an empty/non-dict entry")
            if len(attrs) > XATTRS_PER_INODE:
                raise AssertionError(f"inode {ino} has {len(attrs)} xattrs")
            for name, value in attrs.items():
                if not isinstance(name, str) or not name or not isinstance(value, bytes):
                    raise AssertionError(f"inode {ino}: bad xattr {name!r}: {value!r}")
        for ino, entries in self.links.items():
            linked = self.inodes.get(ino)
            if linked is None or linked.nlink != len(entries) or linked.nlink < 2:
                raise AssertionError(f"links index of inode {ino} has {len(entries)} entries, nlink differs")
        mounts.check_mounts(self)
        layouts.check(self)
        intents.check_intents(self)
        identities.check_identities(self)
        inode_ids.check_inode_ids(self)

    # ---- image (checkpoints): the codec is nsd.namespace.image ---------------------------------

    def to_image(self, chunk_size: int = 4096) -> Iterator[Any]:
        """The whole tree as msgpack-able chunks, for a checkpoint (see nsd.namespace.image).
        The tree must not change while the iterator is consumed. Cost: O(inodes)."""
        return image.encode(self, chunk_size)

    @classmethod
    def from_image(cls, chunks: Iterable[Any]) -> Namespace:
        """Rebuild the tree `to_image` wrote; Corrupt if the image is malformed. Checks structure
        only; call check() for every invariant. Cost: linear (see image.load)."""
        ns = cls()
        image.load(ns, chunks)
        return ns


def _check_inode(ino: int, node: Inode, next_ino: int, links: int) -> None:
    """Invariants of one inode; `links` is the number of entries naming it."""
    if node.ino != ino or not 0 < ino < next_ino:
        raise AssertionError(f"inode {node.ino} filed under {ino}, or not below next_ino {next_ino}")
    if node.gen < 1 or node.size < 0:
        raise AssertionError(f"inode {ino}: generation {node.gen}, size {node.size}")
    values = (node.mode, node.uid, node.gid, node.nlink, node.atime, node.mtime, node.ctime, node.mount)
    for v in values:
        if type(v) is not int:
            raise AssertionError(f"inode {ino}: not all ints: {values}")
    kind = node.mode & S_IFMT
    if isinstance(node, DirInode):
        if kind != stat.S_IFDIR:
            raise AssertionError(f"inode {ino}: directory with mode {node.mode:o}")
        return
    if node.nlink != links:
        raise AssertionError(f"inode {ino}: nlink {node.nlink} but {links} links")
    if isinstance(node, SymlinkInode):
        if kind != stat.S_IFLNK or node.size != len(utf8(node.target)):
            raise AssertionError(f"inode {ino}: symlink with mode {node.mode:o}, size {node.size}")
    elif isinstance(node, SpecialInode):
        if kind not in SPECIAL_KINDS or node.size != 0:
            raise AssertionError(f"inode {ino}: special file with mode {node.mode:o}, size {node.size}")
    elif not isinstance(node, FileInode) or kind != stat.S_IFREG:
        raise AssertionError(f"inode {ino}: {type(node).__name__} with mode {node.mode:o}")


def _check_target(target: object) -> None:
    if not isinstance(target, str) or not target:
        raise Invalid(f"a symlink needs a non-empty target, not {target!r}")
    if "\0" in target:
        raise Invalid(f"symlink target contains NUL: {target!r}")
    if len(utf8(target)) > PATH_MAX:
        raise NameTooLong(f"symlink target too long: {target[:64]!r}...")


def _check_owner(uid: int | None, gid: int | None) -> None:
    for what, v in (("uid", uid), ("gid", gid)):
        if v is not None and (type(v) is not int or not 0 <= v < 1 << 32):
            raise Invalid(f"invalid {what} {v!r}")


def _check_nonneg(what: str, v: object) -> None:
    if type(v) is not int or v < 0:
        raise Invalid(f"invalid {what} {v!r}")


def _check_time(v: object) -> None:
    if type(v) is not int:
        raise Invalid(f"invalid time {v!r}")
