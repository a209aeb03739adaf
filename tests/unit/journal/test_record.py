"""Record framing: exact layout, every way the scanner stops, and garbage never raising."""

from __future__ import annotations

import struct

import crc32c
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nsd.journal.record import (
    ALIGN,
    HEADER,
    HEADER_SIZE,
    Record,
    Stop,
    StopReason,
    encode_record,
    encode_record_into,
    find_valid_record_after,
    salvage,
    scan,
    scan_all,
)


def test_layout_matches_the_spec_byte_for_byte() -> None:
    rec = encode_record(0x0102030405060708, 0xBEEF, b"abc")
    body = (
        struct.pack("<I", 3)
        + struct.pack("<Q", 0x0102030405060708)
        + struct.pack("<H", 0xBEEF)
        + bytes(6)
        + b"abc"
        + bytes(5)
    )
    assert rec == struct.pack("<I", crc32c.crc32c(body)) + body
    assert HEADER.size == HEADER_SIZE == 24
    assert len(rec) == 32


@pytest.mark.parametrize("n", range(0, 20))
def test_every_record_is_aligned_and_round_trips(n: int) -> None:
    payload = bytes(range(1, n + 1))
    rec = encode_record(7, 3, payload)
    assert len(rec) % ALIGN == 0
    assert len(rec) == HEADER_SIZE + ((n + 7) // 8) * 8
    records, stop = scan_all(rec)
    assert records == [Record(7, 3, payload, 0, len(rec))]
    assert stop == Stop(len(rec), None)
    assert stop.clean


def test_encode_into_appends_and_leaves_buf_alone_on_bad_fields() -> None:
    buf = bytearray(b"\x00" * 8)
    size = encode_record_into(buf, 1, 1, b"x")
    assert size == 32 and len(buf) == 40
    with pytest.raises(struct.error):
        encode_record_into(buf, 1, 0x10000, b"x")
    with pytest.raises(struct.error):
        encode_record_into(buf, -1, 1, b"x")
    assert len(buf) == 40


def test_scan_respects_start_and_end() -> None:
    a, b, c = (encode_record(t, 1, b"p" * t) for t in (1, 2, 3))
    buf = b"NSDWAL01" + a + b + c
    records, stop = scan_all(buf, 8 + len(a), 8 + len(a) + len(b))
    assert [r.txid for r in records] == [2]
    assert records[0].offset == 8 + len(a)
    assert stop == Stop(8 + len(a) + len(b), None)


def _reframe(header_fields: tuple[int, int, int], reserved: bytes, payload: bytes, pad: bytes) -> bytes:
    """A record with a correct crc over whatever reserved/padding bytes we choose."""
    n, txid, code = header_fields
    body = struct.pack("<IQH", n, txid, code) + reserved + payload + pad
    return struct.pack("<I", crc32c.crc32c(body)) + body


def test_stop_short_header() -> None:
    good = encode_record(1, 1, b"")
    records, stop = scan_all(good + bytes(16))
    assert len(records) == 1
    assert stop == Stop(len(good), StopReason.SHORT_HEADER)


def test_stop_length_past_end() -> None:
    rec = bytearray(encode_record(1, 1, b"12345678"))
    struct.pack_into("<I", rec, 4, 0xFFFFFFFF)  # hostile length
    assert scan_all(bytes(rec))[1] == Stop(0, StopReason.LENGTH_PAST_END)
    assert scan_all(encode_record(1, 1, b"12345678")[:-1])[1] == Stop(0, StopReason.LENGTH_PAST_END)


def test_stop_crc_mismatch() -> None:
    rec = bytearray(encode_record(1, 1, b"12345678"))
    rec[30] ^= 0x01
    assert scan_all(bytes(rec))[1] == Stop(0, StopReason.CRC_MISMATCH)


def test_stop_nonzero_reserved_even_with_a_good_crc() -> None:
    rec = _reframe((1, 1, 1), b"\x00\x00\x00\x01\x00\x00", b"x", bytes(7))
    assert scan_all(rec)[1] == Stop(0, StopReason.NONZERO_RESERVED)


def test_stop_nonzero_padding_even_with_a_good_crc() -> None:
    rec = _reframe((1, 1, 1), bytes(6), b"x", b"\x00\x00\x00\x00\x00\x00\x01")
    assert scan_all(rec)[1] == Stop(0, StopReason.NONZERO_PADDING)


def test_misaligned_start_is_a_stop() -> None:
    assert scan_all(encode_record(1, 1, b""), 3)[1] == Stop(3, StopReason.MISALIGNED)


def test_scanned_bytearray_can_grow_afterwards() -> None:
    buf = bytearray(encode_record(1, 1, b"abc"))
    list(scan(buf))
    encode_record_into(buf, 2, 1, b"def")
    assert [r.txid for r in scan_all(buf)[0]] == [1, 2]


def test_find_valid_record_after() -> None:
    a, b = encode_record(5, 1, b"a"), encode_record(6, 1, b"b")
    torn = a[:24] + b"?" + a[25:]  # payload byte changed: crc mismatch
    assert scan_all(torn)[1].reason is StopReason.CRC_MISMATCH
    assert find_valid_record_after(torn + b, 0, 4)  # record 6 survives the damaged record 5
    assert not find_valid_record_after(torn + b, 0, 6)  # ... but is not later than txid 6
    assert not find_valid_record_after(torn + bytes(4096), 0, 4)  # zero-filled tail
    assert not find_valid_record_after(a, 0, 0)  # the record at `offset` itself does not count
    assert find_valid_record_after(bytes(8) + a, 0, 0)


def test_salvage_skips_damage_and_finds_what_follows() -> None:
    recs = [encode_record(t, 1, b"x" * t) for t in range(1, 6)]
    damaged = bytearray(b"".join(recs))
    damaged[len(recs[0]) + 26] ^= 0xFF  # inside record 2
    assert [r.txid for r in salvage(bytes(damaged))] == [1, 3, 4, 5]


def _check_scan_invariants(buf: bytes, start: int) -> None:
    s = scan(buf, start)
    records = list(s)
    assert s.stop is not None
    off = start
    for r in records:
        assert isinstance(r, Record)
        assert r.offset == off
        assert buf[r.offset : r.end] == encode_record(r.txid, r.code, r.payload)
        off = r.end
    assert s.stop.offset == off
    assert s.stop.clean == (off == len(buf))


@settings(max_examples=600)
@given(st.binary(max_size=600), st.integers(min_value=-16, max_value=640))
def test_garbage_only_ever_yields_sound_records_and_a_stop(buf: bytes, start: int) -> None:
    if start % ALIGN or start < 0:
        assert scan_all(buf, start)[1].reason is StopReason.MISALIGNED
        return
    _check_scan_invariants(buf, start)
    find_valid_record_after(buf, start, 0)
    list(salvage(buf, start))


@settings(max_examples=400)
@given(
    st.lists(st.tuples(st.integers(0, 2**64 - 1), st.integers(0, 0xFFFF), st.binary(max_size=40)), max_size=6),
    st.binary(max_size=64),
    st.integers(0, 2**32 - 1),
)
def test_records_then_hostile_bytes(recs: list[tuple[int, int, bytes]], tail: bytes, hostile_len: int) -> None:
    """Valid records followed by a header claiming any length, then garbage."""
    framed = b"".join(encode_record(t, c, p) for t, c, p in recs)
    hostile = struct.pack("<II", 0, hostile_len) + bytes(16)
    buf = framed + hostile + tail
    records, stop = scan_all(buf)
    assert [(r.txid, r.code, r.payload) for r in records] == recs
    assert stop.offset == len(framed) and not stop.clean
    _check_scan_invariants(buf, 0)
