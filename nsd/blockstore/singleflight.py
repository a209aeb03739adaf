"""Single flight: concurrent callers asking for the same key share one load."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")


class SingleFlight:
    """`run(key, loader)`: the first caller of a key runs `loader`; callers arriving while it runs
    wait for the same result (or the same exception). Once it finishes the key is forgotten, so a
    later call loads again: this coalesces, it does not cache.

    A waiter that is cancelled does not cancel the load; the load is cancelled only when its first
    caller is (then the waiters get CancelledError too, and the next call starts afresh).
    """

    def __init__(self) -> None:
        self._flights: dict[Hashable, asyncio.Future[Any]] = {}

    def __len__(self) -> int:
        return len(self._flights)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._flights

    async def run(self, key: Hashable, loader: Callable[[], Awaitable[T]]) -> T:
        flight = self._flights.get(key)
        if flight is not None:
            result: T = await asyncio.shield(flight)
            return result
        flight = asyncio.get_running_loop().create_future()
        self._flights[key] = flight
        try:
            value = await loader()
        except BaseException as e:
            if isinstance(e, asyncio.CancelledError):
                flight.cancel()
            else:
                flight.set_exception(e)
                flight.exception()  # waiters may be none; mark it retrieved so asyncio does not warn
            raise
        else:
            flight.set_result(value)
            return value
        finally:
            del self._flights[key]
