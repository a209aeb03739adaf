"""Which nodes own a block: a consistent-hash ring over blake3 digests.

Each node stands at VNODES points of a 64-bit ring (the blake3 of "name#i"); a block's owners
are the first `n` distinct nodes at or after its digest's point (its first 16 hex digits: a
blake3 digest is uniform already). A node joining or leaving moves only the blocks between its
points and their predecessors, about 1/N of them, and every node computes the same owners
from the same member list, with no coordination.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

import blake3

VNODES = 128


def _point(text: str) -> int:
    return int.from_bytes(blake3.blake3(text.encode()).digest()[:8], "big")


class Ring:
    def __init__(self, nodes: Iterable[str], vnodes: int = VNODES) -> None:
        self.nodes = sorted(set(nodes))
        points = sorted((_point(f"{name}#{i}"), name) for name in self.nodes for i in range(vnodes))
        self._keys = [p for p, _ in points]
        self._names = [name for _, name in points]

    def owners(self, digest: str, n: int = 1) -> list[str]:
        """The first `n` distinct nodes clockwise from `digest` (fewer if the ring has fewer)."""
        if not self._keys:
            return []
        want = min(n, len(self.nodes))
        found: list[str] = []
        i = bisect.bisect_left(self._keys, int(digest[:16], 16))
        for step in range(len(self._keys)):
            name = self._names[(i + step) % len(self._keys)]
            if name not in found:
                found.append(name)
                if len(found) == want:
                    break
        return found
