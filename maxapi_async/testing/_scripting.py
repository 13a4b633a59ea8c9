"""The control methods a test calls on :class:`FakeMaxAPI`: scripts, recorded requests, waits.

:class:`Scripting` is the part of :class:`FakeMaxAPI` a test talks to while the servers run:
queue faults (:meth:`~Scripting.add_fault`, :meth:`~Scripting.fail_next`), fail queued tasks
(:meth:`~Scripting.fail_tasks`), block Gemini answers (:meth:`~Scripting.block_next`), read
and forget recorded requests, and wait for requests to arrive
(:meth:`~Scripting.wait_for_requests`, :meth:`~Scripting.wait_for_requests_blocking`).
Every method is safe to call from the test's thread while the fake runs in its own
(:meth:`FakeMaxAPI.start_in_thread`): the scripts take locks, the waits are woken across
threads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ._faults import Fault, FaultScript
from ._gemini_routes import GeminiRoutes
from ._recording import Origin, RecordedRequest
from ._task_queue import TaskQueue
from ._waiting import RequestWaiters

__all__ = ["Scripting"]

#: How long :meth:`Scripting.wait_for_requests` waits unless told otherwise, in seconds.
DEFAULT_WAIT = 10.0


class Scripting:
    """Scripts, recorded requests and waits (the fake's parts are set by :class:`FakeMaxAPI`)."""

    requests: list[RecordedRequest]
    cdn_requests: list[RecordedRequest]
    _faults: FaultScript
    _queue: TaskQueue
    _gemini: GeminiRoutes
    _waiters: RequestWaiters

    def _on_server_thread(self) -> bool:
        raise NotImplementedError

    # ------------------------------------------------------------------ scripts

    def add_fault(self, fault: Fault) -> Fault:
        """Queue a :class:`Fault`; faults are tried in the order they were added."""
        self._faults.add(fault)
        return fault

    def fail_next(
        self,
        status: int,
        body: bytes | str | Mapping[str, Any] | list[Any] | None = None,
        headers: Mapping[str, str] | None = None,
        times: int | None = 1,
        path: str | None = None,
        *,
        match: Callable[[RecordedRequest], bool] | None = None,
    ) -> Fault:
        """Answer the next ``times`` API requests (under ``path``, and for which ``match`` is
        true, if given) with ``status``. ``body=None`` gives an error body in the route's style.
        """
        fault = Fault(
            status=status, body=body, headers=dict(headers or {}), times=times, path=path, match=match
        )
        return self.add_fault(fault)

    def pending_faults(self) -> list[Fault]:
        """The faults queued and not used up yet, in order."""
        return self._faults.pending()

    def clear_faults(self) -> None:
        """Drop every pending fault, task failure and block."""
        self._faults.clear()
        self._queue.clear_failures()
        self._gemini.clear_blocks()

    def clear(self) -> None:
        """Forget recorded requests and pending scripts (assets and tasks are kept)."""
        self.requests.clear()
        self.cdn_requests.clear()
        self.clear_faults()

    def fail_tasks(
        self, reason: str = "CONTENT_MODERATION", message: str | None = None, *, times: int = 1
    ) -> None:
        """Make the next ``times`` queued tasks (either API family) end as failed.

        ``message`` defaults to a sentence describing ``reason``.
        """
        self._queue.script_failures(reason, message, times)

    def block_next(
        self, reason: str = "IMAGE_SAFETY", *, prompt_feedback: bool = False, times: int = 1
    ) -> None:
        """Make the next ``times`` Gemini-native answers blocked (HTTP 200, no image).

        By default the candidate comes back without an image and ``finishReason=reason``;
        with ``prompt_feedback=True`` there are no candidates and
        ``promptFeedback.blockReason=reason`` (use e.g. ``"SAFETY"``).
        """
        self._gemini.script_blocks(reason, prompt_feedback, times)

    # ------------------------------------------------------------------ recorded requests

    def requests_to(self, path_prefix: str) -> list[RecordedRequest]:
        """The recorded API requests whose path starts with ``path_prefix``."""
        return [r for r in self.requests if r.path.startswith(path_prefix)]

    def _matching(
        self, origin: Origin, path: str | None, match: Callable[[RecordedRequest], bool] | None
    ) -> list[RecordedRequest]:
        log = self.requests if origin == "api" else self.cdn_requests
        return [
            r for r in list(log) if (path is None or r.path.startswith(path)) and (match is None or match(r))
        ]

    def _request_wait(
        self,
        n: int,
        origin: Origin,
        path: str | None,
        match: Callable[[RecordedRequest], bool] | None,
        timeout: float,
    ) -> tuple[Callable[[], list[RecordedRequest] | None], Callable[[], str]]:
        if n < 0:
            raise ValueError("wait_for_requests: n must be >= 0")

        def check() -> list[RecordedRequest] | None:
            found = self._matching(origin, path, match)
            return found if len(found) >= n else None

        def describe() -> str:
            where = f" to {path}" if path else ""
            got = len(self._matching(origin, path, match))
            return f"{got} of the {n} {origin} requests{where} awaited arrived within {timeout:g} s"

        return check, describe

    async def wait_for_requests(
        self,
        n: int = 1,
        *,
        path: str | None = None,
        match: Callable[[RecordedRequest], bool] | None = None,
        origin: Origin = "api",
        timeout: float = DEFAULT_WAIT,
    ) -> list[RecordedRequest]:
        """Wait until at least ``n`` requests (to ``origin``, under ``path``, for which ``match``
        is true) have been recorded, and return all such requests so far.

        Works on any asyncio event loop: the fake's own, or the test's while the fake runs in
        a thread. Raises :class:`TimeoutError` after ``timeout`` seconds (default 10).
        """
        check, describe = self._request_wait(n, origin, path, match, timeout)
        return await self._waiters.wait(check, timeout, describe)

    def wait_for_requests_blocking(
        self,
        n: int = 1,
        *,
        path: str | None = None,
        match: Callable[[RecordedRequest], bool] | None = None,
        origin: Origin = "api",
        timeout: float = DEFAULT_WAIT,
    ) -> list[RecordedRequest]:
        """:meth:`wait_for_requests` for a thread without an event loop (a plain ``def`` test).

        The fake must run on another thread (:meth:`FakeMaxAPI.start_in_thread`, the
        ``fake_maxapi`` fixture): blocking the fake's own loop would stop it answering, so
        that raises :class:`RuntimeError`.
        """
        if self._on_server_thread():
            raise RuntimeError(
                "wait_for_requests_blocking() would block the fake's own event loop: "
                "use 'await fake.wait_for_requests()' there"
            )
        check, describe = self._request_wait(n, origin, path, match, timeout)
        return self._waiters.wait_blocking(check, timeout, describe)
