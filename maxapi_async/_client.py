"""``AsyncMaxAPI``: the session object users hold.

The client joins the pure protocol layers (what to send, what an answer
means, when to retry, when to poll) to the transport (how bytes move). It owns
configuration, the aiohttp session's lifetime, the retry loop, the poll loops
of its task handles, and the decision to move heavy work (big JSON, base64,
file reads) off the event loop. The resources (``client.images``,
``client.models``, ``client.tasks``) live in :mod:`maxapi_async._resources`.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import functools
import ipaddress
import logging
import math
import os
import re
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from contextvars import ContextVar
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
from yarl import URL

from . import _catalog, _gemini, _protocol
from ._errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    ConfigurationError,
    InvalidRequestError,
    MaxAPIError,
    ResponseError,
)
from ._files import INLINE_IO_LIMIT, in_thread
from ._gemini import GenerateContentResponse
from ._handles import PollGate, TaskHandle
from ._hooks import Hooks, RequestEvent, RetryEvent
from ._images import mime_type_from_url
from ._models import ImageAsset, ImageResult, ImagesResponse
from ._policy import FailedAfterSend, FailedBeforeSend, Outcome, PollPolicy, RetryPolicy, StatusOutcome
from ._pricing import PRICES, PriceTable, Usage
from ._protocol import ImageCall, RequestSpec
from ._tasks import TaskKind, TaskRef, TaskSnapshot, parse_task, poll_path
from ._transport import (
    DEFAULT_MAX_DOWNLOAD_BYTES,
    DEFAULT_MAX_RESPONSE_BYTES,
    RawResponse,
    Timeouts,
    Transport,
)
from ._urls import check_asset_url
from ._version import __version__

if TYPE_CHECKING:
    import aiohttp

    from ._batch import Batch, BatchItem, BatchProgress

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_CONCURRENCY",
    "DEFAULT_MAX_POLLS_PER_SECOND",
    "DEFAULT_TASK_TIMEOUT",
    "AsyncMaxAPI",
]

DEFAULT_BASE_URL = "https://api.maxapi.dev"
DEFAULT_MAX_CONCURRENCY = 64
DEFAULT_MAX_POLLS_PER_SECOND = 50.0
#: The longest wait for one queued task, in seconds (30 minutes).
DEFAULT_TASK_TIMEOUT = 1800.0

logger = logging.getLogger("maxapi_async")

_NOTHING_DECODED: Mapping[int, bytes] = MappingProxyType({})

R = TypeVar("R")
T = TypeVar("T")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# The highest poll budget accepted (a budget, not infinity; the gate keeps a second of slots).
_MAX_POLL_RATE = 1e6
# What an API key or a User-Agent may hold: printable ASCII (a key: without spaces).
_HEADER_TOKEN = re.compile(r"[\x21-\x7e]+")
_HEADER_TEXT = re.compile(r"[\x20-\x7e]+")


def _resolve_base_url(base_url: str | None, allow_insecure_http: bool) -> URL:
    if base_url is not None and not isinstance(base_url, str):
        raise ConfigurationError(f"base_url must be a string, got {type(base_url).__name__}")
    raw = base_url or os.environ.get("MAXAPI_BASE_URL") or DEFAULT_BASE_URL
    try:
        url = URL(raw.strip())
    except (ValueError, TypeError):
        url = URL()
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigurationError(
            f"base_url must be an absolute http(s) URL such as {DEFAULT_BASE_URL!r}, got {raw!r}"
        )
    if url.scheme == "http" and not allow_insecure_http and not _is_loopback(url.host):
        raise ConfigurationError(
            f"base_url {raw!r} is plain http on a non-loopback host: the API key would travel "
            "unencrypted; use https, or pass allow_insecure_http=True if you really mean it"
        )
    if url.user or url.password or url.query_string or url.fragment:
        raise ConfigurationError("base_url must not carry credentials, a query or a fragment")
    # Endpoint paths are absolute (/v1/..., /v1beta/...): accept an OpenAI-style
    # base URL ending in /v1 or /v1beta without doubling the prefix.
    path = url.path.rstrip("/")
    for suffix in ("/v1beta", "/v1"):
        if path.endswith(suffix):
            path = path[: -len(suffix)]
            break
    return url.with_path(path or "/")


def _positive(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and value > 0


def _resolve_timeouts(timeout: float | Timeouts | None) -> Timeouts:
    if timeout is None:
        return Timeouts()
    if isinstance(timeout, Timeouts):
        return timeout
    try:
        seconds = _protocol.check_timeout("timeout", timeout)
    except InvalidRequestError:
        raise ConfigurationError(
            f"timeout must be a positive number of seconds (inf: no limit) or a Timeouts, got {timeout!r}"
        ) from None
    return Timeouts().with_total(None if seconds is None or math.isinf(seconds) else seconds)


def check_call_timeout(timeout: object) -> float | None:
    """A per-call ``timeout``: ``None`` (the client's), a positive number of seconds, or
    ``math.inf`` (no limit); anything else raises :class:`InvalidRequestError`."""
    return _protocol.check_timeout("timeout", timeout)


def _read_image_answer(
    call: ImageCall, fetcher: AsyncMaxAPI, body: bytes, status: int, request_id: str | None
) -> tuple[dict[str, Any], list[ImageAsset]]:
    """JSON, structure, base64 and assets in one go: run inline or in a thread as a whole.

    The usual answer (images by URL) goes straight to its assets.
    """
    obj, images = _protocol.decode_answer(body, status=status, request_id=request_id, what="images")
    assets = _protocol.url_answer_assets(obj, call, fetcher)
    if assets is None:
        response = _protocol.parse_images_response(obj, request_id=request_id)
        assets = _image_assets(
            response, _decode_items(response, request_id, images), call, fetcher, request_id
        )
    return obj, assets


def _image_assets(
    response: ImagesResponse,
    decoded: list[bytes | None],
    call: ImageCall,
    fetcher: AsyncMaxAPI,
    request_id: str | None,
) -> list[ImageAsset]:
    return [
        _protocol.make_asset(
            item, data, call=call, created=response.created, fetcher=fetcher, index=i, request_id=request_id
        )
        for i, (item, data) in enumerate(zip(response.data, decoded, strict=True))
    ]


def _decode_items(
    response: ImagesResponse, request_id: str | None, decoded: Mapping[int, bytes] = _NOTHING_DECODED
) -> list[bytes | None]:
    """Each item's image bytes (``None`` for an item by URL); ``decoded``: see ``decode_answer``."""
    return [
        (decoded.get(id(item.b64_json)) or _protocol.decode_b64(item.b64_json, request_id=request_id))
        if item.b64_json
        else None
        for item in response.data
    ]


def _parse_native_answer(
    obj: Any,
    request_id: str | None,
    modalities: list[str] | None,
    call: ImageCall,
    fetcher: AsyncMaxAPI,
    decoded: Mapping[int, bytes] | None = None,
) -> tuple[GenerateContentResponse, list[ImageAsset]]:
    """The answer, checked for a block, and its final images as assets.

    The usual answer (images by URL) goes straight to its assets; any other is
    structured whole, its image parts walked once.
    """
    received_at = _dt.datetime.now(_dt.timezone.utc)
    read = _gemini.read_url_answer(
        obj,
        request_id=request_id,
        response_modalities=modalities,
        call=call,
        fetcher=fetcher,
        received_at=received_at,
    )
    if read is not None:
        return read
    response, parts = _gemini.parse_with_image_parts(obj, request_id=request_id)
    _gemini.check_blocked(response, response_modalities=modalities, request_id=request_id, parts=parts)
    images = _gemini.decode_inline_images(response, request_id=request_id, decoded=decoded, parts=parts)
    assets = _gemini.make_native_assets(
        response,
        images,
        call=call,
        fetcher=fetcher,
        received_at=received_at,
        parts=parts,
        request_id=request_id,
    )
    return response, assets


def _read_native_answer(
    modalities: list[str] | None,
    call: ImageCall,
    fetcher: AsyncMaxAPI,
    body: bytes,
    status: int,
    request_id: str | None,
) -> tuple[GenerateContentResponse, list[ImageAsset]]:
    """JSON, structure, base64 and assets of a ``generateContent`` answer in one go (one thread hop)."""
    obj, images = _protocol.decode_answer(body, status=status, request_id=request_id, what="generateContent")
    return _parse_native_answer(obj, request_id, modalities, call, fetcher, images)


#: What one attempt of a request gives: the answer, or why there is none (see Transport.send).
_Attempt = RawResponse | APIConnectionError | ResponseError


class _Deadline:
    """What is left of a call's whole-call timeout (``None``: no limit)."""

    __slots__ = ("_end",)

    def __init__(self, seconds: float | None) -> None:
        self._end = None if seconds is None or seconds == math.inf else time.monotonic() + seconds

    def remaining(self) -> float | None:
        if self._end is None:
            return None
        return self._end - time.monotonic()

    def left(self, method: str, path: str) -> float | None:
        """:meth:`remaining`, or :class:`APITimeoutError` when nothing is left before an attempt."""
        remaining = self.remaining()
        if remaining is not None and remaining <= 0:
            # Every earlier attempt failed in a known way, so nothing is in flight.
            raise APITimeoutError(f"{method} {path}: the call's deadline passed", sent=False)
        return remaining


class AsyncMaxAPI:
    """An asyncio session with MaxAPI: one per application, shared by all tasks.

    Arguments (each falls back to an environment variable, then a default):

    * ``api_key``: the MaxAPI key; else ``MAXAPI_KEY``. Required.
    * ``base_url``: else ``MAXAPI_BASE_URL``, else ``https://api.maxapi.dev``.
      Plain ``http://`` is refused unless the host is loopback or
      ``allow_insecure_http=True``.
    * ``route_mode``: the default route for every call (``official``,
      ``official-cheap`` or ``mix``); ``None`` follows the key's configured order.
    * ``timeout``: seconds for a whole call, retries included (default 180),
      or a :class:`Timeouts` with connect (default 10) and read (default 150:
      a synchronous generation can take a minute) limits too. Every call also
      takes its own ``timeout=``. A passed limit raises :class:`APITimeoutError`,
      which is also a :class:`TimeoutError`.
    * ``max_concurrency``: connections open at once (default 64); more calls
      than that wait for a free connection.
    * ``http_session``: your own ``aiohttp.ClientSession``, used as given and
      left open by :meth:`aclose`.
    * ``retry_policy``: when failed requests and asset downloads are repeated
      (:class:`RetryPolicy`). A submission (POST) is repeated only when the
      service answered that it failed (429, 5xx) or the connection failed before
      it was sent, always with the same ``Idempotency-Key``; when its outcome is
      unknown the error says the call may have been charged, and names the key.
    * ``poll_policy``: when queued tasks are polled (:class:`PollPolicy`).
    * ``max_polls_per_second``: the poll budget shared by every task handle of
      this client (default 50).
    * ``task_timeout``: the longest wait for a queued task, in seconds (default
      1800, 30 minutes): ``await handle``, ``handle.wait()`` without its own
      ``timeout``, every batch item. Past it, :class:`TaskTimeoutError` carries
      the handle (the task runs on; ``handle.to_dict()`` resumes it). A task
      that stays ``processing``, or reports a status word nobody knows, never
      holds a caller forever. ``None`` waits without limit.
    * ``wait_by_polling``: when true, calls with ``wait=True`` are submitted
      queued and polled instead of holding one long HTTP request open (robust
      to long generations and dropped connections); the result is the same.
    * ``hooks``: :class:`Hooks` callbacks for metrics.
    * ``max_response_bytes``: the largest API answer read (default 64 MiB);
      ``max_download_bytes``: the largest asset download (default 64 MiB).
      Larger ones raise :class:`ResponseTooLargeError` without being read.
    * ``prices``: the :class:`PriceTable` behind cost estimates (default
      :data:`PRICES`); ``client.usage`` is the running ledger.

    The client may be created outside a running event loop (at import time of
    a web app); its aiohttp session is created on first use. Use it as
    ``async with AsyncMaxAPI() as client:`` or call :meth:`aclose` yourself.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        route_mode: str | None = None,
        timeout: float | Timeouts | None = None,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        http_session: aiohttp.ClientSession | None = None,
        retry_policy: RetryPolicy | None = None,
        poll_policy: PollPolicy | None = None,
        max_polls_per_second: float = DEFAULT_MAX_POLLS_PER_SECOND,
        task_timeout: float | None = DEFAULT_TASK_TIMEOUT,
        wait_by_polling: bool = False,
        hooks: Hooks | None = None,
        prices: PriceTable | None = None,
        allow_insecure_http: bool = False,
        user_agent: str | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        max_download_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
    ) -> None:
        from ._resources import Images, Models, Tasks

        key = api_key if api_key is not None else os.environ.get("MAXAPI_KEY")
        if key is not None and not isinstance(key, str):
            raise ConfigurationError(f"api_key must be a string, got {type(key).__name__}")
        if not key or not key.strip():
            raise ConfigurationError(
                "no API key: pass api_key=... to AsyncMaxAPI or set the MAXAPI_KEY environment variable"
            )
        if not _HEADER_TOKEN.fullmatch(key.strip()):
            # Never echoed: the message must not carry the key, even a mistyped one.
            raise ConfigurationError(
                "api_key holds characters an HTTP header cannot carry (spaces, controls, non-ASCII)"
            )
        if route_mode is not None and route_mode not in _catalog.ROUTE_MODES:
            raise InvalidRequestError(
                "route_mode", f"unknown value {route_mode!r}", allowed=_catalog.ROUTE_MODES
            )
        for name, option, kind in (
            ("retry_policy", retry_policy, RetryPolicy),
            ("poll_policy", poll_policy, PollPolicy),
            ("hooks", hooks, Hooks),
            ("prices", prices, PriceTable),
        ):
            if option is not None and not isinstance(option, kind):
                raise ConfigurationError(f"{name} must be a {kind.__name__}, got {type(option).__name__}")
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise ConfigurationError(f"max_concurrency must be a positive integer, got {max_concurrency!r}")
        if not _positive(max_polls_per_second) or not max_polls_per_second <= _MAX_POLL_RATE:
            raise ConfigurationError(
                f"max_polls_per_second must be a positive number up to {_MAX_POLL_RATE:g}, "
                f"got {max_polls_per_second!r}"
            )
        if task_timeout is not None and not (
            _positive(task_timeout) and task_timeout <= sys.float_info.max  # not inf, nor an int beyond
        ):
            raise ConfigurationError(
                "task_timeout must be a positive number of seconds, or None for no limit, "
                f"got {task_timeout!r}"
            )
        for name, cap in (
            ("max_response_bytes", max_response_bytes),
            ("max_download_bytes", max_download_bytes),
        ):
            if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
                raise ConfigurationError(f"{name} must be a positive number of bytes, got {cap!r}")
        if user_agent is not None and (
            not isinstance(user_agent, str) or not _HEADER_TEXT.fullmatch(user_agent)
        ):
            raise ConfigurationError(f"user_agent must be printable ASCII text, got {user_agent!r}")
        if http_session is not None:
            import aiohttp  # already loaded by whoever made the session

            if not isinstance(http_session, aiohttp.ClientSession):
                raise ConfigurationError("http_session must be an aiohttp.ClientSession")
        self.base_url = _resolve_base_url(base_url, allow_insecure_http)
        self.route_mode = route_mode
        self.timeouts = _resolve_timeouts(timeout)
        self.max_concurrency = max_concurrency
        self.retry_policy = retry_policy if retry_policy is not None else RetryPolicy()
        self.poll_policy = poll_policy if poll_policy is not None else PollPolicy()
        self.max_polls_per_second = float(max_polls_per_second)
        self.task_timeout = None if task_timeout is None else float(task_timeout)
        self.wait_by_polling = wait_by_polling
        self.hooks = hooks if hooks is not None else Hooks()
        self.prices = prices if prices is not None else PRICES
        #: The running ledger of this client's calls (estimated credits by route).
        self.usage = Usage()
        self._poll_gate = PollGate(self.max_polls_per_second)
        self._pollers: set[asyncio.Task[Any]] = set()
        self._closing = False  # set by aclose() before it stops the poll loops
        self._transport = Transport(
            base_url=self.base_url,
            api_key=key.strip(),
            max_concurrency=max_concurrency,
            timeouts=self.timeouts,
            user_agent=user_agent or f"maxapi-async/{__version__}",
            http_session=http_session,
            max_response_bytes=max_response_bytes,
            max_download_bytes=max_download_bytes,
        )
        self.images = Images(self)
        self.models = Models(self)
        self.tasks = Tasks(self)

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return (
            f"<AsyncMaxAPI base_url={str(self.base_url).rstrip('/')!r} route_mode={self.route_mode!r} "
            f"max_concurrency={self.max_concurrency} {state}>"
        )

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` has run."""
        return self._transport.closed

    async def __aenter__(self) -> AsyncMaxAPI:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop every poll loop, then close the client's own aiohttp session.

        A caller's ``http_session`` stays open. Every call, handle wait and
        batch still running raises :class:`ClientClosedError` (a submission cut
        in flight says it may have been charged). Handles whose polling was
        stopped can be resumed by a new client (``client.tasks.from_dict``).
        """
        self._closing = True
        pollers = list(self._pollers)
        for poller in pollers:
            poller.cancel()
        if pollers:
            await asyncio.wait(pollers)
        await self._transport.aclose()

    def batch(
        self,
        items: Iterable[BatchItem],
        *,
        concurrency: int = 16,
        max_pending: int = 1000,
        budget: float | None = None,
        journal: str | os.PathLike[str] | None = None,
        fail_fast: bool = False,
        progress: Callable[[BatchProgress], Any] | bool | None = None,
        download_to: str | os.PathLike[str] | None = None,
        shard: tuple[int, int] | None = None,
    ) -> Batch:
        """Run many requests as queued tasks; see :class:`Batch`.

        * ``concurrency`` (16): submissions in flight at once (all paused while the
          service's ``Retry-After`` lasts, up to ``task_timeout`` in all; a longer
          one stops submitting, and each item not submitted fails saying when to rerun);
        * ``max_pending`` (1000): tasks submitted and not yet finished at once
          (each polls within the client's ``max_polls_per_second``);
        * ``budget``: estimated credits never to pass: an item whose estimate
          would cross it is not submitted, and the batch stops there (every
          item's model needs a price, see ``prices``: else ``InvalidRequestError``);
        * ``journal``: a ``.jsonl`` file or a folder, for crash-safe resumption;
          one batch at a time writes it (else ``JournalLockedError``);
        * ``fail_fast``: the first failure stops the batch (default: never);
        * ``progress``: a callback taking :class:`BatchProgress`, or ``True``
          for a tqdm bar on a terminal (``pip install 'maxapi-async[progress]'``);
        * ``download_to``: save every image into this folder, named after the
          item's key, skipping files already there;
        * ``shard``: ``(index, count)``, to split one batch across processes.
        """
        from ._batch import Batch

        return Batch(
            self,
            items,
            concurrency=concurrency,
            max_pending=max_pending,
            budget=budget,
            journal=journal,
            fail_fast=fail_fast,
            progress=progress,
            download_to=download_to,
            shard=shard,
        )

    # -- requests, with retries ------------------------------------------------

    async def _send(self, spec: RequestSpec, deadline: _Deadline) -> tuple[RawResponse, str | None]:
        """Send ``spec`` under the retry policy; a non-2xx final answer raises its typed error.

        The first attempt is made directly: most calls succeed at once and pay for nothing
        of the retry loop, which takes over from a first attempt that failed. (:meth:`_call`,
        every synchronous image call's path, inlines these three lines: one coroutine fewer.)
        """
        if spec.method == "POST" and "Idempotency-Key" not in spec.headers:
            spec = _with_idempotency_key(spec)
        started = time.monotonic()
        result = await self._transport.send(spec, timeout=deadline.left(spec.method, spec.path))
        return self._answered(spec, started, result) or await self._retry(spec, deadline, started, result)

    def _answered(
        self, spec: RequestSpec, started: float, result: _Attempt
    ) -> tuple[RawResponse, str | None] | None:
        """A first attempt's 2xx answer and its request id (logged when someone listens), else ``None``."""
        if type(result) is not RawResponse or result.status >= 300:
            return None
        return result, self._succeeded(spec.method, spec.path, started, 1, result, True)

    def _retry(
        self, spec: RequestSpec, deadline: _Deadline, started: float, result: _Attempt
    ) -> Coroutine[Any, Any, tuple[RawResponse, str | None]]:
        """The retry loop, from a first attempt that failed (``result``)."""
        send = self._transport.send
        return self._retrying(
            spec.method,
            spec.path,
            lambda timeout: send(spec, timeout=timeout),
            deadline,
            idempotency_key=spec.headers.get("Idempotency-Key"),
            first=(started, result),
        )

    async def _retrying(
        self,
        method: str,
        path: str,
        attempt_once: Callable[[float | None], Awaitable[_Attempt]],
        deadline: _Deadline,
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
                self._log_request(method, path, result.status, started, attempt, result.request_id, None, api)
                raise result
            if isinstance(result, RawResponse):
                if result.status < 300:
                    return result, self._succeeded(method, path, started, attempt, result, api)
                result = _protocol.error_from_response(result.status, result.headers, result.body)
            outcome: Outcome
            if isinstance(result, APIError):
                self._log_request(method, path, result.status, started, attempt, result.request_id, None, api)
                outcome = StatusOutcome(result.status, result.retry_after)
            else:
                self._log_request(method, path, None, started, attempt, None, result, api)
                outcome = FailedAfterSend(str(result)) if result.sent else FailedBeforeSend(str(result))
            decision = policy.decide(
                attempt=attempt, method_is_safe=safe, outcome=outcome, remaining=deadline.remaining()
            )
            if not decision.retry:
                if isinstance(result, APIConnectionError) and result.sent and not safe:
                    raise _maybe_charged(result, method, path, idempotency_key)
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
        request_id = _protocol.request_id_from(raw.headers)
        if self.hooks.on_request is not None or logger.isEnabledFor(logging.DEBUG):
            self._log_request(method, path, raw.status, started, attempt, request_id, None, api)
        return request_id

    def _log_request(
        self,
        method: str,
        path: str,
        status: int | None,
        started: float,
        attempt: int,
        request_id: str | None,
        error: Exception | None,
        api: bool = True,
    ) -> None:
        """One DEBUG line per attempt (never a body, a header or a query), and ``on_request``."""
        hooks = self.hooks
        debug = logger.isEnabledFor(logging.DEBUG)
        notify = api and hooks.on_request is not None
        if not notify and not debug:
            return
        elapsed = time.monotonic() - started
        if debug:
            logger.debug(
                "%s %s -> %s in %.3f s (attempt %d, request id %s)",
                method,
                path,
                status if status is not None else type(error).__name__,
                elapsed,
                attempt,
                request_id,
            )
        if notify:
            hooks._request(
                RequestEvent(
                    method,
                    path,
                    status,
                    elapsed,
                    attempt,
                    request_id,
                    type(error).__name__ if error is not None else None,
                )
            )

    async def _json(self, raw: RawResponse, request_id: str | None, what: str) -> Any:
        if len(raw.body) <= INLINE_IO_LIMIT:
            return _protocol.decode_json(raw.body, status=raw.status, request_id=request_id, what=what)
        return await in_thread(
            lambda: _protocol.decode_json(raw.body, status=raw.status, request_id=request_id, what=what)
        )

    # -- image calls ---------------------------------------------------------------

    async def _call(
        self,
        spec: RequestSpec,
        timeout: float | None,
        read: Callable[[bytes, int, str | None], R],
        finish: Callable[[R, ImageCall, str | None], T],
    ) -> T:
        """A synchronous call: ``spec`` sent under the retry policy, its 2xx answer ``read``
        (in a worker thread when big) and the result ``finish``-ed on the loop.

        A failure on the wire counts as a failed call; an answer that cannot be read says
        the call may have been charged, naming its ``Idempotency-Key``.
        """
        deadline = _Deadline(timeout if timeout is not None else self.timeouts.total)
        if "Idempotency-Key" not in spec.headers:  # made here, so an unreadable answer can name it
            spec = _with_idempotency_key(spec)
        try:
            try:
                # _send's first attempt, inline (see there).
                started = time.monotonic()
                result = await self._transport.send(spec, timeout=deadline.left(spec.method, spec.path))
                sent = self._answered(spec, started, result)
                raw, request_id = sent or await self._retry(spec, deadline, started, result)
            except MaxAPIError:
                self.usage.failed_calls += 1
                raise
            if len(raw.body) <= INLINE_IO_LIMIT:
                answer = read(raw.body, raw.status, request_id)
            else:
                answer = await in_thread(read, raw.body, raw.status, request_id)
        except ResponseError as exc:
            _unreadable_submission_answer(exc, spec)
            raise
        return finish(answer, spec.call, request_id)

    def _image_call(self, spec: RequestSpec, timeout: float | None) -> Coroutine[Any, Any, ImageResult]:
        """``images.generate`` or ``images.edit``, waited for (the caller awaits :meth:`_call`)."""
        return self._call(
            spec, timeout, functools.partial(_read_image_answer, spec.call, self), self._image_answer_result
        )

    def _image_answer_result(
        self, answer: tuple[dict[str, Any], list[ImageAsset]], call: ImageCall, request_id: str | None
    ) -> ImageResult:
        obj, assets = answer
        return self._image_result(obj, assets, call, request_id, obj.get("created"), obj.get("usage"))

    def _image_result(
        self,
        obj: dict[str, Any],
        images: list[ImageAsset],
        call: ImageCall,
        request_id: str | None,
        created: int | None,
        usage: dict[str, Any] | None,
    ) -> ImageResult:
        """The result of a call whose answer ``obj`` (already checked) gave ``images``."""
        model = obj.get("model")
        return ImageResult(
            images,
            model if type(model) is str else call.model,
            created,
            usage,
            request_id,
            obj,
            self._charge(call, len(images)),
        )

    def _charge(self, call: ImageCall, images: int) -> float | None:
        """Record a successful call in the usage ledger; returns its estimated cost."""
        cost = self.prices.estimate(call.model, call.route_mode, images)
        self.usage.record(call.route_mode, images, cost)
        return cost

    def _native_call(
        self, spec: RequestSpec, modalities: list[str] | None, timeout: float | None
    ) -> Coroutine[Any, Any, GenerateContentResponse]:
        """``models.generate_content``, waited for (the caller awaits :meth:`_call`)."""
        read = functools.partial(_read_native_answer, modalities, spec.call, self)
        return self._call(spec, timeout, read, self._native_response)

    async def _native_result(
        self, obj: Any, call: ImageCall, modalities: list[str] | None, request_id: str | None
    ) -> GenerateContentResponse:
        """A queued operation's ``response`` object, already parsed JSON, read like an answer."""
        if isinstance(obj, dict) and _gemini_payload_size(obj) > INLINE_IO_LIMIT:
            answer = await in_thread(_parse_native_answer, obj, request_id, modalities, call, self)
        else:
            answer = _parse_native_answer(obj, request_id, modalities, call, self)
        return self._native_response(answer, call, request_id)

    def _native_response(
        self,
        answer: tuple[GenerateContentResponse, list[ImageAsset]],
        call: ImageCall,
        request_id: str | None,
    ) -> GenerateContentResponse:
        response, assets = answer
        # ``response`` was structured for this call alone and nobody else holds it yet: fill
        # in what the client adds (attrs.evolve would copy ten fields to change three).
        fill = object.__setattr__
        fill(response, "images", assets)
        fill(response, "request_id", request_id)
        fill(response, "cost", self._charge(call, max(1, len(assets))))
        return response

    # -- queued tasks ----------------------------------------------------------------

    async def _submit(
        self, spec: RequestSpec, kind: TaskKind, timeout: float | None
    ) -> tuple[TaskSnapshot, TaskRef, str | None]:
        deadline = _Deadline(timeout if timeout is not None else self.timeouts.total)
        submitted_at = time.time()
        # Kept on the TaskRef, so a resumed run can name it; a batch that resumes an
        # interrupted submission passes the journal's key to repeat it safely.
        spec = _with_idempotency_key(spec, IDEMPOTENCY_KEY.get())
        try:
            raw, request_id = await self._send(spec, deadline)
            obj = await self._json(raw, request_id, "task")
            snapshot = parse_task(obj, kind=kind, request_id=request_id)
        except ResponseError as exc:
            _unreadable_submission_answer(exc, spec)
            raise
        snapshot = self._with_retry_after(snapshot, raw)
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
            idempotency_key=spec.headers.get("Idempotency-Key"),
            route_mode=call.route_mode,
            n=call.n,
        )
        return snapshot, ref, request_id

    def _with_retry_after(self, snapshot: TaskSnapshot, raw: RawResponse) -> TaskSnapshot:
        hint = _protocol.parse_retry_after(raw.headers.get("Retry-After"))
        return attrs.evolve(snapshot, retry_after=hint) if hint is not None else snapshot

    async def _poll_task(self, ref: TaskRef) -> tuple[TaskSnapshot, str | None]:
        spec = _poll_spec(ref, self.base_url)
        deadline = _Deadline(self.timeouts.total)
        raw, request_id = await self._send(spec, deadline)
        obj = await self._json(raw, request_id, "task")
        snapshot = parse_task(obj, kind=ref.kind, request_id=request_id)
        return self._with_retry_after(snapshot, raw), request_id

    def _image_handle(
        self, snapshot: TaskSnapshot | None, ref: TaskRef, request_id: str | None
    ) -> TaskHandle[ImageResult]:
        call = ref.image_call(_catalog.DEFAULT_MODEL)

        def read(last: TaskSnapshot, last_request_id: str | None) -> list[ImageAsset]:
            response = ImagesResponse(data=last.images, created=last.created or ref.created)
            decoded = _decode_items(response, last_request_id)
            return _image_assets(response, decoded, call, self, last_request_id)

        async def finish(last: TaskSnapshot, last_request_id: str | None) -> ImageResult:
            try:
                if sum(len(i.b64_json or "") for i in last.images) <= INLINE_IO_LIMIT:
                    assets = read(last, last_request_id)
                else:
                    assets = await in_thread(read, last, last_request_id)
            except ResponseError as exc:
                _unreadable_task_result(exc, ref)
                raise
            created = last.created or ref.created
            result = self._image_result(last.raw, assets, call, last_request_id, created, None)
            return attrs.evolve(result, model=last.model or call.model)

        return TaskHandle(self, ref, finish, first=snapshot, request_id=request_id)

    def _operation_handle(
        self,
        snapshot: TaskSnapshot | None,
        ref: TaskRef,
        request_id: str | None,
        modalities: list[str] | None = None,
    ) -> TaskHandle[GenerateContentResponse]:
        call = ref.image_call(_catalog.DEFAULT_MODEL)

        async def finish(last: TaskSnapshot, last_request_id: str | None) -> GenerateContentResponse:
            try:
                return await self._native_result(last.response, call, modalities, last_request_id)
            except ResponseError as exc:
                _unreadable_task_result(exc, ref)
                raise

        return TaskHandle(self, ref, finish, first=snapshot, request_id=request_id)

    def _start_poller(self, coro: Coroutine[Any, Any, R]) -> asyncio.Task[R]:
        try:
            self._transport._get_session()  # a closed client refuses before a task is made
        except BaseException:
            coro.close()  # never scheduled: close it, or it warns "was never awaited"
            raise
        task = asyncio.ensure_future(coro)
        self._pollers.add(task)
        task.add_done_callback(self._pollers.discard)
        return task

    # -- asset downloads (ImageAsset calls these; never with the API key) -----
    # GETs, so the retry policy repeats them after 5xx, 429, resets and timeouts;
    # the bytes must be the image type the URL names (``.png``...).

    async def _download_bytes(self, url: str) -> bytes:
        transport = self._transport
        claimed = mime_type_from_url(url)
        raw, _ = await self._retrying(
            "GET",
            check_asset_url(url).path,
            lambda timeout: transport.download_bytes(url, timeout=timeout, claimed=claimed),
            _Deadline(self.timeouts.total),
            api=False,
        )
        return raw.body

    async def _download_to(self, url: str, path: Path) -> None:
        transport = self._transport
        claimed = mime_type_from_url(url)
        await self._retrying(
            "GET",
            check_asset_url(url).path,
            lambda timeout: transport.download_to(url, path, timeout=timeout, claimed=claimed),
            _Deadline(self.timeouts.total),
            api=False,
        )


@functools.lru_cache(maxsize=1024)
def _poll_spec(ref: TaskRef, origin: URL) -> RequestSpec:
    """The GET that polls ``ref``'s task; the same for every poll until its ``poll_url`` changes."""
    path = poll_path(ref.kind, ref.id, poll_url=ref.poll_url, origin=origin)
    return RequestSpec("GET", path, ref.image_call(_catalog.DEFAULT_MODEL))


def _gemini_payload_size(obj: dict[str, Any]) -> int:
    # A cheap upper bound of the inline image data, without walking every part.
    total = 0
    for candidate in obj.get("candidates") or ():
        content = candidate.get("content") if isinstance(candidate, dict) else None
        parts = content.get("parts") if isinstance(content, dict) else None
        for part in parts if isinstance(parts, list) else ():
            blob = part.get("inlineData") or part.get("inline_data") if isinstance(part, dict) else None
            if isinstance(blob, dict) and isinstance(blob.get("data"), str):
                total += len(blob["data"])
    return total


def _with_idempotency_key(spec: RequestSpec, key: str | None = None) -> RequestSpec:
    """One key for every attempt of a submission, so the service can recognise a repeat."""
    # Built field by field (attrs.evolve costs three times as much on this hot path).
    headers = {**spec.headers, "Idempotency-Key": key or new_idempotency_key()}
    return RequestSpec(spec.method, spec.path, spec.call, spec.json, spec.form, headers, spec.body)


# Keys are drawn from os.urandom in batches: one system call per 64 submissions.
_KEY_BATCH = 64
_spare_keys: list[str] = []
os.register_at_fork(after_in_child=_spare_keys.clear)  # a forked child never reuses its parent's


def new_idempotency_key() -> str:
    """A fresh ``Idempotency-Key`` value (128 random bits from ``os.urandom``, hex)."""
    try:
        return _spare_keys.pop()
    except IndexError:
        pool = os.urandom(16 * _KEY_BATCH).hex()
        keys = [pool[i : i + 32] for i in range(0, len(pool), 32)]
        key = keys.pop()
        _spare_keys.extend(keys)  # another thread may have refilled meanwhile: no key is lost or shared
        return key


#: Set (by the batch runner) to submit the next queued call under a known key.
IDEMPOTENCY_KEY: ContextVar[str | None] = ContextVar("maxapi_idempotency_key", default=None)


def _maybe_charged(error: APIConnectionError, method: str, path: str, key: str | None) -> APIConnectionError:
    """The error for a submission whose answer was lost after it was sent: never repeated."""
    lost = "no answer came in time" if isinstance(error, APITimeoutError) else "the connection broke"
    message = (
        f"{method} {path}: the request was sent but {lost}, so the service may have carried it "
        f"out: the call may have been charged. It was not repeated; its Idempotency-Key is {key}. "
        f"Cause: {error}"
    )
    cls = APITimeoutError if isinstance(error, APITimeoutError) else APIConnectionError
    new = cls(message, sent=True, idempotency_key=key)
    new.__cause__ = error
    return new


def _unreadable_submission_answer(exc: ResponseError, spec: RequestSpec) -> None:
    """A submission's 2xx answer that cannot be read: the call went through, maybe charged.

    ``exc`` (re-raised by the caller: it keeps its type) gains the submission's
    ``idempotency_key`` and a message that says so. (A ``try`` in each caller, not a
    context manager: it runs on every call, and a ``try`` costs nothing until it catches.)
    """
    if exc.status is not None and not 200 <= exc.status < 300:
        return
    key = spec.headers.get("Idempotency-Key")
    exc.idempotency_key = key
    exc.message = (
        f"{spec.method} {spec.path}: the service accepted the call but its answer could not be "
        f"read, so the call may have been charged. It was not repeated; its Idempotency-Key is "
        f"{key}. Cause: {exc.message}"
    )
    exc.args = (exc.message,)


def _unreadable_task_result(exc: ResponseError, ref: TaskRef) -> None:
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
