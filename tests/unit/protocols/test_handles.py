from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import pytest

from nsd.protocols.nfs3.const import NfsError, Status
from nsd.protocols.nfs3.handles import FH_SIZE, HandleCodec, load_secret


def test_round_trip_and_shape() -> None:
    codec = HandleCodec(b"k" * 32)
    fh = codec.encode(3, 1 << 40, 7)
    assert len(fh) == FH_SIZE and len(fh) <= 64 and len(fh) % 4 == 0
    assert codec.decode(fh) == (3, 1 << 40, 7)
    assert codec.encode(3, 1 << 40, 7) == fh  # deterministic: stable across restarts


@pytest.mark.parametrize("key", [b"k" * 16, b"k" * 32, bytes(range(64))])
def test_the_layout_is_the_documented_one(key: bytes) -> None:
    """Handles given out by one release stay valid in the next: the bytes are exactly the
    documented layout, the MAC a keyed BLAKE2b-128 of the first 16 bytes."""
    codec = HandleCodec(key)
    for export_id, ino, gen in [(1, 1, 1), (3, 1 << 40, 7), (255, (1 << 64) - 1, 0xFFFFFFFF)]:
        body = struct.pack(">BBHQI", 1, export_id, 0, ino, gen)
        mac = hashlib.blake2b(body, digest_size=16, key=key).digest()
        assert codec.encode(export_id, ino, gen) == body + mac
        assert HandleCodec(key).decode(body + mac) == (export_id, ino, gen)


@pytest.mark.parametrize("bad", [b"", b"\0" * 31, b"\0" * 36])
def test_wrong_length_is_badhandle(bad: bytes) -> None:
    with pytest.raises(NfsError) as e:
        HandleCodec(b"k" * 32).decode(bad)
    assert e.value.status == Status.BADHANDLE


def test_every_flipped_byte_is_refused() -> None:
    codec = HandleCodec(b"k" * 32)
    fh = codec.encode(1, 99, 1)
    for i in range(FH_SIZE):
        bad = bytearray(fh)
        bad[i] ^= 0x40
        with pytest.raises(NfsError) as e:
            codec.decode(bytes(bad))
        assert e.value.status in (Status.STALE, Status.BADHANDLE)


def test_another_key_refuses() -> None:
    fh = HandleCodec(b"a" * 32).encode(1, 5, 1)
    with pytest.raises(NfsError) as e:
        HandleCodec(b"b" * 32).decode(fh)
    assert e.value.status == Status.STALE


def test_secret_created_once_private(tmp_path: Path) -> None:
    key = load_secret(tmp_path)
    assert (tmp_path / "nfs.secret").stat().st_mode & 0o777 == 0o600
    assert load_secret(tmp_path) == key and len(key) == 32
