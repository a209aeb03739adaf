"""Recovery: the newest sound checkpoint, then every logged op after it.

Three entry points share one reading of the journal directory:

- `recover` is what the daemon runs at start. It cuts a torn tail (keeping a copy under
  `torn/`) and refuses, with JournalCorrupt, anything that would lose or reorder ops.
- `verify` runs the same checks and changes nothing (`nsd journal verify`).
- `repair` is the explicit, offline way past mid-log corruption: it cuts the log at the
  first bad record, keeps a copy of everything it removes under `torn/`, and says how
  much was dropped.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nsd.datadir import fsync_dir
from nsd.errors import Corrupt, JournalCorrupt
from nsd.journal.checkpoint import list_checkpoints, read_checkpoint
from nsd.journal.ops import Op, decode_op
from nsd.journal.record import salvage
from nsd.journal.segment import MAGIC, SegmentRead, list_segments, read_segment

log = logging.getLogger(__name__)

TORN_DIR = "torn"


@dataclass
class Recovery:
    """The state to rebuild: load `image` (if any), then apply `ops` in order."""

    checkpoint_txid: int  # 0 when there is no checkpoint
    image: Iterator[Any] | None  # consumed once, lazily
    ops: list[tuple[int, Op]]
    last_txid: int  # the next op gets last_txid + 1
    torn: list[str] = field(default_factory=list)  # torn tails found (and cut, if asked)
    checkpoint_path: Path | None = None
    skipped_checkpoints: list[str] = field(default_factory=list)


@dataclass
class VerifyReport:
    errors: list[str] = field(default_factory=list)  # recovery would refuse to start
    warnings: list[str] = field(default_factory=list)  # recovery would cope (torn tail, skipped checkpoint)
    checkpoint_txid: int = 0
    last_txid: int = 0
    ops: int = 0  # ops recovery would replay
    segments: int = 0
    checkpoints: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def summary(self) -> str:
        return (
            f"{self.checkpoints} checkpoint(s), {self.segments} segment(s); "
            f"checkpoint txid {self.checkpoint_txid} + {self.ops} op(s) -> last txid {self.last_txid}"
        )


@dataclass
class RepairReport:
    cut_file: str | None = None  # where the first corruption was, None if there was none
    cut_offset: int | None = None
    reason: str | None = None
    records_dropped: int = 0  # sound records removed along with the damage
    last_kept_txid: int = 0
    highest_dropped_txid: int | None = None
    segments_removed: list[str] = field(default_factory=list)
    saved: list[Path] = field(default_factory=list)  # copies of the removed bytes, under torn/
    torn: list[str] = field(default_factory=list)  # torn tails cut by the final recovery

    def __str__(self) -> str:
        lines = []
        if self.cut_file is None:
            lines.append("no corruption found")
        else:
            lost = (
                f" (txids {self.last_kept_txid + 1}..{self.highest_dropped_txid})" if self.highest_dropped_txid else ""
            )
            lines.append(f"cut at {self.cut_file} offset {self.cut_offset}: {self.reason}")
            lines.append(f"dropped {self.records_dropped} sound record(s){lost}")
            if self.segments_removed:
                lines.append(f"removed segments: {', '.join(self.segments_removed)}")
            lines.extend(f"saved {p}" for p in self.saved)
        lines.extend(f"torn tail: {t}" for t in self.torn)
        lines.append(f"the journal now ends at txid {self.last_kept_txid}")
        return "\n".join(lines)


@dataclass
class _Log:
    ops: list[tuple[int, Op]]
    last_txid: int
    torn: SegmentRead | None  # the last segment, if it has a torn tail


def _load_checkpoint(dir: Path) -> tuple[int, Iterator[Any] | None, Path | None, list[str]]:
    """The newest checkpoint that reads sound; older ones are the fallback."""
    skipped = []
    for _, path in reversed(list_checkpoints(dir)):
        try:
            txid, chunks = read_checkpoint(path)
        except Corrupt as e:
            msg = f"skipped checkpoint {path.name}: {e}"
            log.warning("%s", msg)
            skipped.append(msg)
            continue
        return txid, chunks, path, skipped
    return 0, None, None, skipped


def _read_log(dir: Path, after: int) -> _Log:
    """Ops with txid > `after`, checked for continuity. Raises JournalCorrupt at the first problem.

    Cost: reads every segment that may hold a txid > after; older sealed segments are not opened.
    """
    segs = list_segments(dir)
    # Segment i holds txids below segs[i + 1]'s first txid, so it can be skipped when that is <= after + 1.
    i = 0
    while i + 1 < len(segs) and segs[i + 1][0] <= after + 1:
        i += 1
    segs = segs[i:]
    if segs and segs[0][0] > after + 1:
        first, path = segs[0]
        msg = f"log resumes at txid {first} but txid {after + 1} is needed"
        raise JournalCorrupt(msg, file=str(path), offset=0)

    ops: list[tuple[int, Op]] = []
    last = after
    torn = None
    expected: int | None = None
    for k, (first, path) in enumerate(segs):
        file = str(path)
        if expected is not None and first != expected:
            msg = f"segment starts at txid {first} where {expected} was expected"
            raise JournalCorrupt(msg, file=file, offset=0)
        sr = read_segment(path, is_last=k == len(segs) - 1, expected_first_txid=first)
        for rec in sr.records:
            if rec.txid <= after:
                continue
            if rec.txid != last + 1:  # cannot happen given the checks above; replay must never guess
                msg = f"txid {rec.txid} where {last + 1} was expected"
                raise JournalCorrupt(msg, file=file, offset=rec.offset)
            try:
                ops.append((rec.txid, decode_op(rec.code, rec.payload)))
            except Corrupt as e:
                msg = f"undecodable record: {e.message}"
                raise JournalCorrupt(msg, file=file, offset=rec.offset) from None
            last = rec.txid
        if sr.torn_at is not None:
            torn = sr
        expected = sr.last_txid + 1
    return _Log(ops, last, torn)


def _save_copy(dir: Path, name: str, data: bytes) -> Path:
    """Write `data` durably to torn/`name` (replacing an older copy from an interrupted run)."""
    torn_dir = dir / TORN_DIR
    created = not torn_dir.exists()
    torn_dir.mkdir(exist_ok=True)
    dest = torn_dir / name
    with open(dest, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    fsync_dir(torn_dir)
    if created:
        fsync_dir(dir)
    return dest


def _cut(dir: Path, path: Path, offset: int) -> Path:
    """Copy path[offset:] to torn/, then cut the file there (or remove it if even its magic is bad).

    The copy is durable before the cut, so a crash in between only repeats the work.
    """
    with open(path, "rb") as f:
        f.seek(offset)
        tail = f.read()
    saved = _save_copy(dir, f"{path.name}.{offset}.torn", tail)
    if offset < len(MAGIC):
        path.unlink()
        fsync_dir(dir)
    else:
        fd = os.open(path, os.O_WRONLY)
        try:
            os.ftruncate(fd, offset)
            os.fsync(fd)
        finally:
            os.close(fd)
    return saved


def _describe_torn(sr: SegmentRead) -> str:
    assert sr.torn_at is not None
    return f"{sr.path.name}: {sr.size - sr.torn_at} bytes from offset {sr.torn_at} ({sr.torn_reason})"


def recover(dir: Path, *, cut_torn_tail: bool = True) -> Recovery:
    """Read the journal in `dir` back into a checkpoint image plus the ops to replay after it.

    A torn tail of the last segment is cut (its bytes saved to torn/) unless cut_torn_tail
    is False; either way it is listed in `torn`. Corruption anywhere else, or a txid gap
    after the chosen checkpoint, raises JournalCorrupt naming the file and offset.
    Cost: the checkpoint and every segment after it are read into memory once.
    """
    ckpt_txid, image, ckpt_path, skipped = _load_checkpoint(dir)
    got = _read_log(dir, ckpt_txid)
    torn = []
    if got.torn is not None and got.torn.torn_at is not None:
        desc = _describe_torn(got.torn)
        if cut_torn_tail:
            saved = _cut(dir, got.torn.path, got.torn.torn_at)
            desc += f"; cut, saved to {saved}"
        log.warning("torn tail: %s", desc)
        torn.append(desc)
    return Recovery(ckpt_txid, image, got.ops, got.last_txid, torn, ckpt_path, skipped)


def verify(dir: Path) -> VerifyReport:
    """What `recover` would find, without changing anything: corruption as errors, the rest as warnings."""
    report = VerifyReport(segments=len(list_segments(dir)), checkpoints=len(list_checkpoints(dir)))
    ckpt_txid, _, _, skipped = _load_checkpoint(dir)
    report.checkpoint_txid = ckpt_txid
    report.warnings.extend(skipped)
    try:
        got = _read_log(dir, ckpt_txid)
    except JournalCorrupt as e:
        report.errors.append(str(e))
        return report
    if got.torn is not None:
        report.warnings.append(f"torn tail (recovery will cut it): {_describe_torn(got.torn)}")
    report.last_txid = got.last_txid
    report.ops = len(got.ops)
    return report


def repair(dir: Path) -> RepairReport:
    """Cut the log at its first corrupt record so that `recover` succeeds; offline use only.

    Everything from the bad record on is copied to torn/ first: the rest of that segment
    (the segment itself is truncated there) and every later segment (then deleted). The
    report says how many sound records went with it; they are lost to the namespace.
    """
    report = RepairReport()
    # Each pass removes the log from one corruption on, so a second pass finds none; the bound is a backstop.
    for _ in range(len(list_segments(dir)) + 2):
        try:
            rec = recover(dir, cut_torn_tail=True)
        except JournalCorrupt as e:
            _cut_log(dir, e, report)
            continue
        report.torn.extend(rec.torn)
        report.last_kept_txid = rec.last_txid
        return report
    raise JournalCorrupt("repair did not converge", file=str(dir), offset=0)


def _cut_log(dir: Path, err: JournalCorrupt, report: RepairReport) -> None:
    bad = Path(err.file)
    if report.cut_file is None:
        report.cut_file, report.cut_offset, report.reason = err.file, err.offset, err.message
    log.warning("repair: cutting the journal at %s offset %d (%s)", bad.name, err.offset, err.message)
    doomed = [bad] + [p for _, p in list_segments(dir) if p.name > bad.name]
    for k, path in enumerate(doomed):
        offset = err.offset if k == 0 else 0
        data = path.read_bytes()
        for r in salvage(data, max(offset, len(MAGIC))):
            report.records_dropped += 1
            report.highest_dropped_txid = max(report.highest_dropped_txid or 0, r.txid)
        if offset < len(MAGIC):
            report.segments_removed.append(path.name)
        report.saved.append(_cut(dir, path, offset))
