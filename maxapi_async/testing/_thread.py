"""An asyncio event loop of its own in a daemon thread, for a fake that must not share the test's loop.

:class:`LoopThread` starts a thread running a fresh event loop, runs coroutines there from
any other thread (:meth:`LoopThread.run`, blocking until they finish) and stops it, closing
the loop cleanly (pending callbacks, async generators, the default executor).
:meth:`FakeMaxAPI.start_in_thread` serves the fake from one, so the fake answers whatever the
test's thread does: a pytest-asyncio or anyio test on another loop, a plain ``def`` test, a
blocking client.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

__all__ = ["LoopThread"]

T = TypeVar("T")

#: The longest a start or a stop may take before the caller gives up on it.
_LIFECYCLE_TIMEOUT: Final = 30.0


class LoopThread:
    """A daemon thread running an asyncio event loop until :meth:`stop`."""

    def __init__(self, name: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._started = threading.Event()
        self._thread.start()
        self._started.wait(_LIFECYCLE_TIMEOUT)

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.call_soon(self._started.set)
        try:
            self._loop.run_forever()
        finally:
            try:
                pending = asyncio.all_tasks(self._loop)
                for task in pending:
                    task.cancel()
                if pending:
                    self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                self._loop.run_until_complete(self._loop.shutdown_asyncgens())
                self._loop.run_until_complete(self._loop.shutdown_default_executor())
            finally:
                asyncio.set_event_loop(None)
                self._loop.close()

    def run(self, make: Callable[[], Awaitable[T]], timeout: float = _LIFECYCLE_TIMEOUT) -> T:
        """Run ``make()`` on the thread's loop and wait for its result (from another thread)."""

        async def call() -> T:
            return await make()

        future = asyncio.run_coroutine_threadsafe(call(), self._loop)
        return future.result(timeout)

    def stop(self) -> None:
        """Stop the loop, close it, and wait for the thread to end (idempotent)."""
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(_LIFECYCLE_TIMEOUT)
