"""WebHDFS query parameters: names case-insensitive, values parsed as Hadoop's Param classes do.

Hadoop's ParamFilter lower-cases parameter names; booleans parse case-insensitively (HdfsCLI
sends "True"); unknown parameters are ignored (fsspec leaks its keyword arguments into the
query). A malformed value is a 400 IllegalArgumentException worded as Hadoop words it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from nsd import errors

PERMISSION_RE = re.compile(r"^[0-1]?[0-7]{3}$")
FSACTION_RE = re.compile(r"^[r-][w-][x-]$")
LONG_MAX = (1 << 63) - 1


class BadParam(errors.Invalid):
    """A parameter value Hadoop would refuse (IllegalArgumentException, 400)."""


def _bad(name: str, value: str, why: str = "") -> BadParam:
    detail = f" ({why})" if why else ""
    return BadParam(f'Invalid value for webhdfs parameter "{name}": {value}{detail}')


class Params:
    """The query of one request. The first value of a repeated name wins, except for getall()."""

    def __init__(self, items: Iterable[tuple[str, str]]) -> None:
        self._all: dict[str, list[str]] = {}
        for k, v in items:
            self._all.setdefault(k.lower(), []).append(v)

    def __contains__(self, name: str) -> bool:
        return name in self._all

    def get(self, name: str, default: str | None = None) -> str | None:
        values = self._all.get(name)
        return values[0] if values else default

    def getall(self, name: str) -> list[str]:
        return list(self._all.get(name, ()))

    def flag(self, name: str, default: bool) -> bool:
        raw = self.get(name)
        if raw is None or raw == "":
            return default
        text = raw.lower()
        if text == "true":
            return True
        if text == "false":
            return False
        raise _bad(name, raw, "expected true or false")

    def long(self, name: str, default: int | None = None, *, minimum: int | None = None) -> int | None:
        raw = self.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw, 10)
        except ValueError:
            raise _bad(name, raw, "not a number") from None
        if not -LONG_MAX - 1 <= value <= LONG_MAX:
            raise _bad(name, raw, "out of range")
        if minimum is not None and value < minimum:
            raise _bad(name, raw, f"must be at least {minimum}")
        return value

    def required_long(self, name: str, *, minimum: int | None = None) -> int:
        value = self.long(name, minimum=minimum)
        if value is None:
            raise BadParam(f'Missing required webhdfs parameter "{name}"')
        return value

    def permission(self, name: str = "permission", default: int | None = None) -> int | None:
        """An octal permission string such as 644 or 1777."""
        raw = self.get(name)
        if raw is None or raw == "":
            return default
        if not PERMISSION_RE.match(raw):
            raise _bad(name, raw, "expected an octal permission such as 755")
        return int(raw, 8)

    def path(self, name: str, *, required: bool = True) -> str | None:
        """An absolute path parameter (destination, ...)."""
        raw = self.get(name)
        if raw is None or raw == "":
            if required:
                raise BadParam(f'Missing required webhdfs parameter "{name}"')
            return None
        if not raw.startswith("/"):
            raise _bad(name, raw, "not an absolute path")
        return raw

    def fsaction(self, name: str = "fsaction") -> str:
        raw = self.get(name)
        if raw is None or not FSACTION_RE.match(raw):
            raise _bad(name, str(raw), "expected an action such as r-x")
        return raw

    def choice(self, name: str, allowed: Iterable[str], default: str | None = None) -> str | None:
        raw = self.get(name)
        if raw is None or raw == "":
            return default
        upper = raw.upper()
        if upper not in set(allowed):
            raise _bad(name, raw)
        return upper
