"""Human- and machine-readable listing of a journal directory (`nsd journal dump`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nsd.errors import Corrupt
from nsd.journal.checkpoint import list_checkpoints
from nsd.journal.ops import decode_op
from nsd.journal.segment import list_segments, read_segment


def dump_records(journal_dir: Path) -> Iterator[dict[str, Any]]:
    """Checkpoints, then every segment and its records in order; stops at the first corruption.

    Yields {"checkpoint": txid, "file"}, {"segment": name}, {"txid", "op", "fields"} and, when
    something is wrong, {"error": message}. Cost: reads each segment whole.
    """
    for txid, path in list_checkpoints(journal_dir):
        yield {"checkpoint": txid, "file": path.name}
    segments = list_segments(journal_dir)
    for i, (first, path) in enumerate(segments):
        yield {"segment": path.name}
        try:
            seg = read_segment(path, is_last=i == len(segments) - 1, expected_first_txid=first)
            for rec in seg.records:
                op = decode_op(rec.code, bytes(rec.payload))
                fields = op.to_dict()
                yield {"txid": rec.txid, "op": fields.pop("op"), "fields": fields}
        except Corrupt as e:
            yield {"error": str(e)}
            return
        if seg.torn_at is not None:
            yield {"error": f"torn tail at offset {seg.torn_at} of {path.name} ({seg.torn_reason}); start-up cuts it"}
