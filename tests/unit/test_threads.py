"""Workers: blocking calls in threads for the event loop (journal writes, local under-storage)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from nsd.threads import Workers


async def test_results_and_errors_come_back_to_the_caller() -> None:
    pool = Workers("t", 2)
    assert await pool.run(sum, [1, 2, 3]) == 6
    with pytest.raises(ZeroDivisionError):
        await pool.run(lambda: 1 // 0)
    assert await pool.run(threading.current_thread) is not threading.current_thread()
    pool.close()


async def test_a_pool_of_one_runs_calls_in_order() -> None:
    pool, seen = Workers("t", 1), []

    def note(i: int) -> None:
        time.sleep(0.001 * (i % 3))
        seen.append(i)

    await asyncio.gather(*(pool.run(note, i) for i in range(30)))
    assert seen == list(range(30))
    pool.close()


async def test_threads_start_on_demand_up_to_the_size() -> None:
    pool, lock = Workers("t", 3), threading.Lock()
    running = peak = 0

    def busy() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.02)
        with lock:
            running -= 1

    await pool.run(busy)
    assert len(pool._threads) == 1  # one call at a time needs one thread
    await asyncio.gather(*(pool.run(busy) for _ in range(12)))
    assert peak == 3 and len(pool._threads) == 3
    pool.close()


async def test_a_cancelled_wait_leaves_the_call_running_and_the_pool_usable() -> None:
    pool, done = Workers("t", 1), threading.Event()

    def slow() -> None:
        time.sleep(0.05)
        done.set()

    waiter = pool.run(slow)
    waiter.cancel()
    assert await pool.run(lambda: "next") == "next"  # queued behind the cancelled one
    assert done.is_set()
    pool.close()


def test_one_pool_serves_successive_event_loops_and_closing_lets_its_threads_go() -> None:
    pool = Workers("t", 2)
    assert asyncio.run(_call(pool, 1)) == 1
    assert asyncio.run(_call(pool, 2)) == 2
    threads = list(pool._threads)
    pool.close()
    for thread in threads:
        thread.join(5)
    assert not any(t.is_alive() for t in threads) and pool._threads == []
    assert asyncio.run(_call(pool, 3)) == 3  # a call after close starts a thread again
    pool.close()


async def test_idle_threads_end_and_the_pool_still_answers() -> None:
    pool = Workers("t", 4, idle_exit=0.05)
    await asyncio.gather(*(pool.run(time.sleep, 0.02) for _ in range(4)))
    started = list(pool._threads)
    assert len(started) == 4
    for _ in range(100):
        if not pool._threads:
            break
        await asyncio.sleep(0.02)
    for t in started:
        t.join(1)
    assert pool._threads == [] and not any(t.is_alive() for t in started)
    assert await asyncio.gather(*(pool.run(lambda i=i: i) for i in range(8))) == list(range(8))
    pool.close()


async def _call(pool: Workers, v: int) -> int:
    return await pool.run(lambda: v)


async def test_a_pool_whose_threads_ended_idle_answers_the_next_call() -> None:
    """Back-to-back calls (each made as the last one's answer arrives, while its thread is still
    finishing) then a pause longer than `idle_exit`: the thread ends, and the next call must
    start one. A pool that counted a thread as idle once too often kept the count after the
    thread ended and left that call waiting forever (the journal's pool of one did, under load)."""
    for size in (1, 2):
        pool = Workers("t", size, idle_exit=0.05)
        for _ in range(3):
            for i in range(300):
                assert await pool.run(lambda i=i: i) == i
            for _ in range(100):
                if not pool._threads:
                    break
                await asyncio.sleep(0.01)
            assert pool._threads == []
            assert await asyncio.wait_for(pool.run(lambda: "after"), 2) == "after"
        pool.close()
