"""The memory tier: whole blocks as immutable bytes objects, bounded by bytes."""

from __future__ import annotations


class MemoryTier:
    """digest -> bytes. get() returns the stored object itself: no copy, so a hit costs a dict
    lookup whatever the block size. The owner decides what to drop; this class only counts."""

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError(f"memory capacity must not be negative, not {capacity}")
        self.capacity = capacity
        self.used = 0
        self._blocks: dict[str, bytes] = {}

    def __contains__(self, digest: str) -> bool:
        return digest in self._blocks

    def __len__(self) -> int:
        return len(self._blocks)

    def digests(self) -> list[str]:
        return list(self._blocks)

    def get(self, digest: str) -> bytes | None:
        return self._blocks.get(digest)

    def add(self, digest: str, data: bytes) -> None:
        if digest not in self._blocks:
            self._blocks[digest] = data
            self.used += len(data)

    def drop(self, digest: str) -> int:
        """Forget a copy; returns the bytes freed (0 when it was not here)."""
        data = self._blocks.pop(digest, None)
        if data is None:
            return 0
        self.used -= len(data)
        return len(data)

    def check(self) -> None:
        assert self.used == sum(len(b) for b in self._blocks.values()), "memory tier used bytes drifted"
        assert self.used <= self.capacity, f"memory tier over capacity: {self.used} > {self.capacity}"
