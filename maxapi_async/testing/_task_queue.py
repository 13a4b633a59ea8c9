"""Queued tasks: what the fake keeps for an ``async`` submission, and when the task finishes.

A queued submission (``"async": true`` on the OpenAI-compatible routes, ``X-MaxAPI-Async:
true`` on the Gemini-native one) renders its answer at once and keeps it in a :class:`Task`
(or a scripted :class:`Failure` instead, see :meth:`TaskQueue.script_failures`). Each poll
counts (:meth:`TaskQueue.advance`): the task is running until ``complete_after_polls`` polls
(or ``complete_after_seconds``) have passed, then it has succeeded or failed. Each of the two
settings is a number for every task, a schedule (the n-th task queued takes the n-th value,
the last one repeating) or a function of the submission's :class:`RecordedRequest`
(:func:`task_timing`). A repeated ``Idempotency-Key`` finds the task the first submission
created (:meth:`TaskQueue.repeat_of`), unless the fake is made with ``honour_idempotency=False``.
How a task looks on the wire belongs to each route family: the OpenAI task object in
:mod:`._openai_routes`, the Gemini operation in :mod:`._gemini_routes`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Literal, Protocol, TypeVar

import attrs
from aiohttp import hdrs, web

from ._recording import RecordedRequest, current_record

__all__ = [
    "Failure",
    "PollCount",
    "Seconds",
    "Task",
    "TaskHost",
    "TaskKind",
    "TaskQueue",
    "check_timing",
    "task_timing",
]

_T = TypeVar("_T")

#: ``complete_after_polls``: one count for every task, a schedule, or a function of the submission.
PollCount = int | Sequence[int] | Callable[[RecordedRequest], int]
#: ``complete_after_seconds``: the same, in seconds; ``None`` means "count polls instead".
Seconds = float | None | Sequence[float | None] | Callable[[RecordedRequest], float | None]

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
    #: The submission that queued it, and its place among the fake's tasks (from 0): what
    #: a ``complete_after_*`` function or schedule is asked with, at each poll.
    submission: RecordedRequest
    index: int
    polls: int = 0


class TaskHost(Protocol):
    """What the task queue reads and counts on the fake (see :class:`FakeMaxAPI`)."""

    complete_after_polls: PollCount
    complete_after_seconds: Seconds
    poll_retry_after: float | None
    honour_idempotency: bool
    created_tasks: int
    repeated_submissions: int


def check_timing(name: str, value: object) -> None:
    """Raise :class:`ValueError` unless ``value`` is a valid ``complete_after_*`` setting."""
    values: Sequence[Any]
    if callable(value):
        return
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        values = [value]
    elif not value:
        raise ValueError(f"{name}: a schedule needs at least one value")
    else:
        values = value
    for item in values:
        if item is None and name == "complete_after_seconds":
            continue
        if isinstance(item, bool) or not isinstance(item, (int, float)) or item < 0:
            raise ValueError(f"{name} must be a number >= 0, a list of them or a function, not {item!r}")
        if name == "complete_after_polls" and not isinstance(item, int):
            raise ValueError(f"complete_after_polls must be a whole number, not {item!r}")


def task_timing(
    setting: _T | Sequence[_T] | Callable[[RecordedRequest], _T], index: int, record: RecordedRequest
) -> _T:
    """The value of a ``complete_after_*`` setting for the ``index``-th task queued (from 0),
    submitted by ``record``. The setting is read at every poll: a number changed mid-test
    applies to the tasks already queued; a function should depend on the request only."""
    if callable(setting):
        return setting(record)
    if isinstance(setting, Sequence) and not isinstance(setting, (str, bytes)):
        return setting[min(index, len(setting) - 1)]
    return setting


class TaskQueue:
    """The fake's queued tasks, the ``Idempotency-Key`` each came with, and the scripted failures."""

    def __init__(self, fake: TaskHost, next_id: Callable[[str], str]) -> None:
        self._fake = fake
        self._next_id = next_id
        self._tasks: dict[str, Task] = {}
        self._by_idempotency_key: dict[str, str] = {}
        self._failures: list[Failure] = []
        self._lock = threading.Lock()  # the failures are scripted from a test's thread

    # ------------------------------------------------------------------ scripted failures

    def script_failures(self, reason: str, message: str | None, times: int) -> None:
        """Make the next ``times`` queued tasks fail (``message`` defaults to one for ``reason``)."""
        text = message or _DEFAULT_FAILURE_MESSAGES.get(reason, f"Task failed: {reason}")
        with self._lock:
            self._failures.extend(Failure(reason, text) for _ in range(times))

    def take_failure(self) -> Failure | None:
        """The next scripted failure, used up; ``None`` when none is scripted."""
        with self._lock:
            return self._failures.pop(0) if self._failures else None

    def clear_failures(self) -> None:
        """Drop the scripted failures not used yet."""
        with self._lock:
            self._failures.clear()

    # ------------------------------------------------------------------ tasks

    def repeat_of(self, request: web.Request) -> Task | None:
        """The task an earlier submission with the same ``Idempotency-Key`` created, if any.

        A repeated key is counted (``repeated_submissions``) either way; with
        ``honour_idempotency=False`` the repeat then creates a task of its own.
        """
        key = request.headers.get("Idempotency-Key")
        if key not in self._by_idempotency_key:
            return None
        self._fake.repeated_submissions += 1
        if not self._fake.honour_idempotency:
            return None
        return self._tasks.get(self._by_idempotency_key[key])

    def add(
        self, request: web.Request, kind: TaskKind, model: str, result: Any, failure: Failure | None
    ) -> Task:
        """Create the task for a queued submission and remember its ``Idempotency-Key``."""
        record = current_record()
        task = Task(
            id=self._next_id("op_" if kind == "operation" else "task_"),
            kind=kind,
            model=model,
            created=int(time.time()),
            submitted_at=record.received_at,
            result=result,
            failure=failure,
            submission=record,
            index=len(self._tasks),
        )
        self._tasks[task.id] = task
        self._fake.created_tasks += 1
        key = request.headers.get("Idempotency-Key")
        if key and key not in self._by_idempotency_key:
            self._by_idempotency_key[key] = task.id
        return task

    def find(self, task_id: str, kind: TaskKind) -> Task | None:
        """The task ``task_id`` if a ``kind`` route created it."""
        task = self._tasks.get(task_id)
        return task if task is not None and task.kind == kind else None

    def advance(self, task: Task) -> tuple[str, int]:
        """Count one poll and return ``(state, progress)``."""
        task.polls += 1
        after_seconds = task_timing(self._fake.complete_after_seconds, task.index, task.submission)
        if after_seconds is not None:
            elapsed = time.monotonic() - task.submitted_at
            done = elapsed >= after_seconds
            fraction = elapsed / after_seconds if after_seconds else 1.0
        else:
            after_polls = task_timing(self._fake.complete_after_polls, task.index, task.submission)
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
