"""ONC RPC v2 (RFC 5531) over TCP: record marking, call headers, credentials, reply headers.

Pure codecs: nothing here touches a socket. `RecordDecoder` turns a byte stream into
records (`feed(data)`, `next() -> bytes | NEED_DATA`); `decode_call` turns a record into an
`RpcCall`; the `*_reply` functions build reply records. Errors are split by what the
server must do about them:

- `FrameError`: the stream itself is broken (a fragment over the size cap); the connection
  must close, since nothing after it can be trusted to start on a record boundary.
- `CallError`: a well-framed record that is not an acceptable call; it carries the reply
  to send (RPC_MISMATCH, AUTH_ERROR, GARBAGE_ARGS) and the connection lives on.
  A record too short to hold an XID, or a REPLY message, is `Ignored`: there is nobody to answer.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from nsd.protocols.xdr import U32, Unpacker, XdrError, pad_len

# ---- constants (RFC 5531) -------------------------------------------------------------------

RPC_VERSION = 2
CALL, REPLY = 0, 1
MSG_ACCEPTED, MSG_DENIED = 0, 1
# accept_stat
SUCCESS, PROG_UNAVAIL, PROG_MISMATCH, PROC_UNAVAIL, GARBAGE_ARGS, SYSTEM_ERR = 0, 1, 2, 3, 4, 5
# reject_stat
RPC_MISMATCH, AUTH_ERROR = 0, 1
# auth_stat
AUTH_OK, AUTH_BADCRED, AUTH_REJECTEDCRED, AUTH_BADVERF, AUTH_REJECTEDVERF, AUTH_TOOWEAK = 0, 1, 2, 3, 4, 5
# auth flavors
AUTH_NONE, AUTH_SYS = 0, 1

MAX_AUTH_BYTES = 400  # opaque_auth body limit
MAX_MACHINE_NAME = 255
MAX_GIDS = 16

LAST_FRAGMENT = 0x80000000
DEFAULT_MAX_RECORD = (1 << 20) + 64 * 1024  # wtmax (1 MiB) plus headers and handles
LARGE_RECORD = 64 << 10  # records this large are received straight into a buffer of their own

_CALL_HEAD = struct.Struct(">IIIIII")  # xid, msg_type, rpcvers, prog, vers, proc
_U32X2 = struct.Struct(">II")  # an opaque_auth's flavor and length
_AUTH_SYS_CACHE_SIZE = 1024
_ACCEPTED_HEAD = struct.Struct(">IIIIIII")  # mark, xid, REPLY, MSG_ACCEPTED, verf flavor, verf len, accept_stat


class NeedData:
    """Sentinel type: the decoder needs more bytes before it can return a record."""

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA = NeedData()


class FrameError(Exception):
    """The record-marked stream is broken; close the connection."""


class Ignored(Exception):
    """A record that deserves no reply (too short for an XID, or not a CALL)."""


class CallError(Exception):
    """A record that is not an acceptable call; `reply` is the record to send back."""

    def __init__(self, message: str, reply: bytes) -> None:
        super().__init__(message)
        self.reply = reply


class AuthError(Exception):
    """Raised by a procedure to refuse the call with an RPC AUTH_ERROR (MSG_DENIED) reply."""

    def __init__(self, stat: int, message: str) -> None:
        super().__init__(message)
        self.stat = stat


# ---- record marking -------------------------------------------------------------------------


class BufferPool:
    """Buffers of large records that their calls are done with, by size, at most `max_bytes` in
    all (shared by the connections of one server, so idle clients hold no memory of their own).
    A buffer given back while something still views it (a WRITE's bytes still being written
    after its reply) waits among the busy ones until a `take` finds it free."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._free: dict[int, list[bytearray]] = {}
        self._busy: list[bytearray] = []

    def take(self, size: int) -> bytearray | None:
        free = self._free.get(size)
        if not free and self._busy:
            self._reclaim()
            free = self._free.get(size)
        if not free:
            return None
        self.bytes -= size
        return free.pop()

    def give(self, buf: bytearray) -> None:
        if self.bytes + len(buf) > self.max_bytes:
            return
        if _viewed(buf):
            self._busy.append(buf)
        else:
            self._free.setdefault(len(buf), []).append(buf)
        self.bytes += len(buf)

    def _reclaim(self) -> None:
        busy, self._busy = self._busy, []
        for buf in busy:
            if _viewed(buf):
                self._busy.append(buf)
            else:
                self._free.setdefault(len(buf), []).append(buf)


def _viewed(buf: bytearray) -> bool:
    """Whether a view of `buf` exists: a bytearray with live views cannot change size."""
    try:
        last = buf[-1]
        del buf[-1]
        buf.append(last)
    except BufferError:
        return True
    return False


class RecordDecoder:
    """Reassembles records from fragments of a TCP stream.

    Promises: each record is returned once, in stream order, as one bytes-like object; a record
    (all fragments together) over `max_record` bytes raises FrameError as soon as its
    header announces it, before its bytes are buffered.

    Bytes come in by `feed(data)`, or straight from the socket: `get_buffer()` says where the
    next bytes go and `buffer_updated(n)` that n bytes went there (asyncio.BufferedProtocol).
    Small records are cut out of one reused buffer (one copy each, into a bytes object). A
    single-fragment record of `large` bytes or more (a 1 MiB WRITE) gets a bytearray of exactly
    its size, and the rest of it is received straight into that: the kernel's copy is the only
    one. Such a buffer may be handed back with `recycle(record)` once its call is done with it
    and holds no view of it any more; the next record of that size reuses it, so a stream of
    WRITEs does not fault in fresh memory for every record.
    """

    def __init__(
        self,
        max_record: int = DEFAULT_MAX_RECORD,
        *,
        large: int = LARGE_RECORD,
        buffer_size: int = 256 << 10,
        pool: BufferPool | None = None,
    ) -> None:
        self.max_record = max_record
        self.large = large
        self._buf = bytearray(buffer_size)
        self._start = 0  # first byte not yet parsed
        self._end = 0  # end of the bytes received
        self._big: bytearray | None = None  # a large record being received into its own buffer
        self._big_filled = 0
        self._fragments: list[bytes] = []
        self._record_len = 0  # bytes of the current record held in _fragments
        self.pool = pool if pool is not None else BufferPool(4 * (DEFAULT_MAX_RECORD))

    # ---- bytes in ----------------------------------------------------------------------------

    def get_buffer(self, sizehint: int = -1) -> memoryview:
        """Where the next received bytes go (never empty)."""
        big = self._big
        if big is not None and self._big_filled < len(big):
            return memoryview(big)[self._big_filled :]
        buf = self._buf
        if self._end == len(buf):
            live = self._end - self._start
            if self._start:
                buf[:live] = buf[self._start : self._end]  # same length: no resize, views or not
                self._start, self._end = 0, live
            else:  # an unparsed fragment fills it: make room
                try:
                    buf.extend(bytes(len(buf)))
                except BufferError:  # someone still views it: move to a bigger copy instead
                    self._buf = buf + bytes(len(buf))
        return memoryview(self._buf)[self._end :]

    def buffer_updated(self, n: int) -> None:
        big = self._big
        if big is not None and self._big_filled < len(big):
            self._big_filled += n
        else:
            self._end += n

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        data = memoryview(data).cast("B")
        pos = 0
        while pos < len(data):
            with self.get_buffer() as view:
                n = min(len(view), len(data) - pos)
                view[:n] = data[pos : pos + n]
            self.buffer_updated(n)
            pos += n

    def receiving_large(self) -> bool:
        """Whether a large record (bulk data: a WRITE's) is arriving and not complete yet."""
        big = self._big
        return big is not None and self._big_filled < len(big)

    def buffered(self) -> int:
        big = self._big
        return self._end - self._start + (self._big_filled if big is not None else 0)

    # ---- records out -------------------------------------------------------------------------

    def next(self) -> bytes | bytearray | NeedData:
        """The next complete record, or NEED_DATA. Raises FrameError on a broken stream."""
        big = self._big
        if big is not None:
            if self._big_filled < len(big):
                return NEED_DATA
            self._big = None
            return big
        buf = self._buf
        while True:
            start, avail = self._start, self._end - self._start
            if avail < 4:
                if not avail:
                    self._start = self._end = 0
                return NEED_DATA
            mark = U32.unpack_from(buf, start)[0]
            size = mark & ~LAST_FRAGMENT
            last = bool(mark & LAST_FRAGMENT)
            if self._record_len + size > self.max_record:
                raise FrameError(f"record of more than {self.max_record} bytes")
            if not last and size == 0:
                # A chain of empty non-final fragments would let a peer spin us for free.
                raise FrameError("empty non-final fragment")
            if last and size >= self.large and not self._fragments:
                return self._start_big(size)
            if avail < 4 + size:
                return NEED_DATA
            fragment = bytes(buf[start + 4 : start + 4 + size])
            self._start = start + 4 + size
            if last:
                if not self._fragments:
                    return fragment
                self._fragments.append(fragment)
                record = b"".join(self._fragments)
                self._fragments.clear()
                self._record_len = 0
                return record
            self._fragments.append(fragment)
            self._record_len += size

    def _start_big(self, size: int) -> bytearray | NeedData:
        """The record's header is parsed: give it its own buffer, with what already arrived."""
        big = self.pool.take(size) or bytearray(size)
        start = self._start + 4
        have = min(size, self._end - start)
        big[:have] = self._buf[start : start + have]
        self._start = start + have
        if have == size:
            return big
        self._big, self._big_filled = big, have
        return NEED_DATA

    def recycle(self, record: object) -> None:
        """Take back a large record's buffer for reuse, if nothing views it any more."""
        if type(record) is bytearray and len(record) >= self.large:
            self.pool.give(record)


def record_mark(length: int) -> bytes:
    """The 4-byte header of a record sent as one fragment."""
    return U32.pack(LAST_FRAGMENT | length)


def encode_record(payload: bytes | bytearray) -> bytes:
    return record_mark(len(payload)) + payload


# ---- calls ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuthSys:
    """AUTH_SYS credentials (RFC 5531 appendix A)."""

    stamp: int
    machine: bytes
    uid: int
    gid: int
    gids: tuple[int, ...]


@dataclass(slots=True)
class RpcCall:
    """A decoded call header; the procedure's arguments start at `args_offset` of `record`."""

    xid: int
    prog: int
    vers: int
    proc: int
    flavor: int
    cred: AuthSys | None
    record: bytes | bytearray
    args_offset: int

    def args(self) -> Unpacker:
        return Unpacker(self.record, self.args_offset)


def decode_auth_sys(body: bytes | memoryview) -> AuthSys:
    """Parse an AUTH_SYS credential body; XdrError if malformed or over its limits."""
    u = Unpacker(body)
    stamp = u.uint32()
    machine = u.string(MAX_MACHINE_NAME)
    uid, gid = u.uint32(), u.uint32()
    n = u.uint32()
    if n > MAX_GIDS:
        raise XdrError(f"{n} supplementary gids, the limit is {MAX_GIDS}")
    gids = tuple(u.uint32() for _ in range(n))
    u.done()
    return AuthSys(stamp, machine, uid, gid, gids)


_auth_sys_cache: dict[bytes, AuthSys] = {}


def _auth_sys(key: bytes) -> AuthSys:
    """decode_auth_sys with a cache: a client sends the same few credentials over and over."""
    cred = _auth_sys_cache.get(key)
    if cred is None:
        cred = decode_auth_sys(key)
        if len(_auth_sys_cache) >= _AUTH_SYS_CACHE_SIZE:
            _auth_sys_cache.clear()
        _auth_sys_cache[key] = cred
    return cred


def decode_call(record: bytes | bytearray) -> RpcCall:
    """Parse the call header of a record.

    Raises Ignored (no reply possible), CallError (send its reply), never anything else.
    """
    if len(record) < 4:
        raise Ignored("record too short for an xid")
    if len(record) < _CALL_HEAD.size:
        xid = U32.unpack_from(record, 0)[0]
        raise CallError("truncated call header", accepted_reply(xid, GARBAGE_ARGS))
    xid, msg_type, rpcvers, prog, vers, proc = _CALL_HEAD.unpack_from(record, 0)
    if msg_type != CALL:
        raise Ignored(f"message type {msg_type} is not a call")
    if rpcvers != RPC_VERSION:
        raise CallError(f"rpc version {rpcvers}", rpc_mismatch_reply(xid))
    # The credential and verifier by hand with struct: this runs once per call.
    size = len(record)
    pos = _CALL_HEAD.size
    if pos + 8 > size:
        raise CallError("truncated credential", auth_error_reply(xid, AUTH_BADCRED))
    flavor, cred_len = _U32X2.unpack_from(record, pos)
    cred_start = pos + 8
    pos = cred_start + ((cred_len + 3) & ~3)
    if cred_len > MAX_AUTH_BYTES or pos + 8 > size:
        raise CallError("bad credential length", auth_error_reply(xid, AUTH_BADCRED))
    verf_flavor, verf_len = _U32X2.unpack_from(record, pos)
    pos += 8 + ((verf_len + 3) & ~3)
    if verf_len > MAX_AUTH_BYTES or pos > size:
        raise CallError("bad verifier length", auth_error_reply(xid, AUTH_BADCRED))
    cred: AuthSys | None = None
    if flavor == AUTH_SYS:
        try:
            cred = _auth_sys(bytes(record[cred_start : cred_start + cred_len]))
        except XdrError as e:
            raise CallError(f"bad AUTH_SYS credential: {e}", auth_error_reply(xid, AUTH_BADCRED)) from None
    elif flavor != AUTH_NONE:
        raise CallError(f"auth flavor {flavor}", auth_error_reply(xid, AUTH_REJECTEDCRED))
    if verf_flavor != AUTH_NONE:
        raise CallError(f"verifier flavor {verf_flavor}", auth_error_reply(xid, AUTH_BADVERF))
    return RpcCall(xid, prog, vers, proc, flavor, cred, record, pos)


def encode_call(xid: int, prog: int, vers: int, proc: int, args: bytes = b"", *, cred: AuthSys | None = None) -> bytes:
    """A call record (for tests, the benchmark's client and portmapper registration)."""
    head = _CALL_HEAD.pack(xid, CALL, RPC_VERSION, prog, vers, proc)
    if cred is None:
        auth = struct.pack(">IIII", AUTH_NONE, 0, AUTH_NONE, 0)
    else:
        body = bytearray(U32.pack(cred.stamp))
        body += U32.pack(len(cred.machine)) + cred.machine + b"\0" * (pad_len(len(cred.machine)) - len(cred.machine))
        body += struct.pack(">III", cred.uid, cred.gid, len(cred.gids))
        body += b"".join(U32.pack(g) for g in cred.gids)
        auth = struct.pack(">II", AUTH_SYS, len(body)) + body + struct.pack(">II", AUTH_NONE, 0)
    return encode_record(head + auth + args)


# ---- replies (each returned with its record mark, ready to write) -------------------------


def success_header(xid: int, body_len: int) -> bytes:
    """Record mark and accepted-SUCCESS header for a reply whose body has `body_len` bytes."""
    return _ACCEPTED_HEAD.pack(LAST_FRAGMENT | (24 + body_len), xid, REPLY, MSG_ACCEPTED, AUTH_NONE, 0, SUCCESS)


def accepted_reply(xid: int, stat: int, body: bytes = b"") -> bytes:
    return _ACCEPTED_HEAD.pack(LAST_FRAGMENT | (24 + len(body)), xid, REPLY, MSG_ACCEPTED, AUTH_NONE, 0, stat) + body


def prog_mismatch_reply(xid: int, low: int, high: int) -> bytes:
    return accepted_reply(xid, PROG_MISMATCH, struct.pack(">II", low, high))


def rpc_mismatch_reply(xid: int) -> bytes:
    return encode_record(struct.pack(">IIIIII", xid, REPLY, MSG_DENIED, RPC_MISMATCH, RPC_VERSION, RPC_VERSION))


def auth_error_reply(xid: int, stat: int) -> bytes:
    return encode_record(struct.pack(">IIIII", xid, REPLY, MSG_DENIED, AUTH_ERROR, stat))


@dataclass(frozen=True, slots=True)
class RpcReply:
    """A decoded reply (client side: tests, benchmark, portmapper registration)."""

    xid: int
    accepted: bool
    stat: int  # accept_stat if accepted, else reject_stat
    detail: tuple[int, ...]  # (low, high) for mismatches, (auth_stat,) for AUTH_ERROR
    body: bytes


def decode_reply(record: bytes) -> RpcReply:
    """Parse a reply record; XdrError if malformed."""
    u = Unpacker(record)
    xid, msg_type, reply_stat = u.uint32(), u.uint32(), u.uint32()
    if msg_type != REPLY:
        raise XdrError(f"message type {msg_type} is not a reply")
    if reply_stat == MSG_ACCEPTED:
        u.uint32()
        u.opaque(MAX_AUTH_BYTES)
        stat = u.uint32()
        detail: tuple[int, ...] = (u.uint32(), u.uint32()) if stat == PROG_MISMATCH else ()
        return RpcReply(xid, True, stat, detail, bytes(record[u.pos :]))
    if reply_stat == MSG_DENIED:
        stat = u.uint32()
        detail = (u.uint32(), u.uint32()) if stat == RPC_MISMATCH else (u.uint32(),)
        return RpcReply(xid, False, stat, detail, b"")
    raise XdrError(f"reply_stat {reply_stat}")
