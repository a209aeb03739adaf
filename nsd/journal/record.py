"""Record framing shared by segments and checkpoints.

Layout (little-endian, every record 8-byte aligned)::

    0   4  crc32c over bytes 4 .. end of padding
    4   4  payload length (before padding)
    8   8  txid
    16  2  op code
    18  6  reserved, zero
    24  n  payload
    24+n p zero padding to a multiple of 8

Reading never raises on bad input. The scanner ends with a `Stop` saying where and why it
stopped, and the caller alone decides whether a bad record is a torn tail or corruption
(`find_valid_record_after` gives it the evidence).
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterator
from dataclasses import dataclass

import crc32c

HEADER = struct.Struct("<IIQH6x")
HEADER_SIZE = HEADER.size
ALIGN = 8
_CRC = struct.Struct("<I")
# Header minus its crc field, read back in one unpack to check txid, code and reserved bytes.
_BODY = struct.Struct("<IQH6s")
_ZERO_RESERVED = bytes(6)

assert HEADER_SIZE == 24


def padded(n: int) -> int:
    """n rounded up to a multiple of ALIGN."""
    return (n + ALIGN - 1) & ~(ALIGN - 1)


def encode_record_into(buf: bytearray, txid: int, code: int, payload: bytes) -> int:
    """Append one framed record to `buf`; returns its size. Costs one crc pass over the record."""
    n = len(payload)
    header = HEADER.pack(0, n, txid, code)  # raises before buf is touched
    start = len(buf)
    size = HEADER_SIZE + padded(n)
    buf += header
    buf += payload
    buf += bytes(size - HEADER_SIZE - n)
    with memoryview(buf) as view:
        _CRC.pack_into(buf, start, crc32c.crc32c(view[start + 4 : start + size]))
    return size


def encode_record(txid: int, code: int, payload: bytes) -> bytes:
    """One framed record: header, payload, zero padding. Raises struct.error if a field is out of range."""
    buf = bytearray()
    encode_record_into(buf, txid, code, payload)
    return bytes(buf)


@dataclass(frozen=True, slots=True)
class Record:
    txid: int
    code: int
    payload: bytes
    offset: int  # where the record starts in the buffer it was read from
    size: int  # header + payload + padding

    @property
    def end(self) -> int:
        return self.offset + self.size


class StopReason(enum.Enum):
    SHORT_HEADER = "short header"
    LENGTH_PAST_END = "length past end"
    CRC_MISMATCH = "crc mismatch"
    NONZERO_RESERVED = "nonzero reserved bytes"
    NONZERO_PADDING = "nonzero padding"
    MISALIGNED = "misaligned offset"


@dataclass(frozen=True, slots=True)
class Stop:
    """Where a scan ended: at `offset`, cleanly (reason None) or at a bad record."""

    offset: int
    reason: StopReason | None

    @property
    def clean(self) -> bool:
        return self.reason is None

    def describe(self) -> str:
        return "clean end" if self.reason is None else self.reason.value


def _check_at(buf: memoryview, off: int, end: int) -> Record | StopReason:
    """The record at `off` if it is whole and sound, else why not."""
    if end - off < HEADER_SIZE:
        return StopReason.SHORT_HEADER
    crc, n = struct.unpack_from("<II", buf, off)
    size = HEADER_SIZE + padded(n)
    if size > end - off:
        return StopReason.LENGTH_PAST_END
    if crc32c.crc32c(buf[off + 4 : off + size]) != crc:
        return StopReason.CRC_MISMATCH
    _, txid, code, reserved = _BODY.unpack_from(buf, off + 4)
    if reserved != _ZERO_RESERVED:
        return StopReason.NONZERO_RESERVED
    if size > HEADER_SIZE + n and any(buf[off + HEADER_SIZE + n : off + size]):
        return StopReason.NONZERO_PADDING
    payload = bytes(buf[off + HEADER_SIZE : off + HEADER_SIZE + n])
    return Record(txid, code, payload, off, size)


class Scan:
    """Iterates the records of buf[start:end] once; when exhausted, `stop` says where and why it ended.

    Cost: one crc pass over every byte read, one payload copy per record.
    """

    def __init__(self, buf: bytes | bytearray | memoryview, start: int = 0, end: int | None = None) -> None:
        self._buf = memoryview(buf).cast("B")
        self._start = start
        self._end = len(self._buf) if end is None else min(end, len(self._buf))
        self.stop: Stop | None = None

    def __iter__(self) -> Iterator[Record]:
        off, end = self._start, self._end
        try:
            if off % ALIGN or off < 0:
                self.stop = Stop(off, StopReason.MISALIGNED)
                return
            if off > end:
                self.stop = Stop(off, StopReason.SHORT_HEADER)
                return
            while off < end:
                found = _check_at(self._buf, off, end)
                if isinstance(found, StopReason):
                    self.stop = Stop(off, found)
                    return
                yield found
                off = found.end
            self.stop = Stop(off, None)
        finally:
            # Let a scanned bytearray be resized again once the scan is over.
            self._buf.release()


def scan(buf: bytes | bytearray | memoryview, start: int = 0, end: int | None = None) -> Scan:
    """Scan records from `start` to `end` (default: end of buf). See `Scan`."""
    return Scan(buf, start, end)


def scan_all(buf: bytes | bytearray | memoryview, start: int = 0, end: int | None = None) -> tuple[list[Record], Stop]:
    """Every record up to the first bad one, and the stop."""
    s = Scan(buf, start, end)
    records = list(s)
    assert s.stop is not None
    return records, s.stop


def find_valid_record_after(buf: bytes | bytearray | memoryview, offset: int, min_txid: int) -> bool:
    """True if a sound record with txid > min_txid starts at some aligned offset after `offset`.

    This is what tells a torn tail (nothing valid follows) from corruption (later records
    survive). Cost: a header unpack per aligned offset to the end of buf; crc only for
    headers that look plausible, so garbage and zero-filled tails are cheap.
    """
    with memoryview(buf) as raw, raw.cast("B") as view:
        end = len(view)
        off = padded(max(offset + 1, 0))
        while end - off >= HEADER_SIZE:
            n, txid, _, reserved = _BODY.unpack_from(view, off + 4)
            if (
                txid > min_txid
                and reserved == _ZERO_RESERVED
                and HEADER_SIZE + padded(n) <= end - off
                and isinstance(_check_at(view, off, end), Record)
            ):
                return True
            off += ALIGN
        return False


def salvage(buf: bytes | bytearray | memoryview, start: int = 0) -> Iterator[Record]:
    """Every sound record found at an aligned offset from `start` on, skipping over bad bytes.

    For offline tools (repair, dump) that want to know what lies past a bad record; recovery
    never uses it to skip damage. Cost: like `find_valid_record_after`.
    """
    with memoryview(buf) as raw, raw.cast("B") as view:
        end = len(view)
        off = padded(max(start, 0))
        while end - off >= HEADER_SIZE:
            n, _, _, reserved = _BODY.unpack_from(view, off + 4)
            found = None
            if reserved == _ZERO_RESERVED and HEADER_SIZE + padded(n) <= end - off:
                found = _check_at(view, off, end)
            if isinstance(found, Record):
                yield found
                off = found.end
            else:
                off += ALIGN
