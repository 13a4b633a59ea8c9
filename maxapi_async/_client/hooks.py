"""Instrumentation hooks: count requests, retries, polls and finished tasks without patching.

Pass ``hooks=Hooks(on_request=..., ...)`` to :class:`~maxapi_async.AsyncMaxAPI`.
Each callback receives one small attrs event; callbacks run synchronously on the
event loop, so keep them cheap (increment a counter, observe a histogram). An
exception raised by a callback is logged and swallowed: metrics never break a
call.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

import attrs

from .._protocol.errors import ConfigurationError

__all__ = [
    "LOG_LEVELS",
    "Hooks",
    "PollEvent",
    "RequestEvent",
    "RetryEvent",
    "TaskDoneEvent",
    "log_from_environment",
    "log_to_stderr",
]

logger = logging.getLogger("maxapi_async")

#: What ``MAXAPI_LOG`` may say: ``debug`` logs every request, ``info`` retries and recoveries.
LOG_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO}


class _StderrHandler(logging.Handler):
    """Writes to ``sys.stderr`` as it is when a record arrives (a test or a CLI may swap it)."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter(f"{prefix}: %(levelname)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:
            self.handleError(record)


_handler: _StderrHandler | None = None


def log_to_stderr(level: int, prefix: str = "maxapi_async") -> None:
    """Log the ``maxapi_async`` logger's records from ``level`` up to stderr, one line each.

    One handler per process (a second call changes its level). The lines carry a method,
    a path, a status, timings and request ids: never a body, a header or the API key.
    """
    global _handler
    if _handler is None:
        _handler = _StderrHandler(prefix)
        logger.addHandler(_handler)
    _handler.setLevel(level)
    if logger.level == logging.NOTSET or logger.level > level:
        logger.setLevel(level)


def log_from_environment() -> None:
    """``MAXAPI_LOG=debug|info``: :func:`log_to_stderr` at that level (unset or empty: nothing)."""
    value = os.environ.get("MAXAPI_LOG", "").strip()
    if not value:
        return
    level = LOG_LEVELS.get(value.lower())
    if level is None:
        allowed = ", ".join(repr(name) for name in LOG_LEVELS)
        raise ConfigurationError(f"MAXAPI_LOG must be one of {allowed} (or unset), got {value!r}")
    log_to_stderr(level)


E = TypeVar("E")


@attrs.frozen
class RequestEvent:
    """One HTTP exchange with the API finished (any status), or failed on the wire.

    ``status`` is ``None`` when no answer arrived; ``attempt`` counts from 1;
    ``elapsed`` is in seconds. Bodies and credentials are never included.
    """

    method: str
    path: str
    status: int | None
    elapsed: float
    attempt: int
    request_id: str | None = None
    error: str | None = None


@attrs.frozen
class RetryEvent:
    """A request will be sent again after ``delay`` seconds, for ``reason``."""

    method: str
    path: str
    attempt: int
    delay: float
    reason: str


@attrs.frozen
class PollEvent:
    """A task handle read a poll answer: the task's state and progress after it."""

    task_id: str
    kind: str
    state: str
    progress: float | None


@attrs.frozen
class TaskDoneEvent:
    """A task handle resolved: ``error`` is ``None`` on success, else the exception's class name."""

    task_id: str
    kind: str
    error: str | None


def _safe(callback: Callable[[E], Any] | None, event: E) -> None:
    if callback is None:
        return
    try:
        callback(event)
    except Exception:
        logger.exception("a maxapi_async hook raised; ignoring it")


@attrs.frozen
class Hooks:
    """Optional callbacks, each taking one event (all default to ``None``).

    * ``on_request(RequestEvent)``: after every request to the API, retries included;
    * ``on_retry(RetryEvent)``: before a request is repeated;
    * ``on_poll(PollEvent)``: after every task poll answer;
    * ``on_task_done(TaskDoneEvent)``: when a task handle resolves or fails.
    """

    on_request: Callable[[RequestEvent], Any] | None = None
    on_retry: Callable[[RetryEvent], Any] | None = None
    on_poll: Callable[[PollEvent], Any] | None = None
    on_task_done: Callable[[TaskDoneEvent], Any] | None = None

    def _request(self, event: RequestEvent) -> None:
        _safe(self.on_request, event)

    def _retry(self, event: RetryEvent) -> None:
        _safe(self.on_retry, event)

    def _poll(self, event: PollEvent) -> None:
        _safe(self.on_poll, event)

    def _task_done(self, event: TaskDoneEvent) -> None:
        _safe(self.on_task_done, event)


def log_attempt(
    hooks: Hooks,
    method: str,
    path: str,
    status: int | None,
    started: float,
    attempt: int,
    request_id: str | None,
    error: Exception | None,
    api: bool = True,
) -> None:
    """One DEBUG line per attempt (never a body, a header or a query), and ``on_request``
    (for API requests: ``api`` is false for asset downloads). ``started``: ``time.monotonic()``."""
    debug = logger.isEnabledFor(logging.DEBUG)
    notify = api and hooks.on_request is not None
    if not notify and not debug:
        return
    elapsed = time.monotonic() - started
    if debug:
        status_text = status if status is not None else type(error).__name__
        logger.debug(
            "%s %s -> %s in %.3f s (attempt %d, request id %s)",
            method, path, status_text, elapsed, attempt, request_id,
        )  # fmt: skip
    if notify:
        error_name = type(error).__name__ if error is not None else None
        hooks._request(RequestEvent(method, path, status, elapsed, attempt, request_id, error_name))
