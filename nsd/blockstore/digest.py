"""Digests, names and block plans: the pure helpers every other block store module uses.

A block is named by the lowercase hex blake3 digest (64 characters) of its bytes and lives at
`<tier>/<first two hex chars>/<digest>`. Files being written carry a `.tmp` suffix until renamed.
"""

from __future__ import annotations

import re

import blake3

DIGEST_CHARS = 64
TMP_SUFFIX = ".tmp"
FANOUT = tuple(f"{i:02x}" for i in range(256))
_DIGEST = re.compile(r"[0-9a-f]{64}")


def is_digest(name: str) -> bool:
    return _DIGEST.fullmatch(name) is not None


def fanout_dir(digest: str) -> str:
    return digest[:2]


def hash_block(data: bytes | memoryview, *, multithread_bytes: int = 1 << 20) -> str:
    """blake3 hex digest. Releases the GIL; inputs of at least `multithread_bytes` use blake3's
    own thread pool too (worthwhile only for large inputs: it costs a pool hand-off)."""
    threads = blake3.blake3.AUTO if len(data) >= multithread_bytes else 1
    return blake3.blake3(data, max_threads=threads).hexdigest()


def split_blocks(data_len: int, block_size: int) -> list[tuple[int, int]]:
    """The (offset, length) of each block of a `data_len`-byte file cut into `block_size` blocks;
    every block is full but the last. An empty file has no blocks."""
    if block_size <= 0:
        raise ValueError(f"block size must be positive, not {block_size}")
    if data_len < 0:
        raise ValueError(f"length must not be negative, not {data_len}")
    return [(off, min(block_size, data_len - off)) for off in range(0, data_len, block_size)]
