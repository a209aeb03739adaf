"""Giving the C allocator's free memory back to the system after a big, short-lived allocation.

A checkpoint is read (and written) in a worker thread: its bytes, hundreds of MB for millions of
inodes, come from that thread's malloc arena, and glibc keeps an arena's freed memory for later
use by that thread instead of returning it. So after a load the daemon's RSS stayed ~45 bytes an
inode above what the namespace holds (3M inodes, same run: 224 -> 179 bytes/inode after a trim).
`malloc_trim(0)` returns free pages of every arena. Elsewhere than glibc it is skipped.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):
        return None


_TRIM = _malloc_trim()


def release_free_memory() -> bool:
    """Return free heap memory to the system; False where the C library cannot (not glibc).
    Cost: a walk of the allocator's free lists (0.03 ms right after a 3M-inode load)."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True
