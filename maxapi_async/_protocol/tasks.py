"""Queued tasks: their states, snapshots, where to poll them, and a state machine per task.

MaxAPI documents that a queued call "returns a task id; poll the returned
poll_url", and nothing about the task object itself. So the reader
(:mod:`.task_objects`, which builds the :class:`TaskSnapshot` s defined here) is
tolerant by design: it accepts every variant listed in ``WIRE.md`` (an
envelope or not, three id keys, any letter case of some forty status words,
three places for the assets, three shapes of failure detail) and keeps the
whole object on :attr:`TaskSnapshot.raw`. Tolerance stops where guessing
would hurt the caller:

* an unknown status word is *running*, never success (the caller's deadline
  bounds it); the machine reports it once so the client can log it;
* success without a single asset is an error, not an empty result;
* anything malformed raises :class:`~maxapi_async.ResponseError`, never a
  ``KeyError``/``TypeError``: these functions read thousands of polls and a
  proxy's junk must surface as the library's error.

Optional metadata (``progress``, timestamps, ``model``) is read when it makes
sense and ignored when it does not: it never decides an outcome.

:class:`TaskMachine` (after h11) turns the stream of snapshots into states:
submitted → pending/running → succeeded | failed | expired, and refuses
answers that contradict each other. Nothing here performs I/O or sleeps.
"""

from __future__ import annotations

import enum
import math
import re
from typing import Any, Literal, get_args
from urllib.parse import quote

import attrs
from yarl import URL

from .calls import EDITS_PATH, GENERATIONS_PATH, ImageCall, check_text
from .convert import converter, structure
from .errors import InvalidRequestError, MaxAPIError, ResponseError, TaskProtocolError
from .openai_answer import ImageData
from .urls import is_api_path, on_origin, origin_of

__all__ = [
    "OPERATIONS_PATH",
    "MachineState",
    "TaskFailure",
    "TaskKind",
    "TaskMachine",
    "TaskRef",
    "TaskSnapshot",
    "TaskState",
    "check_kind",
    "classify_status",
    "default_poll_path",
    "operation_id",
    "poll_path",
    "status_reason",
    "unreadable_task_result",
]

OPERATIONS_PATH = "/v1beta/operations"

TaskKind = Literal["generation", "edit", "operation"]
_KINDS: tuple[str, ...] = get_args(TaskKind)
_KIND_PATHS: dict[str, str] = {
    "generation": GENERATIONS_PATH,
    "edit": EDITS_PATH,
    "operation": OPERATIONS_PATH,
}


class TaskState(str, enum.Enum):
    """Where a task stands, as far as the service says."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        """Whether the task is finished (succeeded or failed)."""
        return self is TaskState.SUCCEEDED or self is TaskState.FAILED


# The words WIRE.md lists, plus a few aliases other task platforms use
# ("succeed", "in_queue"...). A success alias is only added when unambiguous.
_STATUS_WORDS: dict[TaskState, tuple[str, ...]] = {
    TaskState.PENDING: (
        "queued", "pending", "submitted", "waiting", "created", "not_started",
        "in_queue", "queueing", "enqueued", "scheduled", "accepted",
    ),
    TaskState.RUNNING: (
        "processing", "running", "in_progress", "started", "generating",
        "in_process", "executing", "working",
    ),
    TaskState.SUCCEEDED: (
        "succeeded", "success", "completed", "complete", "done", "finished",
        "succeed", "successful",
    ),
    TaskState.FAILED: (
        "failed", "failure", "error", "timeout", "timed_out", "expired", "cancelled", "canceled",
        "rejected", "fail", "errored", "aborted",
    ),
}  # fmt: skip
_STATUS: dict[str, TaskState] = {word: state for state, words in _STATUS_WORDS.items() for word in words}
# The reason a status word itself implies, when the answer names none.
_STATUS_REASONS: dict[str, str] = {
    "timeout": "TIMEOUT",
    "timed_out": "TIMEOUT",
    "expired": "TIMEOUT",
    "cancelled": "CANCELLED",
    "canceled": "CANCELLED",
}
_SEPARATORS = re.compile(r"[\s\-]+")


def _normalise_word(word: str) -> str:
    return _SEPARATORS.sub("_", word.strip().lower())


def status_reason(word: str) -> str | None:
    """The failure reason a status word itself names (``"content_blocked"``...), if any."""
    return _STATUS_REASONS.get(_normalise_word(word))


def classify_status(word: str | None) -> TaskState | None:
    """The state a status word means, or ``None`` for an unknown (or absent) word.

    Any letter case; spaces and hyphens count as underscores (``"In Progress"``,
    ``"in-progress"``). The caller treats ``None`` as running and keeps the word.
    """
    if not isinstance(word, str):
        return None
    state = _STATUS.get(word)  # the common case: already lower case
    if state is None:
        state = _STATUS.get(_normalise_word(word))
    return state


# ---------------------------------------------------------------------------
# Snapshots


@attrs.frozen
class TaskFailure:
    """Why a task failed: a normalised ``reason`` (or ``None``), the message and code as sent."""

    reason: str | None
    message: str
    code: str | int | None = None


@attrs.frozen
class TaskSnapshot:
    """One poll answer, read.

    ``status`` is the status word exactly as sent (``None`` when absent); an
    unknown word gives ``state`` RUNNING. ``images`` holds the assets of a
    succeeded generation or edit; ``response`` the ``response`` object of a
    finished operation (the Gemini layer reads it). ``retry_after`` is filled
    by the client from the answer's ``Retry-After`` header. ``raw`` is the
    task object as received (the envelope's ``data`` when wrapped).
    """

    id: str
    kind: TaskKind
    state: TaskState
    status: str | None = None
    progress: float | None = None
    poll_url: str | None = None
    created: int | None = None
    updated: int | None = None
    model: str | None = None
    images: list[ImageData] = attrs.field(factory=list)
    failure: TaskFailure | None = None
    response: dict[str, Any] | None = attrs.field(default=None, repr=False)
    retry_after: float | None = None
    raw: dict[str, Any] = attrs.field(factory=dict, repr=False, eq=False)

    @property
    def done(self) -> bool:
        """Whether the task is finished (succeeded or failed)."""
        return self.state.terminal

    @property
    def unknown_status(self) -> str | None:
        """The status word when it is not one the client knows, else ``None``."""
        if self.status is None or self.kind == "operation":
            return None
        return self.status if classify_status(self.status) is None else None

    def poll_path(self, origin: URL | str) -> str:
        """What to poll next for this task: see :func:`poll_path`."""
        return poll_path(self.kind, self.id, poll_url=self.poll_url, origin=origin)


def check_kind(kind: object) -> None:
    if kind not in _KINDS:
        raise InvalidRequestError("kind", f"unknown task kind {kind!r}", allowed=_KINDS)


# -- envelope ---------------------------------------------------------------


# -- assets -----------------------------------------------------------------


# -- failures ---------------------------------------------------------------


# -- the task object ----------------------------------------------------------


def operation_id(name: str) -> str:
    """``"operations/abc"`` (or ``".../operations/abc"``) → ``"abc"``."""
    head, sep, tail = name.rpartition("operations/")
    return tail if sep and (not head or head.endswith("/")) else name


# ---------------------------------------------------------------------------
# Where to poll


def default_poll_path(kind: TaskKind, task_id: str) -> str:
    """The documented poll path for a task of ``kind`` (an ``operations/`` prefix is dropped)."""
    check_kind(kind)
    if kind == "operation":
        task_id = operation_id(task_id)
    if not task_id or task_id in (".", ".."):
        raise InvalidRequestError("task_id", f"{task_id!r} is not a task id")
    return f"{_KIND_PATHS[kind]}/{quote(check_text('task_id', task_id), safe='')}"


def poll_path(kind: TaskKind, task_id: str, *, poll_url: str | None, origin: URL | str) -> str:
    """What to GET to poll a task: its ``poll_url`` when safe, else the default path.

    ``poll_url`` is followed when it is a path on the API (``/v1/...``) or an
    absolute URL on the API's origin (``origin``, the client's base URL; the
    comparison is :func:`~maxapi_async._protocol.urls.on_origin`'s, the one the transport
    makes before it adds the key). Anything else (another host, a
    protocol-relative ``//host/...``, credentials in the URL, a relative path
    without its leading slash) falls back to the documented path: the poll
    carries the API key, so it never goes to another origin.
    """
    if poll_url:
        if is_api_path(poll_url):
            return poll_url
        api = origin_of(origin)
        if api is not None and on_origin(poll_url, api) is not None:
            return poll_url
    return default_poll_path(kind, task_id)


# ---------------------------------------------------------------------------
# The state machine


class MachineState(str, enum.Enum):
    """A task handle's view of its task; EXPIRED means the caller stopped waiting."""

    SUBMITTED = "submitted"
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EXPIRED = "expired"


_FROM_TASK_STATE = {
    TaskState.PENDING: MachineState.PENDING,
    TaskState.RUNNING: MachineState.RUNNING,
    TaskState.SUCCEEDED: MachineState.SUCCEEDED,
    TaskState.FAILED: MachineState.FAILED,
}


class TaskMachine:
    """One task's lifecycle, fed parsed poll answers (after h11's connection states).

    ::

        SUBMITTED ──> PENDING <──> RUNNING ──> SUCCEEDED
                          │           │    └─> FAILED
                          └───────────┴──────> EXPIRED (deadline; the task runs on)

    Pending and running may alternate (a queue may requeue a task). A
    finished task stays finished: a later snapshot must say the same thing,
    or :class:`TaskProtocolError` is raised, as it is for a snapshot of
    another task. :meth:`expire` records that the caller's deadline passed; a
    later :meth:`feed` (the caller waits again) resumes from the snapshot.
    """

    def __init__(self, task_id: str, kind: TaskKind) -> None:
        check_kind(kind)
        self.task_id = task_id
        self.kind: TaskKind = kind
        self.state = MachineState.SUBMITTED
        self.last: TaskSnapshot | None = None
        self.progress: float | None = None
        self.polls = 0
        #: The first unknown status word seen, and the poll that brought it.
        self.unknown_status: str | None = None
        self.unknown_status_poll: int | None = None
        self._new_unknown: str | None = None

    def __repr__(self) -> str:
        return f"<TaskMachine {self.kind} {self.task_id} {self.state.value} polls={self.polls}>"

    @property
    def done(self) -> bool:
        """Whether the task finished (succeeded or failed)."""
        return self.state is MachineState.SUCCEEDED or self.state is MachineState.FAILED

    @property
    def new_unknown_status(self) -> str | None:
        """The unknown status word the last :meth:`feed` saw for the first time, else ``None``."""
        return self._new_unknown

    def feed(self, snapshot: TaskSnapshot) -> TaskState:
        """Take one snapshot; returns its state. Raises :class:`TaskProtocolError` on contradiction."""
        if snapshot.kind != self.kind or snapshot.id != _own_id(self.kind, self.task_id):
            raise TaskProtocolError(
                f"a poll for {self.kind} task {self.task_id!r} answered with "
                f"{snapshot.kind} task {snapshot.id!r}",
                body=snapshot.raw,
            )
        target = _FROM_TASK_STATE[snapshot.state]
        if self.done and target is not self.state:
            raise TaskProtocolError(
                f"task {self.task_id!r} already {self.state.value}, then reported "
                f"{snapshot.status or snapshot.state.value!r}",
                body=snapshot.raw,
            )
        self.polls += 1
        self.state = target
        self.last = snapshot
        if snapshot.progress is not None:
            self.progress = snapshot.progress
        elif target is MachineState.SUCCEEDED:
            self.progress = 100.0
        unknown = snapshot.unknown_status
        self._new_unknown = None
        if unknown is not None and self.unknown_status is None:
            self.unknown_status = unknown
            self.unknown_status_poll = self.polls
            self._new_unknown = unknown
        return snapshot.state

    def expire(self) -> MachineState:
        """Record that the caller's deadline passed; a finished task stays finished."""
        if not self.done:
            self.state = MachineState.EXPIRED
        return self.state


def _own_id(kind: str, task_id: str) -> str:
    return operation_id(task_id) if kind == "operation" else task_id


# ---------------------------------------------------------------------------
# Resumable references

TASK_REF_VERSION = 1


@attrs.frozen
class TaskRef:
    """Everything needed to resume waiting for a task in another process.

    ``to_dict()`` gives plain JSON; ``TaskRef.from_dict()`` reads it back.
    ``submitted_at`` is wall-clock epoch seconds (the poll schedule resumes
    from the task's age); ``created`` is the service's own timestamp.
    """

    id: str
    kind: TaskKind
    model: str | None = None
    aspect_ratio: str | None = None
    resolution: str | None = None
    poll_url: str | None = None
    created: int | None = None
    submitted_at: float | None = None
    idempotency_key: str | None = None
    version: int = TASK_REF_VERSION
    route_mode: str | None = None
    n: int = 1

    def image_call(self, default_model: str) -> ImageCall:
        """The :class:`ImageCall` the task's answer is read against.

        A task this client submitted (``submitted_at``) or whose ratio was given gets its sizes
        from the model's table; one known by its id alone does not (the table's default ratio
        would be a guess): its sizes come from the images, when inline.
        """
        return ImageCall(
            "edit" if self.kind == "edit" else "generation",
            self.model or default_model,
            self.aspect_ratio,
            self.resolution,
            self.route_mode,
            self.n,
            sized=self.submitted_at is not None or self.aspect_ratio is not None,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (every field, ``None`` included)."""
        data: dict[str, Any] = converter.unstructure(self)
        return data

    @classmethod
    def from_dict(cls, data: object) -> TaskRef:
        """Read :meth:`to_dict` output back; junk raises :class:`InvalidRequestError` (``data``)."""
        if not isinstance(data, dict):
            raise InvalidRequestError(
                "data", f"must be a dict from TaskRef.to_dict(), got {type(data).__name__}"
            )
        version = data.get("version", TASK_REF_VERSION)
        if version != TASK_REF_VERSION or isinstance(version, bool):
            raise InvalidRequestError(
                "data", f"unsupported task reference version {version!r}", allowed=(TASK_REF_VERSION,)
            )
        try:
            ref = structure(data, cls, what="task reference")
        except MaxAPIError as exc:
            raise InvalidRequestError("data", str(exc)) from None
        if not ref.id.strip():
            raise InvalidRequestError("data", "the task reference has an empty 'id'")
        check_text("data", ref.id)
        if ref.submitted_at is not None and not math.isfinite(ref.submitted_at):
            raise InvalidRequestError(
                "data", f"'submitted_at' must be a finite time, got {ref.submitted_at!r}"
            )
        if ref.n < 1:
            raise InvalidRequestError("data", f"'n' must be at least 1, got {ref.n!r}")
        return ref


def unreadable_task_result(exc: ResponseError, ref: TaskRef) -> None:
    """A task that succeeded but whose images cannot be read: done, maybe charged.

    ``exc`` (re-raised by the caller) gains the submission's ``idempotency_key`` and a
    message naming the task, so the paid task is never lost from sight.
    """
    key = ref.idempotency_key
    exc.idempotency_key = key
    exc.message = (
        f"{ref.kind} task {ref.id} succeeded but its result could not be read, so it may have "
        f"been charged; its Idempotency-Key is {key}. Cause: {exc.message}"
    )
    exc.args = (exc.message,)
