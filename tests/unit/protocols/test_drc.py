"""The duplicate request cache against a model: bounded, LRU, one reply per key, check() holds."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from nsd.protocols.rpc.drc import DuplicateRequestCache

ENTRIES = 4
keys = st.sampled_from([("10.0.0.1", xid, 100, 7) for xid in range(8)])


class DrcModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.drc = DuplicateRequestCache(ENTRIES)
        self.model: OrderedDict[Any, bytes | None] = OrderedDict()  # key -> reply, None while running
        self.evicted: list[asyncio.Future[bytes]] = []

    def teardown(self) -> None:
        self.loop.close()

    def _run(self, fn: Any) -> Any:
        async def inside() -> Any:
            return fn()

        return self.loop.run_until_complete(inside())

    @rule(key=keys)
    def start_a_call(self, key: Any) -> None:
        if key in self.model:
            return  # the server answers a known key from the cache instead
        before = dict(self.drc._cache)
        self._run(lambda: self.drc.start(key))
        self.model[key] = None
        while len(self.model) > ENTRIES:
            old, _ = self.model.popitem(last=False)
            self.evicted.append(before[old])

    @rule(key=keys, reply=st.binary(min_size=1, max_size=8))
    def finish_a_call(self, key: Any, reply: bytes) -> None:
        fut = self.drc.get(key)
        if key not in self.model:
            assert fut is None
            return
        assert fut is not None
        self.model.move_to_end(key)
        if self.model[key] is None:
            fut.set_result(reply)
            self.model[key] = reply
        else:
            assert fut.result() == self.model[key]  # a retransmit gets the first reply

    @rule(key=keys)
    def forget_a_failed_call(self, key: Any) -> None:
        self.drc.forget(key)
        self.model.pop(key, None)
        assert self.drc.get(key) is None

    @invariant()
    def agrees_with_the_model(self) -> None:
        self.drc.check()
        assert len(self.drc) == len(self.model)
        assert list(self.drc._cache) == list(self.model)
        assert all(f.cancelled() or f.done() for f in self.evicted)  # waiters of evicted calls are released


TestDrc = DrcModel.TestCase
TestDrc.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
