"""Fuzzing the NFS-side decoders: garbage may raise only the codec's own protocol error.

The record marker, the RPC call header (with AUTH_SYS) and every argument decoder of NFSv3,
MOUNT and the portmapper are fed random bytes and mutations of valid input; none may crash
with anything else or loop.
"""

from __future__ import annotations

import contextlib
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nsd.protocols.nfs3 import mount3, portmap
from nsd.protocols.nfs3.args import DECODERS
from nsd.protocols.nfs3.const import Proc
from nsd.protocols.rpc import oncrpc
from nsd.protocols.rpc.oncrpc import NEED_DATA, FrameError, RecordDecoder
from nsd.protocols.xdr import Unpacker, XdrError

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(
    st.lists(st.binary(max_size=64), max_size=20),
    st.integers(min_value=0, max_value=4096),
    st.integers(min_value=1, max_value=1 << 17),
)
def test_record_decoder(chunks: list[bytes], cap: int, large: int) -> None:
    d = RecordDecoder(max_record=cap, large=large, buffer_size=32)
    total = 0
    try:
        for chunk in chunks:
            d.feed(chunk)
            total += len(chunk)
            for _ in range(total + 1):  # each record consumes >= 4 bytes: bounded
                r = d.next()
                if r is NEED_DATA:
                    break
                assert isinstance(r, bytes | bytearray) and len(r) <= cap
    except FrameError:
        pass


def _valid_call(data: st.DataObject) -> bytes:
    gids = data.draw(st.lists(st.integers(0, 2**32 - 1), max_size=16))
    cred = oncrpc.AuthSys(1, data.draw(st.binary(max_size=255)), 5, 6, tuple(gids))
    return oncrpc.encode_call(1, 100003, 3, 1, data.draw(st.binary(max_size=80)), cred=cred)[4:]


def _mutate(data: st.DataObject, record: bytes) -> bytes:
    out = bytearray(record)
    for _ in range(data.draw(st.integers(0, 6))):
        if not out:
            break
        i = data.draw(st.integers(0, len(out) - 1))
        out[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(out)))
    return bytes(out[:cut]) if data.draw(st.booleans()) else bytes(out)


@FAST
@given(st.data())
def test_call_header_and_auth_sys(data: st.DataObject) -> None:
    record = data.draw(st.binary(max_size=200))
    if data.draw(st.booleans()):
        record = _mutate(data, _valid_call(data))
    try:
        call = oncrpc.decode_call(record)
    except (oncrpc.Ignored, oncrpc.CallError):
        return
    assert call.args_offset <= len(record)


@FAST
@given(st.binary(max_size=600))
def test_auth_sys_body(body: bytes) -> None:
    with contextlib.suppress(XdrError):
        oncrpc.decode_auth_sys(body)


ALL_DECODERS = [*((f"nfs3.{p.name}", d) for p, d in DECODERS.items())]
ALL_DECODERS += [("mount3.dirpath", mount3.dirpath_args), ("portmap.mapping", portmap.mapping_args)]


def _plausible_args(data: st.DataObject) -> bytes:
    """A valid-looking start (a 32-byte handle) followed by random words and bytes."""
    head = struct.pack(">I", 32) + data.draw(st.binary(min_size=32, max_size=32))
    words = data.draw(st.lists(st.sampled_from([0, 1, 2, 3, 7, 32, 255, 256, 2**31, 2**32 - 1]), max_size=30))
    return head + b"".join(struct.pack(">I", w) for w in words) + data.draw(st.binary(max_size=40))


@FAST
@given(st.data())
def test_every_argument_decoder(data: st.DataObject) -> None:
    args = data.draw(st.binary(max_size=300)) if data.draw(st.booleans()) else _plausible_args(data)
    for name, decode in ALL_DECODERS:
        try:
            decode(Unpacker(args))
        except XdrError:
            pass
        except Exception as e:  # pragma: no cover - the failure message names the decoder
            raise AssertionError(f"{name} raised {e!r}") from e


def test_every_nfs_procedure_has_a_decoder() -> None:
    assert set(DECODERS) == set(Proc)
