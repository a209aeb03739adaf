from __future__ import annotations

import pytest

from nsd.protocols.xdr import Packer, Unpacker, XdrError, pad_len


def test_round_trip_of_every_type() -> None:
    p = Packer()
    p.uint32(7)
    p.int32(-2)
    p.uint64(1 << 40)
    p.bool(True)
    p.opaque(b"abcde")
    p.fixed(b"xy")
    p.string(b"")
    data = bytes(p.buf)
    assert len(data) % 4 == 0
    u = Unpacker(data)
    assert (u.uint32(), u.int32(), u.uint64(), u.bool()) == (7, -2, 1 << 40, True)
    assert u.opaque(10) == b"abcde"
    assert u.fixed(2) == b"xy"
    assert u.string(0) == b""
    u.done()


def test_opaque_padding_is_on_the_wire() -> None:
    p = Packer()
    p.opaque(b"a")
    assert bytes(p.buf) == b"\0\0\0\1a\0\0\0"
    assert [pad_len(n) for n in range(6)] == [0, 4, 4, 4, 4, 8]


@pytest.mark.parametrize(
    "data, read",
    [
        (b"\0\0\0", lambda u: u.uint32()),
        (b"\0\0\0\0\0\0\0", lambda u: u.uint64()),
        (b"\0\0\0\2", lambda u: u.bool()),
        (b"\0\0\0\5abc", lambda u: u.opaque(10)),
        (b"\0\0\0\x0bhello world\0", lambda u: u.opaque(10)),  # over its limit
        (b"\xff\xff\xff\xff", lambda u: u.opaque(1 << 40)),  # length past the end
        (b"\0\0\0\x09", lambda u: u.enum(frozenset({1, 2}))),
    ],
)
def test_short_or_invalid_input_is_xdr_error(data: bytes, read: object) -> None:
    with pytest.raises(XdrError):
        read(Unpacker(data))  # type: ignore[operator]


def test_trailing_bytes_are_reported() -> None:
    u = Unpacker(b"\0\0\0\1\0\0\0\2")
    u.uint32()
    with pytest.raises(XdrError):
        u.done()


def test_views_do_not_copy() -> None:
    data = bytearray(b"\0\0\0\4abcd")
    view = Unpacker(data).opaque_view(4)
    data[4] = ord("z")
    assert bytes(view) == b"zbcd"
