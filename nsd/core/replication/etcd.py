"""A small etcd v3 client over etcd's JSON gateway (HTTP/1.1 + JSON), on aiohttp.

Why the gateway and not a gRPC client library: nsd already ships aiohttp, etcd serves the
gateway on its client port with no set-up, and what nsd needs (range, put, txn, leases, watch,
compaction) is a handful of POSTs. `aetcd` would add grpcio and protobuf for the same calls.

Keys and values are bytes (base64 on the wire); int64 fields come back as JSON strings and
fields at their default value are left out, so every reader here defaults them.

Several endpoints: a call goes to the endpoint that answered last; if it cannot be reached
(connection refused, timeout, 5xx), the next one is tried. `EtcdUnavailable` means none
answered; `EtcdError` is an answer etcd gave (a bad request, a lease not found, ...).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp

from nsd.errors import NsdError, Unavailable

log = logging.getLogger("nsd.etcd")

CALL_TIMEOUT = 3.0  # seconds one endpoint may take for a unary call before the next is tried


class EtcdUnavailable(Unavailable):
    """No etcd endpoint answered (a client may retry: NFS JUKEBOX, HTTP 503)."""


class EtcdError(NsdError):
    """etcd answered with an error."""


class Compacted(EtcdError):
    """A watch asked for history etcd has compacted away: read the current state and watch again."""


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str | None) -> bytes:
    return base64.b64decode(text) if text else b""


def prefix_end(prefix: bytes) -> bytes:
    """The first key after every key starting with `prefix` (etcd's range_end for a prefix)."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\0"


@dataclass(frozen=True)
class KeyValue:
    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int

    @classmethod
    def from_json(cls, kv: dict[str, Any]) -> KeyValue:
        return cls(
            key=unb64(kv.get("key")),
            value=unb64(kv.get("value")),
            create_revision=int(kv.get("create_revision", 0)),
            mod_revision=int(kv.get("mod_revision", 0)),
            version=int(kv.get("version", 0)),
            lease=int(kv.get("lease", 0)),
        )


@dataclass(frozen=True)
class Range:
    kvs: list[KeyValue]
    more: bool
    revision: int  # the store's revision when the range was read


@dataclass(frozen=True)
class Event:
    put: bool  # False: a delete
    kv: KeyValue


# -- building txn requests ---------------------------------------------------------------


def compare_created(key: bytes, revision: int) -> dict[str, Any]:
    """Holds when `key`'s create_revision is `revision` (0: the key does not exist)."""
    return {"key": b64(key), "target": "CREATE", "result": "EQUAL", "create_revision": str(revision)}


def op_put(key: bytes, value: bytes, lease: int = 0) -> dict[str, Any]:
    put: dict[str, Any] = {"key": b64(key), "value": b64(value)}
    if lease:
        put["lease"] = str(lease)
    return {"request_put": put}


def op_get(key: bytes) -> dict[str, Any]:
    return {"request_range": {"key": b64(key)}}


def op_delete(key: bytes, *, prefix: bool = False, end: bytes | None = None) -> dict[str, Any]:
    """Delete `key`, every key under it (`prefix`), or the keys from it up to (not including) `end`."""
    req = {"key": b64(key)}
    if prefix:
        end = prefix_end(key)
    if end is not None:
        req["range_end"] = b64(end)
    return {"request_delete_range": req}


class Etcd:
    """One client over `endpoints` (URLs such as http://127.0.0.1:2379). Close it when done."""

    def __init__(self, endpoints: list[str], *, call_timeout: float = CALL_TIMEOUT) -> None:
        if not endpoints:
            raise ValueError("no etcd endpoints")
        self.endpoints = [e.rstrip("/") for e in endpoints]
        self.call_timeout = call_timeout
        self._current = 0
        self._session: aiohttp.ClientSession | None = None
        self.last_rtt = 0.0  # seconds the last successful unary call took
        self.calls = 0  # successful unary calls, and their round trips in all
        self.rtt_total = 0.0
        self.healthy = True  # the last call reached some endpoint

    @property
    def endpoint(self) -> str:
        """The endpoint calls go to first."""
        return self.endpoints[self._current]

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST `body` to /v3/`path` at the first endpoint that answers; its JSON reply."""
        errors: list[str] = []
        first = self._current  # read once: concurrent calls move it while this one waits
        for i in range(len(self.endpoints)):
            index = (first + i) % len(self.endpoints)
            url = f"{self.endpoints[index]}/v3/{path}"
            started = time.monotonic()
            try:
                timeout = aiohttp.ClientTimeout(total=self.call_timeout)
                async with self.session().post(url, json=body, timeout=timeout) as resp:
                    text = await resp.text()
                    if resp.status >= 500 and "etcdserver" not in text:
                        raise aiohttp.ClientResponseError(resp.request_info, (), status=resp.status, message=text)
            except (aiohttp.ClientError, TimeoutError, OSError) as e:
                errors.append(f"{self.endpoints[index]}: {str(e) or type(e).__name__}")
                continue
            self._current = index
            self.healthy = True
            self.last_rtt = time.monotonic() - started
            self.calls += 1
            self.rtt_total += self.last_rtt
            reply: dict[str, Any] = json.loads(text) if text else {}
            if resp.status != 200 or "error" in reply:
                raise EtcdError(f"etcd {path}: {reply.get('message') or reply.get('error') or text}")
            return reply
        self.healthy = False
        raise EtcdUnavailable("etcd unreachable: " + "; ".join(errors))

    # -- kv ----------------------------------------------------------------------------

    async def get(self, key: bytes) -> KeyValue | None:
        r = await self.range(key)
        return r.kvs[0] if r.kvs else None

    async def range(
        self, key: bytes, end: bytes | None = None, *, limit: int = 0, prefix: bool = False, last: bool = False
    ) -> Range:
        """Keys from `key` up to (not including) `end`, or all under `key` with `prefix`;
        `last`: the highest keys first."""
        body: dict[str, Any] = {"key": b64(key)}
        if last:
            body["sort_order"], body["sort_target"] = "DESCEND", "KEY"
        if prefix:
            end = prefix_end(key)
        if end is not None:
            body["range_end"] = b64(end)
        if limit:
            body["limit"] = str(limit)
        reply = await self.call("kv/range", body)
        kvs = [KeyValue.from_json(kv) for kv in reply.get("kvs", [])]
        return Range(kvs, bool(reply.get("more", False)), int(reply["header"].get("revision", 0)))

    async def put(self, key: bytes, value: bytes, *, lease: int = 0) -> int:
        """Store `value` at `key`; the new revision."""
        body: dict[str, Any] = {"key": b64(key), "value": b64(value)}
        if lease:
            body["lease"] = str(lease)
        reply = await self.call("kv/put", body)
        return int(reply["header"].get("revision", 0))

    async def delete(self, key: bytes, *, prefix: bool = False) -> int:
        body = op_delete(key, prefix=prefix)["request_delete_range"]
        reply = await self.call("kv/deleterange", body)
        return int(reply.get("deleted", 0))

    async def txn(
        self, compare: list[dict[str, Any]], success: list[dict[str, Any]], failure: list[dict[str, Any]] | None = None
    ) -> tuple[bool, dict[str, Any]]:
        """Run `success` if every compare holds, else `failure`: (whether they held, the reply)."""
        reply = await self.call("kv/txn", {"compare": compare, "success": success, "failure": failure or []})
        return bool(reply.get("succeeded", False)), reply

    async def compact(self, revision: int) -> None:
        """Forget the history before `revision` (keys' current values stay)."""
        await self.call("kv/compaction", {"revision": str(revision), "physical": False})

    # -- leases -------------------------------------------------------------------------

    async def grant(self, ttl: float) -> int:
        """A new lease of `ttl` seconds (rounded up to whole seconds, at least 1); its id."""
        reply = await self.call("lease/grant", {"TTL": str(max(1, int(-(-ttl // 1))))})
        return int(reply["ID"])

    async def keepalive(self, lease: int) -> int:
        """Renew `lease`; the seconds it has left (0: it has expired or was revoked)."""
        reply = await self.call("lease/keepalive", {"ID": str(lease)})
        return int(reply.get("result", {}).get("TTL", 0))

    async def revoke(self, lease: int) -> None:
        """End `lease` now, deleting the keys attached to it."""
        try:
            await self.call("lease/revoke", {"ID": str(lease)})
        except EtcdError as e:
            if "not found" not in e.message:
                raise

    # -- watch --------------------------------------------------------------------------

    async def watch(self, key: bytes, *, prefix: bool = False, start_revision: int = 0) -> AsyncIterator[Event]:
        """Every change to `key` (or under it) from `start_revision` on, in revision order.

        Streams from one endpoint; when the stream breaks it is reopened (on the next endpoint
        that answers) after the last revision seen, so no event is missed or repeated, unless
        the history was compacted past it (EtcdError then). EtcdUnavailable only when no
        endpoint answers at all."""
        create: dict[str, Any] = {"key": b64(key)}
        if prefix:
            create["range_end"] = b64(prefix_end(key))
        next_revision = start_revision
        while True:
            if next_revision:
                create["start_revision"] = str(next_revision)
            async for event, revision in self._watch_stream(create):
                next_revision = revision + 1
                yield event

    async def _watch_stream(self, create: dict[str, Any]) -> AsyncIterator[tuple[Event, int]]:
        """One watch stream on the first endpoint that takes it; returns when the stream ends."""
        last_error: BaseException | None = None
        first = self._current
        for i in range(len(self.endpoints)):
            index = (first + i) % len(self.endpoints)
            url = f"{self.endpoints[index]}/v3/watch"
            opened = False
            try:
                timeout = aiohttp.ClientTimeout(total=None, connect=self.call_timeout, sock_read=None)
                async with self.session().post(url, json={"create_request": create}, timeout=timeout) as resp:
                    if resp.status != 200:
                        raise EtcdError(f"etcd watch: HTTP {resp.status}: {await resp.text()}")
                    self._current = index
                    opened = True
                    async for line in resp.content:
                        if not line.strip():
                            continue
                        msg = json.loads(line)
                        if "error" in msg:
                            raise EtcdError(f"etcd watch: {msg['error'].get('message', msg['error'])}")
                        result = msg.get("result", {})
                        if result.get("compact_revision"):
                            raise Compacted(f"etcd watch: history compacted up to {result['compact_revision']}")
                        for ev in result.get("events", []):
                            kv = KeyValue.from_json(ev["kv"])
                            yield Event(ev.get("type", "PUT") == "PUT", kv), kv.mod_revision
                return  # the stream ended cleanly (etcd going away): reopen it
            except (aiohttp.ClientError, TimeoutError, OSError) as e:
                if opened:
                    return  # broke mid-stream: the caller reopens it after the last revision it saw
                last_error = e
                continue
        await asyncio.sleep(0.2)  # every endpoint refused: let the caller's loop come round slowly
        raise EtcdUnavailable(f"etcd unreachable for watch: {last_error}")

    async def status(self, endpoint: str) -> dict[str, Any]:
        """Maintenance status of one endpoint (version, db size, leader); EtcdUnavailable if down."""
        try:
            timeout = aiohttp.ClientTimeout(total=self.call_timeout)
            async with self.session().post(f"{endpoint}/v3/maintenance/status", json={}, timeout=timeout) as resp:
                reply: dict[str, Any] = await resp.json(content_type=None)
                return reply
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as e:
            raise EtcdUnavailable(f"{endpoint}: {str(e) or type(e).__name__}") from None
