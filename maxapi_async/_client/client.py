"""``AsyncMaxAPI``: the session object users hold.

The client checks its configuration and composes the session core
(:mod:`maxapi_async._client.core`: the transport, the retry loop, the poll loops and the
usage ledger) with the resources that use it (``client.images``, ``client.models``,
``client.tasks``: :mod:`maxapi_async._client.resources`). It owns the aiohttp session's
lifetime. Batches sit above it: ``maxapi_async.Batch(client, items, ...)``.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from yarl import URL

from .._protocol import calls, catalog
from .._protocol.errors import ConfigurationError, InvalidRequestError
from .._protocol.policy import PollPolicy, RetryPolicy
from .._protocol.pricing import PRICES, PriceTable
from .._transport.bodies import DEFAULT_MAX_DOWNLOAD_BYTES, DEFAULT_MAX_RESPONSE_BYTES
from .._transport.http import Transport
from .._transport.timeouts import Timeouts
from .._version import __version__
from .core import Core, PollLimiter
from .hooks import Hooks
from .resources import Images, Models, Tasks

if TYPE_CHECKING:
    import aiohttp

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_CONCURRENCY",
    "DEFAULT_MAX_POLLS_PER_SECOND",
    "DEFAULT_TASK_TIMEOUT",
    "AsyncMaxAPI",
    "ClientOptionsDict",
]

DEFAULT_BASE_URL = "https://api.maxapi.dev"
DEFAULT_MAX_CONCURRENCY = 64
DEFAULT_MAX_POLLS_PER_SECOND = 50.0
#: The longest wait for one queued task, in seconds (30 minutes).
DEFAULT_TASK_TIMEOUT = 1800.0


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
        seconds = calls.check_timeout("timeout", timeout)
    except InvalidRequestError:
        raise ConfigurationError(
            f"timeout must be a positive number of seconds (inf: no limit) or a Timeouts, got {timeout!r}"
        ) from None
    return Timeouts().with_total(None if seconds is None or math.isinf(seconds) else seconds)


def check_call_timeout(timeout: object) -> float | None:
    """A per-call ``timeout``: ``None`` (the client's), a positive number of seconds, or
    ``math.inf`` (no limit); anything else raises :class:`InvalidRequestError`."""
    return calls.check_timeout("timeout", timeout)


class ClientOptionsDict(TypedDict, total=False):
    """:class:`AsyncMaxAPI`'s keyword arguments, for what passes them on (the blocking client)."""

    base_url: str | None
    route_mode: str | None
    timeout: float | Timeouts | None
    max_concurrency: int
    http_session: aiohttp.ClientSession | None
    retry_policy: RetryPolicy | None
    poll_policy: PollPolicy | None
    max_polls_per_second: float
    poll_limiter: PollLimiter | None
    task_timeout: float | None
    wait_by_polling: bool
    hooks: Hooks | None
    prices: PriceTable | None
    allow_insecure_http: bool
    user_agent: str | None
    max_response_bytes: int
    max_download_bytes: int


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
    * ``poll_limiter``: where polls wait for that budget instead of the client's
      own gate, to share it with other clients: a :class:`RedisPollLimiter`
      shares it between processes and machines (or any :class:`PollLimiter`).
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
        poll_limiter: PollLimiter | None = None,
        task_timeout: float | None = DEFAULT_TASK_TIMEOUT,
        wait_by_polling: bool = False,
        hooks: Hooks | None = None,
        prices: PriceTable | None = None,
        allow_insecure_http: bool = False,
        user_agent: str | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        max_download_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
    ) -> None:
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
        if route_mode is not None and route_mode not in catalog.ROUTE_MODES:
            raise InvalidRequestError(
                "route_mode", f"unknown value {route_mode!r}", allowed=catalog.ROUTE_MODES
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
        if poll_limiter is not None and not isinstance(poll_limiter, PollLimiter):
            raise ConfigurationError(
                f"poll_limiter must have an async wait(rate) method (a PollLimiter), "
                f"got {type(poll_limiter).__name__}"
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
        self.poll_limiter = poll_limiter
        self.task_timeout = None if task_timeout is None else float(task_timeout)
        self.wait_by_polling = wait_by_polling
        self.hooks = hooks if hooks is not None else Hooks()
        self.prices = prices if prices is not None else PRICES
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
        self._core = core = Core(
            self._transport,
            base_url=self.base_url,
            route_mode=route_mode,
            timeouts=self.timeouts,
            retry_policy=self.retry_policy,
            poll_policy=self.poll_policy,
            max_polls_per_second=self.max_polls_per_second,
            task_timeout=self.task_timeout,
            wait_by_polling=wait_by_polling,
            hooks=self.hooks,
            prices=self.prices,
            poll_limiter=poll_limiter,
        )
        #: The running ledger of this client's calls (estimated credits by route).
        self.usage = core.usage
        self.images = Images(core)
        self.models = Models(core)
        self.tasks = Tasks(core)

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
        await self._core.close()

    # -- the asset fetcher (ImageAsset(url=..., fetcher=client) downloads through the core) --

    async def _download_bytes(self, url: str) -> bytes:
        return await self._core._download_bytes(url)

    async def _download_to(self, url: str, path: Path) -> None:
        await self._core._download_to(url, path)


def core_of(client: AsyncMaxAPI) -> Core:
    """The session core of ``client`` (for the package's layers above the client: batches)."""
    return client._core
