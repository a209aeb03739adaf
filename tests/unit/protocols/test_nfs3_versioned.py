"""VersionedCache: an answer is given again only while the namespace is at the version it was
built at, and the cache stays within its bytes."""

from __future__ import annotations

import stat

from nsd.journal.ops import MkNode
from nsd.namespace import Namespace
from nsd.protocols.nfs3.versioned import VersionedCache


def test_an_answer_is_kept_only_while_the_namespace_stays_at_its_version() -> None:
    ns, cache, key = Namespace(), VersionedCache[tuple[int, ...], bytes](1 << 20), (2, 1, 99, 8192, 4096)
    assert cache.get(ns.version, key) is None
    cache.put(ns.version, key, b"page", 4)
    assert cache.get(ns.version, key) == b"page" and cache.hits == 1
    ns.apply(MkNode(1, "f", 2, stat.S_IFREG | 0o644, 0, 0, 1))  # any op moves the version
    assert cache.get(ns.version, key) is None
    cache.put(ns.version, key, b"page", 4)
    built_at = ns.version
    ns.changed()  # an attribute changed outside the journal (an unstable write)
    assert cache.get(ns.version, key) is None
    cache.put(built_at, key, b"built before the change", 23)  # not kept
    assert cache.get(ns.version, key) is None and not cache.has(ns.version, key)
    cache.put(ns.version, key, b"page", 4)
    assert cache.has(ns.version, key) and cache.hits == 1  # has() is not a hit
    other = Namespace()  # another namespace (a restore) never has a version this one had
    assert other.version != ns.version and cache.get(other.version, key) is None


def test_the_cache_is_bounded_in_bytes() -> None:
    ns, cache = Namespace(), VersionedCache[tuple[int, ...], bytes](size=3000)
    cache.get(ns.version, (0,))
    for i in range(4):
        cache.put(ns.version, (i,), bytes(1000), 1000)  # the fourth does not fit: all go, it stays
    assert [cache.get(ns.version, (i,)) is not None for i in range(4)] == [False, False, False, True]
    cache.put(ns.version, (9,), bytes(1 << 20), 1 << 20)  # larger than the whole cache: not kept
    assert cache.get(ns.version, (9,)) is None and cache.get(ns.version, (3,)) is not None
