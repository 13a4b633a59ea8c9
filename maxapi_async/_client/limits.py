"""What bounds a call and a poll: a call's :class:`Deadline`, the client-wide poll budget.

:class:`PollGate` is the client's own budget (``max_polls_per_second`` across every task
handle); a :class:`PollLimiter` (``AsyncMaxAPI(poll_limiter=...)``) replaces it, for example
with one budget shared between processes through Redis.
"""

from __future__ import annotations

import asyncio
import collections
import math
import time
from collections.abc import Awaitable
from typing import Protocol, TypeVar, runtime_checkable

from .._protocol.errors import APITimeoutError, MaxAPIError
from .._protocol.policy import TokenBucket
from .._transport.timeouts import Timeouts

__all__ = ["Deadline", "PollGate", "PollLimiter"]

R = TypeVar("R")


class Deadline:
    """A call's whole-call timeout and what is left of it.

    ``seconds`` is the limit as given: ``None`` when neither the call nor the client set one
    (a queued wait then falls back to the client's ``task_timeout``), ``math.inf`` for no limit.
    ``limits`` are the call's own connect and read limits (a per-call :class:`Timeouts`), or
    ``None`` for the client's.
    """

    __slots__ = ("_end", "limits", "seconds")

    def __init__(self, seconds: float | None, limits: Timeouts | None = None) -> None:
        self.seconds = seconds
        self.limits = limits
        self._end = None if seconds is None or seconds == math.inf else time.monotonic() + seconds

    def remaining(self) -> float | None:
        """Seconds left (negative once passed); ``None``: no limit."""
        if self._end is None:
            return None
        return self._end - time.monotonic()

    def left(self, method: str, path: str) -> float | None:
        """:meth:`remaining`, or :class:`APITimeoutError` when nothing is left before an attempt."""
        remaining = self.remaining()
        if remaining is not None and remaining <= 0:
            # Every earlier attempt failed in a known way, so nothing is in flight.
            raise APITimeoutError(f"{method} {path}: the call's deadline passed", sent=False)
        return remaining

    async def run(self, work: Awaitable[R], what: str) -> R:
        """Await ``work`` (a call's local inputs: files, pipes, assets) within the deadline.

        Work still running at the deadline is abandoned: :class:`APITimeoutError`, nothing sent.
        """
        remaining = self.remaining()
        if remaining is None:
            return await work
        import anyio

        try:
            with anyio.fail_after(max(remaining, 0)):
                return await work
        except TimeoutError as exc:
            if isinstance(exc, MaxAPIError):  # a download's own deadline: already said
                raise
            raise APITimeoutError(
                f"{what} took longer than its timeout of {self.seconds:g} s; nothing was sent",
                sent=False,
            ) from None


class PollGate:
    """The client-wide poll budget: at most ``rate`` polls in any one second, across all handles.

    Two rules, both aiming :attr:`HEADROOM` under ``rate`` so that the service,
    counting arrivals on its own clock, never sees more than ``rate`` either:

    * slots are booked ``1 / rate`` apart, a token bucket with a burst of one
      (a burst of ``rate`` would let an idle client send ``rate`` polls at
      once, then ``rate`` more within the same second);
    * a booked slot is only a time to wake up, and a busy event loop wakes
      sleepers late and together, so the departure times of the last polls are
      kept too: a poll waits while the past second already holds its share.
    """

    HEADROOM = 0.99

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.bucket = TokenBucket(rate=rate * self.HEADROOM)
        self._per_second = max(1, math.floor(rate * self.HEADROOM))
        self._sent: collections.deque[float] = collections.deque(maxlen=self._per_second)

    async def wait(self) -> None:
        """Wait for this poll's slot (booked at once, so concurrent pollers queue fairly)."""
        loop = asyncio.get_running_loop()
        delay = self.bucket.reserve(loop.time())
        if delay > 0:
            await asyncio.sleep(delay)
        sent = self._sent
        while len(sent) == self._per_second:
            ahead = sent[0] + 1.0 - loop.time()
            if ahead <= 0:
                break
            await asyncio.sleep(ahead)
        sent.append(loop.time())


@runtime_checkable
class PollLimiter(Protocol):
    """Where a client's polls wait for their turn, when it is not the client's own gate.

    ``AsyncMaxAPI(poll_limiter=...)`` hands every poll of every task handle to
    :meth:`wait`, with the client's ``max_polls_per_second``; the poll is sent when it
    returns. :class:`~maxapi_async.RedisPollLimiter` shares one budget between the
    clients of many processes through Redis. A limiter's errors end the wait of the
    handle that polled (make them :class:`MaxAPIError` subclasses).
    """

    async def wait(self, rate: float) -> None:
        """Return when one more poll fits in ``rate`` polls per second."""
        ...
