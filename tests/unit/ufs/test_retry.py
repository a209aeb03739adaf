"""RetryingUfs on the fault-injecting memory store: what is retried, how long it waits, and
that a store that hangs or is down gives a clear error instead of a hang."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any, TypeVar

import pytest

from nsd import errors
from nsd.ufs import open_ufs
from nsd.ufs.adapters.memory import MemoryStore, MemoryUfs, drop_store, store
from nsd.ufs.wrap.retry import Replayable, RetryingUfs

T = TypeVar("T")


@pytest.fixture
def name() -> Iterator[str]:
    n = "retry-" + secrets.token_hex(4)
    yield n
    drop_store(n)


class Sleeps:
    """Records backoff sleeps instead of sleeping."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def wrap(name: str, **kw: float) -> tuple[RetryingUfs, MemoryStore, Sleeps]:
    sleeps = Sleeps()
    params = {"attempts": 4, "base_delay": 0.1, "max_delay": 0.3, "timeout": 5.0, **kw}
    ufs = RetryingUfs(MemoryUfs(f"memory://{name}"), sleep=sleeps, **params)  # type: ignore[arg-type]
    return ufs, store(name), sleeps


async def body(*chunks: bytes) -> AsyncIterator[bytes]:
    for c in chunks:
        yield c


async def test_transient_failures_are_retried_with_bounded_backoff(name: str) -> None:
    ufs, st, sleeps = wrap(name)
    st.put("f", b"data")
    st.faults.fail_every = 1  # every call fails
    with pytest.raises(errors.UfsUnavailable):
        await ufs.stat("f")
    assert st.calls == 4
    assert len(sleeps.delays) == 3
    assert all(0 <= d <= bound for d, bound in zip(sleeps.delays, [0.1, 0.2, 0.3], strict=True))
    st.faults.fail_every = 2  # every other call fails: one retry is enough
    assert (await ufs.stat("f")).size == 4


@pytest.mark.parametrize(
    "error", [errors.NotFound("gone"), errors.Denied("no"), errors.Invalid("bad"), errors.NoSpace("full")]
)
async def test_permanent_errors_are_never_retried(name: str, error: errors.NsdError) -> None:
    ufs, st, sleeps = wrap(name)
    st.faults.permanent = error
    with pytest.raises(type(error)):
        await ufs.stat("f")
    assert st.calls == 1
    assert sleeps.delays == []


async def test_not_found_is_not_retried(name: str) -> None:
    ufs, st, _ = wrap(name)
    with pytest.raises(errors.NotFound):
        await ufs.read("missing", 0, 1)
    assert st.calls == 1


async def test_full_store_fails_the_write_once_and_keeps_old_content(name: str) -> None:
    ufs, st, _ = wrap(name)
    st.put("f", b"old")
    st.faults.capacity = 10
    with pytest.raises(errors.NoSpace):
        await ufs.write("f", body(b"x" * 20))
    assert st.files["f"].data == b"old"
    assert ufs.retries == 0


async def test_one_shot_write_is_replayed_from_its_record(name: str) -> None:
    ufs, st, _ = wrap(name)
    st.faults.fail_calls = frozenset({2})  # the write's commit (its 2nd call) fails the first time
    produced = 0

    async def once() -> AsyncIterator[bytes]:
        nonlocal produced
        for part in (b"ab", b"cd"):
            produced += 1
            yield part

    status = await ufs.write("f", once())
    assert (status.size, st.files["f"].data) == (4, b"abcd")
    assert produced == 2  # the source was read once; the retry replayed the record
    assert ufs.retries == 1


async def test_write_larger_than_the_replay_record_is_not_retried(name: str) -> None:
    ufs, st, _ = wrap(name, replay_bytes=3)
    st.faults.fail_calls = frozenset({2})
    with pytest.raises(errors.UfsUnavailable):
        await ufs.write("f", body(b"ab", b"cd"))
    assert "f" not in st.files
    assert ufs.retries == 0


async def test_replayable_write_is_retried_whatever_its_size(name: str) -> None:
    ufs, st, _ = wrap(name, replay_bytes=1)
    st.faults.fail_calls = frozenset({2})
    status = await ufs.write("f", Replayable(lambda: body(b"ab", b"cd")))
    assert status.size == 4
    assert ufs.retries == 1


async def test_broken_source_is_not_retried(name: str) -> None:
    ufs, st, _ = wrap(name)

    async def broken() -> AsyncIterator[bytes]:
        yield b"x"
        raise errors.UfsUnavailable("the source's own store went away")

    with pytest.raises(errors.UfsUnavailable):
        await ufs.write("f", broken())
    assert "f" not in st.files


async def test_listing_is_retried_until_its_first_entry(name: str) -> None:
    ufs, st, _ = wrap(name)
    for i in range(600):
        st.put(f"d/f{i:04d}", b"")
    st.faults.fail_calls = frozenset({1})  # the first try's listing call fails
    got = [s.name async for s in ufs.list("d")]
    assert got == [f"f{i:04d}" for i in range(600)]
    assert ufs.retries >= 1


async def test_listing_that_fails_midway_ends_with_the_error(name: str) -> None:
    ufs, st, _ = wrap(name)
    for i in range(600):
        st.put(f"d/f{i:04d}", b"")
    got = []
    with pytest.raises(errors.UfsUnavailable):
        async for s in ufs.list("d"):
            got.append(s.name)
            st.faults.down = True  # goes down after the first page
    assert len(got) == 256  # one whole page, never a repeated entry
    assert len(set(got)) == len(got)


async def test_a_listing_whose_next_page_hangs_ends_with_a_timeout(name: str) -> None:
    ufs, st, _ = wrap(name, timeout=0.2, attempts=1)
    for i in range(300):
        st.put(f"d/f{i:04d}", b"")
    got = []
    with pytest.raises(errors.UfsUnavailable) as e:
        async for s in ufs.list("d"):
            got.append(s.name)
            st.faults.hang = True  # the second page's call never answers
    assert "did not answer list within 0.2s" in str(e.value)
    assert len(got) == 256
    st.set_down(False)


async def test_hanging_store_times_out_then_recovers(name: str) -> None:
    ufs, st, sleeps = wrap(name, timeout=0.2, attempts=2)
    st.put("f", b"data")
    st.faults.hang = True
    with pytest.raises(errors.UfsUnavailable) as e:
        await ufs.stat("f")
    assert "did not answer stat within 0.2s" in str(e.value)
    assert len(sleeps.delays) == 1
    st.set_down(False)
    assert (await ufs.stat("f")).size == 4


async def test_hanging_write_times_out_but_a_slow_upload_is_not_cut(name: str) -> None:
    ufs, st, _ = wrap(name, timeout=0.3, attempts=1)
    st.faults.latency = 0.0

    async def slow() -> AsyncIterator[bytes]:
        import asyncio

        for _ in range(4):
            await asyncio.sleep(0.1)  # 0.4 s in all, but progress every 0.1 s
            yield b"x"

    assert (await ufs.write("slow", slow())).size == 4
    st.faults.hang = True
    with pytest.raises(errors.UfsUnavailable):
        await ufs.write("f", body(b"x"))
    st.set_down(False)


def _step_outside_tasks(coro: Coroutine[Any, Any, T]) -> asyncio.Future[T]:
    """Drive `coro` from plain loop callbacks, never in a task: as the NFS driver steps a
    procedure inline until it first waits."""
    done: asyncio.Future[T] = asyncio.get_running_loop().create_future()

    def step(_: object = None) -> None:
        assert asyncio.current_task() is None
        try:
            waiting = coro.send(None)
        except StopIteration as stop:
            done.set_result(stop.value)
        except Exception as e:
            done.set_exception(e)
        else:
            waiting.add_done_callback(step)

    asyncio.get_running_loop().call_soon(step)
    return done


async def test_calls_made_outside_any_task_are_timed_too(name: str) -> None:
    """The NFS driver steps GETATTR, READ or COMMIT outside any task until they first wait, so
    the deadlines must not need one (asyncio.timeout does): a hang there still ends in
    UfsUnavailable."""
    ufs, st, _ = wrap(name, timeout=0.2, attempts=1)
    st.put("f", b"data")
    assert (await _step_outside_tasks(ufs.stat("f"))).size == 4
    assert (await _step_outside_tasks(ufs.write("g", body(b"ab", b"c")))).size == 3
    st.faults.hang = True
    with pytest.raises(errors.UfsUnavailable):
        await _step_outside_tasks(ufs.stat("f"))
    with pytest.raises(errors.UfsUnavailable):
        await _step_outside_tasks(ufs.write("h", body(b"x")))


async def test_down_store_fails_fast_and_recovers_through_open_ufs(name: str) -> None:
    ufs = open_ufs(f"memory://{name}", {"retries": "3", "timeout_s": "1", "retry_base_s": "0.01"})
    st = store(name)
    st.put("f", b"data")
    st.set_down(True)
    with pytest.raises(errors.UfsUnavailable) as e:
        await ufs.read("f", 0, 4)
    assert "down" in str(e.value)
    assert st.calls == 3
    st.set_down(False)
    assert await ufs.read("f", 0, 4) == b"data"


async def test_bad_retry_options_are_invalid(name: str) -> None:
    with pytest.raises(errors.Invalid, match="retries"):
        open_ufs(f"memory://{name}", {"retries": "many"})
    with pytest.raises(errors.Invalid):
        open_ufs(f"memory://{name}", {"timeout_s": "0"})


async def test_delete_and_rename_whose_answer_was_lost_succeed_on_retry(name: str) -> None:
    ufs, st, _ = wrap(name)
    st.put("a", b"1")
    st.put("gone", b"2")
    st.faults.lose_answers = frozenset({st.calls + 1})  # the first try acts, its answer is lost
    await ufs.rename("a", "b")  # the retry finds no "a" but "b" in place: done
    st.faults.lose_answers = frozenset({st.calls + 1})
    await ufs.delete("gone")
    assert set(st.files) == {"b"}
    assert ufs.retries == 2


async def test_rename_of_a_missing_file_is_not_found_without_retries(name: str) -> None:
    ufs, _, _ = wrap(name)
    with pytest.raises(errors.NotFound):
        await ufs.rename("missing", "b")
    assert ufs.retries == 0
