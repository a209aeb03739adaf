"""The running side of the mount table: an under-storage adapter per mount and where each
object lives in it.

The journaled table (nsd.namespace.mounts) says what is mounted where; this opens each
mount's adapter on first use (so a store that is down never blocks start-up) and turns an
inode into (adapter, path inside the mount). Mount 0 is the root mount, fixed at format.
"""

from __future__ import annotations

import contextlib
import logging
import re
from dataclasses import dataclass
from typing import Any

from nsd import errors
from nsd.journal.ops import mask_options
from nsd.namespace import DirInode, Inode, Namespace
from nsd.namespace.mounts import ROOT_MOUNT
from nsd.ufs import Ufs, open_ufs

log = logging.getLogger("nsd.mounts")

NEVER = -1.0  # sync_interval: discover once, never re-check


@dataclass(frozen=True)
class MountView:
    """A mount as it may be shown: no secrets."""

    mount_id: int
    path: str
    uri: str
    readonly: bool
    options: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.mount_id,
            "path": self.path,
            "uri": self.uri,
            "readonly": self.readonly,
            "options": self.options,
        }


def mask_uri(uri: str) -> str:
    """Credentials written into a URI (scheme://user:secret@host) never show."""
    return re.sub(r"^([a-z][a-z0-9+.-]*://)[^/@]*@", r"\1****@", uri)


def sync_interval(options: dict[str, str]) -> float:
    raw = options.get("sync_interval", str(NEVER))
    try:
        value = float(raw)
    except ValueError:
        raise errors.Invalid(f"sync_interval must be seconds (-1 never, 0 always), got {raw!r}") from None
    if value < 0 and value != NEVER:
        raise errors.Invalid(f"sync_interval must be -1, 0 or positive, got {raw!r}")
    return value


class MountTable:
    def __init__(self, ns: Namespace, root_uri: str, root_options: dict[str, str] | None = None) -> None:
        self.ns = ns
        self.root_uri = root_uri
        self.root_options = root_options or {}
        self._adapters: dict[int, Ufs] = {}

    def _spec(self, mount_id: int) -> tuple[str, dict[str, str], bool, DirInode]:
        if mount_id == ROOT_MOUNT:
            return self.root_uri, self.root_options, False, self.ns.root
        m = self.ns.mounts.get(mount_id)
        if m is None:
            raise errors.Stale(f"mount {mount_id} is gone")
        return m.uri, m.options, m.readonly, m.point

    def ufs(self, mount_id: int) -> Ufs:
        adapter = self._adapters.get(mount_id)
        if adapter is None:
            uri, options, _, _ = self._spec(mount_id)
            adapter = self._adapters[mount_id] = open_ufs(uri, options)
        return adapter

    def options(self, mount_id: int) -> dict[str, str]:
        return self._spec(mount_id)[1]

    def readonly(self, mount_id: int) -> bool:
        return self._spec(mount_id)[2]

    def sync_interval(self, mount_id: int) -> float:
        return sync_interval(self._spec(mount_id)[1])

    def owner(self, mount_id: int) -> tuple[int, int]:
        """uid and gid that objects discovered in the mount get: its mount point's."""
        point = self._spec(mount_id)[3]
        return point.uid, point.gid

    def check_writable(self, node: Inode) -> None:
        """ReadOnly for anything that would change the namespace or data under a read-only mount."""
        if self.readonly(node.mount):
            path = self.ns.path_of(node.ino)
            raise errors.ReadOnly(f"read-only mount: {path}", path=path)

    def locate(self, node: Inode) -> tuple[Ufs, str]:
        """The adapter and the path inside it of an existing object (via its primary link)."""
        point = self._spec(node.mount)[3]
        full = self.ns.path_of(node.ino)
        base = self.ns.path_of(point.ino)
        return self.ufs(node.mount), full[len(base) :].strip("/")

    def locate_child(self, d: DirInode, name: str) -> tuple[Ufs, str]:
        """Where entry `name` of directory `d` lives (or would live)."""
        ufs, rel = self.locate(d)
        return ufs, f"{rel}/{name}" if rel else name

    def views(self) -> list[MountView]:
        root = MountView(ROOT_MOUNT, "/", mask_uri(self.root_uri), False, mask_options(self.root_options))
        rest = [
            MountView(m.mount_id, self.ns.path_of(m.point.ino), mask_uri(m.uri), m.readonly, mask_options(m.options))
            for m in sorted(self.ns.mounts.values(), key=lambda m: m.mount_id)
        ]
        return [root, *rest]

    async def forget(self, mount_id: int) -> None:
        adapter = self._adapters.pop(mount_id, None)
        if adapter is not None:
            with contextlib.suppress(errors.NsdError):
                await adapter.close()

    async def close(self) -> None:
        for mount_id in list(self._adapters):
            await self.forget(mount_id)
