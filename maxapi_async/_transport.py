"""The one place that knows aiohttp: send a :class:`RequestSpec`, stream a download.

The transport adds the credentials to requests on the API's own origin and to
nothing else: asset downloads (CDN, mirror domain, redirects) go out without
the ``Authorization`` header. aiohttp exceptions become the library's
:class:`~maxapi_async.APIConnectionError` / :class:`~maxapi_async.APITimeoutError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import attrs
from yarl import URL

from ._errors import APIConnectionError, APITimeoutError, ClientClosedError, ConfigurationError
from ._files import partial_path
from ._protocol import RequestSpec, error_from_response

__all__ = ["RawResponse", "Timeouts", "Transport"]

_DOWNLOAD_CHUNK = 256 * 1024
# One encoder for every body: json.dumps with options builds a new one per call.
_encode_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


@attrs.frozen
class Timeouts:
    """Deadlines in seconds (``None`` means no limit).

    * ``total`` (default 180): the whole call, including waiting for a free
      connection when ``max_concurrency`` calls are already running.
    * ``connect`` (default 10): opening one TCP/TLS connection.
    * ``read`` (default 150): the longest silence while waiting for the answer;
      a synchronous generation can take a minute before its first byte.
    """

    total: float | None = 180.0
    connect: float | None = 10.0
    read: float | None = 150.0

    def with_total(self, total: float | None) -> Timeouts:
        """A copy with another whole-call deadline (the read limit never exceeds it)."""
        read = self.read if total is None or self.read is None else min(self.read, total)
        return Timeouts(total=total, connect=self.connect, read=read)

    def _aiohttp(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=self.total, sock_connect=self.connect, sock_read=self.read)


@attrs.frozen
class RawResponse:
    """An answer as bytes, before the protocol layer reads it."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class _Credentials:
    """Holds the API key; its repr never shows it."""

    __slots__ = ("_header",)

    def __init__(self, api_key: str) -> None:
        self._header = {"Authorization": f"Bearer {api_key}"}

    def header(self) -> dict[str, str]:
        return self._header

    def __repr__(self) -> str:
        return "<credentials hidden>"


def _origin(url: URL) -> tuple[str, str, int | None]:
    return (url.scheme, url.host or "", url.port)


class Transport:
    """Sends requests for one client; owns (or borrows) one aiohttp session."""

    def __init__(
        self,
        *,
        base_url: URL,
        api_key: str,
        max_concurrency: int,
        timeouts: Timeouts,
        user_agent: str,
        http_session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.base_url = base_url
        self._base = str(base_url).rstrip("/")
        self._origin = _origin(base_url)
        self._credentials = _Credentials(api_key)
        self._max_concurrency = max_concurrency
        self._timeouts = timeouts
        self._default_timeout = timeouts._aiohttp()
        self._user_agent = user_agent
        self._session = http_session
        self._owns_session = http_session is None
        self._closed = False
        self._json_headers = {
            **self._credentials.header(),
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": user_agent,
        }
        self._form_headers = {
            **self._credentials.header(),
            "Accept": "application/json",
            "User-Agent": user_agent,
        }
        self._download_headers = {"User-Agent": user_agent}

    def __repr__(self) -> str:
        return f"<Transport {self._base} owns_session={self._owns_session}>"

    @property
    def closed(self) -> bool:
        return self._closed

    def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise ClientClosedError("this AsyncMaxAPI client is closed; create a new one")
        session = self._session
        if session is None:
            # Created on first use, inside the running loop, so the client itself
            # can be built at import time (module level in a web app).
            connector = aiohttp.TCPConnector(limit=self._max_concurrency, limit_per_host=0)
            session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._default_timeout,
                cookie_jar=aiohttp.DummyCookieJar(),
            )
            self._session = session
        elif session.closed:
            raise ClientClosedError("the aiohttp.ClientSession given to AsyncMaxAPI is closed")
        return session

    def api_url(self, path: str) -> str:
        """The absolute URL for ``path``; absolute URLs must be on the API's origin."""
        if path.startswith(("http://", "https://")):
            if _origin(URL(path)) != self._origin:
                raise ConfigurationError("refusing to send credentials to another origin")
            return path
        return self._base + path

    def _timeout(self, total: float | None) -> aiohttp.ClientTimeout:
        if total is None:
            return self._default_timeout
        return self._timeouts.with_total(total)._aiohttp()

    async def send(self, spec: RequestSpec, *, timeout: float | None = None) -> RawResponse:
        """Send ``spec`` to the API and read the whole answer."""
        session = self._get_session()
        url = self.api_url(spec.path)
        data: Any = None
        if spec.json is not None:
            data = _encode_json(spec.json).encode()
            headers = self._json_headers
        else:
            headers = self._form_headers
            if spec.form is not None:
                form = aiohttp.FormData(quote_fields=False)
                for part in spec.form:
                    form.add_field(
                        part.name,
                        part.value,
                        filename=part.filename,
                        content_type=part.content_type,
                    )
                data = form
        if spec.headers:
            headers = {**headers, **spec.headers}
        try:
            async with session.request(
                spec.method,
                url,
                data=data,
                headers=headers,
                timeout=self._timeout(timeout),
                allow_redirects=False,
            ) as resp:
                body = await resp.read()
                return RawResponse(resp.status, resp.headers, body)
        except aiohttp.ConnectionTimeoutError as exc:
            raise APITimeoutError(f"{spec.method} {spec.path}: connecting timed out", sent=False) from exc
        except aiohttp.ClientConnectorError as exc:
            # DNS failure or connection refused: the request never left.
            raise APIConnectionError(f"{spec.method} {spec.path}: cannot connect: {exc}", sent=False) from exc
        except asyncio.TimeoutError as exc:
            raise APITimeoutError(f"{spec.method} {spec.path} timed out") from exc
        except aiohttp.ClientError as exc:
            raise APIConnectionError(f"{spec.method} {spec.path} failed: {exc}") from exc

    async def _open_download(self, session: aiohttp.ClientSession, url: str) -> aiohttp.ClientResponse:
        # No credentials on downloads, whatever the origin: assets live on the CDN.
        resp = await session.get(url, headers=self._download_headers, timeout=self._default_timeout)
        if resp.status >= 300:
            body = await resp.read()
            resp.release()
            raise error_from_response(resp.status, resp.headers, body)
        return resp

    async def download_bytes(self, url: str) -> bytes:
        """GET ``url`` without credentials and return the body."""
        session = self._get_session()
        try:
            resp = await self._open_download(session, url)
            async with resp:
                return await resp.read()
        except asyncio.TimeoutError as exc:
            raise APITimeoutError(f"download of {URL(url).path} timed out") from exc
        except aiohttp.ClientError as exc:
            raise APIConnectionError(f"download of {URL(url).path} failed: {exc}") from exc

    async def download_to(self, url: str, target: Path) -> None:
        """Stream ``url`` into ``target`` via a temporary file renamed into place."""
        session = self._get_session()
        await anyio.Path(target.parent).mkdir(parents=True, exist_ok=True)
        tmp = partial_path(target)
        try:
            resp = await self._open_download(session, url)
            async with resp, await anyio.open_file(tmp, "xb") as fh:
                async for chunk in resp.content.iter_chunked(_DOWNLOAD_CHUNK):
                    await fh.write(chunk)
            os.replace(tmp, target)
        except asyncio.TimeoutError as exc:
            raise APITimeoutError(f"download of {URL(url).path} timed out") from exc
        except aiohttp.ClientError as exc:
            raise APIConnectionError(f"download of {URL(url).path} failed: {exc}") from exc
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
