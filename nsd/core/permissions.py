"""POSIX permission checks for every door: mode bits, owner-only changes, sticky directories.

The vfs calls these before it changes or reveals anything; protocols never check permissions
themselves (NFS ACCESS asks `allowed`, WebHDFS CHECKACCESS asks `require`).

Rules (POSIX, as Linux applies them; HDFS's where the two agree):
- Superusers pass every check: uid 0, the user running the daemon, the configured `superuser`,
  and members of the configured `supergroup` (HDFS's dfs.permissions.superusergroup).
- Otherwise the owner's, else the group's (primary or any supplementary gid), else others' rwx
  bits decide. Search (x) is needed on every directory a path walks through; creating,
  removing or renaming an entry needs w and x on its directory.
- Sticky directories (mode 01000): only the entry's owner, the directory's owner or a
  superuser may remove or rename an entry.
- chmod and explicit times: the owner or a superuser. chown to another user: superusers only;
  the owner may change the group to one of its own groups.
- Content reads and writes by inode (NFS READ, WRITE, COMMIT, SETATTR size, times set to the
  server's clock) are stateless "opens": the owner may always, and a file one may execute may
  be read, as knfsd allows (a process that created a file 0444 keeps writing it).

Failures are `Denied` (EACCES: NFS3ERR_ACCES, WebHDFS 403 AccessControlException) worded as
Hadoop words them, or `NotPermitted` (EPERM: NFS3ERR_PERM) for owner-only changes.
"""

from __future__ import annotations

import enum
import os
import stat as st
from collections.abc import Callable, Iterable

from nsd.core.users import Caller, UserMap
from nsd.errors import Denied, NotPermitted
from nsd.namespace import DirInode, Inode

R, W, X = 4, 2, 1
# Hadoop's FsAction names, by rwx bits
ACTIONS = ("NONE", "EXECUTE", "WRITE", "WRITE_EXECUTE", "READ", "READ_EXECUTE", "READ_WRITE", "ALL")


class Now(enum.Enum):
    """A time to set to the server's clock (NFS SET_TO_SERVER_TIME, `touch` without a time)."""

    NOW = "now"


NOW = Now.NOW


def parse_fsaction(text: str) -> int:
    """`rwx`, `r-x`, `---`, ... -> rwx bits; ValueError for anything else."""
    if len(text) != 3 or any(c not in (want, "-") for c, want in zip(text, "rwx", strict=True)):
        raise ValueError(f"not an action like rwx or r-x: {text!r}")
    return sum(bit for c, bit in zip(text, (R, W, X), strict=True) if c != "-")


def path_of(node: Inode) -> str:
    """The path of `node` through its primary link (no namespace needed). Cost: its depth."""
    names = []
    while node.parent is not node:
        names.append(node.name)
        node = node.parent
    return "/" + "/".join(reversed(names))


class Permissions:
    def __init__(
        self,
        users: UserMap | None = None,
        *,
        superusers: Iterable[int] = (),
        supergroups: Iterable[int] = (),
    ) -> None:
        self.users = users or UserMap()
        self.superusers = frozenset({0, os.getuid(), *superusers})
        self.supergroups = frozenset(supergroups)

    # ---- questions --------------------------------------------------------------------------

    def is_super(self, who: Caller) -> bool:
        if who.uid in self.superusers:
            return True
        return bool(self.supergroups) and (who.gid in self.supergroups or not self.supergroups.isdisjoint(who.gids))

    @staticmethod
    def bits(node: Inode, who: Caller) -> int:
        """The rwx bits of `node` that apply to `who` (owner, else group, else other)."""
        mode, uid, gid = node.ids[:3]  # one read: mode, uid and gid are properties of ids
        if who.uid == uid:
            return (mode >> 6) & 7
        if who.gid == gid or gid in who.gids:
            return (mode >> 3) & 7
        return mode & 7

    def allowed(self, node: Inode, who: Caller, want: int) -> bool:
        """Whether `who` holds all of the rwx bits in `want` on `node`."""
        return self.is_super(who) or self.bits(node, who) & want == want

    def searcher(self, who: Caller) -> Callable[[DirInode], None] | None:
        """The search (x) check for each directory of a path walk, as one closure (the hot path
        of every path resolution); None for a superuser, who needs none."""
        if self.is_super(who):
            return None
        uid, gid, gids = who.uid, who.gid, who.gids

        def search(d: DirInode) -> None:
            mode, d_uid, d_gid = d.ids[:3]
            if uid == d_uid:
                ok = mode & 0o100
            elif gid == d_gid or d_gid in gids:
                ok = mode & 0o010
            else:
                ok = mode & 0o001
            if not ok:
                self.require(d, who, X)  # raises, worded

        return search

    # ---- checks -----------------------------------------------------------------------------

    def require(self, node: Inode, who: Caller, want: int) -> None:
        """Denied unless `who` holds `want` on `node`."""
        if who.uid not in self.superusers and not self.allowed(node, who, want):  # LOOKUP's fast path
            raise Denied(
                f"Permission denied: user={self.users.user_name(who.uid)}, access={ACTIONS[want]}, "
                f"inode={self.describe(node)}",
                path=path_of(node),
            )

    def require_data(self, node: Inode, who: Caller, want: int) -> None:
        """A stateless content read (R) or write (W): the owner may; reading needs r or x."""
        if who.uid == node.uid:
            return
        if want == R and not node.is_dir and self.allowed(node, who, X):
            return
        self.require(node, who, want)

    def require_owner(self, node: Inode, who: Caller) -> None:
        if who.uid != node.uid and not self.is_super(who):
            raise NotPermitted(
                f"Permission denied. user={self.users.user_name(who.uid)} is not the owner of inode={path_of(node)}",
                path=path_of(node),
            )

    def require_super(self, who: Caller) -> None:
        if not self.is_super(who):
            name = self.users.user_name(who.uid)
            raise NotPermitted(f"Access denied for user {name}. Superuser privilege is required")

    def require_delete(self, parent: DirInode, node: Inode, who: Caller) -> None:
        """Removing (or renaming away) `node` from `parent`: w+x there, and the sticky rule."""
        self.require(parent, who, W | X)
        if parent.mode & st.S_ISVTX and who.uid not in (node.uid, parent.uid) and not self.is_super(who):
            raise Denied(
                f"Permission denied by sticky bit: user={self.users.user_name(who.uid)}, "
                f"path={self.describe(node)}, parent={self.describe(parent)}",
                path=path_of(node),
            )

    def require_delete_tree(self, parent: DirInode, node: Inode, who: Caller) -> None:
        """A recursive delete: `node` may go from `parent`, and every directory below it grants
        rwx (HDFS's subtree check: list it, search it, remove from it), sticky rules included.
        Cost: O(entries the namespace knows below `node`)."""
        self.require_delete(parent, node, who)
        if self.is_super(who):
            return
        todo = [node] if isinstance(node, DirInode) else []
        while todo:
            d = todo.pop()
            self.require(d, who, R | W | X)
            for child in d.children.values():
                self.require_delete(d, child, who)
                if isinstance(child, DirInode):
                    todo.append(child)

    def require_setattr(
        self,
        node: Inode,
        who: Caller,
        *,
        mode: int | None = None,
        uid: int | None = None,
        gid: int | None = None,
        size: int | None = None,
        atime: int | Now | None = None,
        mtime: int | Now | None = None,
    ) -> None:
        """What chmod, chown, truncate and utimes each need. Ids equal to the current ones are
        no change and need nothing."""
        if mode is not None:
            self.require_owner(node, who)
        if uid is not None and uid != node.uid and not self.is_super(who):
            raise NotPermitted(
                f"User {self.users.user_name(who.uid)} is not a super user (non-super user cannot change owner).",
                path=path_of(node),
            )
        if gid is not None and gid != node.gid and not self.is_super(who):
            self.require_owner(node, who)
            if gid != who.gid and gid not in who.gids:
                raise NotPermitted(
                    f"User {self.users.user_name(who.uid)} does not belong to {self.users.group_name(gid)}",
                    path=path_of(node),
                )
        if size is not None:
            self.require_data(node, who, W)
        for when in (atime, mtime):
            if when is NOW:
                self.require_data(node, who, W)
            elif when is not None:
                self.require_owner(node, who)

    # ---- wording ----------------------------------------------------------------------------

    def describe(self, node: Inode) -> str:
        """`"/p":owner:group:drwxr-xr-x`, as HDFS's AccessControlException shows an inode."""
        kind = "d" if node.is_dir else "-"
        return (
            f'"{path_of(node)}":{self.users.user_name(node.uid)}:{self.users.group_name(node.gid)}:'
            f"{kind}{st.filemode(node.mode)[1:]}"
        )
