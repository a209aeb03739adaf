"""Segments: naming, reading, and the torn-tail vs corruption decision."""

from __future__ import annotations

from pathlib import Path

import pytest
from goldens import GOLDEN, load_golden

from nsd.errors import JournalCorrupt
from nsd.journal.ops import MkNode, decode_op
from nsd.journal.record import encode_record
from nsd.journal.segment import MAGIC, create_segment, list_segments, read_segment, segment_name


def record(txid: int, name: str = "") -> bytes:
    op = MkNode(1, name or f"file-{txid}", txid + 1, 0o100644, 0, 0, txid)
    return encode_record(txid, op.CODE, op.encode())


def write_segment(dir: Path, first: int, count: int) -> tuple[Path, list[int]]:
    """A segment holding txids first..first+count-1; returns its path and each record's offset."""
    data = bytearray(MAGIC)
    offsets = []
    for t in range(first, first + count):
        offsets.append(len(data))
        data += record(t)
    path = dir / segment_name(first)
    path.write_bytes(bytes(data))
    return path, offsets


def test_names_are_fixed_width_hex_and_list_in_txid_order(tmp_path: Path) -> None:
    assert segment_name(1) == "0000000000000001.wal"
    assert segment_name(0xABC) == "0000000000000abc.wal"
    for first in (0x10, 0x2, 0x100):
        write_segment(tmp_path, first, 1)
    for stray in ("0000000000000003.wal.tmp", "00000000000000zz.wal", "3.wal", "0000000000000004.ckpt"):
        (tmp_path / stray).write_bytes(b"")
    (tmp_path / "torn").mkdir()
    assert [t for t, _ in list_segments(tmp_path)] == [0x2, 0x10, 0x100]
    assert all(p.name == segment_name(t) for t, p in list_segments(tmp_path))


def test_create_segment_writes_the_magic_and_never_overwrites(tmp_path: Path) -> None:
    import os

    fd = create_segment(tmp_path, 7)
    os.close(fd)
    assert (tmp_path / segment_name(7)).read_bytes() == MAGIC
    with pytest.raises(FileExistsError):
        create_segment(tmp_path, 7)


def test_clean_segment(tmp_path: Path) -> None:
    path, offsets = write_segment(tmp_path, 5, 4)
    sr = read_segment(path, is_last=False)
    assert [r.txid for r in sr.records] == [5, 6, 7, 8]
    assert [r.offset for r in sr.records] == offsets
    assert sr.torn_at is None and sr.valid_end == sr.size == path.stat().st_size
    assert sr.last_txid == 8


def test_empty_segment_has_last_txid_before_its_first(tmp_path: Path) -> None:
    path = tmp_path / segment_name(9)
    path.write_bytes(MAGIC)
    sr = read_segment(path, is_last=True)
    assert sr.records == [] and sr.last_txid == 8 and sr.torn_at is None


@pytest.mark.parametrize("is_last", [True, False])
def test_torn_last_record_at_every_cut(tmp_path: Path, is_last: bool) -> None:
    path, offsets = write_segment(tmp_path, 1, 3)
    full = path.read_bytes()
    for cut in range(offsets[-1] + 1, len(full)):
        path.write_bytes(full[:cut])
        if not is_last:
            with pytest.raises(JournalCorrupt) as e:
                read_segment(path, is_last=False)
            assert e.value.offset == offsets[-1] and e.value.file == str(path)
            continue
        sr = read_segment(path, is_last=True)
        assert [r.txid for r in sr.records] == [1, 2]
        assert sr.torn_at == sr.valid_end == offsets[-1]
        assert sr.size == cut


def test_bad_record_followed_by_a_later_valid_one_is_corruption(tmp_path: Path) -> None:
    path, offsets = write_segment(tmp_path, 1, 4)
    data = bytearray(path.read_bytes())
    data[offsets[1] + 30] ^= 0x40
    path.write_bytes(bytes(data))
    with pytest.raises(JournalCorrupt) as e:
        read_segment(path, is_last=True)
    assert e.value.offset == offsets[1]
    assert "followed by valid records" in str(e.value)


def test_txid_gap_inside_a_segment(tmp_path: Path) -> None:
    path = tmp_path / segment_name(1)
    path.write_bytes(MAGIC + record(1) + record(2) + record(4))
    with pytest.raises(JournalCorrupt) as e:
        read_segment(path, is_last=True)
    assert e.value.offset == len(MAGIC) + len(record(1)) + len(record(2))


def test_first_record_must_match_the_expected_txid(tmp_path: Path) -> None:
    path, _ = write_segment(tmp_path, 3, 2)
    with pytest.raises(JournalCorrupt) as e:
        read_segment(path, is_last=True, expected_first_txid=2)
    assert e.value.offset == len(MAGIC)
    wrong = tmp_path / segment_name(10)
    path.rename(wrong)
    with pytest.raises(JournalCorrupt):
        read_segment(wrong, is_last=True)


@pytest.mark.parametrize("length", range(len(MAGIC)))
def test_last_segment_shorter_than_the_magic_is_empty_and_torn(tmp_path: Path, length: int) -> None:
    path = tmp_path / segment_name(4)
    path.write_bytes(MAGIC[:length])
    sr = read_segment(path, is_last=True)
    assert sr.records == [] and sr.torn_at == 0 and sr.last_txid == 3
    with pytest.raises(JournalCorrupt):
        read_segment(path, is_last=False)


def test_bad_magic(tmp_path: Path) -> None:
    path, _ = write_segment(tmp_path, 1, 2)
    data = path.read_bytes()
    path.write_bytes(b"NSDWAL02" + data[8:])
    with pytest.raises(JournalCorrupt) as e:  # records follow: not a torn creation
        read_segment(path, is_last=True)
    assert e.value.offset == 0
    path.write_bytes(bytes(len(MAGIC)))
    assert read_segment(path, is_last=True).torn_at == 0
    with pytest.raises(JournalCorrupt):
        read_segment(path, is_last=False)


def test_zeros_after_the_records_are_their_clean_end(tmp_path: Path) -> None:
    """Space the writer allocated ahead, or what a crash leaves of a batch that never reached
    the disk: the next record goes where the zeros start, in a sealed segment too."""
    path, offsets = write_segment(tmp_path, 1, 2)
    end = offsets[-1] + len(record(2))
    with open(path, "ab") as f:
        f.write(bytes(4096))
    for is_last in (True, False):
        sr = read_segment(path, is_last=is_last)
        assert [r.txid for r in sr.records] == [1, 2]
        assert (sr.torn_at, sr.valid_end, sr.size) == (None, end, end + 4096)


def test_anything_but_zeros_after_the_records_is_a_torn_tail(tmp_path: Path) -> None:
    path, offsets = write_segment(tmp_path, 1, 2)
    end = offsets[-1] + len(record(2))
    with open(path, "ab") as f:
        f.write(bytes(4095) + b"\x01")
    sr = read_segment(path, is_last=True)
    assert [r.txid for r in sr.records] == [1, 2]
    assert (sr.torn_at, sr.valid_end) == (end, end)
    with pytest.raises(JournalCorrupt):
        read_segment(path, is_last=False)


def test_golden_segment_decodes_and_re_encodes_exactly() -> None:
    g = load_golden()
    path = GOLDEN / "journal" / g.SEGMENT_NAME
    sr = read_segment(path, is_last=True)
    assert sr.torn_at is None
    assert [(r.txid, decode_op(r.code, r.payload)) for r in sr.records] == g.GOLDEN_OPS
    encoded = MAGIC + b"".join(encode_record(t, op.CODE, op.encode()) for t, op in g.GOLDEN_OPS)
    assert encoded == path.read_bytes()
