"""Counters of the block store (the figures behind `nsd report`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class Counters:
    """Monotonic since open(); never persisted."""

    hits: int = 0  # get() served, from memory or disk
    hits_memory: int = 0
    hits_disk: int = 0
    misses: int = 0  # get() returned None (absent, vanished or corrupt)
    puts: int = 0
    dedup_puts: int = 0  # put() of a block already stored: nothing written
    bytes_written: int = 0
    bytes_read_from_cache: int = 0  # bytes returned by get() hits
    evictions: int = 0  # blocks dropped from a disk tier by eviction
    evicted_bytes: int = 0
    memory_evictions: int = 0  # copies dropped from the memory tier
    corrupt: int = 0  # blocks whose bytes did not match their name (dropped, never served)
    verified_reads: int = 0  # disk reads whose bytes were hashed (the file not known to match yet)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)
