"""Queued tasks on the wire: reading task objects, and a state machine per task.

MaxAPI documents that a queued call "returns a task id; poll the returned
poll_url", and nothing about the task object itself. So the reader here is
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

import datetime as _dt
import enum
import math
import re
from collections.abc import Mapping
from typing import Any, Literal, get_args
from urllib.parse import quote

import attrs
from yarl import URL

from .calls import EDITS_PATH, GENERATIONS_PATH, ImageCall, check_text, error_from_json
from .convert import converter, structure
from .errors import InvalidRequestError, MaxAPIError, ResponseError, TaskFailedError, TaskProtocolError
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
    "classify_status",
    "default_poll_path",
    "parse_operation",
    "parse_task",
    "poll_path",
    "task_failed_error",
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


def _fail(message: str, obj: Any, request_id: str | None) -> ResponseError:
    return ResponseError(message, request_id=request_id, body=obj)


def _check_kind(kind: object) -> None:
    if kind not in _KINDS:
        raise InvalidRequestError("kind", f"unknown task kind {kind!r}", allowed=_KINDS)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _first(obj: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        value = obj.get(key)
        if value is not None:
            return value
    return None


def _sendable(text: str) -> bool:
    """Whether ``text`` has a UTF-8 form (JSON's ``"\\ud800"`` escape gives one that has not)."""
    try:
        check_text("task_id", text)
    except InvalidRequestError:
        return False
    return True


def _task_id(value: Any, obj: Any, request_id: str | None, what: str) -> str:
    if isinstance(value, str):
        text = value.strip()
        if text in ("", ".", "..") or not _sendable(text):
            raise _fail(f"the {what} id {value!r:.60} is not a task id", obj, request_id)
        return text
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**30:
        return str(value)
    if value is None:
        keys = "'name'" if what == "operation" else "'id', 'task_id' or 'taskId'"
        raise _fail(f"the {what} carries no id ({keys})", obj, request_id)
    raise _fail(f"the {what} id must be a string, got {value!r:.40}", obj, request_id)


def _number(value: Any) -> float | None:
    """A finite number from a JSON number or a numeric string ("45", "45%"); junk gives None."""
    if isinstance(value, str):
        value = value.strip().rstrip("%").strip()
        try:
            number = float(value)
        except ValueError:
            return None
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:  # an integer beyond a float's range
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _progress(value: Any) -> float | None:
    number = _number(value)
    return None if number is None else min(100.0, max(0.0, number))


def _timestamp(value: Any) -> int | None:
    """Epoch seconds from a number, a numeric string or an ISO 8601 string; junk gives None."""
    number = _number(value)
    if number is None and isinstance(value, str):
        try:
            when = _dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=_dt.timezone.utc)
        return int(when.timestamp())
    if number is None or not 0 <= number < 1e14:
        return None
    return int(number / 1000 if number >= 1e11 else number)  # milliseconds, from JS platforms


# -- envelope ---------------------------------------------------------------

_ID_KEYS = ("task_id", "taskId", "id")
_OK_CODES = frozenset({0, 200})
_OK_CODE_WORDS = frozenset({"0", "200", "ok", "success", "succeeded"})


def _envelope_ok(code: Any) -> bool:
    if isinstance(code, bool):
        return False
    if isinstance(code, int):
        return code in _OK_CODES
    if isinstance(code, str):
        return code.strip().lower() in _OK_CODE_WORDS
    return code is None


def _unwrap(obj: Any, request_id: str | None) -> dict[str, Any]:
    """The task object, out of a ``{"code", "msg", "data"}`` envelope when wrapped.

    A nonzero envelope ``code`` on a 2xx answer is the platform reporting that
    the request failed: an HTTP-like code (400-599) raises the same typed
    :class:`~maxapi_async.APIError` as that HTTP status would (so a 402 is an
    :class:`~maxapi_async.InsufficientCreditsError` however it is signalled);
    any other code raises :class:`~maxapi_async.ResponseError`.
    """
    if not isinstance(obj, dict):
        raise _fail(f"a task answer must be a JSON object, got {type(obj).__name__}", obj, request_id)
    if any(key in obj for key in _ID_KEYS) or ("code" not in obj and "msg" not in obj):
        return obj  # the task object itself (its own "code" would be a failure code)
    code = obj.get("code")
    if not _envelope_ok(code):
        if isinstance(code, int) and not isinstance(code, bool) and 400 <= code <= 599:
            raise error_from_json(code, obj, request_id=request_id)
        message = _text(_first(obj, "msg", "message")) or "no message"
        raise _fail(f"the task answer reports an error (code {code!r}): {message}", obj, request_id)
    data = obj.get("data")
    if not isinstance(data, dict):
        raise _fail(
            f"the task envelope's 'data' must be an object, got {type(data).__name__}", obj, request_id
        )
    return data


# -- assets -----------------------------------------------------------------


def _asset(item: Any, where: str, obj: Any, request_id: str | None) -> ImageData:
    if isinstance(item, str):
        if item.startswith(("https://", "http://")):
            return ImageData(url=item)
        if item.startswith("data:"):
            return ImageData(b64_json=item)
        raise _fail(f"task asset {where} is neither a URL nor a data: URL: {item!r:.60}", obj, request_id)
    if isinstance(item, dict):
        data = structure(item, ImageData, what=f"task asset {where}", request_id=request_id)
        if not data.url and not data.b64_json:
            raise _fail(f"task asset {where} has neither 'url' nor 'b64_json'", obj, request_id)
        return data
    raise _fail(f"task asset {where} must be an object or a URL, got {type(item).__name__}", obj, request_id)


def _asset_list(value: Any, where: str, obj: Any, request_id: str | None) -> list[ImageData]:
    if isinstance(value, str) and where.endswith(".url"):
        return [_asset(value, where, obj, request_id)]
    if not isinstance(value, list):
        raise _fail(f"task assets at {where} must be a list, got {type(value).__name__}", obj, request_id)
    return [_asset(item, f"{where}[{i}]", obj, request_id) for i, item in enumerate(value)]


_ASSET_KEYS = ("data", "result", "output")
_RESULT_KEYS = ("urls", "data", "images", "url")


def _assets(task: dict[str, Any], obj: Any, request_id: str | None) -> list[ImageData]:
    """The assets of a succeeded task, from the first place that holds any.

    ``data: [...]`` (OpenAI's shape), then ``result``/``output`` as a list, a
    URL, or an object with ``urls``, ``data``, ``images`` or ``url``. Only the
    first non-empty place is read, so a service that lists its images twice
    does not yield them twice.
    """
    for container_key in _ASSET_KEYS:
        container = task.get(container_key)
        if container is None:
            continue
        if isinstance(container, str):
            return [_asset(container, container_key, obj, request_id)]
        if isinstance(container, list):
            images = _asset_list(container, container_key, obj, request_id)
            if images:
                return images
        elif isinstance(container, dict):
            for key in _RESULT_KEYS:
                value = container.get(key)
                if value is not None:
                    images = _asset_list(value, f"{container_key}.{key}", obj, request_id)
                    if images:
                        return images
        else:
            raise _fail(
                f"task '{container_key}' must be an object, a list or a URL, got {type(container).__name__}",
                obj,
                request_id,
            )
    return []


# -- failures ---------------------------------------------------------------

_REASON_PATTERNS: tuple[tuple[str, str], ...] = (
    ("CONTENT_MODERATION", "CONTENT_MODERATION"),
    ("MODERATION", "CONTENT_MODERATION"),
    ("INVALID_PARAMETER", "INVALID_PARAMETERS"),
    ("INVALID_ARGUMENT", "INVALID_PARAMETERS"),
    ("INSUFFICIENT_POINTS", "INSUFFICIENT_POINTS"),
    ("INSUFFICIENT_CREDIT", "INSUFFICIENT_POINTS"),
    ("INSUFFICIENT_BALANCE", "INSUFFICIENT_POINTS"),
    ("DEADLINE_EXCEEDED", "TIMEOUT"),
    ("TIMED_OUT", "TIMEOUT"),
    ("TIMEOUT", "TIMEOUT"),
)
_NON_WORD = re.compile(r"[^A-Z0-9]+")


def _known_reason(*texts: object) -> str | None:
    for text in texts:
        if isinstance(text, str) and text:
            folded = _NON_WORD.sub("_", text.upper())
            for pattern, reason in _REASON_PATTERNS:
                if pattern in folded:
                    return reason
    return None


def _code(value: Any) -> str | int | None:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def _detail(value: Any) -> tuple[str | None, str | int | None]:
    """(message, code) from ``"text"`` or ``{message|msg, code|type|status}``."""
    if isinstance(value, str):
        return (value or None), None
    if isinstance(value, dict):
        message = _text(_first(value, "message", "msg", "detail", "reason"))
        code = _code(value.get("code"))
        if code is None or isinstance(code, int):
            code = _code(value.get("status")) or _code(value.get("type")) or code
        return message, code
    return None, None


_FAILURE_KEYS = ("error", "failure_reason", "failureReason", "fail_reason", "failReason")


def _failure(task: dict[str, Any], status: str | None) -> TaskFailure:
    message: str | None = None
    code: str | int | None = None
    for key in _FAILURE_KEYS:
        key_message, key_code = _detail(task.get(key))
        if message is None:
            message = key_message
        if code is None:
            code = key_code
    if message is None:
        message = _text(_first(task, "message", "msg", "error_message", "errorMessage"))
    if code is None:
        code = _code(_first(task, "error_code", "errorCode", "code"))
    reason = _known_reason(code, message)
    if reason is None and status is not None:
        reason = _STATUS_REASONS.get(_normalise_word(status))
    if message is None:
        message = f"the task failed (status {status!r}) with no reason given"
    return TaskFailure(reason=reason, message=message, code=code)


def _has_failure_detail(task: dict[str, Any]) -> bool:
    return any(task.get(key) for key in _FAILURE_KEYS)


# -- the task object ----------------------------------------------------------


def parse_task(obj: Any, *, kind: TaskKind, request_id: str | None = None) -> TaskSnapshot:
    """Read a task object (a submit answer or a poll answer) into a :class:`TaskSnapshot`.

    ``kind`` is the endpoint family the task came from; ``"operation"``
    delegates to :func:`parse_operation`. Raises :class:`ResponseError` for
    anything malformed, and the typed :class:`APIError` for an envelope whose
    nonzero ``code`` is an HTTP status (see :func:`_unwrap`).
    """
    _check_kind(kind)
    if kind == "operation":
        return parse_operation(obj, request_id=request_id)
    task = _unwrap(obj, request_id)
    task_id = _task_id(_first(task, *_ID_KEYS), obj, request_id, "task object")
    status = _first(task, "status", "state", "task_status", "taskStatus")
    if status is not None and not isinstance(status, str):
        raise _fail(f"task status must be a string, got {type(status).__name__}", obj, request_id)
    state = classify_status(status)
    if state is None:
        if status is not None:
            state = TaskState.RUNNING  # unknown word: never success
        elif _has_failure_detail(task):
            state = TaskState.FAILED
        else:
            # No status at all: an OpenAI-shaped answer with its images is done.
            data = task.get("data")
            state = TaskState.SUCCEEDED if isinstance(data, list) and data else TaskState.RUNNING
    images: list[ImageData] = []
    failure: TaskFailure | None = None
    if state is TaskState.SUCCEEDED:
        images = _assets(task, obj, request_id)
        if not images:
            raise _fail(
                f"task {task_id} succeeded but its answer holds no image: "
                "success with no assets is an error, not an empty result",
                obj,
                request_id,
            )
    elif state is TaskState.FAILED:
        failure = _failure(task, status)
    poll_url = _first(task, "poll_url", "pollUrl", "polling_url")
    model = task.get("model")
    return TaskSnapshot(
        id=task_id,
        kind=kind,
        state=state,
        status=status,
        progress=_progress(task.get("progress")),
        poll_url=poll_url if isinstance(poll_url, str) and poll_url else None,
        created=_timestamp(_first(task, "created", "created_at", "createdAt")),
        updated=_timestamp(_first(task, "updated_at", "updated", "updatedAt")),
        model=model if isinstance(model, str) and model else None,
        images=images,
        failure=failure,
        raw=task,
    )


def _operation_id(name: str) -> str:
    """``"operations/abc"`` (or ``".../operations/abc"``) → ``"abc"``."""
    head, sep, tail = name.rpartition("operations/")
    return tail if sep and (not head or head.endswith("/")) else name


def parse_operation(obj: Any, *, request_id: str | None = None) -> TaskSnapshot:
    """Read a Gemini-style long-running Operation into a :class:`TaskSnapshot` (kind ``"operation"``).

    ``done`` is authoritative: absent or false means pending/running (the
    metadata's state word, if any, only tells which), true means the
    ``error`` (failed) or the ``response`` (succeeded, kept on
    :attr:`TaskSnapshot.response` for the Gemini layer to read).
    """
    if not isinstance(obj, dict):
        raise _fail(f"an operation must be a JSON object, got {type(obj).__name__}", obj, request_id)
    name = _first(obj, "name", "id")
    op_id = _task_id(
        _operation_id(name.strip()) if isinstance(name, str) else name, obj, request_id, "operation"
    )
    done = obj.get("done", False)
    if done is None:
        done = False
    if not isinstance(done, bool):
        raise _fail(f"operation 'done' must be true or false, got {done!r}", obj, request_id)
    metadata = obj.get("metadata")
    meta: dict[str, Any] = metadata if isinstance(metadata, dict) else {}
    status = _first(meta, "state", "status")
    status = status if isinstance(status, str) and status else None
    progress = _progress(_first(meta, "progress", "progressPercent", "progress_percent"))
    model = meta.get("model")
    common: dict[str, Any] = {
        "id": op_id,
        "kind": "operation",
        "progress": progress,
        "created": _timestamp(_first(meta, "createTime", "create_time", "created")),
        "updated": _timestamp(_first(meta, "updateTime", "update_time", "updated")),
        "model": model if isinstance(model, str) and model else None,
        "raw": obj,
    }
    if not done:
        state = classify_status(status)
        if state is not TaskState.PENDING:
            state = TaskState.RUNNING  # "done" decides the end, not the metadata
        return TaskSnapshot(state=state, status=status, **common)
    error = obj.get("error")
    if error is not None:
        if not isinstance(error, dict):
            raise _fail(f"operation 'error' must be an object, got {type(error).__name__}", obj, request_id)
        message, code = _detail(error)
        # Google's ``status`` is a generic gRPC word (INVALID_ARGUMENT for a moderation
        # refusal too): the ErrorInfo reasons and the message are more specific.
        reason = _known_reason(*_error_info_reasons(error), message, code)
        if reason is None and code == "CANCELLED":
            reason = "CANCELLED"
        failure = TaskFailure(
            reason=reason,
            message=message or "the operation failed with no message",
            code=code,
        )
        return TaskSnapshot(state=TaskState.FAILED, status=status, failure=failure, **common)
    response = obj.get("response")
    if not isinstance(response, dict):
        what = "no 'response' or 'error'" if response is None else f"a {type(response).__name__} 'response'"
        raise _fail(f"operation {op_id} is done but carries {what}", obj, request_id)
    return TaskSnapshot(state=TaskState.SUCCEEDED, status=status, response=response, **common)


def _error_info_reasons(error: Mapping[str, Any]) -> list[str]:
    details = error.get("details")
    if not isinstance(details, list):
        return []
    return [d["reason"] for d in details if isinstance(d, dict) and isinstance(d.get("reason"), str)]


def task_failed_error(snapshot: TaskSnapshot, *, request_id: str | None = None) -> TaskFailedError:
    """The :class:`TaskFailedError` a failed snapshot stands for."""
    failure = snapshot.failure or TaskFailure(reason=None, message="the task failed with no reason given")
    return TaskFailedError(
        failure.message,
        task_id=snapshot.id,
        kind=snapshot.kind,
        reason=failure.reason,
        code=failure.code,
        status=snapshot.status,
        request_id=request_id,
        raw=snapshot.raw,
    )


# ---------------------------------------------------------------------------
# Where to poll


def default_poll_path(kind: TaskKind, task_id: str) -> str:
    """The documented poll path for a task of ``kind`` (an ``operations/`` prefix is dropped)."""
    _check_kind(kind)
    if kind == "operation":
        task_id = _operation_id(task_id)
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
        _check_kind(kind)
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
    return _operation_id(task_id) if kind == "operation" else task_id


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
        """The :class:`ImageCall` the task's answer is read against."""
        return ImageCall(
            "edit" if self.kind == "edit" else "generation",
            self.model or default_model,
            self.aspect_ratio,
            self.resolution,
            self.route_mode,
            self.n,
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
