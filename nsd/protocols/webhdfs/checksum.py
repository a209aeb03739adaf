"""HDFS's file checksum, MD5-of-MD5-of-CRC32C, computed from a file's bytes.

What a DataNode does per block: a CRC32C over every `bytes_per_crc` bytes (the last chunk may be
short), the 4-byte big-endian CRCs concatenated and MD5'd. The file checksum is the MD5 of the
block MD5s in order. distcp compares these between clusters, so the value must be the real one
for the block size nsd advertises; a wrong value fails a copy where an error would not.

Wire form (MD5MD5CRC32FileChecksum.write): bytesPerCRC as int32, crcPerBlock as int64, the
16-byte MD5, all big-endian. crcPerBlock is the first block's CRC count when the file has more
than one block, else 0 (Hadoop's FileChecksumHelper records it only then).
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

import crc32c

BYTES_PER_CRC = 512

# An empty file has no blocks and no checksum type: Hadoop reports this constant.
EMPTY = ("MD5-of-0MD5-of-0CRC32", bytes.fromhex("00000000000000000000000070bc8f4b72a86921468bf8e8441dce51"))


@dataclass(frozen=True)
class FileChecksum:
    algorithm: str
    bytes: bytes

    @property
    def length(self) -> int:
        return len(self.bytes)


class Md5Md5Crc32c:
    """Incremental: feed() the file's bytes in order, in pieces of any size, then result().

    Cost: one CRC32C call per `bytes_per_crc` bytes (C code) plus MD5 over 4 bytes per chunk;
    memory: one partial chunk and the list of block MD5s (16 bytes per block).
    """

    def __init__(self, block_size: int, bytes_per_crc: int = BYTES_PER_CRC) -> None:
        if block_size <= 0 or bytes_per_crc <= 0 or block_size % bytes_per_crc:
            raise ValueError("block size must be a positive multiple of bytes per CRC")
        self.block_size = block_size
        self.bytes_per_crc = bytes_per_crc
        self._partial = bytearray()  # bytes of the current chunk so far
        self._block_md5 = hashlib.md5()
        self._block_bytes = 0  # bytes of the current block already turned into CRCs
        self._block_md5s: list[bytes] = []
        self._total = 0

    def feed(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        self._total += len(view)
        n = self.bytes_per_crc
        if self._partial:
            take = n - len(self._partial)
            self._partial += view[:take]
            view = view[take:]
            if len(self._partial) < n:
                return
            self._crc(self._partial)
            self._partial = bytearray()
        whole = len(view) - len(view) % n
        crcs = bytearray()
        for i in range(0, whole, n):
            crcs += struct.pack(">I", crc32c.crc32c(view[i : i + n]))
            self._block_bytes += n
            if self._block_bytes == self.block_size:
                self._block_md5.update(crcs)
                crcs = bytearray()
                self._end_block()
        self._block_md5.update(crcs)
        self._partial += view[whole:]

    def _crc(self, chunk: bytes | bytearray) -> None:
        self._block_md5.update(struct.pack(">I", crc32c.crc32c(chunk)))
        self._block_bytes += len(chunk)
        if self._block_bytes == self.block_size:
            self._end_block()

    def _end_block(self) -> None:
        self._block_md5s.append(self._block_md5.digest())
        self._block_md5 = hashlib.md5()
        self._block_bytes = 0

    def result(self) -> FileChecksum:
        if self._total == 0:
            return FileChecksum(*EMPTY)
        if self._partial:
            self._crc(self._partial)
            self._partial = bytearray()
        if self._block_bytes:
            self._end_block()
        blocks = self._block_md5s
        crc_per_block = self.block_size // self.bytes_per_crc if len(blocks) > 1 else 0
        digest = hashlib.md5(b"".join(blocks)).digest()
        algorithm = f"MD5-of-{crc_per_block}MD5-of-{self.bytes_per_crc}CRC32C"
        return FileChecksum(algorithm, struct.pack(">iq", self.bytes_per_crc, crc_per_block) + digest)
