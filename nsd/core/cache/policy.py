"""Read and write types: how a read or a write uses the block cache, per mount or per request.

Read types: CACHE (default) reads through the cache and fills it; CACHE_PROMOTE also keeps what
it reads in the memory tier; NO_CACHE serves cached blocks when they are there but never adds any.

Write types: THROUGH writes the under-storage only; CACHE_THROUGH writes blocks and the UFS
before the reply; MUST_CACHE writes blocks only (the file stays unpersisted until `nsd persist`);
ASYNC_THROUGH writes blocks now and journals a persist request that a background persister
completes, retrying while the UFS is down, also after a restart.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from nsd import errors


class ReadType(enum.Enum):
    CACHE = "CACHE"
    CACHE_PROMOTE = "CACHE_PROMOTE"
    NO_CACHE = "NO_CACHE"


class WriteType(enum.Enum):
    MUST_CACHE = "MUST_CACHE"
    CACHE_THROUGH = "CACHE_THROUGH"
    THROUGH = "THROUGH"
    ASYNC_THROUGH = "ASYNC_THROUGH"

    @property
    def caches(self) -> bool:
        """The content goes into blocks."""
        return self is not WriteType.THROUGH

    @property
    def to_ufs_now(self) -> bool:
        """The UFS has the content before the reply."""
        return self in (WriteType.THROUGH, WriteType.CACHE_THROUGH)


def parse_read_type(value: str) -> ReadType:
    try:
        return ReadType(value.strip().upper())
    except ValueError:
        choices = ", ".join(t.value for t in ReadType)
        raise errors.Invalid(f"read_type must be one of {choices}, not {value!r}") from None


def parse_write_type(value: str) -> WriteType:
    try:
        return WriteType(value.strip().upper())
    except ValueError:
        choices = ", ".join(t.value for t in WriteType)
        raise errors.Invalid(f"write_type must be one of {choices}, not {value!r}") from None


def mount_types(options: Mapping[str, str], read: ReadType, write: WriteType) -> tuple[ReadType, WriteType]:
    """The mount's read and write types: its `read_type=`/`write_type=` options, else the defaults."""
    if "read_type" in options:
        read = parse_read_type(options["read_type"])
    if "write_type" in options:
        write = parse_write_type(options["write_type"])
    return read, write
