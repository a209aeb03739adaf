"""The mount table and what the under-storage reveals: plan and apply for AddMount,
RemoveMount and UfsSync.

Every inode carries the id of the mount it lives in (0 = the root mount); a new inode takes
its parent's, and a mount point carries its own, so the longest matching prefix wins without
any prefix matching. The table itself (id -> mount point, URI, options) is part of the image.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass
from typing import Any, Protocol

from nsd.errors import Corrupt, Exists, Invalid, NotDir, NotEmpty
from nsd.journal.ops import AddMount, Op, RemoveMount, UfsSync
from nsd.namespace import inode_ids, layouts
from nsd.namespace.inode import S_IFMT, DirInode, FileInode, Inode
from nsd.namespace.names import validate_name, validate_names

ROOT_MOUNT = 0
_DISCOVERED_KINDS = (stat.S_IFREG, stat.S_IFDIR)  # what an under-storage holds


@dataclass
class Mount:
    mount_id: int
    point: DirInode
    uri: str
    readonly: bool
    options: dict[str, str]


class MountTree(layouts.LayoutTables, Protocol):
    """What this module reads and changes of a namespace (tree.Namespace is one): the tree
    imports this module, so it is typed by this shape rather than by the tree."""

    root: DirInode
    mounts: dict[int, Mount]
    next_ino: int
    ino_limit: int
    next_mount_id: int
    checked_op: Op | None

    def get_dir(self, ino: int) -> DirInode: ...
    def resolve(self, path: str, *, follow: bool = True) -> Inode: ...
    def resolve_parent(self, path: str) -> tuple[DirInode, str]: ...
    def path_of(self, ino: int) -> str: ...
    def intern(self, value: int) -> int: ...
    def share_name(self, name: str) -> str: ...
    def drop_link(self, node: Inode, parent: DirInode, name: str, t: int) -> None: ...
    def forget_side_state(self, ino: int) -> None: ...


# ---- planning ----------------------------------------------------------------------------


def plan_add_mount(
    ns: MountTree,
    path: str,
    uri: str,
    *,
    readonly: bool,
    options: dict[str, str],
    uid: int,
    gid: int,
    time_ns: int,
) -> AddMount:
    """Mount `uri` at `path`: a new directory, or an existing empty one that is no mount point."""
    if not uri or not isinstance(uri, str):
        raise Invalid("a mount needs an under-storage URI")
    parent, name = ns.resolve_parent(path)
    existing = parent.children.get(name)
    ino = ns.next_ino
    if existing is not None:
        if not isinstance(existing, DirInode):
            raise NotDir(f"mount point is an existing file: {path}", path=path)
        if is_mount_point(ns, existing):
            raise Exists(f"already mounted: {path}", path=path)
        if existing.children:
            raise NotEmpty(f"mount point is a non-empty directory: {path}", path=path)
        ino = existing.ino
    op = AddMount(ns.next_mount_id, parent.ino, name, ino, uri, readonly, dict(options), uid, gid, time_ns)
    _check_add_mount(ns, op)
    return op


def plan_remove_mount(ns: MountTree, path: str, time_ns: int) -> RemoveMount:
    node = ns.resolve(path, follow=False)
    if node is ns.root:
        raise Invalid("the root mount cannot be unmounted", path=path)
    mount = ns.mounts.get(node.mount)
    if mount is None or mount.point is not node:
        raise Invalid(f"not a mount point: {path}", path=path)
    op = RemoveMount(mount.mount_id, time_ns)
    _check_remove_mount(ns, op)
    return op


def plan_ufs_sync(
    ns: MountTree,
    dir_ino: int,
    add: list[list[Any]],
    update: list[list[Any]],
    remove: list[str],
    time_ns: int,
) -> UfsSync:
    """Record what the UFS shows in `dir_ino`. `add` entries are [name, mode, uid, gid, size,
    mtime_ns, fingerprint]; each gets its inode id here, in order, inserted after the name."""
    ino = ns.next_ino
    for e in add:  # numbered in place: a page is a thousand of these
        e.insert(1, ino)
        ino += 1
    op = UfsSync(dir_ino, add, update, remove, time_ns)
    _check_ufs_sync(ns, op)
    ns.checked_op = op  # a listing page is applied at once: its apply need not check again
    return op


# ---- checks (raise before anything changes) ------------------------------------------------


def is_mount_point(ns: MountTree, node: Inode) -> bool:
    mount = ns.mounts.get(node.mount)
    return mount is not None and mount.point is node


def _check_add_mount(ns: MountTree, op: AddMount) -> None:
    parent = ns.get_dir(op.parent)
    validate_name(op.name)
    if op.mount_id in ns.mounts or op.mount_id <= ROOT_MOUNT:
        raise Corrupt(f"mount id {op.mount_id} is taken")
    existing = parent.children.get(op.name)
    if existing is None:
        if op.ino < ns.next_ino:
            raise Corrupt(f"new mount point inode {op.ino} is not above the last one given")
        inode_ids.check_new_ids(ns, op.ino)
    elif not isinstance(existing, DirInode) or existing.ino != op.ino or existing.children:
        raise Corrupt(f"mount point {op.name!r} is not the empty directory {op.ino}")
    if not isinstance(op.options, dict) or not isinstance(op.readonly, bool):
        raise Corrupt("mount options must be a map and readonly a boolean")


def _check_remove_mount(ns: MountTree, op: RemoveMount) -> None:
    mount = ns.mounts.get(op.mount_id)
    if mount is None:
        raise Corrupt(f"no mount {op.mount_id}")
    for other in ns.mounts.values():
        d = other.point.parent
        while other is not mount and d is not ns.root:
            if d is mount.point:
                raise Invalid(f"{ns.path_of(other.point.ino)} is mounted below it: unmount that first")
            d = d.parent


def _check_ufs_sync(ns: MountTree, op: UfsSync) -> None:
    d = ns.get_dir(op.dir_ino)
    children = d.children
    names = [entry[0] for entry in op.add]
    validate_names(names)
    fresh = set(names)
    if len(fresh) < len(names) or not fresh.isdisjoint(children.names_view()):
        seen: set[str] = set()
        for name in names:
            if name in children or name in seen:
                raise Exists(f"{name!r} is already in directory {op.dir_ino}")
            seen.add(name)
    expected = ns.next_ino
    for name, ino, mode, uid, gid, size, mtime, _fp in op.add:
        if ino != expected or type(mode) is not int or mode & S_IFMT not in _DISCOVERED_KINDS:
            shown = f"{mode:o}" if type(mode) is int else repr(mode)  # modes read in octal
            raise Corrupt(f"bad discovered entry {name!r}: inode {ino}, mode {shown}")
        # an int OR'ed with others is negative if any of them is
        if not (type(uid) is type(gid) is type(size) is type(mtime) is int) or uid | gid | size | mtime < 0:
            raise Corrupt(f"bad discovered entry {name!r}: uid/gid/size/mtime must be ints >= 0")
        expected += 1
    if op.add:
        inode_ids.check_new_ids(ns, expected - 1)
    for name, size, mtime, _fp in op.update:
        if not isinstance(d.children.get(name), FileInode) or type(size) is not int or size < 0:
            raise Corrupt(f"cannot update {name!r} in directory {op.dir_ino}")
        if type(mtime) is not int:
            raise Corrupt(f"bad mtime for {name!r}")
    for name in op.remove:
        child = d.children.get(name)
        if child is None or is_mount_point(ns, child):
            raise Corrupt(f"cannot remove {name!r} from directory {op.dir_ino}")


# ---- apply ---------------------------------------------------------------------------------


def apply_add_mount(ns: MountTree, op: AddMount) -> None:
    _check_add_mount(ns, op)
    parent = ns.get_dir(op.parent)
    point = parent.children.get(op.name)
    if point is None:
        t = op.time_ns
        mode = ns.intern(stat.S_IFDIR | 0o755)
        point = DirInode(
            op.ino, 1, mode, ns.intern(op.uid), ns.intern(op.gid), 2, 0, t, t, t, op.mount_id, None, parent, op.name
        )
        parent.add_child(op.name, point)
        parent.nlink += 1
        parent.mtime = parent.ctime = t
        ns.inodes[op.ino] = point
        ns.next_ino = op.ino + 1
    assert isinstance(point, DirInode)
    point.mount = op.mount_id
    ns.mounts[op.mount_id] = Mount(op.mount_id, point, op.uri, op.readonly, dict(op.options))
    ns.next_mount_id = max(ns.next_mount_id, op.mount_id + 1)


def apply_remove_mount(ns: MountTree, op: RemoveMount) -> None:
    _check_remove_mount(ns, op)
    mount = ns.mounts.pop(op.mount_id)
    point = mount.point
    parent = point.parent
    drop_entry(ns, parent, point.name, op.time_ns)
    parent.mtime = parent.ctime = op.time_ns


def apply_ufs_sync(ns: MountTree, op: UfsSync, *, check: bool = True) -> None:
    """`check=False` only for the op `plan_ufs_sync` just checked, the tree unchanged since."""
    if check:
        _check_ufs_sync(ns, op)
    d = ns.get_dir(op.dir_ino)
    mount, intern, share_name, inodes = d.mount, ns.intern, ns.share_name, ns.inodes
    pinned = d.ino in ns.pinned
    entries: list[tuple[str, Inode]] = []
    nodes: list[Inode] = []
    for name, ino, mode, uid, gid, size, mtime, fp in op.add:
        mode, uid, gid = intern(mode), intern(uid), intern(gid)
        name = share_name(name)
        node: Inode
        if mode & S_IFMT == stat.S_IFDIR:
            node = DirInode(ino, 1, mode, uid, gid, 2, 0, mtime, mtime, mtime, mount, fp, d, name)
            d.nlink += 1
        else:
            node = FileInode(ino, 1, mode, uid, gid, 1, size, mtime, mtime, mtime, mount, fp, None)
            node.parent, node.name = d, name
        entries.append((name, node))
        nodes.append(node)
        if pinned:
            layouts.inherit_pin(ns, d, node)
    if nodes:  # the check made the ids consecutive from next_ino
        d.add_children(entries)
        inodes.add_run(nodes[0].ino, nodes)
        ns.next_ino = nodes[-1].ino + 1
    for name, size, mtime, fp in op.update:
        f = d.children[name]
        f.detach_fingerprint()
        f.size, f.mtime, f.ctime = size, mtime, op.time_ns
        layouts.change(ns, f, fingerprint=fp, layout=None)  # blocks of the old content must never be served
    for name in op.remove:
        drop_entry(ns, d, name, op.time_ns)


def drop_entry(ns: MountTree, d: DirInode, name: str, t: int) -> None:
    """Remove entry `name` of `d` and, for a directory, everything below it. Cost: O(subtree)."""
    node = d.remove_child(name)
    if not isinstance(node, DirInode):
        ns.drop_link(node, d, name, t)
        return
    d.nlink -= 1
    todo = [node]
    while todo:
        sub = todo.pop()
        for child_name in list(sub.children):
            child = sub.remove_child(child_name)
            if isinstance(child, DirInode):
                todo.append(child)
            else:
                ns.drop_link(child, sub, child_name, t)
        sub.nlink = 0
        del ns.inodes[sub.ino]
        ns.forget_side_state(sub.ino)


# ---- image and invariants ------------------------------------------------------------------


def image_header(ns: MountTree) -> dict[str, Any]:
    return {
        "pinned": sorted(ns.pinned),
        "next_mount_id": ns.next_mount_id,
        "mounts": [[m.mount_id, m.point.ino, m.uri, m.readonly, m.options] for m in ns.mounts.values()],
        **layouts.image_header(ns),
    }


def load_image_header(ns: MountTree, header: dict[str, Any]) -> None:
    ns.pinned = set(header.get("pinned", []))
    if not ns.pinned <= ns.inodes.keys():
        raise Corrupt("image: a pinned inode does not exist")
    ns.next_mount_id = header.get("next_mount_id", ROOT_MOUNT + 1)
    for mount_id, point_ino, uri, readonly, options in header.get("mounts", []):
        point = ns.inodes.get(point_ino)
        if not isinstance(point, DirInode) or point.mount != mount_id:
            raise Corrupt(f"image: mount {mount_id} has no mount point {point_ino}")
        ns.mounts[mount_id] = Mount(mount_id, point, uri, readonly, options)
    layouts.load_image_header(ns, header)


def check_mounts(ns: MountTree) -> None:
    """Each inode is in its parent's mount unless it is a mount point; the table is sound;
    pinned inodes are live files or directories."""
    for ino in ns.pinned:
        if not isinstance(ns.inodes.get(ino), FileInode | DirInode):
            raise AssertionError(f"pinned inode {ino} is not a live file or directory")
    for m in ns.mounts.values():
        if ns.inodes.get(m.point.ino) is not m.point or m.point.mount != m.mount_id:
            raise AssertionError(f"mount {m.mount_id}: its point {m.point.ino} is gone or not marked")
        if m.mount_id >= ns.next_mount_id:
            raise AssertionError(f"mount {m.mount_id} is not below next_mount_id {ns.next_mount_id}")
    for ino, node in ns.inodes.items():
        if node is ns.root:
            if node.mount != ROOT_MOUNT:
                raise AssertionError("the root is not in the root mount")
        elif node.mount != node.parent.mount and not is_mount_point(ns, node):
            raise AssertionError(f"inode {ino}: mount {node.mount} differs from its parent's")
