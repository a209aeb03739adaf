"""Worker threads for the blocking calls of the hot paths (journal writes, local under-storage).

`asyncio.to_thread` and `run_in_executor` wrap each call in a concurrent.futures Future, chain
it to an asyncio one and copy the context: ~40 us of the event loop's CPU per call on a 2-core
VM, on top of the two thread wake-ups every hand-off needs (measured: 105 us of CPU per call
against 65 here). A CREATE+REMOVE pair makes five such calls. `Workers` hands the call to its
thread through a SimpleQueue and the thread settles an asyncio future with
`call_soon_threadsafe`: nothing else.

Threads start on demand, up to `size`, and end after `idle_exit` seconds without a call (daemon
threads); a pool of one runs its calls in order. Calls see no context variables (nothing on these
paths reads any).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from queue import Empty, SimpleQueue
from typing import Any, TypeVar

T = TypeVar("T")

_Call = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...]]


class Workers:
    def __init__(self, name: str, size: int, *, idle_exit: float = 60.0) -> None:
        self.name = name
        self.size = size
        self.idle_exit = idle_exit
        self._calls: SimpleQueue[_Call | None] = SimpleQueue()
        self._idle = threading.Semaphore(0)  # released by a thread about to wait for a call
        self._threads: list[threading.Thread] = []
        self._started = 0
        self._lock = threading.Lock()

    def run(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """`fn(*args)` in a worker thread; await the result. Cancelling the wait does not stop the call."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if not self._idle.acquire(blocking=False):
            self._start_one()
        self._calls.put((loop, future, fn, args))
        return future

    def close(self) -> None:
        """Let the threads end once the calls queued so far are done (daemon threads: a call that
        never returns does not hold the process). A call after this starts a thread again."""
        with self._lock:
            for _ in self._threads:
                self._calls.put(None)

    def _start_one(self) -> None:
        with self._lock:
            if len(self._threads) >= self.size:
                return  # the call waits for the next free thread
            t = threading.Thread(target=self._work, name=f"{self.name}-{self._started}", daemon=True)
            self._threads.append(t)
            self._started += 1
        t.start()

    def _work(self) -> None:
        calls = self._calls
        while True:
            try:
                call = calls.get(timeout=self.idle_exit)
            except Empty:
                call = None  # idle long enough: end, as when closed
            if call is None:
                # End, unless a caller has just counted on an idle thread (its call is on the
                # way): idle threads are interchangeable, so any one's count will do.
                if not self._idle.acquire(blocking=False):
                    continue
                with self._lock:
                    self._threads.remove(threading.current_thread())
                return
            loop, future, fn, args = call
            try:
                settle_soon(loop, future, fn(*args), None)
            except BaseException as e:
                settle_soon(loop, future, None, e)
            del call, future, fn, args  # no references kept while waiting for the next call
            self._idle.release()


def settle_soon(loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], result: Any, error: Any) -> None:
    """From any thread: give `future` (of `loop`) its result, or `error`, unless it is done by then."""
    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
        loop.call_soon_threadsafe(_settle, future, result, error)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the waiter was cancelled
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
