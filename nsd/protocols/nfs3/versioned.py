"""Answers built from the namespace, kept while nothing in it changes.

The namespace's version (`Vfs.version`) moves with every change to the tree or to any inode's
attributes, journaled or not (an unstable write's new size). A reply built at one version is
therefore exactly the reply the same call would build again while the version stays, and can be
sent as it is. Two caches use this: the READDIR(PLUS) pages (`readdir`) and the whole replies of
GETATTR, LOOKUP and ACCESS (`procs_meta`).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class VersionedCache(Generic[K, V]):
    """Answers by key, kept only while the namespace's version is the one they were built at.
    Any change empties it (on the next `get`: no bookkeeping per change). At most `size` bytes of
    answers as `put` counts them (a READDIR page may be 1 MiB: counting answers would not bound
    the memory), all forgotten at once when full.

    The caller reads the version before it builds an answer, and puts the answer only if the
    version is still that one afterwards (a build that waited may have seen a change)."""

    __slots__ = ("_answers", "_bytes", "_size", "_version", "hits")

    def __init__(self, size: int) -> None:
        self._answers: dict[K, V] = {}
        self._bytes = 0
        self._size = size
        self._version = 0
        self.hits = 0

    def get(self, version: int, key: K) -> V | None:
        """The answer for `key` if it was built at `version`, the namespace's now."""
        if version != self._version:
            self._answers.clear()
            self._bytes = 0
            self._version = version
            return None
        answer = self._answers.get(key)
        if answer is not None:
            self.hits += 1
        return answer

    def has(self, version: int, key: K) -> bool:
        """Whether `get` would find the answer (not counted as a hit)."""
        return version == self._version and key in self._answers

    def put(self, version: int, key: K, answer: V, size: int) -> None:
        """Keep `answer` (`size` bytes), built at `version`, which the caller checked is still
        the namespace's."""
        if version != self._version or size > self._size:
            return
        if self._bytes + size > self._size:
            self._answers.clear()
            self._bytes = 0
        self._answers[key] = answer
        self._bytes += size
