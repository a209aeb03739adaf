"""The journal: typed ops, record framing, segments, checkpoints, recovery and the group-commit writer."""

from nsd.journal.checkpoint import list_checkpoints, read_checkpoint, write_checkpoint
from nsd.journal.ops import Op, decode_op
from nsd.journal.recovery import Recovery, RepairReport, VerifyReport, recover, repair, verify
from nsd.journal.segment import list_segments, read_segment
from nsd.journal.writer import JournalWriter, WriterStats

__all__ = [
    "JournalWriter",
    "Op",
    "Recovery",
    "RepairReport",
    "VerifyReport",
    "WriterStats",
    "decode_op",
    "list_checkpoints",
    "list_segments",
    "read_checkpoint",
    "read_segment",
    "recover",
    "repair",
    "verify",
    "write_checkpoint",
]
