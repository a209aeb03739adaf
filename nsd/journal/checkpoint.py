"""Checkpoints: `{txid:016x}.ckpt`, a namespace image as of `txid`.

Layout: the magic `NSDCKPT1`, then records in the journal framing: a header record
(format version, txid), one record per image chunk (msgpack), and a footer record (the
number of chunks). The record txid field holds the record's sequence number (header 0,
chunks 1..n, footer n+1), so a lost or repeated record is caught even if its crc is good.
A checkpoint without its footer was never finished and is invalid.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import msgpack

from nsd.datadir import fsync_dir
from nsd.errors import Corrupt
from nsd.gcpause import collector_off
from nsd.journal.ops import OPS, RESERVED_CODES
from nsd.journal.record import Record, encode_record_into, scan
from nsd.journal.segment import hex_name, list_hex_files, parse_hex_name

MAGIC = b"NSDCKPT1"
SUFFIX = ".ckpt"
FORMAT_VERSION = 1

# Record codes of checkpoint files, chosen far from op codes so a checkpoint record can
# never be mistaken for an op (and append-only like them).
CODE_HEADER = 0xC001
CODE_CHUNK = 0xC002
CODE_FOOTER = 0xC003
assert not {CODE_HEADER, CODE_CHUNK, CODE_FOOTER} & (OPS.keys() | RESERVED_CODES)

_WRITE_BATCH = 1 << 20


def checkpoint_name(txid: int) -> str:
    return hex_name(txid, SUFFIX)


def list_checkpoints(dir: Path) -> list[tuple[int, Path]]:
    """(txid, path) of every checkpoint in `dir`, oldest first. Tmp files are not listed."""
    return list_hex_files(dir, SUFFIX)


def write_checkpoint(dir: Path, txid: int, chunks: Iterable[Any]) -> Path:
    """Write the image `chunks` as the checkpoint for `txid` and return its path.

    Each chunk must be msgpack-able. Durable on return: tmp file -> fsync -> rename ->
    fsync(dir), so a crash leaves either no checkpoint or a whole one (plus a stray .tmp).
    Memory: about one MiB of encoded records beyond the chunk being encoded.
    """
    final = dir / checkpoint_name(txid)
    tmp = dir / (final.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            buf = bytearray(MAGIC)
            encode_record_into(buf, 0, CODE_HEADER, msgpack.packb([FORMAT_VERSION, txid]))
            count = 0
            for chunk in chunks:
                count += 1
                encode_record_into(buf, count, CODE_CHUNK, msgpack.packb(chunk))
                if len(buf) >= _WRITE_BATCH:
                    f.write(buf)
                    buf.clear()
            encode_record_into(buf, count + 1, CODE_FOOTER, msgpack.packb([count]))
            f.write(buf)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(dir)
    return final


def _unpack(rec: Record, path: Path) -> Any:
    try:
        return msgpack.unpackb(rec.payload, strict_map_key=False)
    except (ValueError, TypeError, msgpack.UnpackException) as e:
        raise Corrupt(f"bad payload at offset {rec.offset}: {e}", path=str(path)) from None


def read_checkpoint(path: Path, data: bytes | None = None) -> tuple[int, Iterator[Any]]:
    """(txid, chunks) of a whole, sound checkpoint; anything else raises Corrupt. `data`: the
    file's bytes when the caller has them already (`path` then only names it).

    Every record's framing and CRC is checked before this returns; the chunks are then
    unpacked lazily, one at a time as the caller consumes them, so a 1M-inode image never
    exists twice in memory (a chunk whose CRC holds but whose msgpack does not raises Corrupt
    while iterating). Chunks come back as msgpack decodes them (tuples become lists).
    Cost: the file is read once and crc-checked in C, then one unpack per chunk.
    """
    if data is None:
        data = path.read_bytes()
    where = str(path)
    if data[: len(MAGIC)] != MAGIC:
        raise Corrupt("bad checkpoint magic", path=where)
    s = scan(data, len(MAGIC))
    records = iter(s)
    header = next(records, None)
    if header is None or header.code != CODE_HEADER or header.txid != 0:
        raise Corrupt("checkpoint header missing", path=where)
    fields = _unpack(header, path)
    if not (isinstance(fields, list) and len(fields) == 2 and all(type(v) is int for v in fields)):
        raise Corrupt("bad checkpoint header", path=where)
    version, txid = fields
    if version != FORMAT_VERSION:
        raise Corrupt(f"unsupported checkpoint format version {version}", path=where)
    named = parse_hex_name(path.name, SUFFIX)
    if named is not None and named != txid:
        raise Corrupt(f"checkpoint for txid {txid} is named for {named}", path=where)

    chunks: list[Record] = []
    footer: Record | None = None
    for rec in records:
        if rec.txid != len(chunks) + 1:
            raise Corrupt(f"checkpoint record {rec.txid} out of sequence", path=where)
        if rec.code == CODE_FOOTER:
            footer = rec
            break
        if rec.code != CODE_CHUNK:
            raise Corrupt(f"unexpected record code {rec.code:#x} at offset {rec.offset}", path=where)
        chunks.append(rec)
    if footer is None:
        why = s.stop.describe() if s.stop is not None else "?"
        raise Corrupt(f"checkpoint footer missing ({why})", path=where)
    if _unpack(footer, path) != [len(chunks)]:
        raise Corrupt(f"checkpoint footer does not count {len(chunks)} chunks", path=where)
    if footer.end != len(data):
        raise Corrupt(f"bytes after the checkpoint footer at offset {footer.end}", path=where)
    return txid, _unpacked(chunks, path)


def _unpacked(chunks: list[Record], path: Path) -> Iterator[Any]:
    with collector_off():  # the image unpacks into millions of small lists
        for i in range(len(chunks)):
            rec, chunks[i] = chunks[i], None  # type: ignore[call-overload]  # free each payload once used
            yield _unpack(rec, path)
