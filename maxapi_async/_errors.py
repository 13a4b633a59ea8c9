"""Every exception maxapi_async raises, in one tree.

::

    MaxAPIError                      base of everything below
    ├── ConfigurationError           no API key, a bad base URL, bad client options
    ├── ClientClosedError            the client was used after aclose()
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
    ├── ResponseError                a 2xx answer that is not what the endpoint returns
    ├── APIConnectionError           the connection failed or broke
    └── APITimeoutError              a deadline passed (also the builtin TimeoutError)

Each :class:`APIError` carries the HTTP ``status``, the service's error ``code``,
its ``message``, the ``request_id`` the service logged the call under, and the
parsed ``body`` (a dict, or the raw text when the body was not JSON).

Nothing in this module performs I/O; the messages never contain the API key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ClientClosedError",
    "ConfigurationError",
    "ConflictError",
    "InsufficientCreditsError",
    "InvalidRequestError",
    "MaxAPIError",
    "MaxAPIWarning",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "ResponseError",
    "ServerError",
]


class MaxAPIWarning(UserWarning):
    """A request will work, but not the way its arguments suggest."""


class MaxAPIError(Exception):
    """Base class of every error raised by maxapi_async."""


class ConfigurationError(MaxAPIError):
    """The client cannot be set up as asked (no API key, a bad base URL, ...)."""


class ClientClosedError(MaxAPIError, RuntimeError):
    """The client was used after :meth:`AsyncMaxAPI.aclose`."""


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
    """A 2xx answer that could not be understood (not JSON, or not the expected shape)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        request_id: str | None = None,
        body: object = None,
    ) -> None:
        self.message = message
        self.status = status
        self.request_id = request_id
        self.body = body
        super().__init__(message)

    def __str__(self) -> str:
        extra = [f"HTTP {self.status}"] if self.status is not None else []
        if self.request_id:
            extra.append(f"request_id={self.request_id}")
        return f"{self.message} ({', '.join(extra)})" if extra else self.message


class APIConnectionError(MaxAPIError):
    """The connection could not be made or broke before the answer was read."""


class APITimeoutError(APIConnectionError, TimeoutError):
    """A connect, read or whole-call deadline passed."""
