"""KeyLocks: holders of a key exclude each other, many keys never deadlock, and unused locks go."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from nsd.core.locks import KeyLocks, content, entry

KEYS = [entry(1, "a"), entry(1, "b"), entry(2, "a"), content(7), content(8)]

key_sets = st.lists(st.sets(st.sampled_from(KEYS), min_size=1, max_size=3), min_size=1, max_size=12)
yields = st.lists(st.integers(min_value=0, max_value=3), min_size=12, max_size=12)


@settings(max_examples=150, deadline=None)
@given(key_sets, yields)
def test_holders_exclude_each_other_and_the_table_empties(wanted: list[set[object]], pauses: list[int]) -> None:
    async def scenario() -> None:
        locks = KeyLocks()
        inside: set[object] = set()
        entered: list[int] = []

        async def worker(i: int, keys: set[object]) -> None:
            async with locks.hold(*keys):
                assert not keys & inside, f"worker {i} entered {keys & inside} while another held it"
                inside.update(keys)
                locks.check()
                for _ in range(pauses[i]):
                    await asyncio.sleep(0)
                    locks.check()
                inside.difference_update(keys)
                entered.append(i)

        tasks = [asyncio.create_task(worker(i, keys)) for i, keys in enumerate(wanted)]
        for _ in range(100):  # step the loop, checking the table between steps
            await asyncio.sleep(0)
            locks.check()
            if all(t.done() for t in tasks):
                break
        await asyncio.wait_for(asyncio.gather(*tasks), 5)  # no deadlock: all finish
        assert sorted(entered) == list(range(len(wanted)))
        locks.check()
        assert len(locks) == 0  # every lock dropped once nobody holds or waits

    asyncio.run(scenario())


async def test_a_cancelled_waiter_leaves_no_lock_behind() -> None:
    locks = KeyLocks()
    release = asyncio.Event()

    async def holder() -> None:
        async with locks.hold(content(1)):
            await release.wait()

    h = asyncio.create_task(holder())
    await asyncio.sleep(0)
    waiter = asyncio.create_task(_enter(locks, content(1)))
    await asyncio.sleep(0)
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    locks.check()
    release.set()
    await h
    locks.check()
    assert len(locks) == 0


async def _enter(locks: KeyLocks, key: object) -> None:
    async with locks.hold(key):
        pass
