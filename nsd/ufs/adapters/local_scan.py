"""Listing a local directory: the scan both listing paths share, and the helper program that
runs it in a process of its own.

A listing of 10,000 files is 10,000 lstats and as many small objects: ~25 ms of Python in a
worker thread, during which the event loop, which needs the same interpreter lock, waits. The
helper process (this file run as a program, `python -I -S local_scan.py ROOT TMP_PREFIX`) does
that work on another CPU while the daemon applies the pages it has already sent, so a large
directory's first listing costs the daemon little more than applying it (`lister.Lister`).

Standard library only, so the helper starts in ~15 ms with no packages (-S). Both paths leave
out the same entries: the adapter's temporary files, symlinks that lead outside the root (see
`local.py`), and entries deleted while listing.

The helper's protocol, over its stdin and stdout: each message is a 4-byte big-endian length
and a `marshal` dump (parent and helper are the same interpreter). A request is the list of a
directory's path components below the root. Its answer is ("page", [entry, ...]) messages, then
("end",); or, at any point, ("error", errno, strerror) or ("denied",) (the path leads outside
the root), which end it too. The helper exits when its stdin ends.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import stat
import struct
import sys
from collections.abc import Iterator
from typing import Any

PAGE = 1024  # entries per page, in both paths
LENGTH = struct.Struct(">I")
PIPE_SIZE = 1 << 20  # the most an unprivileged process may ask (fs.pipe-max-size)

# An entry as UfsStatus takes its fields: name, is_dir, size (0 for a directory), mtime_ns,
# etag (None), permission bits.
Entry = tuple[str, bool, int, int, None, int]


def inside(root: str, real: str) -> bool:
    return real == root or real.startswith(root.rstrip("/") + "/")


def stays_beneath(root: str, parts: list[str]) -> bool:
    """Whether `root`/`parts` (plain names), symlinks resolved, is `root` or inside it: what
    realpath answers, for an lstat per component below the root only (the root was resolved
    when the store was opened; realpath would lstat each of its ancestors on every call).
    Components from the first missing one on are plain names, as realpath takes them."""
    at = root
    for part in parts:
        step = f"{at}/{part}" if at != "/" else f"/{part}"
        try:
            mode = os.lstat(step).st_mode
        except OSError:
            return True
        if stat.S_ISLNK(mode):
            step = os.path.realpath(step)
            if not inside(root, step):
                return False
        at = step
    return True


def scan(it: Iterator[os.DirEntry[str]], root: str, tmp_prefix: str, limit: int = PAGE) -> list[Entry]:
    """The next `limit` entries of `it` (fewer only at its end)."""
    page: list[Entry] = []
    for entry in it:
        name = entry.name
        if name.startswith(tmp_prefix):
            continue
        if entry.is_symlink() and not inside(root, os.path.realpath(entry.path)):
            continue  # leads outside the mount: never shown, never followed
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue  # deleted while listing
        mode = st.st_mode
        is_dir = mode & 0o170000 == 0o040000
        page.append((name, is_dir, 0 if is_dir else st.st_size, st.st_mtime_ns, None, mode & 0o7777))
        if len(page) >= limit:
            break
    return page


def answer(root: str, tmp_prefix: str, parts: list[str]) -> Iterator[tuple[Any, ...]]:
    """The messages that answer a request for the directory `parts` below `root`."""
    if not stays_beneath(root, parts):
        yield ("denied",)
        return
    try:
        with os.scandir(os.path.join(root, *parts)) as it:
            while page := scan(it, root, tmp_prefix):
                yield ("page", page)
    except OSError as e:
        yield ("error", e.errno, e.strerror)
        return
    yield ("end",)


def serve(root: str, tmp_prefix: str) -> None:
    """Answer requests from stdin on stdout until stdin ends."""
    requests, out = sys.stdin.buffer, sys.stdout.buffer
    with contextlib.suppress(OSError, AttributeError):  # a larger pipe: the daemon reads pages as it can
        import fcntl

        fcntl.fcntl(out.fileno(), fcntl.F_SETPIPE_SZ, PIPE_SIZE)
    while len(head := requests.read(LENGTH.size)) == LENGTH.size:
        parts = marshal.loads(requests.read(LENGTH.unpack(head)[0]))
        for message in answer(root, tmp_prefix, parts):
            data = marshal.dumps(message)
            out.write(LENGTH.pack(len(data)) + data)
            out.flush()  # each page as soon as it is made


if __name__ == "__main__":
    try:
        serve(sys.argv[1], sys.argv[2])
    except (BrokenPipeError, KeyboardInterrupt):  # the daemon went away, or is going
        os._exit(0)  # nothing left to flush to a closed pipe
