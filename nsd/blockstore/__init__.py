"""Content-addressed block store: blake3-named immutable blocks in a memory tier above disk tiers,
deduplicated, verified on read, reference counted, evicted by LRFU. Knows digests, never paths."""

from nsd.blockstore.digest import hash_block, is_digest, split_blocks
from nsd.blockstore.disk import TierSpec
from nsd.blockstore.singleflight import SingleFlight
from nsd.blockstore.store import BlockStore

__all__ = ["BlockStore", "SingleFlight", "TierSpec", "hash_block", "is_digest", "split_blocks"]
