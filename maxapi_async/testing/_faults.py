"""Scripted failures: :class:`Fault`, the queue of pending faults, and how a fault breaks an answer.

A test queues faults (:class:`FaultScript`); the middleware takes the first one that matches a
request, by origin, method, path and any predicate over the recorded request
(:meth:`FaultScript.take`) and then answers with :func:`fault_response`, drops the
connection (:func:`drop_connection`) or, for an ``after_handler`` fault, lets the route answer
and breaks that answer (:func:`break_answer`).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Mapping
from typing import Any, Literal

import attrs
from aiohttp import hdrs, web

from ._errors import error_body, reason_phrase
from ._recording import Origin, RecordedRequest

__all__ = [
    "AfterHandler",
    "Fault",
    "FaultScript",
    "FaultSource",
    "break_answer",
    "drop_connection",
    "fault_response",
]

#: How a :class:`Fault` breaks an answer after the route's handler ran.
AfterHandler = Literal["reset", "truncate", "abort_mid_body"]
#: Called for every request no scripted fault matches: ``(origin, method, path)`` -> a fault or None.
FaultSource = Callable[[Origin, str, str], "Fault | None"]


@attrs.frozen
class Fault:
    """A scripted answer for the next matching request(s).

    Defaults: ``status=None``, ``body=None``, ``headers={}``, ``delay=0.0``, ``times=1``,
    ``skip=0``, ``path=None``, ``method=None``, ``match=None``, ``origin="api"``,
    ``reset=False``, ``after_handler=None``.

    Which requests it applies to:

    * ``origin``: ``"api"`` or ``"cdn"``.
    * ``path`` (prefix match) and ``method``: ``None`` = any.
    * ``match``: a predicate over the :class:`RecordedRequest` (method, path, query, headers,
      ``json`` body, ``form``, ``files``, ``prompt``): the fault applies only where it returns
      true. It runs on the fake's event loop thread, for each request the other filters let
      through; it must not block.
    * ``skip``: let this many matching requests through untouched first. "The third request
      whose prompt mentions a cube" is
      ``Fault(status=500, match=lambda r: "cube" in (r.prompt or ""), skip=2)``.
    * ``times``: how many matching requests (after the skipped ones) it applies to;
      ``None`` = until cleared.

    What it does:

    * ``delay``: seconds to wait before doing anything else.
    * ``status``: answer with this status. ``None`` with ``body=None`` means "answer normally"
      (a pure delay); ``None`` with a body means 500.
    * ``body``: bytes are sent as they are, ``str`` as UTF-8 text, anything else JSON-encoded.
      ``None`` with a status gives an error body in the route's own style (OpenAI on ``/v1``,
      Google on ``/v1beta``, plain text on the CDN).
    * ``headers``: extra answer headers (e.g. ``{"Retry-After": "2"}``); a ``Content-Type``
      here overrides the guessed one.
    * ``reset``: drop the connection without answering (the client sees a disconnect). Note
      that aiohttp's client retries an idempotent request (GET, HEAD, ...) once after a
      disconnect, so use ``times=2`` to make a download fail.
    * ``after_handler``: run the route's handler first (a queued submission creates its task,
      an asset is served), then break its answer: ``"reset"`` drops the connection,
      ``"truncate"`` answers with the first half of the body (valid HTTP, unreadable JSON),
      ``"abort_mid_body"`` announces the full ``Content-Length``, sends half and closes the
      connection. ``status``, ``body`` and ``reset`` are then ignored; ``delay`` still comes first.
    """

    status: int | None = None
    body: bytes | str | Mapping[str, Any] | list[Any] | None = None
    headers: Mapping[str, str] = attrs.field(factory=dict)
    delay: float = 0.0
    times: int | None = 1
    path: str | None = None
    method: str | None = None
    origin: Origin = "api"
    reset: bool = False
    after_handler: AfterHandler | None = None
    match: Callable[[RecordedRequest], bool] | None = None
    skip: int = 0

    def matches(self, origin: Origin, method: str, path: str, record: RecordedRequest | None = None) -> bool:
        """Whether this fault applies to a request (``match`` is asked only when ``record`` is given)."""
        if origin != self.origin:
            return False
        if self.method is not None and self.method.upper() != method.upper():
            return False
        if self.path is not None and not path.startswith(self.path):
            return False
        return self.match is None or (record is not None and bool(self.match(record)))


@attrs.define
class _FaultSlot:
    fault: Fault
    remaining: int | None
    skip: int


@attrs.define
class FaultScript:
    """The pending faults, tried in the order they were added; each is used ``times`` times.

    Safe to use from any thread: a test thread adds faults while the fake's loop takes them.
    """

    _pending: list[_FaultSlot] = attrs.field(factory=list, init=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False)

    def add(self, fault: Fault) -> None:
        """Queue ``fault`` (``times`` must be at least 1, or ``None`` for "until cleared")."""
        if fault.times is not None and fault.times < 1:
            raise ValueError("Fault.times must be >= 1 or None")
        if fault.skip < 0:
            raise ValueError("Fault.skip must be >= 0")
        with self._lock:
            self._pending.append(_FaultSlot(fault, fault.times, fault.skip))

    def take(
        self, origin: Origin, method: str, path: str, record: RecordedRequest | None = None
    ) -> Fault | None:
        """The first pending fault matching a request, counting one use of it; or ``None``.

        A matching fault still skipping requests counts the request as skipped and lets a later
        fault have it.
        """
        with self._lock:
            for slot in list(self._pending):
                if not slot.fault.matches(origin, method, path, record):
                    continue
                if slot.skip > 0:
                    slot.skip -= 1
                    continue
                if slot.remaining is not None:
                    slot.remaining -= 1
                    if slot.remaining <= 0:
                        self._pending.remove(slot)
                return slot.fault
        return None

    def pending(self) -> list[Fault]:
        """The faults still queued, in order."""
        with self._lock:
            return [slot.fault for slot in self._pending]

    def clear(self) -> None:
        """Drop every pending fault."""
        with self._lock:
            self._pending.clear()


def fault_response(origin: Origin, path: str, fault: Fault) -> web.Response:
    """The answer a fault with a ``status`` or ``body`` gives instead of the route's."""
    status = fault.status if fault.status is not None else 500
    body = fault.body
    content_type: str
    payload: bytes
    if body is None:
        if origin == "cdn":
            payload, content_type = reason_phrase(status).encode(), "text/plain"
        else:
            payload = json.dumps(error_body(path, status, reason_phrase(status))).encode()
            content_type = "application/json"
    elif isinstance(body, bytes):
        payload = body
        try:
            json.loads(body)
            content_type = "application/json"
        except ValueError:
            content_type = "text/plain"
    elif isinstance(body, str):
        payload, content_type = body.encode(), "text/plain; charset=utf-8"
    else:
        payload, content_type = json.dumps(body).encode(), "application/json"
    response = web.Response(status=status, body=payload)
    response.headers[hdrs.CONTENT_TYPE] = content_type
    response.headers.update(fault.headers)
    return response


async def drop_connection(request: web.Request) -> None:
    """Abort the connection without answering; never returns (the handler is cancelled)."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    # connection_lost cancels this handler (handler_cancellation=True); the timeout is a
    # guard so a handler can never hang the server's shutdown.
    await asyncio.sleep(5)
    raise ConnectionResetError("connection dropped by a scripted fault")


async def break_answer(
    request: web.Request, response: web.StreamResponse, how: AfterHandler
) -> web.StreamResponse:
    """Break an answer the handler produced (see :attr:`Fault.after_handler`)."""
    body = response.body if isinstance(response, web.Response) else None
    if how == "reset" or not isinstance(body, bytes):
        await drop_connection(request)
    assert isinstance(response, web.Response)
    assert isinstance(body, bytes)
    if how == "truncate":
        cut = web.Response(status=response.status, body=body[: len(body) // 2])
        cut.content_type = response.content_type
        return cut
    stream = web.StreamResponse(status=response.status)
    stream.content_type = response.content_type
    stream.content_length = len(body)
    await stream.prepare(request)
    await stream.write(body[: len(body) // 2])
    if request.transport is not None:
        request.transport.close()  # a FIN after the partial body, unlike reset's abort
    # connection_lost cancels this handler (handler_cancellation=True); the timeout guards
    # the server's shutdown.
    await asyncio.sleep(5)
    raise ConnectionResetError("answer cut mid-body by a scripted fault")
