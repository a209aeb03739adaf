"""Recovery: checkpoint choice, replay, torn tails cut and saved, corruption refused; verify and repair."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from goldens import GOLDEN, load_golden

from nsd.errors import JournalCorrupt
from nsd.journal.checkpoint import checkpoint_name, write_checkpoint
from nsd.journal.ops import MkNode, Op
from nsd.journal.record import encode_record
from nsd.journal.recovery import TORN_DIR, recover, repair, verify
from nsd.journal.segment import MAGIC, list_segments, segment_name
from nsd.journal.writer import JournalWriter


def op_for(txid: int) -> Op:
    return MkNode(1, f"f{txid}", txid + 100, 0o100644, 1000, 100, 1_000_000 + txid)


def build_log(dir: Path, counts: list[int], first: int = 1) -> list[tuple[Path, list[int]]]:
    """Segments holding `counts` records each, txids consecutive from `first`; (path, record offsets)."""
    out = []
    txid = first
    for count in counts:
        data = bytearray(MAGIC)
        offsets = []
        path = dir / segment_name(txid)
        for _ in range(count):
            offsets.append(len(data))
            op = op_for(txid)
            data += encode_record(txid, op.CODE, op.encode())
            txid += 1
        path.write_bytes(bytes(data))
        out.append((path, offsets))
    return out


def expected_ops(first: int, last: int) -> list[tuple[int, Op]]:
    return [(t, op_for(t)) for t in range(first, last + 1)]


def test_empty_journal(tmp_path: Path) -> None:
    rec = recover(tmp_path)
    assert (rec.checkpoint_txid, rec.image, rec.ops, rec.last_txid, rec.torn) == (0, None, [], 0, [])


def test_replay_without_checkpoint(tmp_path: Path) -> None:
    build_log(tmp_path, [3, 4, 2])
    rec = recover(tmp_path)
    assert rec.ops == expected_ops(1, 9)
    assert rec.last_txid == 9 and rec.checkpoint_txid == 0 and rec.image is None


def test_golden_journal_recovers_to_the_golden_values(tmp_path: Path) -> None:
    g = load_golden()
    shutil.copytree(GOLDEN / "journal", tmp_path / "j")
    rec = recover(tmp_path / "j")
    assert rec.checkpoint_txid == g.CHECKPOINT_TXID
    assert list(rec.image) == g.GOLDEN_CHUNKS
    assert rec.ops == g.GOLDEN_OPS[g.CHECKPOINT_TXID :]
    assert rec.last_txid == g.GOLDEN_OPS[-1][0]
    assert rec.torn == []


def test_checkpoint_at_txid_zero_then_the_whole_log(tmp_path: Path) -> None:
    write_checkpoint(tmp_path, 0, [["root"]])
    build_log(tmp_path, [2])
    rec = recover(tmp_path)
    assert rec.image is not None
    assert (rec.checkpoint_txid, list(rec.image), rec.ops) == (0, [["root"]], expected_ops(1, 2))


def test_truncation_at_every_byte_of_the_last_record(tmp_path: Path) -> None:
    ((path, offsets),) = build_log(tmp_path, [4])
    full = path.read_bytes()
    last = offsets[-1]
    for cut in range(last, len(full)):
        path.write_bytes(full[:cut])
        shutil.rmtree(tmp_path / TORN_DIR, ignore_errors=True)
        rec = recover(tmp_path)
        assert rec.ops == expected_ops(1, 3)
        assert rec.last_txid == 3
        assert path.read_bytes() == full[:last]
        saved = tmp_path / TORN_DIR / f"{path.name}.{last}.torn"
        if cut == last:  # a clean end: nothing to cut
            assert rec.torn == [] and not saved.exists()
        else:
            assert len(rec.torn) == 1 and str(saved) in rec.torn[0]
            assert saved.read_bytes() == full[last:cut]
        assert recover(tmp_path).torn == []  # cutting is done once


async def test_writer_continues_after_a_cut_tail(tmp_path: Path) -> None:
    ((path, _),) = build_log(tmp_path, [3])
    path.write_bytes(path.read_bytes()[:-5])
    rec = recover(tmp_path)
    w = JournalWriter(tmp_path, rec.last_txid + 1, fsync=False)
    assert w.append(op_for(3)) == 3
    await w.close()
    assert [p for _, p in list_segments(tmp_path)] == [path]
    assert recover(tmp_path).ops == expected_ops(1, 3)


def test_every_flipped_bit_is_detected(tmp_path: Path) -> None:
    """A flip in any but the last record is corruption; in the last record it is a torn tail.

    Never is a record with changed content replayed.
    """
    ((path, offsets),) = build_log(tmp_path, [3])
    good = path.read_bytes()
    for i in range(len(good)):
        for bit in range(8):
            bad = bytearray(good)
            bad[i] ^= 1 << bit
            path.write_bytes(bytes(bad))
            if i < offsets[-1]:
                with pytest.raises(JournalCorrupt) as e:
                    recover(tmp_path, cut_torn_tail=False)
                assert e.value.file == str(path)
                assert e.value.offset == max([0] + [o for o in offsets if o <= i])
            else:
                rec = recover(tmp_path, cut_torn_tail=False)
                assert rec.ops == expected_ops(1, 2) and len(rec.torn) == 1
    assert not (tmp_path / TORN_DIR).exists()  # cut_torn_tail=False changes nothing


def test_flipped_bits_in_the_last_record_are_cut_and_saved(tmp_path: Path) -> None:
    ((path, offsets),) = build_log(tmp_path, [2])
    good = path.read_bytes()
    for i in range(offsets[-1], len(good), 3):
        bad = bytearray(good)
        bad[i] ^= 0x10
        path.write_bytes(bytes(bad))
        rec = recover(tmp_path)
        assert rec.ops == expected_ops(1, 1)
        assert path.read_bytes() == good[: offsets[-1]]
        assert (tmp_path / TORN_DIR / f"{path.name}.{offsets[-1]}.torn").read_bytes() == bad[offsets[-1] :]


def test_any_damage_to_a_sealed_segment_is_corruption(tmp_path: Path) -> None:
    (sealed, _), _ = build_log(tmp_path, [3, 2])
    good = sealed.read_bytes()
    for i in range(len(good)):
        bad = bytearray(good)
        bad[i] ^= 1 << (i % 8)
        sealed.write_bytes(bytes(bad))
        with pytest.raises(JournalCorrupt) as e:
            recover(tmp_path)
        assert e.value.file == str(sealed)
    for cut in range(len(good)):
        sealed.write_bytes(good[:cut])
        with pytest.raises(JournalCorrupt):
            recover(tmp_path)


def test_last_segment_with_a_torn_magic_is_removed(tmp_path: Path) -> None:
    build_log(tmp_path, [2])
    torn_seg = tmp_path / segment_name(3)
    torn_seg.write_bytes(MAGIC[:5])
    rec = recover(tmp_path)
    assert rec.ops == expected_ops(1, 2) and len(rec.torn) == 1
    assert not torn_seg.exists()
    assert (tmp_path / TORN_DIR / f"{torn_seg.name}.0.torn").read_bytes() == MAGIC[:5]


def test_gap_between_segments_is_corruption(tmp_path: Path) -> None:
    build_log(tmp_path, [2])
    build_log(tmp_path, [2], first=4)
    with pytest.raises(JournalCorrupt, match="where 3 was expected") as e:
        recover(tmp_path)
    assert e.value.file.endswith(segment_name(4)) and e.value.offset == 0


def test_undecodable_record_is_corruption(tmp_path: Path) -> None:
    ((path, _),) = build_log(tmp_path, [2])
    with open(path, "ab") as f:
        f.write(encode_record(3, 0x7777, b"\x90"))
    with pytest.raises(JournalCorrupt, match="unknown op code") as e:
        recover(tmp_path)
    assert e.value.offset == path.stat().st_size - 32


def test_checkpoint_replays_only_later_ops_and_skips_older_segments(tmp_path: Path) -> None:
    segs = build_log(tmp_path, [3, 3, 3])
    write_checkpoint(tmp_path, 5, [["image at 5"]])
    segs[0][0].write_bytes(b"garbage: this segment is never opened")
    rec = recover(tmp_path)
    assert rec.checkpoint_txid == 5 and list(rec.image) == [["image at 5"]]
    assert rec.ops == expected_ops(6, 9) and rec.last_txid == 9


def test_checkpoint_beyond_the_log(tmp_path: Path) -> None:
    build_log(tmp_path, [3])
    write_checkpoint(tmp_path, 3, [[]])
    rec = recover(tmp_path)
    assert rec.ops == [] and rec.last_txid == 3


@pytest.mark.parametrize("damage", ["flip", "no footer", "empty", "garbage"])
def test_fallback_to_the_previous_checkpoint(tmp_path: Path, damage: str) -> None:
    build_log(tmp_path, [4, 4])
    write_checkpoint(tmp_path, 2, [["at 2"]])
    newest = write_checkpoint(tmp_path, 6, [["at 6"], ["more"]])
    data = newest.read_bytes()
    if damage == "flip":
        bad = bytearray(data)
        bad[len(data) // 2] ^= 0x04
        newest.write_bytes(bytes(bad))
    elif damage == "no footer":
        newest.write_bytes(data[:-32])
    elif damage == "empty":
        newest.write_bytes(b"")
    else:
        newest.write_bytes(b"\xff" * 100)
    rec = recover(tmp_path)
    assert rec.checkpoint_txid == 2 and list(rec.image) == [["at 2"]]
    assert rec.ops == expected_ops(3, 8)
    assert len(rec.skipped_checkpoints) == 1 and newest.name in rec.skipped_checkpoints[0]
    assert newest.exists()  # recovery does not delete evidence


def test_no_sound_checkpoint_means_replay_from_txid_one(tmp_path: Path) -> None:
    build_log(tmp_path, [3])
    (tmp_path / checkpoint_name(2)).write_bytes(b"NSDCKPT1")
    rec = recover(tmp_path)
    assert rec.checkpoint_txid == 0 and rec.image is None and rec.ops == expected_ops(1, 3)


def test_fallback_impossible_when_its_segments_are_gone(tmp_path: Path) -> None:
    build_log(tmp_path, [3], first=6)  # segments before txid 6 were purged
    write_checkpoint(tmp_path, 2, [["at 2"]])
    (tmp_path / checkpoint_name(5)).write_bytes(b"broken")
    with pytest.raises(JournalCorrupt, match="txid 3 is needed"):
        recover(tmp_path)


async def test_roll_and_recover_across_segments(tmp_path: Path) -> None:
    w = JournalWriter(tmp_path, 1, segment_bytes=200, fsync=False)
    for t in range(1, 31):
        assert w.append(op_for(t)) == t
        if t % 4 == 0:
            await w.sync(t)
        if t == 13:
            assert await w.roll() == 13
    await w.close()
    segs = list_segments(tmp_path)
    assert len(segs) > 3
    assert segment_name(14) in {p.name for _, p in segs}
    rec = recover(tmp_path)
    assert rec.ops == expected_ops(1, 30)
    # A checkpoint in the middle of the log: replay starts right after it.
    write_checkpoint(tmp_path, 17, [["at 17"]])
    assert recover(tmp_path).ops == expected_ops(18, 30)


def test_verify_clean(tmp_path: Path) -> None:
    build_log(tmp_path, [2, 3])
    write_checkpoint(tmp_path, 1, [[]])
    report = verify(tmp_path)
    assert report.ok and report.errors == [] and report.warnings == []
    assert (report.checkpoint_txid, report.last_txid, report.ops, report.segments) == (1, 5, 4, 2)
    assert "last txid 5" in report.summary


def test_verify_reports_a_torn_tail_and_changes_nothing(tmp_path: Path) -> None:
    ((path, _),) = build_log(tmp_path, [3])
    path.write_bytes(path.read_bytes()[:-1])
    before = path.read_bytes()
    report = verify(tmp_path)
    assert report.ok and len(report.warnings) == 1 and "torn" in report.warnings[0]
    assert report.last_txid == 2
    assert path.read_bytes() == before and not (tmp_path / TORN_DIR).exists()


def test_verify_reports_corruption_and_skipped_checkpoints(tmp_path: Path) -> None:
    ((path, offsets),) = build_log(tmp_path, [3])
    (tmp_path / checkpoint_name(1)).write_bytes(b"nope")
    bad = bytearray(path.read_bytes())
    bad[offsets[1] + 2] ^= 1
    path.write_bytes(bytes(bad))
    report = verify(tmp_path)
    assert not report.ok
    assert len(report.errors) == 1 and f"offset {offsets[1]}" in report.errors[0]
    assert len(report.warnings) == 1 and checkpoint_name(1) in report.warnings[0]
    assert path.read_bytes() == bytes(bad)


def test_repair_cuts_at_the_first_corruption_and_keeps_copies(tmp_path: Path) -> None:
    segs = build_log(tmp_path, [3, 3, 3])
    (mid, offsets) = segs[1]
    mid_data = mid.read_bytes()
    bad = bytearray(mid_data)
    bad[offsets[1] + 30] ^= 0x20  # txid 5 of 1..9
    mid.write_bytes(bytes(bad))
    later = segs[2][0].read_bytes()

    report = repair(tmp_path)
    assert report.cut_file == str(mid) and report.cut_offset == offsets[1]
    assert report.records_dropped == 4  # txids 6..9 were sound; 5 was the damaged one
    assert report.highest_dropped_txid == 9 and report.last_kept_txid == 4
    assert report.segments_removed == [segs[2][0].name]
    assert "dropped 4 sound record(s) (txids 5..9)" in str(report)
    assert mid.read_bytes() == mid_data[: offsets[1]]
    assert not segs[2][0].exists()
    torn = tmp_path / TORN_DIR
    assert (torn / f"{mid.name}.{offsets[1]}.torn").read_bytes() == bytes(bad[offsets[1] :])
    assert (torn / f"{segs[2][0].name}.0.torn").read_bytes() == later

    rec = recover(tmp_path)
    assert rec.ops == expected_ops(1, 4) and rec.torn == []
    assert verify(tmp_path).ok


def test_repair_of_a_sound_journal_changes_nothing(tmp_path: Path) -> None:
    build_log(tmp_path, [2, 2])
    report = repair(tmp_path)
    assert report.cut_file is None and report.records_dropped == 0 and report.last_kept_txid == 4
    assert "no corruption found" in str(report)
    assert len(list_segments(tmp_path)) == 2


def test_repair_also_cuts_a_torn_tail(tmp_path: Path) -> None:
    ((path, _),) = build_log(tmp_path, [2])
    path.write_bytes(path.read_bytes()[:-4])
    report = repair(tmp_path)
    assert report.cut_file is None and len(report.torn) == 1 and report.last_kept_txid == 1
