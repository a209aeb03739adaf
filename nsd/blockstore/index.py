"""Where each block is: digest -> (size, disk tier), with used bytes per tier.

Rebuilt by the store from a scan of the block files on every open; never persisted, never trusted
from elsewhere. Every block is in exactly one disk tier (a memory copy is extra, see MemoryTier).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Entry:
    size: int
    tier: int
    # The block file's identity (disk.identity) when a read last hashed its bytes to the digest,
    # once that identity had settled; None until then. See BlockStore.get.
    verified: tuple[int, int, int, int] | None = None


class Index:
    def __init__(self, tiers: int) -> None:
        self.entries: dict[str, Entry] = {}
        self.used = [0] * tiers
        self.members: list[set[str]] = [set() for _ in range(tiers)]
        # Bytes of writes in flight per tier: counted against capacity before the block exists.
        self.reserved = [0] * tiers

    def __contains__(self, digest: str) -> bool:
        return digest in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, digest: str) -> Entry | None:
        return self.entries.get(digest)

    def add(self, digest: str, size: int, tier: int) -> None:
        assert digest not in self.entries, f"block {digest} indexed twice"
        self.entries[digest] = Entry(size, tier)
        self.used[tier] += size
        self.members[tier].add(digest)

    def drop(self, digest: str) -> Entry | None:
        entry = self.entries.pop(digest, None)
        if entry is not None:
            self.used[entry.tier] -= entry.size
            self.members[entry.tier].discard(digest)
        return entry

    def committed(self, tier: int) -> int:
        """Bytes stored plus bytes being written in `tier`."""
        return self.used[tier] + self.reserved[tier]

    def physical(self) -> int:
        return sum(self.used)

    def check(self) -> None:
        for t, members in enumerate(self.members):
            assert all(self.entries[d].tier == t for d in members), f"tier {t} member set disagrees with entries"
            assert self.used[t] == sum(self.entries[d].size for d in members), f"tier {t} used bytes drifted"
            assert self.reserved[t] >= 0, f"tier {t} reserved bytes negative"
        assert sum(len(m) for m in self.members) == len(self.entries), "an entry is in no tier's member set"
