from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from nsd.protocols.rpc import oncrpc
from nsd.protocols.rpc.oncrpc import NEED_DATA, AuthSys, FrameError, RecordDecoder


def records_of(stream: bytes, step: int, max_record: int = 1 << 20) -> list[bytes]:
    d = RecordDecoder(max_record)
    out: list[bytes] = []
    for i in range(0, len(stream), step):
        d.feed(stream[i : i + step])
        while (r := d.next()) is not NEED_DATA:
            assert isinstance(r, bytes | bytearray)
            out.append(r)
    return out


def fragments(record: bytes, sizes: list[int]) -> bytes:
    out, pos = b"", 0
    for i, n in enumerate(sizes):
        last = i == len(sizes) - 1
        chunk = record[pos : pos + n] if not last else record[pos:]
        out += struct.pack(">I", (0x80000000 if last else 0) | len(chunk)) + chunk
        pos += n
    return out


STREAM = oncrpc.encode_record(b"first") + fragments(b"second record", [3, 4, 2]) + oncrpc.encode_record(b"")


@pytest.mark.parametrize("step", [len(STREAM), 1, 3, 7])
def test_records_whole_or_byte_at_a_time(step: int) -> None:
    assert records_of(STREAM, step) == [b"first", b"second record", b""]


def test_trailing_partial_record_waits() -> None:
    d = RecordDecoder()
    d.feed(oncrpc.encode_record(b"one") + b"\x80\0\0\x10par")
    assert d.next() == b"one"
    assert d.next() is NEED_DATA
    d.feed(b"tial record!!")
    assert d.next() == b"partial record!!"
    assert d.next() is NEED_DATA and d.buffered() == 0


def test_size_cap_counts_all_fragments() -> None:
    d = RecordDecoder(max_record=10)
    d.feed(fragments(b"0123456789abc", [6, 7]))
    with pytest.raises(FrameError):
        d.next()
    d = RecordDecoder(max_record=10)
    d.feed(struct.pack(">I", 0x80000000 | 11))  # refused from the header alone
    with pytest.raises(FrameError):
        d.next()


def test_empty_non_final_fragment_is_a_broken_frame() -> None:
    d = RecordDecoder()
    d.feed(b"\0\0\0\0")
    with pytest.raises(FrameError):
        d.next()


@settings(max_examples=200, deadline=None)
@given(
    hs.lists(hs.tuples(hs.binary(max_size=90), hs.integers(1, 4)), max_size=8),
    hs.lists(hs.integers(1, 64), min_size=1, max_size=10),
    hs.integers(1, 40),
)
def test_records_large_and_small_in_any_pieces(records: list[tuple[bytes, int]], steps: list[int], large: int) -> None:
    """Large records go to buffers of their own (here from `large` bytes on); order and bytes hold."""
    records = [(r, min(n, max(1, len(r)))) for r, n in records]  # no empty non-final fragments
    stream = b"".join(fragments(r, [len(r) // n] * (n - 1) + [0]) if n > 1 else oncrpc.encode_record(r)
                      for r, n in records)  # fmt: skip
    d = RecordDecoder(large=large, buffer_size=16)
    out: list[bytes] = []
    pos, i = 0, 0
    while pos < len(stream):
        n = steps[i % len(steps)]
        i += 1
        if i % 2:
            d.feed(stream[pos : pos + n])
        else:  # as a BufferedProtocol transport does
            with d.get_buffer() as view:
                n = min(n, len(view), len(stream) - pos)
                view[:n] = stream[pos : pos + n]
            d.buffer_updated(n)
        pos += n
        while (r := d.next()) is not NEED_DATA:
            assert isinstance(r, bytes | bytearray)
            out.append(bytes(r))
            d.recycle(r)
    assert out == [r for r, _ in records]
    assert d.buffered() == 0


def test_a_large_record_is_received_in_place_and_its_buffer_reused() -> None:
    d = RecordDecoder(large=1000)
    body = bytes(range(256)) * 10
    stream = oncrpc.encode_record(body)
    d.feed(stream[:100])
    assert d.next() is NEED_DATA
    view = d.get_buffer()
    assert len(view) == len(body) - 96  # exactly the rest of the record: nothing after it lands there
    view[:] = stream[100:]
    d.buffer_updated(len(view))
    record = d.next()
    assert record == body and isinstance(record, bytearray)
    assert view.obj is record  # the socket's bytes went straight into the record
    view.release()
    held = memoryview(record)[5:9]  # a call still looking at it: not taken back
    d.recycle(record)
    d.feed(stream)
    again = d.next()
    assert again == body and again is not record
    held.release()
    d.recycle(again)
    d.feed(stream)
    assert d.next() is again  # reused: no fresh memory for the next record of that size


def test_call_round_trip_with_auth_sys() -> None:
    cred = AuthSys(42, b"host", 1000, 100, (4, 5, 6))
    record = oncrpc.encode_call(9, 100003, 3, 1, b"ARGS", cred=cred)[4:]
    call = oncrpc.decode_call(record)
    assert (call.xid, call.prog, call.vers, call.proc, call.flavor) == (9, 100003, 3, 1, oncrpc.AUTH_SYS)
    assert call.cred == cred
    assert record[call.args_offset :] == b"ARGS"


def test_auth_sys_limits() -> None:
    ok = AuthSys(0, b"m" * 255, 0, 0, tuple(range(16)))
    assert oncrpc.decode_call(oncrpc.encode_call(1, 1, 1, 1, cred=ok)[4:]).cred == ok
    for bad in (AuthSys(0, b"m" * 256, 0, 0, ()), AuthSys(0, b"m", 0, 0, tuple(range(17)))):
        with pytest.raises(oncrpc.CallError) as e:
            oncrpc.decode_call(oncrpc.encode_call(1, 1, 1, 1, cred=bad)[4:])
        reply = oncrpc.decode_reply(e.value.reply[4:])
        assert (reply.accepted, reply.stat, reply.detail) == (False, oncrpc.AUTH_ERROR, (oncrpc.AUTH_BADCRED,))


def test_calls_that_get_no_reply_or_an_error_reply() -> None:
    with pytest.raises(oncrpc.Ignored):
        oncrpc.decode_call(b"\0\0")
    with pytest.raises(oncrpc.Ignored):
        oncrpc.decode_call(struct.pack(">IIIIII", 1, oncrpc.REPLY, 2, 0, 0, 0))
    with pytest.raises(oncrpc.CallError) as e:
        oncrpc.decode_call(struct.pack(">IIIIII", 1, oncrpc.CALL, 3, 0, 0, 0) + b"\0" * 16)
    reply = oncrpc.decode_reply(e.value.reply[4:])
    assert (reply.stat, reply.detail) == (oncrpc.RPC_MISMATCH, (2, 2))
    with pytest.raises(oncrpc.CallError) as e:
        oncrpc.decode_call(struct.pack(">IIIIII", 5, oncrpc.CALL, 2, 1, 1, 1) + b"\0\0")
    assert oncrpc.decode_reply(e.value.reply[4:]).stat == oncrpc.AUTH_ERROR


def test_reply_encoders() -> None:
    r = oncrpc.decode_reply(oncrpc.prog_mismatch_reply(3, 2, 4)[4:])
    assert (r.xid, r.accepted, r.stat, r.detail) == (3, True, oncrpc.PROG_MISMATCH, (2, 4))
    head = oncrpc.success_header(8, 4)
    assert struct.unpack(">I", head[:4])[0] == 0x80000000 | (len(head) - 4 + 4)
    r = oncrpc.decode_reply(head[4:] + b"body")
    assert (r.xid, r.stat, r.body) == (8, oncrpc.SUCCESS, b"body")


def test_record_buffers_are_pooled_across_decoders_within_a_bound() -> None:
    pool = oncrpc.BufferPool(max_bytes=2500)
    a, b = RecordDecoder(large=1000, pool=pool), RecordDecoder(large=1000, pool=pool)
    stream = oncrpc.encode_record(bytes(1200))
    a.feed(stream)
    first = a.next()
    a.feed(stream)
    second = a.next()
    assert isinstance(first, bytearray) and isinstance(second, bytearray)
    a.recycle(first)
    a.recycle(second)
    assert pool.bytes == 1200 * 2
    b.feed(stream)
    assert b.next() is second  # another connection reuses it
    b.feed(stream)
    third = b.next()
    assert third is first
    a.recycle(third)
    b.recycle(bytearray(1200))
    b.recycle(bytearray(1200))  # a third would make 3600 > 2500: not kept
    assert pool.bytes == 1200 * 2


def test_a_buffer_given_back_while_viewed_is_reused_once_the_view_is_gone() -> None:
    pool = oncrpc.BufferPool(max_bytes=10_000)
    decoder = RecordDecoder(large=1000, pool=pool)
    stream = oncrpc.encode_record(bytes(1200))
    decoder.feed(stream)
    first = decoder.next()
    assert isinstance(first, bytearray)
    view = memoryview(first)[8:]  # a WRITE's data, still being written after its reply
    decoder.recycle(first)
    decoder.feed(stream)
    second = decoder.next()
    assert second is not first  # never handed out while viewed
    view.release()
    decoder.recycle(second)
    decoder.feed(stream)
    decoder.feed(stream)
    assert {id(decoder.next()), id(decoder.next())} == {id(first), id(second)}  # both reused
    assert pool.bytes == 0
