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
        # Under the lock: the threads, how many wait for a call, how many calls none has taken.
        # A call starts a thread when the queued calls outnumber the waiting threads; a thread
        # ends only when they do not (so no call is ever left without a thread to take it).
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._waiting = 0
        self._queued = 0
        self._started = 0

    def run(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """`fn(*args)` in a worker thread; await the result. Cancelling the wait does not stop the call."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._lock:
            self._queued += 1
            self._calls.put((loop, future, fn, args))
            if self._queued > self._waiting and len(self._threads) < self.size:
                t = threading.Thread(target=self._work, name=f"{self.name}-{self._started}", daemon=True)
                self._threads.append(t)
                self._started += 1
                t.start()
        return future

    def close(self) -> None:
        """Let the threads end once the calls queued so far are done (daemon threads: a call that
        never returns does not hold the process). A call after this starts a thread again."""
        with self._lock:
            for _ in self._threads:
                self._calls.put(None)

    def _work(self) -> None:
        calls, lock = self._calls, self._lock
        while True:
            with lock:
                self._waiting += 1
            try:
                call = calls.get(timeout=self.idle_exit)
            except Empty:
                call = None  # idle long enough: end, as when closed
            with lock:
                self._waiting -= 1
                if call is not None:
                    self._queued -= 1
                elif self._queued > self._waiting:
                    continue  # calls the other waiting threads cannot all take: stay for one
                else:
                    self._threads.remove(threading.current_thread())
                    return
            loop, future, fn, args = call
            try:
                settle_soon(loop, future, fn(*args), None)
            except BaseException as e:
                settle_soon(loop, future, None, e)
            del call, future, fn, args  # no references kept while waiting for the next call


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
