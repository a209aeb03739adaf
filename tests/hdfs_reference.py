"""A deliberately naive HDFS MD5-of-MD5-of-CRC32C, written from the definition, to check nsd's."""

from __future__ import annotations

import hashlib
import struct

import crc32c


def reference_checksum(data: bytes, block_size: int, bytes_per_crc: int = 512) -> tuple[str, bytes]:
    """(algorithm, wire bytes) as HDFS computes them for `data` stored in `block_size` blocks."""
    blocks = [data[i : i + block_size] for i in range(0, len(data), block_size)]
    block_md5s = []
    for block in blocks:
        crcs = b"".join(
            struct.pack(">I", crc32c.crc32c(block[i : i + bytes_per_crc])) for i in range(0, len(block), bytes_per_crc)
        )
        block_md5s.append(hashlib.md5(crcs).digest())
    crc_per_block = block_size // bytes_per_crc if len(blocks) > 1 else 0
    algorithm = f"MD5-of-{crc_per_block}MD5-of-{bytes_per_crc}CRC32C"
    return algorithm, struct.pack(">iq", bytes_per_crc, crc_per_block) + hashlib.md5(b"".join(block_md5s)).digest()
