"""The running side of the mount table: an under-storage adapter per mount and where each
object lives in it.

The journaled table (nsd.namespace.mounts) says what is mounted where; this opens each
mount's adapter on first use (so a store that is down never blocks start-up) and turns an
inode into (adapter, path inside the mount). Mount 0 is the root mount, fixed at format.

Each adapter is wrapped in HealthUfs (state for `mount ls`, fail-fast while the store is
down), and opening it starts a background sweep of leftover temporary objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from nsd import errors
from nsd.namespace import DirInode, Inode, Namespace
from nsd.namespace.mounts import ROOT_MOUNT
from nsd.ufs import Ufs, open_ufs
from nsd.ufs.base import SYSTEM_DIR, TMP_PREFIX
from nsd.ufs.options import Options, mask_options, mask_uri
from nsd.ufs.wrap.health import UNUSED, HealthUfs

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
    kind: str = ""
    sync_interval: float = NEVER
    state: str = UNUSED
    since: float | None = None  # wall-clock seconds of the last state change
    last_error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # the rest of the adapter's describe()

    def to_json(self) -> dict[str, Any]:
        return {
            **self.extra,
            "id": self.mount_id,
            "path": self.path,
            "uri": self.uri,
            "readonly": self.readonly,
            "options": self.options,
            "kind": self.kind,
            "sync_interval": self.sync_interval,
            "state": self.state,
            "since": self.since,
            "last_error": self.last_error,
        }


@dataclass(frozen=True)
class MountSettings:
    """The options nsd itself reads from a mount (the adapter reads the rest)."""

    sync_interval: float
    down_probe_s: float  # while the store is down, calls fail at once; one probe this often
    tmp_max_age_s: float  # leftover temporary objects older than this are deleted
    tmp_sweep_s: float  # how often the sweep runs (first at mount open); -1 never


_SHOWN = {"uri", "options", "kind", "state", "since", "last_error"}  # MountView fields from describe()


# The options nsd itself reads from a mount (the store's adapter reads the rest).
MOUNT_OPTIONS = ("sync_interval", "down_probe_s", "tmp_max_age_s", "tmp_sweep_s", "read_type", "write_type")


def mount_settings(uri: str, options: dict[str, str]) -> MountSettings:
    """Parse and check nsd's own mount options; Invalid names the bad one."""
    opts = Options(options, uri)
    interval = sync_interval(options)
    probe = opts.number("down_probe_s", 5.0)
    age = opts.number("tmp_max_age_s", 3600.0)
    sweep = opts.number("tmp_sweep_s", 86400.0)
    if probe < 0 or age < 0:
        raise errors.Invalid("down_probe_s and tmp_max_age_s must not be negative")
    if sweep <= 0 and sweep != NEVER:
        raise errors.Invalid(f"tmp_sweep_s must be positive seconds or -1 (never), got {sweep:g}")
    return MountSettings(interval, probe, age, sweep)


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
        self._adapters: dict[int, HealthUfs] = {}
        self._sweepers: dict[int, asyncio.Task[None]] = {}
        self._intervals: dict[int, float] = {}

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
            settings = mount_settings(uri, options)
            adapter = self._adapters[mount_id] = HealthUfs(open_ufs(uri, options), probe_after=settings.down_probe_s)
            self._start_sweeper(mount_id, adapter, settings)
        return adapter

    def _start_sweeper(self, mount_id: int, adapter: Ufs, settings: MountSettings) -> None:
        if settings.tmp_sweep_s == NEVER:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # opened outside the daemon's loop (offline tools): nothing runs in the background
        self._sweepers[mount_id] = loop.create_task(_sweep_forever(adapter, settings))

    def options(self, mount_id: int) -> dict[str, str]:
        return self._spec(mount_id)[1]

    def readonly(self, mount_id: int) -> bool:
        return self._spec(mount_id)[2]

    def sync_interval(self, mount_id: int) -> float:
        # Asked on every lookup and getattr: parsed once per mount (ids are never reused and a
        # mount's options never change).
        value = self._intervals.get(mount_id)
        if value is None:
            value = self._intervals[mount_id] = sync_interval(self._spec(mount_id)[1])
        return value

    def health(self, mount_id: int) -> HealthUfs | None:
        """The mount's adapter if it has been opened."""
        return self._adapters.get(mount_id)

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
        """Where entry `name` of directory `d` lives (or would live). A new name that looks like
        an adapter's temporary object is refused: listings hide such names and sweeps delete them."""
        if name.startswith(TMP_PREFIX) and name not in d.children:
            path = self.ns.path_of(d.ino).rstrip("/") + "/" + name
            reserved = f"names beginning with {TMP_PREFIX!r} are reserved for nsd's temporary objects"
            raise errors.Invalid(f"{reserved}: {path}", path=path)
        ufs, rel = self.locate(d)
        if not rel and name == SYSTEM_DIR and name not in d.children:
            raise errors.Invalid(f"{SYSTEM_DIR!r} at the top of an under-storage is reserved for nsd's own files")
        return ufs, f"{rel}/{name}" if rel else name

    def views(self) -> list[MountView]:
        specs = [(ROOT_MOUNT, "/", self.root_uri, False, self.root_options)]
        specs += [
            (m.mount_id, self.ns.path_of(m.point.ino), m.uri, m.readonly, m.options)
            for m in sorted(self.ns.mounts.values(), key=lambda m: m.mount_id)
        ]
        return [self._view(*spec) for spec in specs]

    def _view(self, mount_id: int, path: str, uri: str, readonly: bool, options: dict[str, str]) -> MountView:
        """What `mount ls` shows: the adapter's describe() once it is open (health included)."""
        adapter = self._adapters.get(mount_id)
        described: dict[str, Any] = adapter.describe() if adapter is not None else {}
        try:
            interval = sync_interval(options)
        except errors.Invalid:
            interval = NEVER
        return MountView(
            mount_id,
            path,
            described.get("uri", mask_uri(uri)),
            readonly,
            described.get("options", mask_options(options)),
            kind=described.get("kind", uri.partition(":")[0]),
            sync_interval=interval,
            state=described.get("state", UNUSED),
            since=described.get("since"),
            last_error=described.get("last_error"),
            extra={k: v for k, v in described.items() if k not in _SHOWN},
        )

    async def forget(self, mount_id: int) -> None:
        sweeper = self._sweepers.pop(mount_id, None)
        if sweeper is not None:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
        adapter = self._adapters.pop(mount_id, None)
        if adapter is not None:
            with contextlib.suppress(errors.NsdError):
                await adapter.close()

    async def close(self) -> None:
        for mount_id in list(self._adapters):
            await self.forget(mount_id)


async def _sweep_forever(ufs: Ufs, settings: MountSettings) -> None:
    """Delete stale temporary objects at mount open and every `tmp_sweep_s` seconds after."""
    while True:
        try:
            swept = await ufs.sweep_tmp(settings.tmp_max_age_s)
            if swept:
                log.info("deleted %d leftover temporary object(s) in %r", swept, ufs)
        except errors.NotSupported:
            return
        except errors.NsdError as e:
            log.warning("sweeping temporary objects in %r failed (will try again): %s", ufs, e.message)
        await asyncio.sleep(settings.tmp_sweep_s)
