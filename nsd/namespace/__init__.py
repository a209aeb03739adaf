"""The in-memory namespace: names, inodes and the tree (plan_*() -> op, apply(op) mutates)."""

from nsd.namespace.inode import DirInode, FileInode, Inode, SpecialInode, SymlinkInode
from nsd.namespace.names import join_path, name_cookie, split_path, validate_name
from nsd.namespace.tree import Namespace

__all__ = [
    "DirInode",
    "FileInode",
    "Inode",
    "Namespace",
    "SpecialInode",
    "SymlinkInode",
    "join_path",
    "name_cookie",
    "split_path",
    "validate_name",
]
