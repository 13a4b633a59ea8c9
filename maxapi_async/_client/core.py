"""The session core: one request spec sent under the retry policy, tasks submitted and polled.

Resources (:mod:`.resources`), task handles (:mod:`.handles`), the answer readers
(:mod:`.results`) and batches use a :class:`Core` through these package-internal methods,
and nothing else of it:

* :meth:`Core.deadline`: a call's :class:`Deadline` (its own ``timeout``, seconds or a
  :class:`Timeouts`, else the client's);
* :meth:`Core.send`: a request spec sent under the retry policy, its 2xx answer returned
  (a POST's ``Idempotency-Key`` travels beside the spec, the same for every attempt);
* :meth:`Core.call`: a synchronous call: sent with its ``Idempotency-Key``, its answer read
  (in a worker thread when big) and finished into the caller's result;
* :meth:`Core.submit`: a queued submission, with its key: the task's first snapshot and ref;
* :meth:`Core.poll`: one poll of a task, within the client-wide poll budget;
* :meth:`Core.start_poller` and :attr:`Core.closing`: the poll loops (and batches) the
  client stops when it closes;
* :meth:`Core.charge`: a successful call entered in the usage ledger.

The core imports nothing of the resources, handles or batches: they import it. It joins the
pure protocol (what an answer means, when to retry) to the one transport (how bytes move).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import os
import time
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import attrs
from yarl import URL

from .._protocol import calls, catalog
from .._protocol.calls import ImageCall, RequestSpec
from .._protocol.convert import Body, decode_json
from .._protocol.errors import APIConnectionError, APIError, MaxAPIError, ResponseError
from .._protocol.images import mime_type_from_url
from .._protocol.policy import (
    FailedAfterSend,
    FailedBeforeSend,
    Outcome,
    PollPolicy,
    RetryPolicy,
    StatusOutcome,
)
from .._protocol.pricing import PriceTable, Usage
from .._protocol.task_objects import parse_task
from .._protocol.tasks import TaskKind, TaskRef, TaskSnapshot, poll_path
from .._protocol.urls import check_asset_url
from .._transport.bodies import RawResponse
from .._transport.files import INLINE_IO_LIMIT, in_thread
from .._transport.http import Transport
from .._transport.timeouts import Timeouts
from .hooks import Hooks, RetryEvent, log_attempt
from .limits import Deadline, PollGate, PollLimiter

__all__ = ["Core", "check_call_timeout", "new_idempotency_key"]

logger = logging.getLogger("maxapi_async")

R = TypeVar("R")
T = TypeVar("T")


#: What one attempt of a request gives: the answer, or why there is none (see Transport.send).
_Attempt = RawResponse | APIConnectionError | ResponseError


def check_call_timeout(timeout: object) -> float | Timeouts | None:
    """A per-call ``timeout``: ``None`` (the client's), a positive number of seconds,
    ``math.inf`` (no limit) or a :class:`Timeouts` (the call's own whole-call, connect and
    read limits); anything else raises :class:`InvalidRequestError`."""
    if isinstance(timeout, Timeouts):
        return timeout
    return calls.check_timeout("timeout", timeout)


def new_idempotency_key() -> str:
    """A fresh ``Idempotency-Key`` value: 128 random bits, hex (32 characters)."""
    return os.urandom(16).hex()


class Core:
    """The session core of one client: its transport, retry and poll policies, pollers, ledger.

    Made by :class:`~maxapi_async.AsyncMaxAPI` from its checked arguments; its attributes
    are those settings (read, never changed). See the module docstring for the methods
    the rest of the package uses. It is also the asset fetcher of the results it makes
    (``ImageAsset.read()`` downloads through it, never with the API key).
    """

    def __init__(
        self,
        transport: Transport,
        *,
        base_url: URL,
        route_mode: str | None,
        timeouts: Timeouts,
        retry_policy: RetryPolicy,
        poll_policy: PollPolicy,
        max_polls_per_second: float,
        task_timeout: float | None,
        wait_by_polling: bool,
        hooks: Hooks,
        prices: PriceTable,
        poll_limiter: PollLimiter | None = None,
        parent: Core | None = None,
    ) -> None:
        self.transport = transport
        self.base_url = base_url
        self.route_mode = route_mode
        self.timeouts = timeouts
        self.retry_policy = retry_policy
        self.poll_policy = poll_policy
        self.task_timeout = task_timeout
        self.wait_by_polling = wait_by_polling
        self.hooks = hooks
        self.prices = prices
        self.closing = False  # set by close() before it stops the poll loops
        self._pollers: set[asyncio.Task[Any]] = set()
        # Cores made from this one (``with_options``): closed with it, since they share its pool.
        self._children: weakref.WeakSet[Core] = weakref.WeakSet()
        if parent is None:
            #: The running ledger of the client's calls (estimated credits by route).
            self.usage = Usage()
            self._gate = PollGate(max_polls_per_second)
        else:  # one connection pool, one account: one ledger and one poll budget
            self.usage, self._gate = parent.usage, parent._gate
            parent._children.add(self)
        self._poll_limiter = poll_limiter
        self._poll_rate = max_polls_per_second

    def __repr__(self) -> str:
        return f"<Core {self.transport!r}>"

    def deadline(self, timeout: float | Timeouts | None) -> Deadline:
        """The deadline of a call made now: its own checked ``timeout`` (seconds, or a
        :class:`Timeouts` whose ``total`` ``None`` means no limit), else the client's."""
        if isinstance(timeout, Timeouts):
            return Deadline(math.inf if timeout.total is None else timeout.total, timeout)
        return Deadline(timeout if timeout is not None else self.timeouts.total)

    # -- requests, with retries ------------------------------------------------

    async def send(
        self, spec: RequestSpec, *, deadline: Deadline, idempotency_key: str | None = None
    ) -> tuple[RawResponse, str | None]:
        """Send ``spec`` under the retry policy; a non-2xx final answer raises its typed error.

        Returns the 2xx answer and its request id. Every attempt carries ``idempotency_key``
        (a new one for a POST without). The first attempt is made directly: most calls succeed
        at once and pay for nothing of the retry loop, which takes over from a failed one.
        """
        if idempotency_key is None and spec.method == "POST":
            idempotency_key = new_idempotency_key()
        started = time.monotonic()
        remaining = deadline.left(spec.method, spec.path)
        result = await self.transport.send(
            spec, timeout=remaining, limits=deadline.limits, idempotency_key=idempotency_key
        )
        return self._answered(spec, started, result) or await self._retry(
            spec, deadline, started, result, idempotency_key
        )

    async def call(
        self,
        spec: RequestSpec,
        *,
        idempotency_key: str,
        deadline: Deadline,
        read: Callable[..., R],
        finish: Callable[[Core, R, ImageCall, str | None], T],
    ) -> T:
        """A synchronous call: ``spec`` sent under ``idempotency_key`` and the retry policy, its
        2xx answer ``read`` (in a worker thread when big) and the result ``finish``-ed here.

        ``read(body, status, request_id, call=spec.call, fetcher=core)`` and ``finish(core,
        answer, spec.call, request_id)`` are the endpoint's functions, not made per call.

        A failure on the wire counts as a failed call; an answer that cannot be read says
        the call may have been charged, naming its ``Idempotency-Key``. A big body is handed
        to ``read`` as a :class:`~maxapi_async._protocol.convert.Body`, so it lets go of megabytes of
        JSON once parsed.
        """
        try:
            try:
                raw, request_id = await self.send(spec, deadline=deadline, idempotency_key=idempotency_key)
            except MaxAPIError:
                self.usage.failed_calls += 1
                raise
            if len(raw.body) <= INLINE_IO_LIMIT:
                answer = read(raw.body, raw.status, request_id, call=spec.call, fetcher=self)
            else:
                body = Body(raw.body)
                raw.body = b""  # the Body holds the only reference now: see Body
                reading = functools.partial(read, body, raw.status, request_id, call=spec.call, fetcher=self)
                answer = await in_thread(reading)
        except ResponseError as exc:
            calls.unreadable_submission_answer(exc, spec, idempotency_key)
            raise
        return finish(self, answer, spec.call, request_id)

    def charge(self, call: ImageCall, images: int) -> float | None:
        """Record a successful call in the usage ledger; returns its estimated cost."""
        cost = self.prices.estimate(call.model, call.route_mode, images)
        self.usage.record(call.route_mode, images, cost)
        return cost

    # -- queued tasks ----------------------------------------------------------------

    async def submit(
        self, spec: RequestSpec, kind: TaskKind, *, idempotency_key: str, deadline: Deadline
    ) -> tuple[TaskSnapshot, TaskRef, str | None]:
        """Submit a queued task under ``idempotency_key`` (kept on the :class:`TaskRef`, so a
        resumed run can name it; a batch resuming an interrupted submission passes the
        journal's key to repeat it safely). Returns its first snapshot, ref and request id."""
        submitted_at = time.time()
        try:
            raw, request_id = await self.send(spec, deadline=deadline, idempotency_key=idempotency_key)
            obj = await self._json(raw, request_id, "task")
            snapshot = parse_task(obj, kind=kind, request_id=request_id)
        except ResponseError as exc:
            calls.unreadable_submission_answer(exc, spec, idempotency_key)
            raise
        snapshot = _with_retry_after(snapshot, raw)
        call = spec.call
        ref = TaskRef(
            id=snapshot.id,
            kind=kind,
            model=call.model,
            aspect_ratio=call.aspect_ratio,
            resolution=call.resolution,
            poll_url=snapshot.poll_url,
            created=snapshot.created,
            submitted_at=submitted_at,
            idempotency_key=idempotency_key,
            route_mode=call.route_mode,
            n=call.n,
        )
        return snapshot, ref, request_id

    async def poll(self, ref: TaskRef) -> tuple[TaskSnapshot, str | None]:
        """Poll ``ref``'s task once, when the client-wide poll budget allows."""
        if self._poll_limiter is None:
            await self._gate.wait()
        else:
            await self._poll_limiter.wait(self._poll_rate)
        spec = _poll_spec(ref, self.base_url)
        raw, request_id = await self.send(spec, deadline=self.deadline(None))
        obj = await self._json(raw, request_id, "task")
        snapshot = parse_task(obj, kind=ref.kind, request_id=request_id)
        return _with_retry_after(snapshot, raw), request_id

    def start_poller(self, coro: Coroutine[Any, Any, R]) -> asyncio.Task[R]:
        """Run ``coro`` (a poll loop, a batch) as a task that :meth:`close` cancels."""
        try:
            self.transport._get_session()  # a closed client refuses before a task is made
        except BaseException:
            coro.close()  # never scheduled: close it, or it warns "was never awaited"
            raise
        task = asyncio.ensure_future(coro)
        self._pollers.add(task)
        task.add_done_callback(self._pollers.discard)
        return task

    async def close(self) -> None:
        """Stop every poll loop (those of the cores made from this one too), then close the
        transport (a transport sharing another's pool leaves the pool open)."""
        self.closing = True
        for child in list(self._children):
            await child.close()
        pollers = list(self._pollers)
        for poller in pollers:
            poller.cancel()
        if pollers:
            await asyncio.wait(pollers)
        await self.transport.aclose()

    async def offload(self, size: int, func: Callable[..., R], *args: Any) -> R:
        """``func(*args)``, in a worker thread when ``size`` (bytes of work) is big."""
        if size <= INLINE_IO_LIMIT:
            return func(*args)
        return await in_thread(func, *args)

    # -- the retry loop ---------------------------------------------------------------

    def _retry(
        self, spec: RequestSpec, deadline: Deadline, started: float, result: _Attempt, key: str | None
    ) -> Coroutine[Any, Any, tuple[RawResponse, str | None]]:
        """The retry loop, from a first attempt that failed (``result``), under the same ``key``."""
        send, limits = self.transport.send, deadline.limits
        return self._retrying(
            spec.method,
            spec.path,
            lambda timeout: send(spec, timeout=timeout, limits=limits, idempotency_key=key),
            deadline,
            idempotency_key=key,
            first=(started, result),
        )

    def _answered(
        self, spec: RequestSpec, started: float, result: _Attempt
    ) -> tuple[RawResponse, str | None] | None:
        """A first attempt's 2xx answer and its request id (logged when someone listens), else ``None``."""
        if type(result) is not RawResponse or result.status >= 300:
            return None
        return result, self._succeeded(spec.method, spec.path, started, 1, result, True)

    async def _retrying(
        self,
        method: str,
        path: str,
        attempt_once: Callable[[float | None], Awaitable[_Attempt]],
        deadline: Deadline,
        *,
        idempotency_key: str | None = None,
        api: bool = True,
        first: tuple[float, _Attempt] | None = None,
    ) -> tuple[RawResponse, str | None]:
        """Run ``attempt_once`` until it succeeds or the retry policy says stop.

        The one retry loop, for API requests and asset downloads alike.
        ``attempt_once(timeout)`` gets what is left of the deadline and returns the
        answer; an answer with a non-2xx status becomes its :class:`APIError` (the
        service answered with an error). When no answer came, ``attempt_once``
        returns or raises :class:`APIConnectionError` (the transport returns it; a
        download raises it, or the :class:`APIError` of its answer). A
        :class:`ResponseError` (an answer too large, an asset of the wrong type),
        returned or raised, is never retried. Returns
        the answer and its request id. ``api`` is false for downloads: they are
        logged and retried like API requests, but ``on_request`` counts API
        requests only. ``first`` is the start time and result of a first attempt
        already made.
        """
        policy = self.retry_policy
        hooks = self.hooks
        safe = method == "GET"
        attempt = 0
        while True:
            attempt += 1
            result: RawResponse | APIError | APIConnectionError | ResponseError
            if first is not None:
                started, result = first
                first = None
            else:
                remaining = deadline.left(method, path)
                started = time.monotonic()
                try:
                    result = await attempt_once(remaining)
                except (APIError, APIConnectionError, ResponseError) as exc:
                    result = exc
            if isinstance(result, ResponseError):  # too large, or not the image it claims: never repeated
                log_attempt(
                    hooks, method, path, result.status, started, attempt, result.request_id, None, api
                )
                raise result
            if isinstance(result, RawResponse):
                if result.status < 300:
                    return result, self._succeeded(method, path, started, attempt, result, api)
                result = calls.error_from_response(result.status, result.headers, result.body)
            outcome: Outcome
            if isinstance(result, APIError):
                log_attempt(
                    hooks, method, path, result.status, started, attempt, result.request_id, None, api
                )
                outcome = StatusOutcome(result.status, result.retry_after)
            else:
                log_attempt(hooks, method, path, None, started, attempt, None, result, api)
                outcome = FailedAfterSend(str(result)) if result.sent else FailedBeforeSend(str(result))
            decision = policy.decide(
                attempt=attempt, method_is_safe=safe, outcome=outcome, remaining=deadline.remaining()
            )
            if not decision.retry:
                if isinstance(result, APIConnectionError) and result.sent and not safe:
                    raise calls.maybe_charged(result, method, path, idempotency_key)
                raise result
            if hooks.on_retry is not None:
                hooks._retry(RetryEvent(method, path, attempt, decision.delay, decision.reason))
            logger.info("%s %s: %s; waiting %.2f s", method, path, decision.reason, decision.delay)
            if decision.delay > 0:
                await asyncio.sleep(decision.delay)

    def _succeeded(
        self, method: str, path: str, started: float, attempt: int, raw: RawResponse, api: bool
    ) -> str | None:
        """Log a 2xx answer (only when someone listens) and return its request id."""
        request_id = calls.request_id_from(raw.headers)
        if self.hooks.on_request is not None or logger.isEnabledFor(logging.DEBUG):
            log_attempt(self.hooks, method, path, raw.status, started, attempt, request_id, None, api)
        return request_id

    async def _json(self, raw: RawResponse, request_id: str | None, what: str) -> Any:
        if len(raw.body) <= INLINE_IO_LIMIT:
            return decode_json(raw.body, status=raw.status, request_id=request_id, what=what)
        return await in_thread(
            lambda: decode_json(raw.body, status=raw.status, request_id=request_id, what=what)
        )

    # -- asset downloads (ImageAsset calls these; never with the API key) -----
    # GETs, so the retry policy repeats them after 5xx, 429, resets and timeouts;
    # the bytes must be the image type the URL names (``.png``...).

    async def _download_bytes(self, url: str) -> bytes:
        transport = self.transport
        claimed = mime_type_from_url(url)
        raw, _ = await self._retrying(
            "GET",
            check_asset_url(url).path,
            lambda timeout: transport.download_bytes(url, timeout=timeout, claimed=claimed),
            self.deadline(None),
            api=False,
        )
        return raw.body

    async def _download_to(self, url: str, path: Path) -> None:
        transport = self.transport
        claimed = mime_type_from_url(url)
        await self._retrying(
            "GET",
            check_asset_url(url).path,
            lambda timeout: transport.download_to(url, path, timeout=timeout, claimed=claimed),
            self.deadline(None),
            api=False,
        )


def _with_retry_after(snapshot: TaskSnapshot, raw: RawResponse) -> TaskSnapshot:
    hint = calls.parse_retry_after(raw.headers.get("Retry-After"))
    return attrs.evolve(snapshot, retry_after=hint) if hint is not None else snapshot


@functools.lru_cache(maxsize=1024)
def _poll_spec(ref: TaskRef, origin: URL) -> RequestSpec:
    """The GET that polls ``ref``'s task; the same for every poll until its ``poll_url`` changes."""
    path = poll_path(ref.kind, ref.id, poll_url=ref.poll_url, origin=origin)
    return RequestSpec("GET", path, ref.image_call(catalog.DEFAULT_MODEL))
