"""XDR (RFC 4506): the wire encoding of ONC RPC, NFS, MOUNT and the portmapper.

Hand-written on purpose: `xdrlib` is gone in Python 3.13, and the hot paths (fattr3, READ,
WRITE, READDIRPLUS entries) want precompiled `struct.Struct` objects, not one call per field.

`Unpacker` reads from a bytes-like object without copying until a caller asks for bytes;
every read checks bounds and raises `XdrError`, the only exception a decoder may raise on
garbage. `Packer` appends to one bytearray.
"""

from __future__ import annotations

import struct

U32 = struct.Struct(">I")
I32 = struct.Struct(">i")
U64 = struct.Struct(">Q")
I64 = struct.Struct(">q")
U32X2 = struct.Struct(">II")
U32X3 = struct.Struct(">III")

_PAD = (b"", b"\0\0\0", b"\0\0", b"\0")


class XdrError(Exception):
    """The bytes are not a valid encoding of what the decoder expected."""


def pad_len(n: int) -> int:
    """`n` rounded up to a multiple of 4: the size of n bytes of opaque data on the wire."""
    return (n + 3) & ~3


class Unpacker:
    """Sequential reader over `data`. Methods raise XdrError on short or invalid input."""

    __slots__ = ("data", "pos", "view")

    def __init__(self, data: bytes | bytearray | memoryview, pos: int = 0) -> None:
        self.data = data
        self.view = memoryview(data)
        self.pos = pos

    def remaining(self) -> int:
        return len(self.view) - self.pos

    def done(self) -> None:
        """Raise XdrError if anything is left: a decoder must consume the whole argument."""
        if self.pos != len(self.view):
            raise XdrError(f"{len(self.view) - self.pos} trailing bytes")

    def _need(self, n: int) -> int:
        pos = self.pos
        if pos + n > len(self.view):
            raise XdrError(f"need {n} bytes at offset {pos}, have {len(self.view) - pos}")
        self.pos = pos + n
        return pos

    def uint32(self) -> int:
        return U32.unpack_from(self.view, self._need(4))[0]

    def int32(self) -> int:
        return I32.unpack_from(self.view, self._need(4))[0]

    def uint64(self) -> int:
        return U64.unpack_from(self.view, self._need(8))[0]

    def int64(self) -> int:
        return I64.unpack_from(self.view, self._need(8))[0]

    def struct(self, fmt: struct.Struct) -> tuple[int, ...]:
        """Several fixed-size fields at once with a precompiled format."""
        return fmt.unpack_from(self.view, self._need(fmt.size))

    def bool(self) -> bool:
        v = self.uint32()
        if v > 1:
            raise XdrError(f"invalid bool {v}")
        return v == 1

    def enum(self, valid: range | frozenset[int]) -> int:
        v = self.int32()
        if v not in valid:
            raise XdrError(f"invalid enum value {v}")
        return v

    def fixed_view(self, n: int) -> memoryview:
        """n bytes of fixed-length opaque data (plus padding), as a view: no copy."""
        start = self._need(pad_len(n))
        return self.view[start : start + n]

    def fixed(self, n: int) -> bytes:
        return bytes(self.fixed_view(n))

    def opaque_view(self, maxlen: int) -> memoryview:
        """Variable-length opaque data of at most `maxlen` bytes, as a view: no copy.
        (Every handle and name goes through here: written out in one function.)"""
        view, pos = self.view, self.pos
        size = len(view)
        if pos + 4 > size:
            raise XdrError(f"need 4 bytes at offset {pos}, have {size - pos}")
        n = U32.unpack_from(view, pos)[0]
        if n > maxlen:
            raise XdrError(f"opaque of {n} bytes exceeds its limit of {maxlen}")
        start = pos + 4
        end = start + ((n + 3) & ~3)
        if end > size:
            raise XdrError(f"need {end - start} bytes at offset {start}, have {size - start}")
        self.pos = end
        return view[start : start + n]

    def opaque(self, maxlen: int) -> bytes:
        return bytes(self.opaque_view(maxlen))

    def string(self, maxlen: int) -> bytes:
        """A string as its raw bytes: names are bytes on the wire; callers decide how to decode."""
        return bytes(self.opaque_view(maxlen))


class Packer:
    """Appends XDR to one bytearray; `buf` is the result."""

    __slots__ = ("buf",)

    def __init__(self, buf: bytearray | None = None) -> None:
        self.buf = bytearray() if buf is None else buf

    def uint32(self, v: int) -> None:
        self.buf += U32.pack(v)

    def int32(self, v: int) -> None:
        self.buf += I32.pack(v)

    def uint64(self, v: int) -> None:
        self.buf += U64.pack(v)

    def bool(self, v: bool) -> None:
        self.buf += U32.pack(1 if v else 0)

    def fixed(self, data: bytes | bytearray | memoryview) -> None:
        self.buf += data
        self.buf += _PAD[len(data) & 3]

    def opaque(self, data: bytes | bytearray | memoryview) -> None:
        self.buf += U32.pack(len(data))
        self.buf += data
        self.buf += _PAD[len(data) & 3]

    string = opaque

    def raw(self, data: bytes | bytearray | memoryview) -> None:
        """Bytes already in XDR form (a precompiled struct's output, a cached header)."""
        self.buf += data


def padding(n: int) -> bytes:
    """The zero bytes that follow n bytes of opaque data."""
    return _PAD[n & 3]
