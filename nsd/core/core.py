"""The parts under the facade, built once by the daemon and handed to whatever needs them.

`Core` is a record of collaborators, not a service: the vfs, the reconciler and the persister
each take it instead of taking the vfs, so nothing below the facade imports it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from nsd.blockstore import BlockStore
from nsd.core.cache.service import Cache, CacheSettings
from nsd.core.discovery import Discovery
from nsd.core.locks import KeyLocks
from nsd.core.metastore import MetaStore
from nsd.core.mounttable import MountTable
from nsd.core.permissions import Permissions
from nsd.core.staging import Stager
from nsd.namespace import Namespace


@dataclass
class Core:
    store: MetaStore
    mounts: MountTable
    stager: Stager
    discovery: Discovery
    perms: Permissions = field(default_factory=Permissions)
    locks: KeyLocks = field(default_factory=KeyLocks)
    cache: Cache | None = None  # None: no block store, reads and writes go to the UFS only

    @property
    def ns(self) -> Namespace:
        return self.store.ns

    @classmethod
    def build(
        cls,
        store: MetaStore,
        mounts: MountTable,
        stage_dir: Path,
        *,
        perms: Permissions | None = None,
        blocks: BlockStore | None = None,
        cache_settings: CacheSettings | None = None,
    ) -> Core:
        """The parts over a recovered store; with `blocks`, a cache counting every layout."""
        stager = Stager(stage_dir)
        cache = None
        if blocks is not None:
            cache = Cache(store, mounts, blocks, cache_settings or CacheSettings())
            cache.attach()
        return cls(
            store=store,
            mounts=mounts,
            stager=stager,
            discovery=Discovery(store, mounts, lambda ino: ino in stager.stages),
            perms=perms or Permissions(),
            cache=cache,
        )
