"""Human- and machine-readable listing of a journal directory (`nsd journal dump`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nsd.errors import Corrupt, NsdError
from nsd.journal.checkpoint import list_checkpoints, read_checkpoint
from nsd.journal.ops import Op, decode_op
from nsd.journal.segment import list_segments, read_segment

if TYPE_CHECKING:
    from nsd.namespace import Namespace


def dump_records(journal_dir: Path, *, paths: bool = True) -> Iterator[dict[str, Any]]:
    """Checkpoints, then every segment and its records in order; stops at the first corruption.

    Yields {"checkpoint": txid, "file"}, {"segment": name}, {"txid", "op", "fields"} and, when
    something is wrong, {"error": message}. With `paths`, a record also carries the "path" it
    acts on (and "to" for a rename), as the namespace stood just before it: the log is replayed
    from its start when it begins at txid 1, else from the oldest sound checkpoint it continues;
    records at or before that checkpoint, or after one that does not replay, carry none.
    Cost: reads each segment whole; with `paths`, a replay as at start-up.
    """
    segments = list_segments(journal_dir)
    replay = _Replay(journal_dir, segments[0][0] if segments else 1) if paths else None
    for txid, path in list_checkpoints(journal_dir):
        yield {"checkpoint": txid, "file": path.name}
    for i, (first, path) in enumerate(segments):
        yield {"segment": path.name}
        try:
            seg = read_segment(path, is_last=i == len(segments) - 1, expected_first_txid=first)
            for rec in seg.records:
                op = decode_op(rec.code, bytes(rec.payload))
                fields = op.to_dict()
                item = {"txid": rec.txid, "op": fields.pop("op"), "fields": fields}
                if replay is not None:
                    item.update(replay.step(rec.txid, op, fields))
                yield item
        except Corrupt as e:
            yield {"error": str(e)}
            return
        if seg.torn_at is not None:
            yield {"error": f"torn tail at offset {seg.torn_at} of {path.name} ({seg.torn_reason}); start-up cuts it"}


class _Replay:
    """The namespace as the journal rebuilds it, to name the inodes records refer to."""

    def __init__(self, journal_dir: Path, first_txid: int) -> None:
        from nsd.namespace import Namespace  # the namespace sits above the journal: only this tool needs it

        self.ns: Namespace | None = None
        self.base_txid = 0
        if first_txid == 1:
            self.ns = Namespace()  # the whole log: only the root's attributes differ from checkpoint 0
            return
        for txid, path in list_checkpoints(journal_dir):
            if txid < first_txid - 1:
                continue  # the log no longer holds the records that follow it
            try:
                _, chunks = read_checkpoint(path)
                self.ns, self.base_txid = Namespace.from_image(chunks), txid
                return
            except Corrupt:
                continue  # a damaged checkpoint: try the next one

    def step(self, txid: int, op: Op, fields: dict[str, Any]) -> dict[str, str]:
        """The paths `op` (record `txid`) acts on, then `op` applied."""
        if self.ns is None or txid <= self.base_txid:
            return {}
        named = _paths(self.ns, fields)
        try:
            self.ns.apply(op)
        except Corrupt:
            self.ns = None  # the tree no longer matches the log: name nothing rather than guess
        return named


def _paths(ns: Namespace, f: dict[str, Any]) -> dict[str, str]:
    """{"path"} (and {"to"} for a rename) from the inode ids in an op's fields; {} where an id
    names nothing in `ns`."""

    def entry(parent: int, name: str) -> str:
        return ns.path_of(parent).rstrip("/") + "/" + name

    try:
        if "src_parent" in f:
            return {"path": entry(f["src_parent"], f["src_name"]), "to": entry(f["dst_parent"], f["dst_name"])}
        if "parent" in f:
            return {"path": entry(f["parent"], f["name"])}
        if "dir_ino" in f:
            return {"path": ns.path_of(f["dir_ino"])}
        if "ino" in f:
            return {"path": ns.path_of(f["ino"])}
        if "mount_id" in f and f["mount_id"] in ns.mounts:
            return {"path": ns.path_of(ns.mounts[f["mount_id"]].point.ino)}
    except NsdError:
        pass
    return {}
