"""Waiting for requests to reach the fake, without sleeps: from a coroutine or from a thread.

:class:`RequestWaiters` is told each time the fake records a request (:meth:`notify`). A
coroutine waits with :meth:`RequestWaiters.wait` on any asyncio event loop, the fake's own or
another thread's (the fake wakes it with ``call_soon_threadsafe``); a thread waits with
:meth:`RequestWaiters.wait_blocking`. Each wait re-checks its condition on its own side, so a
test's predicate never runs inside the fake's request handling.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["RequestWaiters"]

T = TypeVar("T")


class RequestWaiters:
    """Who waits for the fake's recorded requests, and how to wake them."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._wakers: set[Callable[[], None]] = set()

    def notify(self) -> None:
        """A request was recorded (or the fake closed): every waiter checks again."""
        with self._condition:
            self._condition.notify_all()
            wakers = list(self._wakers)
        for wake in wakers:
            wake()

    async def wait(self, check: Callable[[], T | None], timeout: float, describe: Callable[[], str]) -> T:
        """Wait on the running asyncio loop until ``check()`` returns something other than ``None``.

        Raises :class:`TimeoutError` (with ``describe()``) after ``timeout`` seconds.
        """
        loop = asyncio.get_running_loop()
        event = asyncio.Event()

        def wake() -> None:
            with contextlib.suppress(RuntimeError):  # that loop has closed: nobody to wake
                loop.call_soon_threadsafe(event.set)

        with self._condition:
            self._wakers.add(wake)
        try:
            deadline = loop.time() + timeout
            while True:
                event.clear()  # before checking: a request recorded after the check sets it again
                found = check()
                if found is not None:
                    return found
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise TimeoutError(describe())
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(event.wait(), remaining)
        finally:
            with self._condition:
                self._wakers.discard(wake)

    def wait_blocking(self, check: Callable[[], T | None], timeout: float, describe: Callable[[], str]) -> T:
        """Block this thread until ``check()`` returns something other than ``None``.

        Raises :class:`TimeoutError` (with ``describe()``) after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        with self._condition:
            while True:
                found = check()
                if found is not None:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(describe())
                self._condition.wait(remaining)
