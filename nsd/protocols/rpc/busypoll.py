"""Busy polling: after NFS traffic, keep the event loop awake for a moment instead of sleeping.

A client that makes one call at a time (`ls -l`, `stat` loops, a build, a Python program)
sends its next call a few microseconds after our reply. If the loop has gone to sleep in
epoll_wait by then, its CPU has gone idle, and waking an idle CPU (an interrupt, and on a VM
an exit to the hypervisor) took about 40 us of a 65 us round trip on the machine tools/bench/
nfs.py runs on. So after each burst of traffic the loop keeps turning for `window` seconds:
each turn is a call_soon, so the loop polls its sockets without blocking, and a call arriving
meanwhile is read at once. With a 100 us window, GETATTR at one outstanding call went from
about 15k to 24k calls/s (docs/architecture.md, NFS performance).

Cost: at most one window of CPU per burst of traffic (measured: `idle_seconds`), none while no
client calls. Timers, other sockets and worker threads go on as usual: each turn releases the
GIL in its non-blocking poll.
"""

from __future__ import annotations

import asyncio
import time


class BusyPoller:
    def __init__(self, window: float) -> None:
        self.window = window
        self.idle_seconds = 0.0  # time spent polling with nothing arriving (what it costs)
        self._last = 0.0  # perf_counter of the latest traffic
        self._running = False

    def traffic(self) -> None:
        """Called after the loop handled a connection's data or replies."""
        self._last = time.perf_counter()
        if not self._running:
            self._running = True
            asyncio.get_running_loop().call_soon(self._turn)

    def _turn(self) -> None:
        now = time.perf_counter()
        if now - self._last < self.window:
            asyncio.get_running_loop().call_soon(self._turn)
            return
        self._running = False
        self.idle_seconds += now - self._last
