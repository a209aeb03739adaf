"""LRFU: the value of a block from how recently *and* how often it was used.

Each access at logical time t adds F(now - t) = 2 ** (-lam * (now - t)) to a block's combined
recency-frequency (CRF). lam = 0 is LFU (every access counts forever), lam = 1 behaves as LRU
(the last access outweighs all earlier ones); values between weigh both (Lee et al., 2001).

The CRF at `now` is crf * 2 ** (-lam * (now - last)), so comparing two blocks needs no decay of
all entries: log2(crf) + lam * last orders blocks the same way at any `now`. That key only
changes when its block is accessed, so it is stored, and a victim order is one sort.
"""

from __future__ import annotations

import math
from collections.abc import Iterable


class Lrfu:
    """Per-digest (crf, last access) on a logical clock that ticks once per access.

    Costs: touch O(1); order() O(n log n) over the candidates given.
    """

    def __init__(self, lam: float = 0.001) -> None:
        if not 0.0 <= lam <= 1.0:
            raise ValueError(f"LRFU lambda must be in [0, 1], not {lam}")
        self.lam = lam
        self.clock = 0
        self._crf: dict[str, float] = {}
        self._last: dict[str, int] = {}

    def __contains__(self, digest: str) -> bool:
        return digest in self._crf

    def __len__(self) -> int:
        return len(self._crf)

    def digests(self) -> set[str]:
        return set(self._crf)

    def touch(self, digest: str) -> None:
        """Record one access now."""
        self.clock += 1
        last = self._last.get(digest)
        if last is None:
            self._crf[digest] = 1.0
        else:
            self._crf[digest] = 1.0 + self._crf[digest] * 2.0 ** (-self.lam * (self.clock - last))
        self._last[digest] = self.clock

    def forget(self, digest: str) -> None:
        self._crf.pop(digest, None)
        self._last.pop(digest, None)

    def key(self, digest: str) -> float:
        """Smaller is less valuable. Unknown digests are least valuable of all."""
        crf = self._crf.get(digest)
        if crf is None:
            return -math.inf
        return math.log2(crf) + self.lam * self._last[digest]

    def order(self, digests: Iterable[str]) -> list[str]:
        """The digests, least valuable first (ties: least recently used first)."""
        return sorted(digests, key=lambda d: (self.key(d), self._last.get(d, -1)))

    def check(self) -> None:
        """Assert the invariants; AssertionError says which. Both tables know the same digests;
        each last access is its own tick of the clock; a CRF is at least 1 (the last access)
        and at most the number of ticks (every access its own). Cost: O(digests)."""
        if self._crf.keys() != self._last.keys():
            raise AssertionError("LRFU: CRF and last-access tables name different digests")
        lasts = list(self._last.values())
        if len(set(lasts)) != len(lasts) or not all(1 <= t <= self.clock for t in lasts):
            raise AssertionError(f"LRFU: last accesses {sorted(lasts)} are not distinct ticks of 1..{self.clock}")
        for digest, crf in self._crf.items():
            if not 1.0 <= crf <= self.clock:
                raise AssertionError(f"LRFU: CRF of {digest} is {crf}, outside [1, {self.clock}]")
