"""Task handles: an awaitable view of one queued task, and the poll loop behind it.

A :class:`TaskHandle` wraps the pure :class:`~maxapi_async._protocol.tasks.TaskMachine`
and asks the pure :class:`~maxapi_async._protocol.policy.PollPolicy` for the delay before
each poll; the client's core polls within the poll budget all handles share
(:meth:`Core.poll <maxapi_async._client.core.Core.poll>`). The loop itself only sleeps,
polls and feeds the machine.

One poll loop runs per handle, however many coroutines await it; it starts on
the first ``await`` and stops when the task ends, when the last waiter leaves
(cancelled or timed out), or when the client closes.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Generator
from typing import Any, Generic, TypeVar

import attrs

from .._protocol.calls import check_timeout
from .._protocol.errors import (
    APIConnectionError,
    ClientClosedError,
    ConflictError,
    RateLimitError,
    ResponseError,
    ServerError,
    TaskTimeoutError,
)
from .._protocol.task_objects import task_failed_error
from .._protocol.tasks import TaskKind, TaskMachine, TaskRef, TaskSnapshot, TaskState
from .._transport.http import cancel_requested
from .core import Core
from .hooks import PollEvent, TaskDoneEvent

__all__ = ["MAX_CONSECUTIVE_POLL_FAILURES", "TaskHandle", "TaskStatus"]

R = TypeVar("R")

logger = logging.getLogger("maxapi_async")

#: Poll failures in a row (5xx, 429, dropped connections, unreadable answers) that a
#: handle rides out before it gives up and raises the last one.
MAX_CONSECUTIVE_POLL_FAILURES = 10

# Errors a poll may meet that say nothing about the task itself.
_TRANSIENT = (ServerError, RateLimitError, ConflictError, APIConnectionError, ResponseError)


@attrs.frozen
class TaskStatus:
    """What a handle last saw of its task.

    ``state`` is one of ``"submitted"``, ``"pending"``, ``"running"``,
    ``"succeeded"``, ``"failed"`` or ``"expired"`` (the caller stopped waiting;
    the task runs on). ``word`` is the status exactly as the service sent it,
    ``progress`` a percentage when the service gives one, ``polls`` the number
    of poll answers read so far.
    """

    state: str
    word: str | None = None
    progress: float | None = None
    polls: int = 0


class TaskHandle(Generic[R]):
    """A queued task: ``await handle`` gives its result, polling until it is ready.

    * ``id`` and ``kind`` (``"generation"``, ``"edit"`` or ``"operation"``);
    * ``status``: the last :class:`TaskStatus` seen; ``done()``: whether it ended;
    * ``await handle.refresh()``: one poll now; ``await handle.wait(timeout=...)``:
      wait with a deadline (``TaskTimeoutError`` carries this handle, so the
      task, already paid for, can still be awaited later). Without one, every
      wait is bounded by the client's ``task_timeout``;
    * ``to_dict()``: plain JSON to rebuild the handle anywhere with
      ``client.tasks.from_dict(d)``.

    Awaiting a finished handle again returns the same result (or raises the
    same error) without a request. Many coroutines may await one handle; they
    share one poll loop.
    """

    def __init__(
        self,
        core: Core,
        ref: TaskRef,
        finish: Callable[[TaskSnapshot, str | None], Awaitable[R]],
        *,
        first: TaskSnapshot | None = None,
        request_id: str | None = None,
    ) -> None:
        self._core = core
        self._ref = ref
        self._finish = finish
        self._machine = TaskMachine(ref.id, ref.kind)
        self._poll_now = first is None  # a rebuilt handle checks at once
        self._retry_after: float | None = None
        self._request_id = request_id
        self._poller: asyncio.Task[R] | None = None
        self._waiters = 0
        self._outcome: tuple[R] | None = None
        self._error: BaseException | None = None
        if first is not None:
            self._feed(first, request_id, polled=False)

    # -- what callers see -------------------------------------------------------

    @property
    def id(self) -> str:
        """The task id the service assigned."""
        return self._ref.id

    @property
    def kind(self) -> TaskKind:
        """``"generation"``, ``"edit"`` or ``"operation"``."""
        return self._ref.kind

    @property
    def ref(self) -> TaskRef:
        """The resumable description of this task (what :meth:`to_dict` serialises)."""
        return self._ref

    @property
    def status(self) -> TaskStatus:
        """The last state seen (no request)."""
        machine = self._machine
        last = machine.last
        return TaskStatus(
            state=machine.state.value,
            word=last.status if last is not None else None,
            progress=machine.progress,
            polls=machine.polls,
        )

    def done(self) -> bool:
        """Whether the task has ended (succeeded or failed), as last seen."""
        return self._machine.done

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON describing the task; ``client.tasks.from_dict`` rebuilds the handle."""
        return self._ref.to_dict()

    def __repr__(self) -> str:
        status = self.status
        progress = f" {status.progress:g}%" if status.progress is not None else ""
        return f"<TaskHandle {self.kind} {self.id} {status.state}{progress}>"

    def __await__(self) -> Generator[Any, None, R]:
        return self.wait().__await__()

    async def refresh(self) -> TaskStatus:
        """Poll once now and return the new status."""
        if not self._machine.done:
            snapshot, request_id = await self._core.poll(self._ref)
            self._feed(snapshot, request_id)
        return self.status

    async def wait(self, timeout: float | None = None) -> R:
        """The task's result, polling as needed.

        ``timeout`` bounds this wait (default: the client's ``task_timeout``, 30
        minutes unless the client says otherwise; ``math.inf``: no limit; ``nan``,
        zero or less is an :class:`InvalidRequestError`). Raises :class:`TaskFailedError`
        when the service reports a failure, :class:`TaskTimeoutError` (carrying
        this handle) when the limit passes first, and the typed API error of a
        poll that cannot succeed (an unknown task id is :class:`NotFoundError`).
        """
        timeout = check_timeout("timeout", timeout)
        if self._outcome is not None:
            return self._outcome[0]
        if self._error is not None:
            raise self._error
        poller = self._poller
        if poller is None or poller.done():
            poller = self._poller = self._core.start_poller(self._run())
        limit = timeout if timeout is not None else self._core.task_timeout
        if limit == math.inf:
            limit = None
        self._waiters += 1
        try:
            if limit is None:
                return await asyncio.shield(poller)
            try:
                return await asyncio.wait_for(asyncio.shield(poller), limit)
            except asyncio.TimeoutError:
                if poller.done() and not poller.cancelled():
                    return poller.result()
                seen = self._machine.state.value
                self._machine.expire()
                whose = "" if timeout is not None else " (the client's task_timeout)"
                raise TaskTimeoutError(
                    f"{self.kind} task {self.id} still {seen} after {limit:g} s{whose}; it runs on: "
                    "await the handle again to keep waiting, or resume it elsewhere with "
                    "client.tasks.from_dict(handle.to_dict())",
                    task_id=self.id,
                    handle=self,
                ) from None
        except asyncio.CancelledError:
            if poller.cancelled() and self._core.closing and not cancel_requested():
                # aclose() stopped the poll loop under a waiter that nobody cancelled.
                raise ClientClosedError(
                    f"the client was closed while waiting for {self.kind} task {self.id}; "
                    "resume it with a new client (client.tasks.from_dict(handle.to_dict()))"
                ) from None
            raise
        finally:
            self._waiters -= 1
            if self._waiters == 0 and not poller.done():
                # The last waiter left: stop polling now, and leave no task behind.
                if self._poller is poller:
                    self._poller = None  # a waiter arriving meanwhile starts afresh, not on this one
                poller.cancel()
                await asyncio.wait([poller])

    # -- the loop -----------------------------------------------------------------

    def _feed(self, snapshot: TaskSnapshot, request_id: str | None, *, polled: bool = True) -> None:
        self._machine.feed(snapshot)
        self._retry_after = snapshot.retry_after
        if request_id is not None:
            self._request_id = request_id
        if snapshot.poll_url and snapshot.poll_url != self._ref.poll_url:
            self._ref = attrs.evolve(self._ref, poll_url=snapshot.poll_url)
        unknown = self._machine.new_unknown_status
        if unknown is not None:
            logger.warning(
                "%s task %s reports an unknown status %r; treating it as still running",
                self.kind,
                self.id,
                unknown,
            )
        hooks = self._core.hooks
        if polled and hooks.on_poll is not None:
            hooks._poll(PollEvent(self.id, self.kind, self._machine.state.value, self._machine.progress))

    def _elapsed(self) -> float:
        submitted = self._ref.submitted_at
        return 0.0 if submitted is None else max(0.0, time.time() - submitted)

    async def _run(self) -> R:
        try:
            result = await self._loop()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._error = exc
            self._core.usage.failed_calls += 1
            self._done_event(type(exc).__name__)
            raise
        self._outcome = (result,)
        self._done_event(None)
        return result

    def _done_event(self, error: str | None) -> None:
        hooks = self._core.hooks
        if hooks.on_task_done is not None:
            hooks._task_done(TaskDoneEvent(self.id, self.kind, error))

    async def _loop(self) -> R:
        core = self._core
        policy = core.poll_policy
        failures = 0
        while not self._machine.done:
            if self._poll_now:
                self._poll_now = False
            else:
                await asyncio.sleep(policy.next_delay(self._elapsed(), retry_after=self._retry_after))
            try:
                snapshot, request_id = await core.poll(self._ref)
            except _TRANSIENT as exc:
                failures += 1
                if failures >= MAX_CONSECUTIVE_POLL_FAILURES:
                    raise
                self._retry_after = getattr(exc, "retry_after", None)
                logger.info("poll of %s task %s failed (%s); retrying", self.kind, self.id, exc)
                continue
            failures = 0
            self._feed(snapshot, request_id)
        last = self._machine.last
        assert last is not None  # done implies a snapshot was fed
        if last.state is TaskState.FAILED:
            raise task_failed_error(last, request_id=self._request_id)
        return await self._finish(last, self._request_id)
