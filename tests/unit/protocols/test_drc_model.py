"""Random arrivals, replies and failures of non-idempotent calls against a tiny duplicate request
cache. After every step check() must hold, and what a retransmission would see must match a
model LRU: the first call's future while its entry is kept, nothing once it was evicted or its
call failed; an entry evicted while its call runs is cancelled (its waiters give up, the client
retransmits).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable
from typing import TypeVar

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from nsd.protocols.rpc import oncrpc
from nsd.protocols.rpc.drc import DuplicateRequestCache, Key

T = TypeVar("T")
ENTRIES = 3
KEYS: list[Key] = [(host, xid, 100, 0xC0FFEE) for host in ("10.0.0.1", "10.0.0.2") for xid in range(4)]
keys = st.sampled_from(KEYS)


class DrcModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.drc = DuplicateRequestCache(ENTRIES)
        self.model: OrderedDict[Key, asyncio.Future[bytes]] = OrderedDict()  # least recently used first

    def run(self, step: Callable[[], T]) -> T:
        async def in_loop() -> T:
            return step()

        return self.loop.run_until_complete(in_loop())

    def teardown(self) -> None:
        self.loop.close()

    @rule(key=keys)
    def arrive(self, key: Key) -> None:
        """A call (or its retransmission) arrives: the server looks it up, else starts it."""
        found = self.run(lambda: self.drc.get(key))
        expected = self.model.get(key)
        assert found is expected
        if found is not None:
            self.model.move_to_end(key)
            return
        self.model[key] = self.run(lambda: self.drc.start(key))
        while len(self.model) > ENTRIES:
            _, evicted = self.model.popitem(last=False)
            assert evicted.done(), "an evicted entry must not leave its waiters hanging"

    @rule(key=keys, reply=st.binary(max_size=8))
    def reply(self, key: Key, reply: bytes) -> None:
        fut = self.model.get(key)
        if fut is not None and not fut.done():
            fut.set_result(reply)

    @rule(key=keys)
    def fail(self, key: Key) -> None:
        """The call raised: its entry goes, so a retransmission runs it again."""
        fut = self.model.get(key)
        if fut is None or fut.done():
            return
        self.drc.forget(key)
        del self.model[key]
        assert fut.cancelled()
        assert self.run(lambda: self.drc.get(key)) is None

    @invariant()
    def holds(self) -> None:
        self.drc.check()
        assert len(self.drc) == len(self.model)


TestDrcModel = DrcModel.TestCase
TestDrcModel.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)


async def test_check_finds_a_broken_cache() -> None:
    drc = DuplicateRequestCache(2)
    first = drc.start(("h", 1, 10, 0))
    drc.check()
    first.cancel()  # cancelled behind the cache's back: a retransmission would be dropped forever
    with pytest.raises(AssertionError, match="cancelled entry"):
        drc.check()


def test_key_covers_host_xid_and_bytes() -> None:
    call = oncrpc.decode_call(oncrpc.encode_call(7, 100003, 3, 8, b"args")[4:])
    other = oncrpc.decode_call(oncrpc.encode_call(7, 100003, 3, 8, b"argz")[4:])
    assert DuplicateRequestCache.key("h", call) == DuplicateRequestCache.key("h", call)
    assert DuplicateRequestCache.key("h", call) != DuplicateRequestCache.key("g", call)
    assert DuplicateRequestCache.key("h", call) != DuplicateRequestCache.key("h", other)
