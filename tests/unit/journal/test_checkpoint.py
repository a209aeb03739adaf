"""Checkpoints: round trip, exact layout, and every way one can be invalid."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
from goldens import GOLDEN, load_golden

from nsd.errors import Corrupt
from nsd.journal.checkpoint import (
    CODE_CHUNK,
    CODE_FOOTER,
    CODE_HEADER,
    FORMAT_VERSION,
    MAGIC,
    checkpoint_name,
    list_checkpoints,
    read_checkpoint,
    write_checkpoint,
)
from nsd.journal.ops import OPS, RESERVED_CODES
from nsd.journal.record import encode_record, scan_all

CHUNKS = [[[1, "a", None, b"\x00"], [2, "é", 3.5, {"k": [1, 2]}]], [], {"next_ino": 10}]


def read_all(path: Path) -> tuple[int, list[Any]]:
    """read_checkpoint with every chunk unpacked (they come lazily)."""
    txid, chunks = read_checkpoint(path)
    return txid, list(chunks)


def test_round_trip_and_listing(tmp_path: Path) -> None:
    p5 = write_checkpoint(tmp_path, 5, CHUNKS)
    p12 = write_checkpoint(tmp_path, 0x12, iter([[1]]))
    assert p5.name == checkpoint_name(5) == "0000000000000005.ckpt"
    assert read_all(p5) == (5, CHUNKS)
    assert read_all(p12) == (0x12, [[1]])
    assert list_checkpoints(tmp_path) == [(5, p5), (0x12, p12)]
    assert sorted(p.name for p in tmp_path.iterdir()) == [p5.name, p12.name]  # no tmp left behind


def test_tuples_come_back_as_lists(tmp_path: Path) -> None:
    chunk = [(i, f"n{i}", (i, i + 1)) for i in range(3)]
    back = read_all(write_checkpoint(tmp_path, 1, [chunk]))[1]
    assert back == [[[i, f"n{i}", [i, i + 1]] for i in range(3)]]


def test_empty_image(tmp_path: Path) -> None:
    assert read_all(write_checkpoint(tmp_path, 0, [])) == (0, [])


def test_layout_is_magic_header_chunks_footer(tmp_path: Path) -> None:
    data = write_checkpoint(tmp_path, 9, CHUNKS).read_bytes()
    assert data[:8] == MAGIC
    records, stop = scan_all(data, 8)
    assert stop.clean
    assert [(r.txid, r.code) for r in records] == [
        (0, CODE_HEADER),
        (1, CODE_CHUNK),
        (2, CODE_CHUNK),
        (3, CODE_CHUNK),
        (4, CODE_FOOTER),
    ]
    assert msgpack.unpackb(records[0].payload) == [FORMAT_VERSION, 9]
    assert msgpack.unpackb(records[-1].payload) == [3]


def test_codes_do_not_clash_with_ops() -> None:
    assert not {CODE_HEADER, CODE_CHUNK, CODE_FOOTER} & (OPS.keys() | RESERVED_CODES)


def test_a_failed_write_leaves_nothing(tmp_path: Path) -> None:
    def chunks() -> Iterator[list[int]]:
        yield [1]
        raise RuntimeError("image builder crashed")

    with pytest.raises(RuntimeError):
        write_checkpoint(tmp_path, 3, chunks())
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(TypeError):
        write_checkpoint(tmp_path, 3, [object()])
    assert list(tmp_path.iterdir()) == []


def test_any_flipped_byte_is_detected(tmp_path: Path) -> None:
    path = write_checkpoint(tmp_path, 7, CHUNKS)
    good = path.read_bytes()
    for i in range(len(good)):
        for bit in (0x01, 0x80):
            bad = bytearray(good)
            bad[i] ^= bit
            path.write_bytes(bytes(bad))
            with pytest.raises(Corrupt):
                read_all(path)


def test_every_truncation_is_detected(tmp_path: Path) -> None:
    path = write_checkpoint(tmp_path, 7, CHUNKS)
    good = path.read_bytes()
    for cut in range(len(good)):
        path.write_bytes(good[:cut])
        with pytest.raises(Corrupt):
            read_all(path)


def _build(path: Path, records: list[bytes], magic: bytes = MAGIC) -> Path:
    path.write_bytes(magic + b"".join(records))
    return path


def _header(txid: int = 4, version: int = FORMAT_VERSION) -> bytes:
    return encode_record(0, CODE_HEADER, msgpack.packb([version, txid]))


def _chunk(seq: int, value: object = None) -> bytes:
    return encode_record(seq, CODE_CHUNK, msgpack.packb(value))


def _footer(seq: int, count: int) -> bytes:
    return encode_record(seq, CODE_FOOTER, msgpack.packb([count]))


@pytest.mark.parametrize(
    ("records", "why"),
    [
        ([_header(), _chunk(1), _chunk(2)], "footer missing"),
        ([_header(), _chunk(1), _footer(2, 2)], "does not count"),
        ([_header(), _chunk(1), _chunk(3), _footer(3, 2)], "out of sequence"),
        ([_header(), _chunk(1), _chunk(1), _footer(2, 2)], "out of sequence"),
        ([_chunk(1), _footer(2, 1)], "header missing"),
        ([_header(version=2), _footer(1, 0)], "format version"),
        ([_header(txid=5), _footer(1, 0)], "named for"),
        ([_header(), _footer(1, 0), _chunk(2)], "after the checkpoint footer"),
        ([_header(), encode_record(1, 1, b"\x90"), _footer(2, 1)], "unexpected record code"),
        ([_header(), encode_record(1, CODE_CHUNK, b"\xc1"), _footer(2, 1)], "bad payload"),
        ([encode_record(0, CODE_HEADER, msgpack.packb("x")), _footer(1, 0)], "bad checkpoint header"),
    ],
)
def test_invalid_structure(tmp_path: Path, records: list[bytes], why: str) -> None:
    path = _build(tmp_path / checkpoint_name(4), records)
    with pytest.raises(Corrupt, match=why):
        read_all(path)


def test_hand_built_checkpoint_reads(tmp_path: Path) -> None:
    path = _build(tmp_path / checkpoint_name(4), [_header(), _chunk(1, [1, 2]), _footer(2, 1)])
    assert read_all(path) == (4, [[1, 2]])


def test_bad_magic(tmp_path: Path) -> None:
    path = _build(tmp_path / checkpoint_name(4), [_header(), _footer(1, 0)], magic=b"NSDWAL01")
    with pytest.raises(Corrupt, match="magic"):
        read_all(path)


def test_many_chunks(tmp_path: Path) -> None:
    chunks = [
        [(c * 4096 + i, 2, 0o100644, 1000, 100, 1, i, 1, 2, 3, f"name-{i}") for i in range(4096)] for c in range(8)
    ]
    path = write_checkpoint(tmp_path, 100, chunks)
    txid, back = read_all(path)
    assert txid == 100 and len(back) == 8
    assert back[7][4095] == [7 * 4096 + 4095, 2, 0o100644, 1000, 100, 1, 4095, 1, 2, 3, "name-4095"]


def test_golden_checkpoint_decodes_and_re_encodes_exactly(tmp_path: Path) -> None:
    g = load_golden()
    golden = GOLDEN / "journal" / g.CHECKPOINT_NAME
    assert read_all(golden) == (g.CHECKPOINT_TXID, g.GOLDEN_CHUNKS)
    again = write_checkpoint(tmp_path, g.CHECKPOINT_TXID, g.GOLDEN_CHUNKS)
    assert again.name == golden.name
    assert again.read_bytes() == golden.read_bytes()
