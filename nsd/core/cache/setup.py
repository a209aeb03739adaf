"""The block store and cache settings as the configuration describes them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from nsd import errors
from nsd.blockstore import BlockStore, TierSpec
from nsd.core.cache.policy import parse_read_type, parse_write_type
from nsd.core.cache.service import CacheSettings

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SIZE = re.compile(r"\s*(\d+)\s*([KMGT]?)(?:I?B)?\s*", re.IGNORECASE)


def parse_bytes(text: str) -> int:
    """'4096', '512M', '10G', '1TiB' -> bytes (binary units)."""
    m = _SIZE.fullmatch(text)
    if m is None:
        raise errors.Invalid(f"not a size in bytes: {text!r} (e.g. 4096, 512M, 10G)")
    return int(m.group(1)) * _UNITS[m.group(2).upper()]


def tier_specs(cache_dirs: str, data_path: Path, default_bytes: int) -> list[TierSpec]:
    """'PATH:BYTES;PATH:BYTES' (fastest first); empty: <data_path>/blocks of `default_bytes`."""
    if not cache_dirs.strip():
        return [TierSpec(data_path / "blocks", default_bytes)]
    specs = []
    for item in cache_dirs.split(";"):
        if not item.strip():
            continue
        path, sep, size = item.strip().rpartition(":")
        if not sep or not path:
            raise errors.Invalid(f"cache_dirs entry must be PATH:BYTES, not {item!r}")
        specs.append(TierSpec(Path(path).expanduser(), parse_bytes(size)))
    return specs


def settings(config: Any) -> CacheSettings:
    return CacheSettings(
        block_size=config.block_size,
        read_type=parse_read_type(config.read_type),
        write_type=parse_write_type(config.write_type),
        persist_delay=config.persist_delay,
        persist_retry_max=config.persist_retry_max,
        ttl_interval=config.ttl_check_interval,
        read_ahead_blocks=config.cache_read_ahead_blocks,
    )


async def open_block_store(config: Any, data_path: Path) -> BlockStore:
    """Open (and index) the store; eviction runs in the background until close()."""
    try:
        store = BlockStore(
            memory_bytes=config.cache_memory_bytes,
            tiers=tier_specs(config.cache_dirs, data_path, config.cache_disk_bytes),
            high_watermark=config.cache_high_watermark,
            low_watermark=config.cache_low_watermark,
            fsync=config.fsync,
            verify_reads=config.cache_verify_reads,
            max_block_bytes=max(64 << 20, config.block_size),
        )
    except ValueError as e:
        raise errors.Invalid(f"cache configuration: {e}") from None
    await store.open()
    store.start_background_eviction()
    return store
