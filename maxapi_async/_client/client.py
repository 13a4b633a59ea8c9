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
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import attrs
from yarl import URL

from .._protocol import calls, catalog
from .._protocol.errors import ConfigurationError, InvalidRequestError
from .._protocol.options import check_headers
from .._protocol.policy import PollPolicy, RetryPolicy
from .._protocol.pricing import PRICES, PriceTable
from .._transport.bodies import DEFAULT_MAX_DOWNLOAD_BYTES, DEFAULT_MAX_RESPONSE_BYTES
from .._transport.http import Transport
from .._transport.timeouts import Timeouts
from .._version import __version__
from .core import Core
from .hooks import Hooks, log_from_environment
from .limits import PollLimiter
from .resources import Images, Models, Tasks

if TYPE_CHECKING:
    import aiohttp
    from typing_extensions import Unpack

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_CONCURRENCY",
    "DEFAULT_MAX_POLLS_PER_SECOND",
    "DEFAULT_TASK_TIMEOUT",
    "AsyncMaxAPI",
    "ClientOptionsDict",
    "ClientOverridesDict",
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


class ClientOverridesDict(TypedDict, total=False):
    """What :meth:`AsyncMaxAPI.with_options` may change: every option but the pool's."""

    base_url: str | None
    route_mode: str | None
    timeout: float | Timeouts | None
    max_retries: int | None
    retry_policy: RetryPolicy | None
    poll_policy: PollPolicy | None
    task_timeout: float | None
    wait_by_polling: bool
    hooks: Hooks | None
    prices: PriceTable | None
    allow_insecure_http: bool
    user_agent: str | None
    default_headers: Mapping[str, str] | None
    max_response_bytes: int
    max_download_bytes: int


class ClientOptionsDict(ClientOverridesDict, total=False):
    """:class:`AsyncMaxAPI`'s keyword arguments, for what passes them on (the blocking client)."""

    max_concurrency: int
    http_session: aiohttp.ClientSession | None
    max_polls_per_second: float
    poll_limiter: PollLimiter | None


#: The options a client made by ``with_options`` shares with its parent, with the pool.
_POOL_OPTIONS = ("max_concurrency", "http_session", "max_polls_per_second", "poll_limiter")


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
      takes its own ``timeout=`` (either form). A passed limit raises
      :class:`APITimeoutError`, which is also a :class:`TimeoutError`.
    * ``max_retries``: how many times a failed request may be repeated (the
      OpenAI SDK's name): ``retry_policy`` (or the default one) with
      ``max_attempts=max_retries + 1``; ``0`` never retries.
    * ``retry_policy``: when failed requests and asset downloads are repeated
      (:class:`RetryPolicy`). A submission (POST) is repeated only when the
      service answered that it failed (429, 5xx) or the connection failed before
      it was sent, always with the same ``Idempotency-Key``; when its outcome is
      unknown the error says the call may have been charged, and names the key.
    * ``poll_policy``: when queued tasks are polled (:class:`PollPolicy`).
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
    * ``prices``: the :class:`PriceTable` behind cost estimates (default
      :data:`PRICES`); ``client.usage`` is the running ledger.
    * ``user_agent``: the ``User-Agent`` of every request (default ``maxapi-async/<version>``).
    * ``default_headers``: headers sent with every API request (never with asset
      downloads); none may be ``Authorization``, ``Idempotency-Key`` or another header
      the client sets itself (:class:`ConfigurationError`).
    * ``max_response_bytes``: the largest API answer read (default 64 MiB);
      ``max_download_bytes``: the largest asset download (default 64 MiB).
      Larger ones raise :class:`ResponseTooLargeError` without being read.
    * ``max_concurrency``: connections open at once (default 64); more calls
      than that wait for a free connection.
    * ``http_session``: your own ``aiohttp.ClientSession``, used as given and
      left open by :meth:`aclose`.
    * ``max_polls_per_second``: the poll budget shared by every task handle of
      this client (default 50).
    * ``poll_limiter``: where polls wait for that budget instead of the client's
      own gate, to share it with other clients: a :class:`RedisPollLimiter`
      shares it between processes and machines (or any :class:`PollLimiter`).

    The client may be created outside a running event loop (at import time of
    a web app); its aiohttp session is created on first use. Use it as
    ``async with AsyncMaxAPI() as client:`` or call :meth:`aclose` yourself.
    ``MAXAPI_LOG=debug`` (every request) or ``info`` (retries and recoveries) in the
    environment logs to stderr (the ``maxapi_async`` logger; never a key or a body).
    """

    _transport: Transport
    _core: Core

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        route_mode: str | None = None,
        timeout: float | Timeouts | None = None,
        max_retries: int | None = None,
        retry_policy: RetryPolicy | None = None,
        poll_policy: PollPolicy | None = None,
        task_timeout: float | None = DEFAULT_TASK_TIMEOUT,
        wait_by_polling: bool = False,
        hooks: Hooks | None = None,
        prices: PriceTable | None = None,
        allow_insecure_http: bool = False,
        user_agent: str | None = None,
        default_headers: Mapping[str, str] | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        max_download_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        http_session: aiohttp.ClientSession | None = None,
        max_polls_per_second: float = DEFAULT_MAX_POLLS_PER_SECOND,
        poll_limiter: PollLimiter | None = None,
    ) -> None:
        log_from_environment()
        key = api_key if api_key is not None else os.environ.get("MAXAPI_KEY")
        _check_key(key)
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise ConfigurationError(f"max_concurrency must be a positive integer, got {max_concurrency!r}")
        if not _positive(max_polls_per_second) or not max_polls_per_second <= _MAX_POLL_RATE:
            raise ConfigurationError(
                f"max_polls_per_second must be a positive number up to {_MAX_POLL_RATE:g}, "
                f"got {max_polls_per_second!r}"
            )
        if http_session is not None:
            import aiohttp  # already loaded by whoever made the session

            if not isinstance(http_session, aiohttp.ClientSession):
                raise ConfigurationError("http_session must be an aiohttp.ClientSession")
        if poll_limiter is not None and not isinstance(poll_limiter, PollLimiter):
            raise ConfigurationError(
                f"poll_limiter must have an async wait(rate) method (a PollLimiter), "
                f"got {type(poll_limiter).__name__}"
            )
        self.max_concurrency = max_concurrency
        self.max_polls_per_second = float(max_polls_per_second)
        self.poll_limiter = poll_limiter
        self._configure(
            key,
            None,
            {"http_session": http_session},
            base_url=base_url,
            route_mode=route_mode,
            timeout=timeout,
            max_retries=max_retries,
            retry_policy=retry_policy,
            poll_policy=poll_policy,
            task_timeout=task_timeout,
            wait_by_polling=wait_by_polling,
            hooks=hooks,
            prices=prices,
            allow_insecure_http=allow_insecure_http,
            user_agent=user_agent,
            default_headers=default_headers,
            max_response_bytes=max_response_bytes,
            max_download_bytes=max_download_bytes,
        )

    def _configure(
        self,
        key: str | None,
        parent: AsyncMaxAPI | None,
        pool: dict[str, Any],
        **options: Unpack[ClientOverridesDict],
    ) -> None:
        """Check ``options`` and compose the transport, the core and the resources.

        With a ``parent`` the transport shares the parent's connection pool (and its key,
        when ``key`` is ``None``), and the core its usage ledger and poll budget.
        """
        route_mode = options.get("route_mode")
        if route_mode is not None and route_mode not in catalog.ROUTE_MODES:
            raise InvalidRequestError(
                "route_mode", f"unknown value {route_mode!r}", allowed=catalog.ROUTE_MODES
            )
        retry_policy, poll_policy = options.get("retry_policy"), options.get("poll_policy")
        hooks, prices = options.get("hooks"), options.get("prices")
        for name, option, kind in (
            ("retry_policy", retry_policy, RetryPolicy),
            ("poll_policy", poll_policy, PollPolicy),
            ("hooks", hooks, Hooks),
            ("prices", prices, PriceTable),
        ):
            if option is not None and not isinstance(option, kind):
                raise ConfigurationError(f"{name} must be a {kind.__name__}, got {type(option).__name__}")
        retry_policy = _with_max_retries(retry_policy or RetryPolicy(), options.get("max_retries"))
        task_timeout = options.get("task_timeout", DEFAULT_TASK_TIMEOUT)
        if task_timeout is not None and not (
            _positive(task_timeout) and task_timeout <= sys.float_info.max  # not inf, nor an int beyond
        ):
            raise ConfigurationError(
                "task_timeout must be a positive number of seconds, or None for no limit, "
                f"got {task_timeout!r}"
            )
        caps: dict[str, int] = {}
        for name in ("max_response_bytes", "max_download_bytes"):
            cap: object = options.get(name, DEFAULT_MAX_RESPONSE_BYTES)
            if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
                raise ConfigurationError(f"{name} must be a positive number of bytes, got {cap!r}")
            caps[name] = cap
        user_agent = options.get("user_agent")
        if user_agent is not None and (
            not isinstance(user_agent, str) or not _HEADER_TEXT.fullmatch(user_agent)
        ):
            raise ConfigurationError(f"user_agent must be printable ASCII text, got {user_agent!r}")
        try:
            default_headers = check_headers("default_headers", options.get("default_headers"))
        except InvalidRequestError as exc:
            raise ConfigurationError(str(exc)) from None
        self.base_url = _resolve_base_url(options.get("base_url"), options.get("allow_insecure_http", False))
        self.route_mode = route_mode
        self.timeouts = _resolve_timeouts(options.get("timeout"))
        self.retry_policy = retry_policy
        self.poll_policy = poll_policy if poll_policy is not None else PollPolicy()
        self.task_timeout = None if task_timeout is None else float(task_timeout)
        self.wait_by_polling = options.get("wait_by_polling", False)
        self.hooks = hooks if hooks is not None else Hooks()
        self.prices = prices if prices is not None else PRICES
        self.default_headers = default_headers
        # What with_options starts from: every option as this client resolved it.
        self._options: ClientOverridesDict = {
            **options,
            "base_url": str(self.base_url),
            "timeout": self.timeouts,
            "retry_policy": self.retry_policy,
            "max_retries": None,
            "default_headers": default_headers,
        }
        self._transport = Transport(
            base_url=self.base_url,
            api_key=key.strip() if key is not None else None,
            max_concurrency=self.max_concurrency,
            timeouts=self.timeouts,
            user_agent=user_agent or f"maxapi-async/{__version__}",
            http_session=pool.get("http_session"),
            max_response_bytes=caps["max_response_bytes"],
            max_download_bytes=caps["max_download_bytes"],
            default_headers=default_headers,
            pool_of=parent._transport if parent is not None else None,
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
            wait_by_polling=self.wait_by_polling,
            hooks=self.hooks,
            prices=self.prices,
            poll_limiter=self.poll_limiter,
            parent=parent._core if parent is not None else None,
        )
        #: The running ledger of this client's calls (estimated credits by route); a client
        #: made by :meth:`with_options` shares its parent's.
        self.usage = core.usage
        self.images = Images(core)
        self.models = Models(core)
        self.tasks = Tasks(core)

    def with_options(
        self, *, api_key: str | None = None, **options: Unpack[ClientOverridesDict]
    ) -> AsyncMaxAPI:
        """A client like this one with some options changed (the OpenAI SDK's habit).

        It shares this client's connection pool, usage ledger and poll budget, so it costs
        no new connections: make one per request or per tenant freely. Any argument of
        :class:`AsyncMaxAPI` but ``max_concurrency``, ``http_session`` and
        ``max_polls_per_second`` (the pool's) may change; ``default_headers`` are added to
        this client's. Closing it leaves this client (and the pool) open; closing this one
        closes it too. ::

            fast = client.with_options(timeout=30, max_retries=0)
            tenant = client.with_options(api_key=tenant_key, route_mode="official-cheap")
        """
        pooled = sorted(set(options) & set(_POOL_OPTIONS))
        unknown = sorted(set(options) - set(ClientOverridesDict.__annotations__) - set(_POOL_OPTIONS))
        if unknown:
            allowed = ", ".join(ClientOverridesDict.__annotations__)
            raise ConfigurationError(
                f"with_options got unknown options {unknown} (allowed: api_key, {allowed})"
            )
        if pooled:
            raise ConfigurationError(
                f"with_options cannot change {', '.join(pooled)}: the new client shares this one's "
                "connection pool; make a separate AsyncMaxAPI instead"
            )
        if api_key is not None:
            _check_key(api_key)
        merged: ClientOverridesDict = {**self._options, **options}
        if "retry_policy" not in options and options.get("max_retries") is None:
            merged["max_retries"] = None  # the parent's policy, max_retries included, as it is
        merged["default_headers"] = {**self.default_headers, **(options.get("default_headers") or {})}
        derived = AsyncMaxAPI.__new__(AsyncMaxAPI)
        derived.max_concurrency = self.max_concurrency
        derived.max_polls_per_second = self.max_polls_per_second
        derived.poll_limiter = self.poll_limiter
        derived._configure(api_key, self, {}, **merged)
        return derived

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return (
            f"<AsyncMaxAPI base_url={str(self.base_url).rstrip('/')!r} route_mode={self.route_mode!r} "
            f"max_concurrency={self.max_concurrency} {state}>"
        )

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` has run (on this client, or on the one it was made from)."""
        return self._transport.closed

    async def __aenter__(self) -> AsyncMaxAPI:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop every poll loop, then close the client's own aiohttp session.

        A caller's ``http_session`` stays open, and so does the pool of the client this
        one was made from by :meth:`with_options`; closing that one closes every client
        made from it. Every call, handle wait and batch still running raises
        :class:`ClientClosedError` (a submission cut in flight says it may have been
        charged). Handles whose polling was stopped can be resumed by a new client
        (``client.tasks.from_dict``).
        """
        await self._core.close()

    # -- the asset fetcher (ImageAsset(url=..., fetcher=client) downloads through the core) --

    async def _download_bytes(self, url: str) -> bytes:
        return await self._core._download_bytes(url)

    async def _download_to(self, url: str, path: Path) -> None:
        await self._core._download_to(url, path)


def _check_key(key: object) -> None:
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


def _with_max_retries(policy: RetryPolicy, max_retries: object) -> RetryPolicy:
    """``policy`` allowing ``max_retries`` repeats (``None``: as it is)."""
    if max_retries is None:
        return policy
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise ConfigurationError(f"max_retries must be a whole number from 0 up, got {max_retries!r}")
    return attrs.evolve(policy, max_attempts=max_retries + 1)


def core_of(client: AsyncMaxAPI) -> Core:
    """The session core of ``client`` (for the package's layers above the client: batches)."""
    return client._core
