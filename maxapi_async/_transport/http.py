"""The one place that knows aiohttp: send a :class:`RequestSpec`, stream a download.

The transport adds the credentials to requests on the API's own origin and to
nothing else: asset downloads (CDN, mirror domain, redirects) go out without
the ``Authorization`` header, and an API answer that redirects is returned as
it is, never followed with the key. aiohttp exceptions become the library's
:class:`~maxapi_async.APIConnectionError` / :class:`~maxapi_async.APITimeoutError`,
with ``sent=False`` only when the request certainly never left. Closing the
session under a request (:meth:`Transport.aclose`) raises
:class:`~maxapi_async.ClientClosedError` in every caller it cuts off, whatever it
was doing; a caller's own cancellation still propagates as ``CancelledError``.

Nothing it hands up holds the key either: the body and headers of every API answer,
and the text of every failed API request's error, pass through the client's
:class:`~maxapi_async._protocol.redact.Redactor` first (a server may echo the key it was sent;
downloads send none). The key itself sits in objects whose repr hides it, never in a
plain local variable of a request's frames.

Nothing is read into memory past a size cap: an answer's ``Content-Length`` is
checked first, and the bytes are counted as they arrive (a server may send no
length, or compress). Retrying is not done here: the client decides, once, for
API requests and downloads alike.

aiohttp is imported when the first session is made (:meth:`Transport._get_session`,
which every request goes through first), not with this module: it costs about
100 ms, most of ``import maxapi_async`` otherwise. Code here that names
``aiohttp`` at run time runs only after that.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from multidict import CIMultiDict
from yarl import URL

from .._protocol.assets import check_asset_type
from .._protocol.calls import (
    IDEMPOTENCY_HEADER,
    RequestSpec,
    encode_json,
    error_from_response,
    request_id_from,
)
from .._protocol.errors import (
    APIConnectionError,
    APITimeoutError,
    ClientClosedError,
    ConfigurationError,
    ResponseError,
    ResponseTooLargeError,
)
from .._protocol.redact import REDACTED, Redactor
from .._protocol.urls import (
    MAX_ASSET_REDIRECTS,
    check_asset_url,
    is_api_path,
    on_origin,
    origin_of,
    redirect_target,
)
from .bodies import (
    DEFAULT_MAX_DOWNLOAD_BYTES,
    DEFAULT_MAX_RESPONSE_BYTES,
    LARGE_BODY,
    RawResponse,
    large_body,
    read_capped,
    read_counting,
    read_error_body,
    too_large,
    whole_body_fits,
)
from .files import partial_path
from .timeouts import Timeouts

if TYPE_CHECKING:
    import aiohttp

    _HeadersBase = CIMultiDict[str]
else:
    _HeadersBase = CIMultiDict

__all__ = ["Transport", "cancel_requested"]


_DOWNLOAD_CHUNK = 256 * 1024
# The answers to a GET that send it elsewhere.
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Enough leading bytes to recognise PNG, JPEG, WebP and GIF.
_SNIFF_BYTES = 16
# A first attempt starts within this much of the client's whole deadline: it reuses one
# aiohttp timeout object (see Transport._timeout).
_FULL_DEADLINE_SLACK = 0.001


class _Credentials:
    """Holds the API key; its repr never shows it."""

    __slots__ = ("_header",)

    def __init__(self, api_key: str) -> None:
        self._header = {"Authorization": f"Bearer {api_key}"}

    def header(self) -> dict[str, str]:
        return self._header

    def __repr__(self) -> str:
        return "<credentials hidden>"


class _AuthHeaders(_HeadersBase):
    """Request headers that carry the credentials, with a repr that leaves them out.

    A ``CIMultiDict``, which aiohttp takes as it is (a dict it would copy into one): the
    ``headers`` local of a request's frames is this, never a plain ``str`` or ``dict`` whose
    repr an error tracker recording locals would store.
    """

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{name!r}: {REDACTED if name.lower() == 'authorization' else repr(value)}"
            for name, value in self.items()
        )
        return f"<headers {{{shown}}}>"


def _import_aiohttp() -> None:
    """Bind the module-level name ``aiohttp`` (see the module docstring)."""
    global aiohttp
    import aiohttp


def cancel_requested() -> bool:
    """Whether the current task is being cancelled (always ``False`` before Python 3.11).

    A ``CancelledError`` when this is false was not asked for by the caller: a future
    it awaited was cancelled under it (aiohttp cancels the requests waiting for a
    pooled connection when its session closes; ``aclose()`` cancels poll loops).
    """
    task = asyncio.current_task()
    cancelling = getattr(task, "cancelling", None)
    return bool(cancelling()) if cancelling is not None else False


def _wire_error(exc: BaseException, where: str, redact: Redactor | None = None) -> APIConnectionError:
    """The library's error for an aiohttp failure; ``sent=False`` only when nothing left.

    aiohttp's message may quote what the server sent (a malformed status line or header):
    ``redact`` (``None`` for downloads, which carry no key) cleans it.
    """
    text = str(exc) if redact is None else redact.text(str(exc))
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        # aiohttp's connect limit covers the wait for a pooled connection and the TCP/TLS
        # handshake, and fires before the whole-call limit (see Timeouts._aiohttp).
        return APITimeoutError(f"{where}: no connection could be made in time", sent=False)
    if isinstance(exc, aiohttp.ClientConnectorError):
        # DNS failure, connection refused, TLS handshake: the request never left.
        return APIConnectionError(f"{where}: cannot connect: {text}", sent=False)
    if isinstance(exc, asyncio.TimeoutError):
        return APITimeoutError(f"{where}: no answer within the timeout")
    return APIConnectionError(f"{where}: the connection broke: {text or type(exc).__name__}")


class Transport:
    """Sends requests for one client; owns (or borrows) one aiohttp session."""

    def __init__(
        self,
        *,
        base_url: URL,
        api_key: str | None,
        max_concurrency: int,
        timeouts: Timeouts,
        user_agent: str,
        http_session: aiohttp.ClientSession | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        max_download_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
        default_headers: Mapping[str, str] | None = None,
        pool_of: Transport | None = None,
    ) -> None:
        """``default_headers`` go on every API request (checked by the client: none of them
        may replace the credentials). ``pool_of``: share that transport's connection pool
        (its session, made on first use) and, when ``api_key`` is ``None``, its key; closing
        this transport then leaves the pool open."""
        self.base_url = base_url
        self._base = str(base_url).rstrip("/")
        self._origin = origin_of(base_url)
        self._pool_of = pool_of
        self._credentials: _Credentials
        self._redact: Redactor
        if api_key is not None:
            self._credentials, self._redact = _Credentials(api_key), Redactor(api_key)
        elif pool_of is not None:
            self._credentials, self._redact = pool_of._credentials, pool_of._redact
        else:
            raise ConfigurationError("no API key")
        self._max_concurrency = max_concurrency
        self._timeouts = timeouts
        self._full: aiohttp.ClientTimeout | None = None
        self._max_response_bytes = max_response_bytes
        self._max_download_bytes = max_download_bytes
        self._user_agent = user_agent
        self._session = http_session
        if http_session is not None:
            _import_aiohttp()  # already loaded by whoever made the session
        self._owns_session = http_session is None and pool_of is None
        self._closed = False
        # The caller's default headers first: the credentials and content type always win.
        custom = dict(default_headers or {})
        self._json_headers = _AuthHeaders(
            {
                "Accept": "application/json",
                "User-Agent": user_agent,
                **custom,
                **self._credentials.header(),
                "Content-Type": "application/json",
            }
        )
        self._form_headers = _AuthHeaders(
            {
                "Accept": "application/json",
                "User-Agent": user_agent,
                **custom,
                **self._credentials.header(),
            }
        )
        self._download_headers = {"User-Agent": user_agent}

    def __repr__(self) -> str:
        return f"<Transport {self._base} owns_session={self._owns_session}>"

    @property
    def closed(self) -> bool:
        return self._closed or (self._pool_of is not None and self._pool_of.closed)

    def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise ClientClosedError("this AsyncMaxAPI client is closed; create a new one")
        if self._pool_of is not None:
            if self._pool_of.closed:
                raise ClientClosedError(
                    "the client this one was made from (with_options) is closed, and with it "
                    "the connection pool they share; create a new client"
                )
            return self._pool_of._get_session()
        session = self._session
        if session is None:
            # Created on first use, inside the running loop, so the client itself
            # can be built at import time (module level in a web app).
            _import_aiohttp()
            connector = aiohttp.TCPConnector(limit=self._max_concurrency, limit_per_host=0)
            session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._full_timeout(),
                cookie_jar=aiohttp.DummyCookieJar(),
            )
            self._session = session
        elif session.closed:
            raise ClientClosedError("the aiohttp.ClientSession given to AsyncMaxAPI is closed")
        return session

    def api_url(self, path: str) -> str:
        """The absolute URL for ``path``: a path on the API, or an absolute URL on its origin.

        The origin is compared as :func:`~maxapi_async._protocol.urls.on_origin` compares it (the
        poller asks the same function before it picks a ``poll_url``); anything else is
        refused, since every API request carries the key.
        """
        if is_api_path(path):
            return self._base + path
        url = on_origin(path, self._origin) if self._origin is not None else None
        if url is None:
            raise ConfigurationError("refusing to send credentials to another origin")
        return url

    def _full_timeout(self) -> aiohttp.ClientTimeout:
        """aiohttp's limits for the client's whole deadline (made once, after aiohttp is loaded)."""
        if self._full is None:
            self._full = self._timeouts._aiohttp(self._timeouts.total)
        return self._full

    def _timeout(self, total: float | None, limits: Timeouts | None = None) -> aiohttp.ClientTimeout:
        """aiohttp's limits for an attempt with ``total`` seconds of the call's deadline left
        (``limits``: the call's own connect and read limits, else the client's).

        The first attempt of a call under the client's own deadline (most attempts) starts
        microseconds into it: it gets the client's full limits, made once, rather than a new
        object (the deadline moves by under 1 ms, on top of a 100 ms margin).
        """
        if limits is not None and limits is not self._timeouts:
            return limits._aiohttp(total)
        full = self._timeouts.total
        if total is None or (full is not None and full - _FULL_DEADLINE_SLACK <= total <= full):
            return self._full_timeout()
        return self._timeouts._aiohttp(total)

    async def send(
        self,
        spec: RequestSpec,
        *,
        timeout: float | None = None,
        limits: Timeouts | None = None,
        idempotency_key: str | None = None,
    ) -> RawResponse | APIConnectionError | ResponseTooLargeError:
        """Send ``spec`` to the API and read the answer (redirects are not followed).

        ``timeout`` is what is left of the call's deadline; ``limits``, the call's own
        connect and read limits (default: the client's); ``idempotency_key``, when given,
        goes out as the ``Idempotency-Key`` header (the same for every attempt of a call).
        A failure is returned, not raised: the client decides what it means (another
        attempt, or "may have been charged"), and its await of every request needs no
        ``try`` around it. A 2xx answer above ``max_response_bytes`` gives
        :class:`ResponseTooLargeError` (and the connection is dropped); an error answer is
        read up to its first 64 KiB, which hold its message.
        """
        session = self._get_session()
        url = self.api_url(spec.path)
        data: Any = None
        if spec.json is not None:
            data = spec.body if spec.body is not None else encode_json(spec.json)
            if len(data) > LARGE_BODY:
                data = large_body(data, "application/json")
            headers = self._json_headers
        else:
            headers = self._form_headers
            if spec.form is not None:
                form = aiohttp.FormData(quote_fields=False)
                for part in spec.form:
                    value: Any = part.value
                    if isinstance(value, bytes) and len(value) > LARGE_BODY:
                        value = large_body(value, part.content_type or "application/octet-stream")
                    form.add_field(
                        part.name,
                        value,
                        filename=part.filename,
                        content_type=part.content_type,
                    )
                data = form
        if spec.headers or idempotency_key is not None:
            headers = _AuthHeaders(headers)
            headers.update(spec.headers)
            if idempotency_key is not None:
                headers[IDEMPOTENCY_HEADER] = idempotency_key
        # Awaited, not entered with ``async with``: the answer is read whole here and released
        # below, and the context manager's five extra coroutines per request buy nothing more.
        try:
            resp = await session.request(
                spec.method,
                url,
                data=data,
                headers=headers,
                timeout=self._timeout(timeout, limits),
                allow_redirects=False,
            )
        except (aiohttp.ClientError, asyncio.TimeoutError, asyncio.CancelledError) as exc:
            return self._failure(session, exc, spec, idempotency_key)
        try:
            limit, what = self._max_response_bytes, f"the answer to {spec.path}"
            if resp.status >= 300:
                body = await read_error_body(resp)
            elif whole_body_fits(resp, limit, what):  # read_capped, inline: one frame less
                body = await resp.read()
            else:
                body = await read_counting(resp, limit, what)
        except (aiohttp.ClientError, asyncio.TimeoutError, asyncio.CancelledError) as exc:
            return self._failure(session, exc, spec, idempotency_key)
        except ResponseTooLargeError as exc:
            exc.request_id = request_id_from(self._redact.headers(resp.headers))
            return exc
        finally:
            resp.release()  # back to the pool once read; closed when the read failed
        return RawResponse(resp.status, self._redact.headers(resp.headers), self._redact.body(body))

    def _failure(
        self,
        session: aiohttp.ClientSession,
        exc: BaseException,
        spec: RequestSpec | None = None,
        idempotency_key: str | None = None,
        where: str = "",
    ) -> APIConnectionError:
        """The library's error for a request that failed on the wire (see ``_wire_error``).

        The one place that tells a failure from a close: when the session was closed
        under the request (by :meth:`aclose`, or by the owner of a borrowed session),
        the caller gets :class:`ClientClosedError`, raised, whether aiohttp dropped its
        connection or cancelled its wait for one (a ``CancelledError`` nobody asked for).
        A caller's own cancellation is re-raised as it is.
        """
        redact = None  # a download carries no key
        if spec is not None:
            where, redact = f"{spec.method} {spec.path}", self._redact
        cancelled = isinstance(exc, asyncio.CancelledError)
        if not (self.closed or session.closed) or (cancelled and cancel_requested()):
            if cancelled:
                raise exc
            return _wire_error(exc, where, redact)
        # Closing cancels only the waits for a pooled connection: those requests never left.
        wire = None if cancelled else _wire_error(exc, where, redact)
        sent = wire is not None and wire.sent
        closed = "the client was closed" if self.closed else "the aiohttp.ClientSession it uses was closed"
        if not sent:
            message = f"{where}: {closed} before the request was sent"
        elif spec is not None and spec.method == "POST":
            message = (
                f"{where}: {closed} while the request was in flight, so the service may have carried "
                f"it out: the call may have been charged. Its Idempotency-Key is {idempotency_key}"
            )
        else:
            message = f"{where}: {closed} while the request was in flight"
        raise ClientClosedError(message) from wire  # aiohttp's own error may quote the server

    async def _open_download(
        self, session: aiohttp.ClientSession, url: str, timeout: float | None
    ) -> aiohttp.ClientResponse:
        """GET an asset, following at most :data:`MAX_ASSET_REDIRECTS` redirects, each to
        ``http(s)`` (anything else is the answer's fault: :class:`ResponseError`, never
        retried). ``timeout`` covers every hop.
        """
        # No credentials on downloads, whatever the origin (assets live on the CDN), so
        # following the CDN's redirects cannot leak the key.
        target = check_asset_url(url)
        end = None if timeout is None else time.monotonic() + timeout
        for _ in range(MAX_ASSET_REDIRECTS + 1):
            left = None if end is None else end - time.monotonic()
            if left is not None and left <= 0:
                raise asyncio.TimeoutError
            resp = await session.get(
                target,
                headers=self._download_headers,
                timeout=self._timeout(left),
                allow_redirects=False,
            )
            if resp.status in _REDIRECTS:
                resp.release()
                target = redirect_target(
                    resp.url, resp.headers.get("Location"), request_id=request_id_from(resp.headers)
                )
                continue
            if resp.status >= 300:
                async with resp:
                    body = await read_error_body(resp)
                raise error_from_response(resp.status, resp.headers, body)
            return resp
        raise ResponseError(
            f"the asset download redirected more than {MAX_ASSET_REDIRECTS} times; not followed further",
            status=resp.status,
            request_id=request_id_from(resp.headers),
        )

    def _check_type(self, head: bytes, resp: aiohttp.ClientResponse, claimed: str | None) -> None:
        check_asset_type(
            head,
            claimed=claimed,
            content_type=resp.headers.get("Content-Type"),
            status=resp.status,
            request_id=request_id_from(resp.headers),
        )

    async def download_bytes(
        self, url: str, *, timeout: float | None = None, claimed: str | None = None
    ) -> RawResponse:
        """GET ``url`` without credentials and return the answer with its body.

        The body must be an image of the ``claimed`` type (see
        :func:`~maxapi_async._protocol.assets.check_asset_type`) and at most
        ``max_download_bytes`` long. A non-2xx answer raises its typed error.
        """
        session = self._get_session()
        try:
            async with await self._open_download(session, url, timeout) as resp:
                body = await read_capped(resp, self._max_download_bytes, "the download")
                self._check_type(body[:_SNIFF_BYTES], resp, claimed)
                return RawResponse(resp.status, resp.headers, body)
        except (aiohttp.ClientError, asyncio.TimeoutError, asyncio.CancelledError) as exc:
            raise self._failure(session, exc, where=f"download of {URL(url).path}") from exc

    async def download_to(
        self, url: str, target: Path, *, timeout: float | None = None, claimed: str | None = None
    ) -> RawResponse:
        """Stream ``url`` into ``target`` via a temporary file renamed into place.

        The first bytes are checked as in :meth:`download_bytes` before anything
        is written, and the count against ``max_download_bytes`` runs as the
        chunks arrive; on any failure the temporary file is removed. The
        returned answer has an empty ``body``.
        """
        import anyio

        session = self._get_session()
        await anyio.Path(target.parent).mkdir(parents=True, exist_ok=True)
        tmp = partial_path(target)
        limit = self._max_download_bytes
        try:
            resp = await self._open_download(session, url, timeout)
            async with resp:
                declared = resp.content_length
                if declared is not None and declared > limit:
                    raise too_large(resp, "the download", limit, declared, declared=True)
                async with await anyio.open_file(tmp, "xb") as fh:
                    head: bytes | None = b""
                    size = 0
                    async for chunk in resp.content.iter_chunked(_DOWNLOAD_CHUNK):
                        size += len(chunk)
                        if size > limit:
                            raise too_large(resp, "the download", limit, size, declared=False)
                        if head is not None:
                            head += chunk
                            if len(head) < _SNIFF_BYTES:
                                continue
                            self._check_type(head, resp, claimed)
                            chunk, head = head, None
                        await fh.write(chunk)
                    if head is not None:  # a body shorter than the sniffed prefix
                        self._check_type(head, resp, claimed)
                        await fh.write(head)
            os.replace(tmp, target)
            return RawResponse(resp.status, resp.headers, b"")
        except (aiohttp.ClientError, asyncio.TimeoutError, asyncio.CancelledError) as exc:
            raise self._failure(session, exc, where=f"download of {URL(url).path}") from exc
        finally:
            # After os.replace the name is gone; after a failure, drop the partial file.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    async def aclose(self) -> None:
        """Close the session if this transport created it; idempotent."""
        if self._closed:
            return
        self._closed = True
        session, self._session = self._session, None
        if session is not None and self._owns_session:
            await session.close()
