"""The error bodies of the fake's three route families, and the error its route handlers raise.

* :func:`openai_error`: ``{"error": {"message", "type", "param", "code"}}`` (``/v1`` routes);
* :func:`google_error`: ``{"error": {"code", "message", "status", "details"}}`` (the
  Gemini-native routes, see :func:`is_native`);
* :func:`platform_error`: ``{"code", "msg"}`` (the task platform; only for scripted faults).

A route handler raises :class:`ApiError` (usually through :func:`bad`); the middleware renders
it with :func:`error_body`, in the style of the route the request went to.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, Final

__all__ = [
    "ApiError",
    "bad",
    "error_body",
    "google_error",
    "is_native",
    "openai_error",
    "platform_error",
    "reason_phrase",
]

_GRPC_STATUS: Final[Mapping[int, str]] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    402: "FAILED_PRECONDITION",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "UNIMPLEMENTED",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    422: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

_OPENAI_TYPE: Final[Mapping[int, str]] = {
    402: "insufficient_quota",
    403: "permission_error",
    429: "rate_limit_error",
}


def reason_phrase(status: int) -> str:
    """The HTTP reason phrase of ``status`` (``"HTTP 599"`` for a status Python does not know)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


def openai_error(
    status: int,
    message: str | None = None,
    code: str | None = None,
    *,
    type: str | None = None,  # the wire field is called "type"
    param: str | None = None,
) -> dict[str, Any]:
    """An OpenAI-style error body: ``{"error": {"message", "type", "param", "code"}}``.

    ``message`` defaults to the status's reason phrase; ``type`` to ``insufficient_quota`` (402),
    ``permission_error`` (403), ``rate_limit_error`` (429), ``server_error`` (5xx) or
    ``invalid_request_error``; ``param`` and ``code`` to ``None``.
    """
    if type is None:
        type = "server_error" if status >= 500 else _OPENAI_TYPE.get(status, "invalid_request_error")
    return {
        "error": {
            "message": message if message is not None else reason_phrase(status),
            "type": type,
            "param": param,
            "code": code,
        }
    }


def google_error(
    status: int,
    message: str | None = None,
    grpc_status: str | None = None,
    *,
    details: list[Any] | None = None,
) -> dict[str, Any]:
    """A Google-style error body: ``{"error": {"code", "message", "status", "details"}}``.

    ``message`` defaults to the reason phrase; ``grpc_status`` to the canonical word for the
    HTTP status (429 -> ``RESOURCE_EXHAUSTED``, 401 -> ``UNAUTHENTICATED``, unknown ->
    ``UNKNOWN``); ``details`` to ``[]``.
    """
    return {
        "error": {
            "code": status,
            "message": message if message is not None else reason_phrase(status),
            "status": grpc_status or _GRPC_STATUS.get(status, "UNKNOWN"),
            "details": list(details) if details is not None else [],
        }
    }


def platform_error(code: int, msg: str | None = None) -> dict[str, Any]:
    """A task-platform error body: ``{"code": 402, "msg": "..."}`` (``msg`` defaults to the
    reason phrase of ``code`` read as an HTTP status)."""
    return {"code": code, "msg": msg if msg is not None else reason_phrase(code)}


class ApiError(Exception):
    """A 4xx the handlers raise; the middleware renders it in the route's style."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.headers = dict(headers or {})


def bad(param: str | None, message: str, code: str = "invalid_value") -> ApiError:
    """A 400 about the request field ``param`` (``None``: the request as a whole)."""
    return ApiError(400, message, param=param, code=code)


def is_native(path: str) -> bool:
    """Whether ``path`` is on the Gemini-native surface (Google auth and error bodies)."""
    return path.startswith(("/v1beta/", "/v1/models/", "/v1/operations/")) or path == "/v1beta"


def error_body(
    path: str,
    status: int,
    message: str,
    param: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    """The error body a request to ``path`` gets: Google's shape on the native surface, else OpenAI's.

    On the native surface a ``code`` (``model_not_found``...) travels as the ``reason`` of an
    ``ErrorInfo`` detail, the way Google's errors carry a machine-readable reason.
    """
    if is_native(path):
        details = [{"@type": _ERROR_INFO, "reason": code, "domain": "maxapi.dev"}] if code else []
        return google_error(status, message, details=details)
    return openai_error(status, message, code, param=param)


_ERROR_INFO: Final = "type.googleapis.com/google.rpc.ErrorInfo"
