"""The consistent-hash ring that places blocks on cluster nodes."""

from __future__ import annotations

import secrets

from nsd.core.cache.ring import Ring

DIGESTS = [secrets.token_hex(32) for _ in range(20_000)]


def test_owners_are_distinct_and_deterministic() -> None:
    ring = Ring(["a", "b", "c"])
    for d in DIGESTS[:500]:
        owners = ring.owners(d, 2)
        assert len(owners) == 2 and len(set(owners)) == 2
        assert Ring(["c", "a", "b"]).owners(d, 2) == owners  # same members, same answer
        assert ring.owners(d, 3)[:2] == owners  # more replicas extend the list, never reorder it
    assert len(ring.owners(DIGESTS[0], 5)) == 3
    assert Ring([]).owners(DIGESTS[0]) == []


def test_load_is_spread_and_a_join_or_leave_moves_about_one_nth() -> None:
    three = Ring(["a", "b", "c"])
    counts = {n: 0 for n in three.nodes}
    for d in DIGESTS:
        counts[three.owners(d)[0]] += 1
    assert all(0.22 < c / len(DIGESTS) < 0.45 for c in counts.values()), counts
    four = Ring(["a", "b", "c", "d"])
    moved = sum(three.owners(d)[0] != four.owners(d)[0] for d in DIGESTS) / len(DIGESTS)
    assert 0.15 < moved < 0.35  # ideal 1/4, and only to the new node:
    assert all(four.owners(d)[0] == "d" for d in DIGESTS if three.owners(d)[0] != four.owners(d)[0])
    two = Ring(["a", "c"])
    left = sum(three.owners(d)[0] != two.owners(d)[0] for d in DIGESTS) / len(DIGESTS)
    assert 0.2 < left < 0.45  # ideal 1/3: only b's blocks move
    assert all(three.owners(d)[0] == "b" for d in DIGESTS if three.owners(d)[0] != two.owners(d)[0])
