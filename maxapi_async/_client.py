"""``AsyncMaxAPI``: the session object users hold, and its resources.

The client joins the pure protocol layer (what to send, what an answer means)
to the transport (how bytes move). It owns configuration, the lifetime of the
aiohttp session, and the decision to move heavy work (big JSON, base64, file
reads) off the event loop.
"""

from __future__ import annotations

import io
import ipaddress
import os
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, Union

import aiohttp
import anyio.to_thread
from yarl import URL

from . import _catalog, _protocol
from ._errors import ConfigurationError, InvalidRequestError
from ._files import INLINE_IO_LIMIT, read_file
from ._models import ImageAsset, ImageResult, ImagesResponse
from ._protocol import ImageCall, ReferenceImage, RequestSpec
from ._transport import RawResponse, Timeouts, Transport
from ._version import __version__

__all__ = ["DEFAULT_BASE_URL", "AsyncMaxAPI", "Images", "ReferenceInput"]

DEFAULT_BASE_URL = "https://api.maxapi.dev"
DEFAULT_MAX_CONCURRENCY = 64

#: What ``images.edit`` accepts as one reference image.
ReferenceInput = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, IO[bytes], ImageAsset]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _resolve_base_url(base_url: str | None, allow_insecure_http: bool) -> URL:
    raw = base_url or os.environ.get("MAXAPI_BASE_URL") or DEFAULT_BASE_URL
    url = URL(raw.strip())
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


def _resolve_timeouts(timeout: float | Timeouts | None) -> Timeouts:
    if timeout is None:
        return Timeouts()
    if isinstance(timeout, Timeouts):
        return timeout
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise ConfigurationError(
            f"timeout must be a positive number of seconds or a Timeouts, got {timeout!r}"
        )
    return Timeouts().with_total(float(timeout))


def _check_call_timeout(timeout: float | None) -> None:
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0
    ):
        raise InvalidRequestError("timeout", f"must be a positive number of seconds, got {timeout!r}")


def _parse_image_answer(
    raw: RawResponse, call: ImageCall, request_id: str | None
) -> tuple[ImagesResponse, dict[str, Any], list[bytes | None]]:
    """JSON, structure and base64 in one go: run inline or in a thread as a whole."""
    obj = _protocol.decode_json(raw.body, status=raw.status, request_id=request_id, what="images")
    response = _protocol.parse_images_response(obj, request_id=request_id)
    decoded = [
        _protocol.decode_b64(item.b64_json, request_id=request_id) if item.b64_json else None
        for item in response.data
    ]
    return response, obj, decoded


class AsyncMaxAPI:
    """An asyncio session with MaxAPI: one per application, shared by all tasks.

    Arguments (each falls back to an environment variable, then a default):

    * ``api_key``: the MaxAPI key; else ``MAXAPI_KEY``. Required.
    * ``base_url``: else ``MAXAPI_BASE_URL``, else ``https://api.maxapi.dev``.
      Plain ``http://`` is refused unless the host is loopback or
      ``allow_insecure_http=True``.
    * ``route_mode``: the default route for every call (``official``,
      ``official-cheap`` or ``mix``); ``None`` follows the key's configured order.
    * ``timeout``: seconds for a whole call (default 180), or a :class:`Timeouts`.
    * ``max_concurrency``: connections open at once (default 64); more calls
      than that wait for a free connection.
    * ``http_session``: your own ``aiohttp.ClientSession``, used as given and
      left open by :meth:`aclose`.

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
        allow_insecure_http: bool = False,
        user_agent: str | None = None,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get("MAXAPI_KEY")
        if not key or not key.strip():
            raise ConfigurationError(
                "no API key: pass api_key=... to AsyncMaxAPI or set the MAXAPI_KEY environment variable"
            )
        if route_mode is not None and route_mode not in _catalog.ROUTE_MODES:
            raise InvalidRequestError(
                "route_mode", f"unknown value {route_mode!r}", allowed=_catalog.ROUTE_MODES
            )
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise ConfigurationError(f"max_concurrency must be a positive integer, got {max_concurrency!r}")
        if http_session is not None and not isinstance(http_session, aiohttp.ClientSession):
            raise ConfigurationError("http_session must be an aiohttp.ClientSession")
        self.base_url = _resolve_base_url(base_url, allow_insecure_http)
        self.route_mode = route_mode
        self.timeouts = _resolve_timeouts(timeout)
        self.max_concurrency = max_concurrency
        self._transport = Transport(
            base_url=self.base_url,
            api_key=key.strip(),
            max_concurrency=max_concurrency,
            timeouts=self.timeouts,
            user_agent=user_agent or f"maxapi-async/{__version__}",
            http_session=http_session,
        )
        self.images = Images(self)

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
        """Close the client's own aiohttp session (a caller's session stays open)."""
        await self._transport.aclose()

    # -- the pieces every resource uses ---------------------------------------

    async def _send(self, spec: RequestSpec, timeout: float | None) -> tuple[RawResponse, str | None]:
        raw = await self._transport.send(spec, timeout=timeout)
        request_id = _protocol.request_id_from(raw.headers)
        if raw.status >= 300:
            raise _protocol.error_from_response(raw.status, raw.headers, raw.body)
        return raw, request_id

    async def _image_call(self, spec: RequestSpec, timeout: float | None) -> ImageResult:
        raw, request_id = await self._send(spec, timeout)
        if len(raw.body) <= INLINE_IO_LIMIT:
            response, obj, decoded = _parse_image_answer(raw, spec.call, request_id)
        else:
            response, obj, decoded = await anyio.to_thread.run_sync(
                _parse_image_answer, raw, spec.call, request_id
            )
        return self._image_result(response, obj, decoded, spec.call, request_id)

    def _image_result(
        self,
        response: ImagesResponse,
        obj: dict[str, Any],
        decoded: list[bytes | None],
        call: ImageCall,
        request_id: str | None,
    ) -> ImageResult:
        images = [
            _protocol.make_asset(item, data, call=call, created=response.created, fetcher=self)
            for item, data in zip(response.data, decoded, strict=True)
        ]
        model = obj.get("model")
        return ImageResult(
            images=images,
            model=model if isinstance(model, str) else call.model,
            created=response.created,
            usage=response.usage,
            request_id=request_id,
            raw=obj,
        )

    # -- asset downloads (ImageAsset calls these; never with the API key) -----

    async def _download_bytes(self, url: str) -> bytes:
        return await self._transport.download_bytes(url)

    async def _download_to(self, url: str, path: Path) -> None:
        await self._transport.download_to(url, path)


async def _load_reference(image: object, index: int) -> ReferenceImage:
    """Bytes and a file name for one reference image, read without blocking the loop."""
    argument = f"images[{index}]"
    filename: str | None = None
    data: bytes
    if isinstance(image, ImageAsset):
        data = await image.read()
    elif isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
    elif isinstance(image, (str, os.PathLike)):
        path = Path(os.fspath(image))
        try:
            data = await read_file(path)
        except OSError as exc:
            raise InvalidRequestError(argument, f"cannot read {str(path)!r}: {exc.strerror or exc}") from exc
        filename = path.name
    elif hasattr(image, "read"):
        if isinstance(image, io.TextIOBase):
            raise InvalidRequestError(argument, "is a text file; open it in binary mode ('rb')")
        try:
            content = await anyio.to_thread.run_sync(image.read)
        except OSError as exc:
            raise InvalidRequestError(argument, f"cannot read the file object: {exc}") from exc
        if not isinstance(content, (bytes, bytearray)):
            raise InvalidRequestError(argument, "the file object must be opened in binary mode ('rb')")
        data = bytes(content)
        name = getattr(image, "name", None)
        if isinstance(name, str):
            filename = Path(name).name
    else:
        raise InvalidRequestError(
            argument,
            f"unsupported type {type(image).__name__}; pass a path, bytes, a binary file or an ImageAsset",
        )
    return _protocol.reference_image(data, index=index, filename=filename)


class Images:
    """The OpenAI-compatible image endpoints: ``client.images``."""

    def __init__(self, client: AsyncMaxAPI) -> None:
        self._client = client

    async def generate(
        self,
        prompt: str,
        *,
        model: str = _catalog.DEFAULT_MODEL,
        aspect_ratio: str | None = None,
        resolution: str | None = None,
        n: int = 1,
        route_mode: str | None = None,
        asset_delivery: str | None = None,
        response_format: str | None = None,
        timeout: float | None = None,
    ) -> ImageResult:
        """Generate ``n`` images from ``prompt`` (``POST /v1/images/generations``).

        ``aspect_ratio`` fixes the output size (see :data:`maxapi_async.MODELS`);
        ``resolution`` is ignored by gemini-2.5-flash-image (a warning says so).
        ``route_mode`` overrides the client's default route; ``asset_delivery=
        "mirror"`` returns URLs on your alias domain; ``response_format=
        "b64_json"`` returns the bytes inline. ``timeout`` overrides the
        client's whole-call deadline for this call.
        """
        _check_call_timeout(timeout)
        spec = _protocol.build_generate_request(
            prompt,
            model=model,
            aspect_ratio=aspect_ratio,
            resolution=resolution,
            n=n,
            route_mode=route_mode if route_mode is not None else self._client.route_mode,
            asset_delivery=asset_delivery,
            response_format=response_format,
        )
        return await self._client._image_call(spec, timeout)

    async def edit(
        self,
        prompt: str,
        images: Sequence[ReferenceInput],
        *,
        model: str = _catalog.DEFAULT_MODEL,
        aspect_ratio: str | None = None,
        resolution: str | None = None,
        n: int = 1,
        route_mode: str | None = None,
        asset_delivery: str | None = None,
        response_format: str | None = None,
        timeout: float | None = None,
    ) -> ImageResult:
        """Edit or compose from one or more reference images (``POST /v1/images/edits``).

        Each reference is a path, bytes, a binary file object or an
        :class:`ImageAsset` from an earlier result; it is sent as an ``image[]``
        part with its file name and a content type sniffed from its bytes
        (PNG, JPEG, WebP or GIF; anything else is refused before sending).
        Other arguments as in :meth:`generate`.
        """
        _check_call_timeout(timeout)
        effective_route = route_mode if route_mode is not None else self._client.route_mode
        _protocol.check_edit_arguments(
            prompt,
            images,
            model=model,
            aspect_ratio=aspect_ratio,
            resolution=resolution,
            n=n,
            route_mode=effective_route,
            asset_delivery=asset_delivery,
            response_format=response_format,
        )
        references = [await _load_reference(image, i) for i, image in enumerate(images)]
        spec = _protocol.build_edit_request(
            prompt,
            references,
            model=model,
            aspect_ratio=aspect_ratio,
            resolution=resolution,
            n=n,
            route_mode=effective_route,
            asset_delivery=asset_delivery,
            response_format=response_format,
        )
        return await self._client._image_call(spec, timeout)
