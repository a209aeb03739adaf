"""Random touches and forgets against Lrfu and a model that keeps every access: after each step
check() holds, and the victim order is the order of the CRF by its definition,
sum over accesses of 2 ** (-lam * (now - t)), least valuable first."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from nsd.blockstore.policy import Lrfu

DIGESTS = ["a", "b", "c", "d", "e"]
digests = st.sampled_from(DIGESTS)


class LrfuModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.policy = Lrfu()
        self.accesses: dict[str, list[int]] = {}
        self.now = 0

    @initialize(lam=st.sampled_from([0.0, 0.001, 0.1, 0.5, 1.0]))
    def start(self, lam: float) -> None:
        self.policy = Lrfu(lam)

    @rule(digest=digests)
    def touch(self, digest: str) -> None:
        self.policy.touch(digest)
        self.now += 1
        self.accesses.setdefault(digest, []).append(self.now)

    @rule(digest=digests)
    def forget(self, digest: str) -> None:
        self.policy.forget(digest)
        self.accesses.pop(digest, None)

    def crf(self, digest: str) -> float:
        return sum(2.0 ** (-self.policy.lam * (self.now - t)) for t in self.accesses[digest])

    @invariant()
    def matches_the_model(self) -> None:
        self.policy.check()
        assert self.policy.digests() == self.accesses.keys()
        order = self.policy.order([*self.accesses, "never-seen"])
        assert order[0] == "never-seen"
        for cheaper, dearer in itertools.pairwise(order[1:]):
            assert self.crf(cheaper) <= self.crf(dearer) * (1 + 1e-9)


TestLrfuModel = LrfuModel.TestCase
TestLrfuModel.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


def test_check_catches_a_broken_table() -> None:
    p = Lrfu(0.5)
    p.touch("a")
    p.touch("b")
    p.check()
    p._last["b"] = p._last["a"]  # two digests on one tick
    with pytest.raises(AssertionError, match="distinct ticks"):
        p.check()
