"""Queued tasks: what the fake keeps for an ``async`` submission, and when the task finishes.

A queued submission (``"async": true`` on the OpenAI-compatible routes, ``X-MaxAPI-Async:
true`` on the Gemini-native one) renders its answer at once and keeps it in a :class:`Task`
(or a scripted :class:`Failure` instead, see :meth:`TaskQueue.script_failures`). Each poll
counts (:meth:`TaskQueue.advance`): the task is running until ``complete_after_polls`` polls
(or ``complete_after_seconds``) have passed, then it has succeeded or failed. A repeated
``Idempotency-Key`` finds the task the first submission created (:meth:`TaskQueue.repeat_of`).
How a task looks on the wire belongs to each route family: the OpenAI task object in
:mod:`._openai_routes`, the Gemini operation in :mod:`._gemini_routes`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal, Protocol

import attrs
from aiohttp import hdrs, web

from ._recording import current_record

__all__ = ["Failure", "Task", "TaskHost", "TaskKind", "TaskQueue"]

#: Which route created a task: the OpenAI-compatible ones, or the Gemini-native one.
TaskKind = Literal["generations", "edits", "operation"]

_DEFAULT_FAILURE_MESSAGES: Final[Mapping[str, str]] = {
    "CONTENT_MODERATION": "The request was rejected by content moderation.",
    "INVALID_PARAMETERS": "The request parameters were rejected by the upstream model.",
    "INSUFFICIENT_POINTS": "Insufficient credits to run this task.",
}


@attrs.frozen
class Failure:
    """How a scripted failed task ends: a reason word (``CONTENT_MODERATION``...) and a message."""

    reason: str
    message: str


@attrs.define
class Task:
    """A queued task: its finished answer (``result``) or its ``failure``, and the polls so far."""

    id: str
    kind: TaskKind
    model: str
    created: int
    submitted_at: float
    result: Any
    failure: Failure | None
    polls: int = 0


class TaskHost(Protocol):
    """What the task queue reads and counts on the fake (see :class:`FakeMaxAPI`)."""

    complete_after_polls: int
    complete_after_seconds: float | None
    poll_retry_after: float | None
    created_tasks: int
    repeated_submissions: int


class TaskQueue:
    """The fake's queued tasks, the ``Idempotency-Key`` each came with, and the scripted failures."""

    def __init__(self, fake: TaskHost, next_id: Callable[[str], str]) -> None:
        self._fake = fake
        self._next_id = next_id
        self._tasks: dict[str, Task] = {}
        self._by_idempotency_key: dict[str, str] = {}
        self._failures: list[Failure] = []

    # ------------------------------------------------------------------ scripted failures

    def script_failures(self, reason: str, message: str | None, times: int) -> None:
        """Make the next ``times`` queued tasks fail (``message`` defaults to one for ``reason``)."""
        text = message or _DEFAULT_FAILURE_MESSAGES.get(reason, f"Task failed: {reason}")
        self._failures.extend(Failure(reason, text) for _ in range(times))

    def take_failure(self) -> Failure | None:
        """The next scripted failure, used up; ``None`` when none is scripted."""
        return self._failures.pop(0) if self._failures else None

    def clear_failures(self) -> None:
        """Drop the scripted failures not used yet."""
        self._failures.clear()

    # ------------------------------------------------------------------ tasks

    def repeat_of(self, request: web.Request) -> Task | None:
        """The task an earlier submission with the same ``Idempotency-Key`` created, if any."""
        key = request.headers.get("Idempotency-Key")
        if key not in self._by_idempotency_key:
            return None
        self._fake.repeated_submissions += 1
        return self._tasks.get(self._by_idempotency_key[key])

    def add(
        self, request: web.Request, kind: TaskKind, model: str, result: Any, failure: Failure | None
    ) -> Task:
        """Create the task for a queued submission and remember its ``Idempotency-Key``."""
        task = Task(
            id=self._next_id("op_" if kind == "operation" else "task_"),
            kind=kind,
            model=model,
            created=int(time.time()),
            submitted_at=current_record().received_at,
            result=result,
            failure=failure,
        )
        self._tasks[task.id] = task
        self._fake.created_tasks += 1
        key = request.headers.get("Idempotency-Key")
        if key:
            self._by_idempotency_key[key] = task.id
        return task

    def find(self, task_id: str, kind: TaskKind) -> Task | None:
        """The task ``task_id`` if a ``kind`` route created it."""
        task = self._tasks.get(task_id)
        return task if task is not None and task.kind == kind else None

    def advance(self, task: Task) -> tuple[str, int]:
        """Count one poll and return ``(state, progress)``."""
        task.polls += 1
        after_seconds = self._fake.complete_after_seconds
        if after_seconds is not None:
            elapsed = time.monotonic() - task.submitted_at
            done = elapsed >= after_seconds
            fraction = elapsed / after_seconds if after_seconds else 1.0
        else:
            after_polls = self._fake.complete_after_polls
            done = task.polls >= after_polls
            fraction = task.polls / after_polls if after_polls else 1.0
        if done:
            return ("failed" if task.failure is not None else "succeeded"), 100
        return "running", max(1, min(99, int(fraction * 100)))

    def mark_retry_after(self, response: web.Response, state: str) -> None:
        """Add ``Retry-After`` to an unfinished task's answer when ``poll_retry_after`` is set."""
        value = self._fake.poll_retry_after
        if value is not None and state in ("pending", "running"):
            response.headers[hdrs.RETRY_AFTER] = str(int(value)) if value == int(value) else str(value)
