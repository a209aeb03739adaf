"""Random sequences of put/get/ref/unref/evict/remove/restart/corrupt against a small BlockStore
with two tiny disk tiers and a tiny memory tier. After every step check() must hold, and:

- get() returns the exact bytes put, or None only when the block is gone or was corrupted on disk;
- a block for which must_keep() is true is never evicted, by evict() or by a put making room;
- NoSpace only when no tier could make room by evicting what may be evicted;
- after an evict() pass each tier is at or under its low watermark, or holds only must_keep blocks;
- a restart (new store, same directories) finds exactly the same blocks.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from nsd.blockstore import BlockStore, TierSpec, hash_block
from nsd.errors import Invalid, NoSpace

T = TypeVar("T")
KiB = 1024
SIZES = [1 * KiB, 2 * KiB, 3 * KiB, 5 * KiB, 6 * KiB]
POOL = [bytes([i]) * SIZES[i % len(SIZES)] for i in range(10)]
DIGESTS = [hash_block(b) for b in POOL]
CONTENT = dict(zip(DIGESTS, POOL, strict=True))
CAPACITIES = [12 * KiB, 20 * KiB]
MEMORY = 8 * KiB
HIGH, LOW = 0.7, 0.4

blocks = st.integers(0, len(POOL) - 1)


class BlockStoreModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.dir = Path(tempfile.mkdtemp(prefix="nsd-blocks-"))
        self.keep: set[str] = set()
        self.refs: dict[str, int] = {}
        self.corrupted: set[str] = set()
        self.store = self.new_store()

    def new_store(self) -> BlockStore:
        store = BlockStore(
            memory_bytes=MEMORY,
            tiers=[TierSpec(self.dir / f"t{i}", c) for i, c in enumerate(CAPACITIES)],
            must_keep=self.keep.__contains__,
            high_watermark=HIGH,
            low_watermark=LOW,
            fsync=False,
            offload_bytes=4 * KiB,  # some blocks hashed in a thread, some inline
        )
        self.run(store.open())
        return store

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.run(self.store.close())
        self.run(self.loop.shutdown_default_executor())  # one worker pool per example: do not leak its threads
        self.loop.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # ---- helpers ---------------------------------------------------------------------------

    def present(self) -> set[str]:
        return {d for d in DIGESTS if self.store.has(d)}

    def kept_present(self) -> set[str]:
        return self.present() & self.keep

    def tier_members(self) -> list[set[str]]:
        return [set(m) for m in self.store._index.members]

    def forget_gone(self) -> None:
        self.corrupted &= self.present()

    # ---- rules -----------------------------------------------------------------------------

    @rule(i=blocks)
    def put(self, i: int) -> None:
        data, digest = POOL[i], DIGESTS[i]
        kept, members = self.kept_present(), self.tier_members()
        was_there = self.store.has(digest)
        try:
            assert self.run(self.store.put(data)) == digest
        except NoSpace:
            assert not was_there
            for t, cap in enumerate(CAPACITIES):
                used = sum(len(CONTENT[d]) for d in members[t])
                evictable = sum(len(CONTENT[d]) for d in members[t] if d not in self.keep)
                assert used + len(data) - cap > evictable, f"tier {t} could have made room"
            assert not self.store.has(digest)
        else:
            assert self.store.has(digest)
        assert kept <= self.present(), "a must_keep block was evicted to make room"
        self.forget_gone()

    @rule(i=blocks, promote=st.booleans())
    def get(self, i: int, promote: bool) -> None:
        digest = DIGESTS[i]
        kept, was_there = self.kept_present(), self.store.has(digest)
        got = self.run(self.store.get(digest, promote=promote))
        if got is None:
            assert not was_there or digest in self.corrupted
            assert not self.store.has(digest)
        else:
            assert got == CONTENT[digest]
        assert kept - {digest} <= self.present()
        self.forget_gone()

    @rule(i=blocks, n=st.integers(0, 3))
    def ref(self, i: int, n: int) -> None:
        self.store.ref(DIGESTS[i], n)
        if n:
            self.refs[DIGESTS[i]] = self.refs.get(DIGESTS[i], 0) + n

    @rule(i=blocks, n=st.integers(1, 3))
    def unref(self, i: int, n: int) -> None:
        digest = DIGESTS[i]
        have = self.refs.get(digest, 0)
        if n > have:
            try:
                self.store.unref(digest, n)
            except Invalid:
                pass
            else:
                raise AssertionError("unref below zero was accepted")
        else:
            self.store.unref(digest, n)
            self.refs[digest] = have - n
            if not self.refs[digest]:
                del self.refs[digest]
        assert self.store.refs(digest) == self.refs.get(digest, 0)

    @rule(data=st.data())
    def toggle_keep(self, data: st.DataObject) -> None:
        # Mostly blocks that are stored: only those make must_keep matter to eviction.
        present = sorted(self.present())
        choices = present if present and data.draw(st.integers(0, 3), label="stored") else DIGESTS
        self.keep ^= {data.draw(st.sampled_from(choices), label="digest")}

    @rule()
    def evict(self) -> None:
        kept = self.kept_present()
        over = [sum(len(CONTENT[d]) for d in m) > HIGH * CAPACITIES[t] for t, m in enumerate(self.tier_members())]
        self.run(self.store.evict())
        assert kept <= self.present(), "evict() dropped a must_keep block"
        for t, members in enumerate(self.tier_members()):
            used = sum(len(CONTENT[d]) for d in members)
            if over[t]:
                assert used <= LOW * CAPACITIES[t] or members <= self.keep, f"tier {t} left over its low watermark"
            else:
                assert used <= CAPACITIES[t]
        assert self.store.stats()["memory"]["used"] <= HIGH * MEMORY  # type: ignore[index]
        self.forget_gone()

    @rule(i=blocks)
    def remove(self, i: int) -> None:
        self.run(self.store.remove(DIGESTS[i]))
        assert not self.store.has(DIGESTS[i])
        assert self.store.refs(DIGESTS[i]) == self.refs.get(DIGESTS[i], 0)
        self.forget_gone()

    @rule(i=blocks)
    def corrupt_on_disk(self, i: int) -> None:
        digest = DIGESTS[i]
        for t in range(len(CAPACITIES)):
            path = self.dir / f"t{t}" / digest[:2] / digest
            if path.exists():
                raw = bytearray(path.read_bytes())
                raw[len(raw) // 2] ^= 0xFF
                path.write_bytes(bytes(raw))
                self.corrupted.add(digest)

    @rule()
    def restart(self) -> None:
        before, stats = self.present(), self.store.stats()
        self.run(self.store.close())
        self.store = self.new_store()
        for digest, n in self.refs.items():
            self.store.ref(digest, n)
        assert self.present() == before
        after = self.store.stats()
        for key in ("tiers", "physical_bytes", "logical_bytes"):
            assert after[key] == stats[key], key

    @invariant()
    def holds(self) -> None:
        self.store.check()
        s = self.store.stats()
        assert s["logical_bytes"] == sum(n * len(CONTENT[d]) for d, n in self.refs.items() if self.store.has(d))


TestBlockStoreModel = BlockStoreModel.TestCase
TestBlockStoreModel.settings = settings(
    max_examples=30, stateful_step_count=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
