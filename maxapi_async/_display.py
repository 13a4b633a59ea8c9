"""Notebook display (Jupyter, IPython): images that stay in the saved notebook.

Display depends on the models, never the reverse: :class:`~maxapi_async.ImageAsset`,
:class:`~maxapi_async.ImageResult` and :class:`~maxapi_async.GenerateContentResponse` have no
display methods. :func:`register` gives IPython a formatter for each (``for_type``): it runs
when ``maxapi_async`` is imported in a running IPython, and as the IPython extension
(``%load_ext maxapi_async``).

An image is embedded once: one ``image/png`` (or ``image/jpeg``) output per image, drawn at
thumbnail width, its bytes never repeated in HTML beside it; a result shows a caption, then
its images. A formatter runs on the kernel's event loop and must not wait there, so a plain
display embeds the bytes already in memory (``b64_json``, Gemini's ``inlineData``) and shows an
image that is only on the CDN as a link, which the CDN serves for 7 days.
``await maxapi_async.show(x)`` downloads what is missing first, concurrently and without
blocking the loop, through the client that made the result (never with the API key), and
then embeds every image, so the saved notebook keeps them all. Images above
:data:`DISPLAY_MAX_BYTES` are linked, not embedded.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as _dt
import html
from collections.abc import Callable, Sequence
from typing import Any

from ._protocol.errors import MaxAPIError
from ._protocol.gemini import GenerateContentResponse
from ._protocol.images import sniff_mime_type
from ._protocol.models import ImageAsset, ImageResult
from ._protocol.pricing import format_credits

__all__ = ["DISPLAY_MAX_BYTES", "THUMBNAIL_WIDTH", "caption_html", "register", "show"]

#: Largest thumbnail width in CSS pixels.
THUMBNAIL_WIDTH = 256
#: At most this many characters of a Gemini answer's text are shown.
TEXT_LIMIT = 500
#: Images up to this size are embedded in the notebook; larger ones are linked.
DISPLAY_MAX_BYTES = 16 * 1024 * 1024
#: What Jupyter draws from raw bytes (other types are embedded once, as a ``data:`` URL).
_RAW_TYPES = ("image/png", "image/jpeg")

Shown = ImageAsset | ImageResult | GenerateContentResponse


def _when(moment: _dt.datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _count(images: Sequence[object]) -> str:
    return f"{len(images)} image" + ("" if len(images) == 1 else "s")


def _details(obj: ImageResult | GenerateContentResponse) -> tuple[str, list[tuple[str, str | None]]]:
    cost = None if obj.cost is None else f"{format_credits(obj.cost)} credits (estimated)"
    if isinstance(obj, ImageResult):
        return f"ImageResult: {_count(obj.images)}", [
            ("model", obj.model),
            ("created", _when(obj.created_at)),
            ("cost", cost),
            ("request id", obj.request_id),
        ]
    text = obj.text
    if text is not None and len(text) > TEXT_LIMIT:
        text = text[:TEXT_LIMIT] + "…"
    return f"GenerateContentResponse: {_count(obj.images)}", [
        ("text", text),
        ("finish reason", obj.finish_reason),
        ("block reason", obj.block_reason),
        ("model version", obj.model_version),
        ("cost", cost),
        ("request id", obj.request_id),
    ]


def caption_html(obj: Shown) -> str:
    """What a display says beside the pictures: a result's title and details, an image's size,
    whether it is embedded, and until when its URL lasts. Never the image bytes."""
    if isinstance(obj, ImageAsset):
        bits = [f"{obj.width}x{obj.height}"] if obj.size is not None else []
        expires = _when(obj.expires_at)
        if obj.url and expires is not None:
            bits.append(f"URL expires {expires}")
        text = html.escape(" · ".join(bits) or "image")
        if obj.url:
            text = f'<a href="{html.escape(obj.url)}" target="_blank">{text}</a>'
        return f'<div style="font-size:smaller">{text}</div>'
    title, details = _details(obj)
    lines = "".join(
        f"<div><b>{html.escape(name)}</b>: {html.escape(value)}</div>"
        for name, value in details
        if value is not None
    )
    return f'<div class="maxapi-async"><div><b>{html.escape(title)}</b></div>{lines}</div>'


def _embeddable(data: bytes | None) -> str | None:
    """The image type of ``data`` when it can be embedded (an image, within the cap)."""
    if data is None or len(data) > DISPLAY_MAX_BYTES:
        return None
    return sniff_mime_type(data)


def _width(asset: ImageAsset) -> int:
    return min(asset.width, THUMBNAIL_WIDTH) if asset.width else THUMBNAIL_WIDTH


def _bundle(asset: ImageAsset, data: bytes | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """One image's output: its bytes once (raw, or one ``data:`` URL), else a link to its URL."""
    mime = _embeddable(data)
    width = _width(asset)
    if mime in _RAW_TYPES and data is not None:
        return {mime: data, "text/plain": repr(asset)}, {mime: {"width": width}}
    if mime is not None and data is not None:
        src = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
        img = f'<img src="{src}" width="{width}" alt="generated image">'
        return {"text/html": img + caption_html(asset), "text/plain": repr(asset)}, {}
    if asset.url and asset.url.lower().startswith(("https://", "http://")):
        img = (
            f'<img src="{html.escape(asset.url)}" width="{width}" alt="generated image (linked: '
            'await maxapi_async.show(...) embeds it)">'
        )
        return {"text/html": img + caption_html(asset), "text/plain": repr(asset)}, {}
    return {"text/html": '<div style="padding:1em;border:1px dashed #999">no image data</div>'}, {}


def _in_ipython() -> bool:
    """Whether an IPython shell (a notebook's kernel) is running in this process."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return get_ipython() is not None


def _publish(obj: Shown, data: Sequence[bytes | None]) -> None:
    """Display ``obj``: a result's caption, then one output per image (``data``: its bytes).
    Outside IPython: one line per image, its size and where it is."""
    images = [obj] if isinstance(obj, ImageAsset) else list(obj.images)
    if not _in_ipython():
        for asset, bytes_ in zip(images, data, strict=True):
            size = f"{asset.width}x{asset.height}" if asset.size else "?x?"
            where = asset.url or f"<{len(bytes_ or b'')} bytes inline>"
            print(f"{size}  {where}")
        return
    from IPython import display as ipython_display

    display: Callable[..., Any] = ipython_display.display  # (untyped in IPython)
    if not isinstance(obj, ImageAsset):
        display({"text/html": caption_html(obj), "text/plain": repr(obj)}, raw=True)
    for asset, bytes_ in zip(images, data, strict=True):
        bundle, metadata = _bundle(asset, bytes_)
        display(bundle, raw=True, metadata=metadata)


def _display_now(obj: Shown) -> bool:
    """IPython's display of ``obj``: what is in memory, embedded; nothing downloaded."""
    images = [obj] if isinstance(obj, ImageAsset) else list(obj.images)
    _publish(obj, [a.data for a in images])
    return True


async def _fetch(asset: ImageAsset) -> bytes | None:
    """The asset's bytes for display: inline, or downloaded (``None`` when it cannot be had)."""
    if asset.data is not None:
        return asset.data
    try:
        return await asset.read()
    except (MaxAPIError, ValueError, RuntimeError):  # gone, too big, or bound to no client
        return None


async def show(*objects: Shown) -> None:
    """Display each of ``objects`` with every image embedded, downloading first what is missing.

    For notebooks: a saved notebook then shows the images after the CDN's links expire.
    The downloads run concurrently on the running loop (nothing blocks it), through the
    client that made each result, without the API key; an image that cannot be downloaded,
    or is larger than :data:`DISPLAY_MAX_BYTES`, is shown linked. Outside IPython, prints
    each image's size and URL.
    """
    for obj in objects:
        if not isinstance(obj, (ImageAsset, ImageResult, GenerateContentResponse)):
            from ._protocol.errors import InvalidRequestError

            raise InvalidRequestError(
                "objects", f"show() displays ImageAsset, ImageResult or GenerateContentResponse, "
                f"got {type(obj).__name__}",
            )  # fmt: skip
    for obj in objects:
        images = [obj] if isinstance(obj, ImageAsset) else list(obj.images)
        _publish(obj, await asyncio.gather(*(_fetch(a) for a in images)))


def register(ip: Any) -> None:
    """Teach an IPython shell to display the results (idempotent)."""
    formatter = ip.display_formatter.ipython_display_formatter
    for cls in (ImageAsset, ImageResult, GenerateContentResponse):
        formatter.for_type(cls, _display_now)


def register_if_running() -> None:
    """:func:`register` with the running IPython shell, if there is one (import time)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - checked by the caller
        return
    ip = get_ipython()
    if ip is not None and getattr(ip, "display_formatter", None) is not None:
        register(ip)
