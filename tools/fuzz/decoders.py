"""Coverage-guided fuzzing of nsd's decoders with atheris (libFuzzer), an optional tool.

    pip install atheris                              # not a dependency of nsd
    .venv/bin/python tools/fuzz/decoders.py          # every target for 20 s; prints inputs/s
    .venv/bin/python tools/fuzz/decoders.py --seconds 120
    .venv/bin/python tools/fuzz/decoders.py rpc -max_total_time=600 corpus/   # one target, libFuzzer flags

Targets and the only errors each may raise (anything else is a crash; libFuzzer saves the input):
  rpc       record marks, call headers, credentials, then the NFS/MOUNT argument decoder of the
            call's procedure: FrameError, Ignored, CallError, XdrError
  nfs_args  every NFSv3 argument decoder on raw bytes (first byte picks the procedure): XdrError
  journal   record framing scan and op payload decoding: Corrupt (the scan itself never raises)
  image     checkpoint image chunks (msgpack) into a namespace: Corrupt (msgpack's own errors
            stop before nsd is reached)
  webhdfs   request path and query: Remote(400) for paths, Invalid for parameters
The short hypothesis pass in CI is tests/stress/test_decoder_fuzz.py and test_nfs_fuzz.py.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
from collections.abc import Callable
from urllib.parse import parse_qsl

import atheris

with atheris.instrument_imports():
    import msgpack

    from nsd import errors
    from nsd.journal.ops import decode_op
    from nsd.journal.record import scan_all
    from nsd.namespace import Namespace
    from nsd.protocols.nfs3.args import DECODERS
    from nsd.protocols.rpc import oncrpc
    from nsd.protocols.webhdfs.context import Remote
    from nsd.protocols.webhdfs.params import Params
    from nsd.protocols.webhdfs.routes import parse_path
    from nsd.protocols.xdr import Unpacker, XdrError

PROCS = sorted(DECODERS)


def rpc(data: bytes) -> None:
    d = oncrpc.RecordDecoder(max_record=64 * 1024)
    try:
        d.feed(data)
        for _ in range(len(data) // 4 + 1):
            record = d.next()
            if record is oncrpc.NEED_DATA:
                return
            assert isinstance(record, bytes)
            try:
                call = oncrpc.decode_call(record)
            except (oncrpc.Ignored, oncrpc.CallError):
                continue
            decoder = DECODERS.get(call.proc) if call.prog == 100003 else None  # type: ignore[call-overload]
            if decoder is not None:
                with contextlib.suppress(XdrError):
                    decoder(call.args())
    except oncrpc.FrameError:
        pass


def nfs_args(data: bytes) -> None:
    if not data:
        return
    decoder = DECODERS[PROCS[data[0] % len(PROCS)]]
    with contextlib.suppress(XdrError):
        decoder(Unpacker(data[1:]))


def journal(data: bytes) -> None:
    records, stop = scan_all(data)
    assert stop.offset <= len(data)
    if len(data) >= 2:
        with contextlib.suppress(errors.Corrupt):
            decode_op(int.from_bytes(data[:2], "little") % 64, data[2:])
    for r in records:
        with contextlib.suppress(errors.Corrupt):
            decode_op(r.code, bytes(r.payload))


def image(data: bytes) -> None:
    try:
        chunks = _unpack_all(data)
    except (ValueError, msgpack.UnpackException, TypeError):
        return
    with contextlib.suppress(errors.Corrupt):
        Namespace.from_image(chunks)


def _unpack_all(data: bytes) -> list[object]:
    u = msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=1 << 20)
    u.feed(data)
    return list(u)


def webhdfs(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    path, _, query = text.partition("?")
    try:
        parse_path("/webhdfs/v1" + path)
    except Remote as e:
        assert e.status == 400
    p = Params(parse_qsl(query, keep_blank_values=True))
    for check in (
        lambda: p.flag("overwrite", False),
        lambda: p.long("offset", 0, minimum=0),
        lambda: p.permission(),
        lambda: p.path("destination", required=False),
        lambda: p.fsaction(),
    ):
        with contextlib.suppress(errors.Invalid):
            check()


TARGETS: dict[str, Callable[[bytes], None]] = {
    "rpc": rpc,
    "nfs_args": nfs_args,
    "journal": journal,
    "image": image,
    "webhdfs": webhdfs,
}


def run_one(name: str, libfuzzer_args: list[str]) -> None:
    atheris.Setup([sys.argv[0], *libfuzzer_args], TARGETS[name])
    atheris.Fuzz()


def run_all(seconds: int) -> int:
    """Each target in its own process for `seconds`; prints inputs run and inputs/s."""
    failed = 0
    print(f"{'target':<10} {'inputs':>12} {'inputs/s':>10}  result")
    for name in TARGETS:
        proc = subprocess.run(
            [sys.executable, __file__, name, f"-max_total_time={seconds}", "-print_final_stats=1"],
            capture_output=True,
            text=True,
        )
        m = re.search(r"Done (\d+) runs in (\d+) second", proc.stderr)
        runs, took = (int(m.group(1)), max(1, int(m.group(2)))) if m else (0, seconds)  # fuzzing time, not start-up
        result = "ok" if proc.returncode == 0 else f"CRASH (exit {proc.returncode})"
        failed += proc.returncode != 0
        print(f"{name:<10} {runs:>12,} {runs / max(took, 1e-9):>10,.0f}  {result}", flush=True)
        if proc.returncode != 0:
            print("\n".join(proc.stderr.splitlines()[-40:]))
    return 1 if failed else 0


def main() -> int:
    args = sys.argv[1:]
    if args and args[0] in TARGETS:
        run_one(args[0], args[1:])
        return 0
    seconds = 20
    if args[:1] == ["--seconds"] and len(args) > 1:
        seconds = int(args[1])
    elif args:
        print(__doc__)
        return 2
    return run_all(seconds)


if __name__ == "__main__":
    sys.exit(main())
