"""Fuzzing the decoders not covered by test_nfs_fuzz.py: XDR primitives, journal records and ops,
checkpoint images, NFS exports, WebHDFS paths, parameters, xattr names/values/flags and users.

Each may raise only its own documented error (XdrError, Corrupt, Invalid/BadParam, Remote,
NsdError), never anything else, and must finish (bounded work per input). A short pass runs in
CI (hypothesis, a few hundred examples each); tools/fuzz/decoders.py runs them under atheris.
"""

from __future__ import annotations

import contextlib
import struct
from typing import Any

import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nsd import errors
from nsd.journal.ops import OPS, decode_op
from nsd.journal.record import encode_record, scan, scan_all
from nsd.namespace import Namespace
from nsd.protocols.nfs3.exports import parse_exports
from nsd.protocols.webhdfs.bodies import decode_xattr
from nsd.protocols.webhdfs.context import Remote
from nsd.protocols.webhdfs.params import Params
from nsd.protocols.webhdfs.routes import parse_path
from nsd.protocols.webhdfs.xattr import normalize_name, parse_flags
from nsd.protocols.xdr import Unpacker, XdrError

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ---- XDR -----------------------------------------------------------------------------------------


@FAST
@given(st.binary(max_size=200), st.lists(st.sampled_from(range(9)), max_size=30), st.integers(0, 300))
def test_xdr_unpacker_raises_only_xdr_errors(data: bytes, steps: list[int], maxlen: int) -> None:
    u = Unpacker(data)
    readers = [
        u.uint32,
        u.int32,
        u.uint64,
        u.int64,
        u.bool,
        lambda: u.opaque(maxlen),
        lambda: u.string(maxlen),
        lambda: u.fixed(maxlen % 40),
        lambda: u.enum(range(0, 5)),
    ]
    with contextlib.suppress(XdrError):
        for i in steps:
            before = u.remaining()
            readers[i]()
            assert u.remaining() <= before
        u.done()


# ---- journal records and ops ----------------------------------------------------------------------


def _records(data: st.DataObject) -> bytes:
    """Valid records, then damage: flipped bytes, a cut, or garbage appended."""
    out = bytearray()
    for txid in range(1, data.draw(st.integers(0, 5)) + 1):
        code = data.draw(st.sampled_from(sorted(OPS)))
        out += encode_record(txid, code, data.draw(st.binary(max_size=40)))
    for _ in range(data.draw(st.integers(0, 4))):
        if out:
            i = data.draw(st.integers(0, len(out) - 1))
            out[i] ^= data.draw(st.integers(1, 255))
    if data.draw(st.booleans()):
        out = out[: data.draw(st.integers(0, len(out)))]
    return bytes(out) + data.draw(st.binary(max_size=40))


@FAST
@given(st.data())
def test_record_scan_stops_cleanly_on_any_bytes(data: st.DataObject) -> None:
    buf = _records(data)
    records, stop = scan_all(buf)
    assert stop.offset <= len(buf)
    last = 0
    for r in records:
        assert r.offset >= last and r.end <= len(buf)
        last = r.end
    assert sum(1 for _ in scan(buf)) == len(records)


@FAST
@given(
    st.integers(0, 70),
    st.one_of(st.binary(max_size=80), st.builds(msgpack.packb, st.lists(st.integers(-(2**63), 2**64 - 1)))),
)
def test_op_decoder_raises_only_corrupt(code: int, payload: bytes) -> None:
    try:
        op = decode_op(code, payload)
    except errors.Corrupt:
        return
    assert code == type(op).CODE


_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=8) | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=4),
    max_leaves=12,
)


@FAST
@given(st.sampled_from(sorted(OPS)), st.lists(_VALUES, max_size=9))
def test_a_decoded_op_that_does_not_fit_is_refused_by_apply_as_corrupt(code: int, fields: list[Any]) -> None:
    """Well-framed ops with nonsense fields: decode_op or apply says Corrupt, nothing else."""
    ns = Namespace()
    try:
        op = decode_op(code, msgpack.packb(fields))
        ns.apply(op)
    except errors.Corrupt:
        pass
    ns.check()


@FAST
@given(st.lists(st.one_of(_VALUES, st.dictionaries(st.text(max_size=10), _VALUES, max_size=4)), max_size=5))
def test_image_loader_raises_only_corrupt(chunks: list[Any]) -> None:
    try:
        ns = Namespace.from_image(chunks)
    except errors.Corrupt:
        return
    with contextlib.suppress(AssertionError):  # structure loaded; invariants are check()'s job
        ns.check()


# ---- exports and WebHDFS parsing ------------------------------------------------------------------


@FAST
@given(st.text(alphabet="/ ;()=,.:abcdefgrwonsquidt0123456789*", max_size=80))
def test_exports_parse_or_say_invalid(text: str) -> None:
    with contextlib.suppress(errors.Invalid):
        for export in parse_exports(text):
            assert export.path.startswith("/")


@FAST
@given(st.text(max_size=60), st.binary(max_size=20))
def test_webhdfs_paths_parse_or_say_remote(text: str, raw: bytes) -> None:
    for candidate in ("/webhdfs/v1" + text, "/webhdfs/v1/" + "".join(f"%{b:02x}" for b in raw)):
        try:
            path = parse_path(candidate)
        except Remote as e:
            assert e.status == 400
            continue
        assert path.startswith("/") and "/../" not in path + "/" and "\0" not in path


PARAM_NAMES = ["op", "overwrite", "permission", "offset", "length", "recursive", "blocksize", "buffersize", "flag"]


@FAST
@given(st.lists(st.tuples(st.sampled_from(PARAM_NAMES) | st.text(max_size=6), st.text(max_size=12)), max_size=8))
def test_webhdfs_params_raise_only_invalid(items: list[tuple[str, str]]) -> None:
    p = Params(items)
    checks = [
        lambda: p.flag("overwrite", False),
        lambda: p.flag("recursive", True),
        lambda: p.long("offset", 0, minimum=0),
        lambda: p.long("blocksize", None, minimum=1),
        lambda: p.permission(),
        lambda: p.path("destination", required=False),
        lambda: p.choice("op", ["OPEN", "CREATE"]),
        lambda: p.fsaction(),
        lambda: parse_flags(p.get("flag")),
    ]
    for check in checks:
        with contextlib.suppress(errors.Invalid):
            check()


@FAST
@given(st.text(max_size=40))
def test_xattr_names_and_values_raise_only_invalid(text: str) -> None:
    with contextlib.suppress(errors.Invalid):
        assert "." in normalize_name(text)
    for prefix in ("", "0x", "0s", "0X", "0S", '"'):
        with contextlib.suppress(errors.Invalid):
            assert isinstance(decode_xattr(prefix + text), bytes)


@FAST
@given(st.binary(min_size=0, max_size=64))
def test_record_header_fields_never_overflow(raw: bytes) -> None:
    """A header claiming a huge payload length must not be trusted past the buffer."""
    buf = raw[:4] + struct.pack("<I", 0xFFFF_FFF0) + raw[8:]
    records, stop = scan_all(buf)
    assert not records and stop.offset == 0
