"""Reading task objects: every variant of a poll answer ``WIRE.md`` lists, into a snapshot.

:func:`parse_task` reads the OpenAI-compatible task object (an envelope or not, three id keys,
any letter case of some forty status words, three places for the assets, three shapes of
failure detail) and :func:`parse_operation` Google's operation; both return a
:class:`~maxapi_async._protocol.tasks.TaskSnapshot` and raise
:class:`~maxapi_async.ResponseError` for anything malformed. :func:`task_failed_error` turns a
failed snapshot into the error the caller sees. No I/O.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from collections.abc import Mapping
from typing import Any

from .calls import check_text, error_from_json
from .convert import structure
from .errors import InvalidRequestError, ResponseError, TaskFailedError
from .openai_answer import ImageData
from .tasks import (
    TaskFailure,
    TaskKind,
    TaskSnapshot,
    TaskState,
    check_kind,
    classify_status,
    operation_id,
    status_reason,
)

__all__ = ["parse_operation", "parse_task", "task_failed_error"]


def _fail(message: str, obj: Any, request_id: str | None) -> ResponseError:
    return ResponseError(message, request_id=request_id, body=obj)


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
        reason = status_reason(status)
    if message is None:
        message = f"the task failed (status {status!r}) with no reason given"
    return TaskFailure(reason=reason, message=message, code=code)


def _has_failure_detail(task: dict[str, Any]) -> bool:
    return any(task.get(key) for key in _FAILURE_KEYS)


def parse_task(obj: Any, *, kind: TaskKind, request_id: str | None = None) -> TaskSnapshot:
    """Read a task object (a submit answer or a poll answer) into a :class:`TaskSnapshot`.

    ``kind`` is the endpoint family the task came from; ``"operation"``
    delegates to :func:`parse_operation`. Raises :class:`ResponseError` for
    anything malformed, and the typed :class:`APIError` for an envelope whose
    nonzero ``code`` is an HTTP status (see :func:`_unwrap`).
    """
    check_kind(kind)
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
        operation_id(name.strip()) if isinstance(name, str) else name, obj, request_id, "operation"
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
