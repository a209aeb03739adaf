"""Random writes, reads, persists, frees, removes, backup captures and under-storage outages
against a vfs with a block cache (MUST_CACHE writes, a memory:// root). After every step the
namespace, the block store, the cache's holds and the reconciler pass their check(), and
while the store is up and no intent is open every file reads back what was written."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from cachevfs import ME, chunks, close, new_env, read_all
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from nsd import errors
from nsd.core.cache.policy import WriteType
from nsd.ops.cache.controls import free_path, persist_path
from nsd.ufs.adapters import memory
from nsd.ufs.wrap.health import HealthUfs

T = TypeVar("T")
names = st.sampled_from(["a", "b", "c"])
contents = st.binary(max_size=300).map(lambda b: b * 3)  # a few tiny blocks each


class CacheModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.tmp = Path(tempfile.mkdtemp(prefix="nsd-cache-model-"))
        self.env = new_env(self.tmp, write_type=WriteType.MUST_CACHE, block_size=256)
        self.vfs = self.run(self.env.open())
        health = self.vfs.mounts.ufs(0)
        assert isinstance(health, HealthUfs)
        health.probe_after = 0  # a store that is back is tried at once, not 5 s later
        self.files: dict[str, bytes] = {}
        self.captures: list[contextlib.ExitStack] = []

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        for capture in self.captures:
            capture.close()
        self.env.ufs.set_down(False)
        self.run(close(self.vfs))
        self.loop.close()
        memory.drop_store(self.env.store_name)
        shutil.rmtree(self.tmp)

    @property
    def up(self) -> bool:
        return not self.env.ufs.faults.down

    @precondition(lambda self: self.up)
    @rule(name=names, data=contents)
    def write(self, name: str, data: bytes) -> None:
        self.run(self.vfs.write_file(f"/{name}", chunks(data), caller=ME))
        self.files[name] = data

    @precondition(lambda self: self.up)
    @rule(name=names)
    def persist(self, name: str) -> None:
        if name in self.files:
            self.run(persist_path(self.vfs, f"/{name}"))
            assert self.env.ufs.files[name].data == self.files[name]

    @precondition(lambda self: self.up)
    @rule(name=names)
    def read(self, name: str) -> None:
        if name in self.files:
            assert self.run(read_all(self.vfs, f"/{name}")) == self.files[name]

    @precondition(lambda self: self.up)
    @rule(name=names)
    def free(self, name: str) -> None:
        if name in self.files:
            self.run(free_path(self.vfs, f"/{name}"))

    @rule(name=names)
    def remove(self, name: str) -> None:
        if name not in self.files:
            return
        try:
            self.run(self.vfs.remove(f"/{name}", caller=ME))
        except errors.UfsUnavailable:
            assert not self.up  # the object stays where it was; its intent may stay open
            return
        del self.files[name]

    @rule()
    def begin_capture(self) -> None:
        assert self.vfs.cache is not None
        stack = contextlib.ExitStack()
        held = stack.enter_context(self.vfs.cache.capture())
        assert held >= self.vfs.ns.kept.keys()
        self.captures.append(stack)

    @precondition(lambda self: self.captures)
    @rule()
    def end_capture(self) -> None:
        self.captures.pop(0).close()

    @precondition(lambda self: self.up)
    @rule()
    def go_down(self) -> None:
        self.env.ufs.set_down(True)

    @precondition(lambda self: not self.up)
    @rule()
    def come_back(self) -> None:
        self.env.ufs.set_down(False)
        assert self.run(self.vfs.reconciler.settle()) == 0

    @invariant()
    def sound(self) -> None:
        assert self.vfs.cache is not None
        self.vfs.ns.check()
        self.vfs.cache.blocks.check()
        self.vfs.cache.check()
        self.vfs.reconciler.check()
        if self.up and not self.vfs.ns.intents:
            for name, data in self.files.items():
                assert self.run(read_all(self.vfs, f"/{name}")) == data


TestCacheModel = CacheModel.TestCase
TestCacheModel.settings = settings(max_examples=50, stateful_step_count=25, deadline=None)
