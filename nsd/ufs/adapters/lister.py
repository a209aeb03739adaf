"""The local adapter's helper process for large listings (the program is `local_scan.py`).

One per local mount, started in the background by the mount's first listing. It is asked for
the rest of each listing larger than a page while it is free; a second listing at the same
time, or one before it has started, goes through the worker threads. It lists and stats on
another CPU while the daemon applies the pages it has sent: a directory of 10,000 files is
discovered in about the time it takes to apply it (docs/architecture.md, "The first listing").

A listing left before its end (a timeout, a failure downstream) kills the helper, as its answer
could be taken for the next one's; the next listing starts a new one, as it does after a helper
died. Whatever goes wrong with the helper costs the listing that met it (UfsUnavailable) and
nothing else: the adapter goes on with its threads.
"""

from __future__ import annotations

import asyncio
import logging
import marshal
import subprocess
import sys
import threading

from nsd.ufs.adapters import local_scan
from nsd.ufs.adapters.local_scan import LENGTH, Entry

log = logging.getLogger(__name__)

_BUFFER = 4 << 20  # what the daemon holds of answers it has not applied yet


class _Helper:
    """The helper process, its pipes on the event loop. Started with `subprocess.Popen`, which
    vforks: ~1 ms however large the daemon. uvloop's own spawn forks, copying the page tables
    with the event loop stopped meanwhile: 40-46 ms at 2 GiB of RSS, more at 20M inodes."""

    def __init__(self, popen: subprocess.Popen[bytes], stdin: asyncio.WriteTransport, stdout: asyncio.StreamReader):
        self.popen = popen
        self.pid = popen.pid
        self.stdin = stdin
        self.stdout = stdout

    @classmethod
    async def start(cls, *args: str) -> _Helper:
        popen = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        loop = asyncio.get_running_loop()
        try:
            stdout = asyncio.StreamReader(limit=_BUFFER)
            await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdout), popen.stdout)
            stdin, _ = await loop.connect_write_pipe(asyncio.Protocol, popen.stdin)
        except BaseException:
            popen.kill()
            popen.wait()
            raise
        return cls(popen, stdin, stdout)

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def kill(self) -> None:
        """Kill it and close its stdin; a thread reaps it."""
        try:
            self.stdin.close()
        except RuntimeError:  # the event loop it was started on has ended: close the pipe itself
            if self.popen.stdin is not None:
                self.popen.stdin.close()
        if self.popen.poll() is None:
            self.popen.kill()
            threading.Thread(target=self.popen.wait, name="nsd-lister-reap", daemon=True).start()

    async def wait(self) -> int:
        return await asyncio.to_thread(self.popen.wait)


class ListerGone(Exception):
    """The helper died or answered nonsense; the listing it was giving cannot go on."""


class OutsideRoot(Exception):
    """The directory asked for leads outside the root (a symlink on its path)."""


class Lister:
    def __init__(self, root: str, tmp_prefix: str) -> None:
        self.root = root
        self.tmp_prefix = tmp_prefix
        self.listings = 0  # asked of it, for tests and curiosity
        self._proc: _Helper | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._starting: asyncio.Task[None] | None = None
        self._busy = False
        self._unavailable = False  # it could not be started: threads only, from then on

    def start(self) -> None:
        """Have it running: started in the background unless it is (or could not be)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop or (self._proc is not None and self._proc.returncode is not None):
            self._drop()  # died, or started on an event loop that has ended since
        if self._proc is None and self._starting is None and not self._unavailable:
            self._loop = loop
            self._starting = loop.create_task(self._start())

    def free(self) -> bool:
        """Whether a listing may be asked of it now."""
        self.start()
        return self._proc is not None and not self._busy

    async def _start(self) -> None:
        try:
            program = (sys.executable, "-I", "-S", local_scan.__file__)
            self._proc = await _Helper.start(*program, self.root, self.tmp_prefix)
        except OSError as e:
            self._unavailable = True
            log.warning("cannot start the listing helper for %s (worker threads list instead): %s", self.root, e)
        finally:
            self._starting = None

    def listing(self, parts: list[str]) -> Listing:
        """Ask for the directory `parts` below the root (only when `free()`); the answer comes
        while the caller does other work."""
        proc = self._proc
        assert proc is not None and not self._busy
        data = marshal.dumps(parts)
        proc.stdin.write(LENGTH.pack(len(data)) + data)
        self._busy = True
        self.listings += 1
        return Listing(self, proc)

    def _done(self, proc: _Helper, complete: bool) -> None:
        self._busy = False
        if not complete and proc is self._proc:
            self._drop()

    def _drop(self) -> None:
        proc, self._proc, self._busy, self._starting = self._proc, None, False, None
        if proc is not None:
            proc.kill()

    async def close(self) -> None:
        """End the helper: its stdin closed, it exits; killed if it has not within 2 s."""
        if self._loop is not asyncio.get_running_loop():
            self._drop()
            return
        if self._starting is not None:
            await asyncio.wait([self._starting])
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 2)
        except TimeoutError:
            proc.kill()
            await proc.wait()


class Listing:
    """One directory's answer, page by page. `close()` it whether or not it was read to its end."""

    def __init__(self, lister: Lister, proc: _Helper) -> None:
        self._lister = lister
        self._proc = proc
        self._complete = False
        self._closed = False

    async def next(self) -> list[Entry] | None:
        """The next page; None at the end. OSError as the listing met it, OutsideRoot, or
        ListerGone if the helper died."""
        out = self._proc.stdout
        assert not self._complete
        try:
            size = LENGTH.unpack(await out.readexactly(LENGTH.size))[0]
            message = marshal.loads(await out.readexactly(size))
        except (asyncio.IncompleteReadError, ValueError, EOFError, TypeError) as e:
            raise ListerGone(f"the listing helper ended: {e!r}") from None
        kind = message[0]
        if kind == "page":
            return message[1]
        self._complete = True
        if kind == "end":
            return None
        if kind == "error":
            raise OSError(message[1], message[2])
        if kind == "denied":
            raise OutsideRoot()
        raise ListerGone(f"the listing helper answered {kind!r}")

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._lister._done(self._proc, self._complete)
