"""Every exception maxapi_async raises, in one tree.

::

    MaxAPIError                      base of everything below
    ├── ConfigurationError           no API key, a bad base URL, bad client options
    ├── ClientClosedError            the client was used after aclose(), or it cut a call short
    ├── RunningLoopError             the blocking MaxAPI was called inside a running loop
    ├── StoreError                   a batch's store (its Redis, its journal) failed: the batch stops
    │   └── JournalError             a batch journal cannot be read or written (``path``)
    │       └── JournalLockedError   another batch holds the journal (``pid`` names it)
    ├── InvalidRequestError          bad input caught before any request (also ValueError)
    ├── APIError                     the service answered with a non-2xx status
    │   ├── BadRequestError          400, 422: the service rejected the request
    │   ├── AuthenticationError      401: the API key is wrong or revoked
    │   ├── InsufficientCreditsError 402: top up the account
    │   ├── PermissionDeniedError    403: the key may not use this model or route
    │   ├── NotFoundError            404: unknown task id or model
    │   ├── ConflictError            408, 409: retry later
    │   ├── RateLimitError           429: slow down (see ``retry_after``)
    │   └── ServerError              5xx: the service failed; retrying is usually safe
    ├── BlockedError                 a Gemini answer without the image asked for, and why
    ├── TaskFailedError              a queued task ended in failure (``reason`` says why)
    ├── ResponseError                a 2xx answer that is not what the endpoint returns
    │   ├── TaskProtocolError        poll answers that contradict each other
    │   ├── ResponseTooLargeError    an answer or download above the client's size cap
    │   └── AssetTypeError           an asset (downloaded or inline) is not the image it claims
    └── APIConnectionError           the connection failed or broke (``sent`` says when)
        └── APITimeoutError          a deadline passed (also the builtin TimeoutError)
            └── TaskTimeoutError     stopped waiting for a task; ``handle`` resumes it

Each :class:`APIError` carries the HTTP ``status`` (also as ``status_code``, the OpenAI
SDK's name), the service's error ``code`` (a string such as ``"rate_limited"``),
its ``message``, the ``request_id`` the service logged the call under, and the
parsed ``body`` (a dict, or the raw text when the body was not JSON).

A submission (a POST that starts a generation) whose outcome is unknown is never
repeated, and its error says so plainly: "the call may have been charged". That is
an :class:`APIConnectionError` with ``sent=True`` when the connection broke after the
request went out, an :class:`APITimeoutError` when no answer came in time, or a
:class:`ResponseError` when the service answered 2xx but the answer could not be
read. All three carry ``idempotency_key``, the ``Idempotency-Key`` header the
submission was sent with, to name it to MaxAPI's support.

A failed task is not an :class:`APIError`: every HTTP exchange succeeded and the
failure is the task's outcome. A timed-out wait is not a failure either: the task
runs on at the service, so :class:`TaskTimeoutError` carries the handle.

Nothing in this module performs I/O; the messages never contain the API key.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

__all__ = [
    "PERMANENT_REASONS",
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AssetTypeError",
    "AuthenticationError",
    "BadRequestError",
    "BlockedError",
    "ClientClosedError",
    "ConfigurationError",
    "ConflictError",
    "InsufficientCreditsError",
    "InvalidRequestError",
    "JournalError",
    "JournalLockedError",
    "MaxAPIError",
    "MaxAPIWarning",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "ResponseError",
    "ResponseTooLargeError",
    "RunningLoopError",
    "ServerError",
    "StoreError",
    "TaskFailedError",
    "TaskProtocolError",
    "TaskTimeoutError",
]


class MaxAPIWarning(UserWarning):
    """A request will work, but not the way its arguments suggest."""


class MaxAPIError(Exception):
    """Base class of every error raised by maxapi_async."""


class ConfigurationError(MaxAPIError):
    """The client cannot be set up as asked (no API key, a bad base URL, ...)."""


class ClientClosedError(MaxAPIError, RuntimeError):
    """The client was used after :meth:`AsyncMaxAPI.aclose`, or ``aclose()`` cut a call or a wait short."""


class RunningLoopError(MaxAPIError, RuntimeError):
    """The blocking :class:`MaxAPI` was called from a thread that runs an event loop.

    Blocking there would freeze the loop: use :class:`AsyncMaxAPI` with ``await``
    instead (Jupyter cells accept top-level ``await``).
    """


class StoreError(MaxAPIError):
    """Where a batch keeps its state cannot be reached, or holds something unreadable.

    From a :class:`~maxapi_async.RedisStore` (or a :class:`~maxapi_async.RedisPollLimiter`),
    ``__cause__`` is redis-py's error. A batch that meets it stops, as it does when its journal
    cannot be written (:class:`JournalError`, a kind of this): without its store it could
    not resume without paying twice. The message names the item, and its task when one was
    already submitted, so that task is never lost.
    """


class JournalError(StoreError):
    """A batch journal cannot be read or written: ``path`` names the file, ``__cause__`` the OS error.

    Raised when the batch opens its journal (before any request), or when a record
    cannot be written while it runs; the batch then stops, since it could no longer
    resume without paying twice. The message names the item, and its task when one
    was already submitted, so that task is never lost.
    """

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(message)


class JournalLockedError(JournalError):
    """A batch journal is in use by another batch, in this process or another one.

    A journal has one writer: the batch that runs with it holds an OS advisory
    lock on it until it ends. A second batch on the same file stops here, before
    any request, so no item is submitted (and paid for) twice. ``path`` is the
    journal file and ``pid`` the process holding it (``None`` when unknown).
    """

    def __init__(self, path: str, pid: int | None) -> None:
        if pid is None:
            holder = "another batch"
        elif pid == os.getpid():
            holder = f"another batch in this process (pid {pid})"
        else:
            holder = f"another batch, in process {pid}"
        advice = "wait for it to end, or give this batch its own journal"
        super().__init__(path, f"journal {path} is in use by {holder}: {advice}")
        self.pid = pid


class InvalidRequestError(MaxAPIError, ValueError):
    """An argument is invalid; raised before anything is sent.

    ``argument`` names the offending argument and ``allowed`` (when there is a
    fixed set) lists the values it accepts.
    """

    def __init__(self, argument: str, message: str, *, allowed: Sequence[object] = ()) -> None:
        self.argument = argument
        self.allowed = tuple(allowed)
        text = f"{argument}: {message}"
        if self.allowed:
            text += " (allowed: " + ", ".join(repr(a) for a in self.allowed) + ")"
        super().__init__(text)


class APIError(MaxAPIError):
    """The service answered with an error status."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str | int | None = None,
        request_id: str | None = None,
        body: dict[str, Any] | str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.message = message
        self.status = status
        self.code = code
        self.request_id = request_id
        self.body = body
        self.retry_after = retry_after
        super().__init__(message)

    @property
    def status_code(self) -> int:
        """The HTTP status, as the OpenAI SDK names it (the same as :attr:`status`)."""
        return self.status

    def __str__(self) -> str:
        parts = [f"HTTP {self.status}"]
        if self.code is not None:
            parts.append(f"code={self.code!r}")
        if self.request_id:
            parts.append(f"request_id={self.request_id}")
        return f"{self.message} ({', '.join(parts)})"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status}, code={self.code!r}, "
            f"message={self.message!r}, request_id={self.request_id!r})"
        )


class BadRequestError(APIError):
    """400 or 422: the service rejected the request's content."""


class AuthenticationError(APIError):
    """401: the API key is missing, wrong or revoked."""


class InsufficientCreditsError(APIError):
    """402: the account has not enough credits for this call."""


class PermissionDeniedError(APIError):
    """403: the key may not use this model, route or resource."""


class NotFoundError(APIError):
    """404: unknown task id, model or path."""


class ConflictError(APIError):
    """408 or 409: the service could not finish the request now; retry later."""


class RateLimitError(APIError):
    """429: too many requests; ``retry_after`` holds the service's hint in seconds."""


class ServerError(APIError):
    """5xx: the service failed. Failed calls are not charged."""


class ResponseError(MaxAPIError):
    """A 2xx answer that could not be understood (not JSON, or not the expected shape).

    ``idempotency_key`` is set when the answer was a submission's: the service
    accepted the call, so it may have been charged, and the client did not
    repeat it (the message says so). It is ``None`` for other requests.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        request_id: str | None = None,
        body: object = None,
        idempotency_key: str | None = None,
    ) -> None:
        self.message = message
        self.status = status
        self.request_id = request_id
        self.body = body
        self.idempotency_key = idempotency_key
        super().__init__(message)

    @property
    def status_code(self) -> int | None:
        """The HTTP status of the answer (as the OpenAI SDK names it), when there was one."""
        return self.status

    def __str__(self) -> str:
        extra = [f"HTTP {self.status}"] if self.status is not None else []
        if self.request_id:
            extra.append(f"request_id={self.request_id}")
        return f"{self.message} ({', '.join(extra)})" if extra else self.message


class ResponseTooLargeError(ResponseError):
    """An answer larger than the client accepts; it was not read into memory.

    ``limit`` is the cap in bytes (``max_response_bytes`` for API answers,
    ``max_download_bytes`` for asset downloads) and ``size`` the size the
    answer declared in ``Content-Length``, or the bytes received when the
    count passed the cap (``None`` when unknown).
    """

    def __init__(
        self,
        message: str,
        *,
        limit: int,
        size: int | None = None,
        status: int | None = None,
        request_id: str | None = None,
    ) -> None:
        self.limit = limit
        self.size = size
        super().__init__(message, status=status, request_id=request_id)


class AssetTypeError(ResponseError):
    """An asset's bytes (downloaded, or inline in an answer) are not the image type it
    claims, or no image at all.

    ``claimed`` is the type the asset's URL, the ``Content-Type`` header or the
    answer's ``mimeType`` named (``None`` when none named one), ``actual`` the type sniffed from the
    bytes (``None`` when they are not a PNG, JPEG, WebP or GIF image). Nothing
    is saved: a download to disk is removed, not left half checked.
    """

    def __init__(
        self,
        message: str,
        *,
        claimed: str | None,
        actual: str | None,
        status: int | None = None,
        request_id: str | None = None,
    ) -> None:
        self.claimed = claimed
        self.actual = actual
        super().__init__(message, status=status, request_id=request_id)


class APIConnectionError(MaxAPIError):
    """The connection could not be made or broke before the answer was read.

    ``sent`` is ``False`` when the request never left (refused, DNS, connect
    timeout, no free connection before the deadline): repeating it is safe
    even for a submission. When ``True`` the
    service may have received it, and a submission may have been charged:
    ``idempotency_key`` then names the submission (the ``Idempotency-Key``
    header it was sent with).
    """

    def __init__(self, message: str, *, sent: bool = True, idempotency_key: str | None = None) -> None:
        self.sent = sent
        self.idempotency_key = idempotency_key
        super().__init__(message)


class APITimeoutError(APIConnectionError, TimeoutError):
    """A connect, read or whole-call deadline passed."""


class BlockedError(MaxAPIError):
    """The model returned no image (or nothing at all) and said why.

    ``reason`` is the word the answer gave: a candidate's ``finishReason`` (``"IMAGE_SAFETY"``,
    ``"SAFETY"``, ``"PROHIBITED_CONTENT"``, ``"IMAGE_PROHIBITED_CONTENT"``, ``"NO_IMAGE"``,
    ``"IMAGE_OTHER"``, ...) or the prompt's ``promptFeedback.blockReason``. Two reasons are the
    client's own: ``"NO_CANDIDATES"`` (no candidates and no block reason) and ``"NO_IMAGE"``
    also when the model finished normally but sent no image where one was required.

    ``response`` is the parsed ``GenerateContentResponse`` (its ``.text`` often says more, and
    its ``.draft_parts`` hold any interim images), or the raw dict when it could not be parsed;
    ``request_id`` is the id the service logged the call under. Blocked calls are not charged.
    """

    def __init__(
        self,
        reason: str,
        message: str | None = None,
        *,
        request_id: str | None = None,
        response: Any = None,
    ) -> None:
        self.reason = reason
        self.message = message or f"the model returned no image ({reason})"
        self.request_id = request_id
        self.response = response
        super().__init__(self.message)

    def __str__(self) -> str:
        extra = f"reason={self.reason}"
        if self.request_id:
            extra += f", request_id={self.request_id}"
        return f"{self.message} ({extra})"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(reason={self.reason!r}, message={self.message!r}, "
            f"request_id={self.request_id!r})"
        )


#: Failure reasons that the same request meets again: resubmitting is pointless.
PERMANENT_REASONS: frozenset[str] = frozenset(
    {"CONTENT_MODERATION", "INVALID_PARAMETERS", "INSUFFICIENT_POINTS"}
)


class TaskFailedError(MaxAPIError):
    """A queued task ended in failure.

    * ``task_id``, ``kind`` (``"generation"``, ``"edit"`` or ``"operation"``);
    * ``reason``: a normalised word when one is recognised (``"CONTENT_MODERATION"``,
      ``"INVALID_PARAMETERS"``, ``"INSUFFICIENT_POINTS"``, ``"TIMEOUT"``,
      ``"CANCELLED"``), else ``None``;
    * ``message`` and ``code``: what the service said, as sent;
    * ``status``: the task's status word as sent (``"FAILED"``, ``"timed_out"``...);
    * ``raw``: the whole task object, for fields this class does not name.

    ``retryable`` is ``False`` for the reasons a resubmission would meet again.
    Failed tasks are not charged.
    """

    def __init__(
        self,
        message: str,
        *,
        task_id: str,
        kind: str,
        reason: str | None = None,
        code: str | int | None = None,
        status: str | None = None,
        request_id: str | None = None,
        raw: dict[str, Any] | None = None,
    ) -> None:
        self.message = message
        self.task_id = task_id
        self.kind = kind
        self.reason = reason
        self.code = code
        self.status = status
        self.request_id = request_id
        self.raw = raw if raw is not None else {}
        super().__init__(message)

    @property
    def retryable(self) -> bool:
        """Whether submitting the same request again may succeed."""
        return self.reason not in PERMANENT_REASONS

    def __str__(self) -> str:
        parts = [f"task {self.task_id}"]
        if self.reason is not None:
            parts.append(f"reason={self.reason}")
        if self.code is not None and self.code != self.reason:
            parts.append(f"code={self.code!r}")
        if self.request_id:
            parts.append(f"request_id={self.request_id}")
        return f"{self.message} ({', '.join(parts)})"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(task_id={self.task_id!r}, kind={self.kind!r}, "
            f"reason={self.reason!r}, message={self.message!r})"
        )


class TaskProtocolError(ResponseError):
    """Poll answers that cannot all be true (the task state machine refused one)."""


class TaskTimeoutError(APITimeoutError):
    """The caller's deadline passed while the task was still pending or running.

    The task is not cancelled: it may still finish (and be charged). ``handle``
    is the task handle, so ``await err.handle.wait()`` resumes waiting, and
    ``task_id`` identifies the task for a later resume.
    """

    def __init__(self, message: str, *, task_id: str, handle: object = None) -> None:
        self.task_id = task_id
        self.handle: Any = handle
        super().__init__(message)
