"""Rich display in Jupyter and IPython: thumbnails for assets, small grids for results.

IPython looks for ``_repr_png_`` and ``_repr_html_`` on the objects a cell shows;
:class:`~maxapi_async.ImageAsset`, :class:`~maxapi_async.ImageResult` and
:class:`~maxapi_async.GenerateContentResponse` delegate to the functions here.

A repr never does I/O: an asset with inline bytes is shown from those bytes (a
``data:`` URL, scaled down by the ``width`` attribute), an asset with only a URL as
an ``<img>`` the browser loads from the CDN (no API key is involved: assets are
public for their 7 days). Pure functions of the objects.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ._protocol.images import sniff_mime_type

if TYPE_CHECKING:
    from ._protocol.gemini import GenerateContentResponse
    from ._protocol.models import ImageAsset, ImageResult

__all__ = ["asset_html", "asset_png", "content_response_html", "image_result_html"]

#: Largest thumbnail width in CSS pixels.
THUMBNAIL_WIDTH = 256
#: At most this many characters of a Gemini answer's text are shown.
TEXT_LIMIT = 500

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def asset_png(asset: ImageAsset) -> bytes | None:
    """The PNG bytes for ``image/png`` output: only inline data that really is a PNG."""
    data = asset.data
    if data is not None and data.startswith(_PNG_SIGNATURE):
        return data
    return None


def _thumbnail_width(asset: ImageAsset) -> int:
    return min(asset.width, THUMBNAIL_WIDTH) if asset.width else THUMBNAIL_WIDTH


def _img_tag(asset: ImageAsset) -> str | None:
    width = _thumbnail_width(asset)
    if asset.data is not None:
        mime = sniff_mime_type(asset.data) or asset.mime_type or "image/png"
        encoded = base64.b64encode(asset.data).decode("ascii")
        src = f"data:{mime};base64,{encoded}"
    elif asset.url and asset.url.lower().startswith(("https://", "http://")):
        src = asset.url
    else:
        return None
    return f'<img src="{html.escape(src)}" width="{width}" alt="generated image" style="max-width:100%">'


def _when(moment: _dt.datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _caption(asset: ImageAsset) -> str:
    bits: list[str] = []
    if asset.size is not None:
        bits.append(f"{asset.size[0]}x{asset.size[1]}")
    bits.append("inline" if asset.data is not None else "url")
    expires = _when(asset.expires_at)
    if expires is not None:
        bits.append(f"expires {expires}")
    text = html.escape(" · ".join(bits))
    if asset.url:
        text = f'<a href="{html.escape(asset.url)}" target="_blank">{text}</a>'
    return text


def _figure(asset: ImageAsset) -> str:
    img = _img_tag(asset) or '<div style="padding:1em;border:1px dashed #999">no image data</div>'
    return (
        '<figure style="margin:0;display:inline-block;vertical-align:top">'
        f'{img}<figcaption style="font-size:smaller">{_caption(asset)}</figcaption></figure>'
    )


def asset_html(asset: ImageAsset) -> str:
    """One thumbnail with its size and expiry."""
    return _figure(asset)


def _grid(title: str, assets: Sequence[ImageAsset], details: Sequence[tuple[str, str | None]]) -> str:
    cells = "".join(_figure(a) for a in assets) or "<em>no images</em>"
    lines = "".join(
        f"<div><b>{html.escape(name)}</b>: {html.escape(value)}</div>"
        for name, value in details
        if value is not None
    )
    return (
        f'<div class="maxapi-async"><div><b>{html.escape(title)}</b></div>{lines}'
        f'<div style="display:flex;flex-wrap:wrap;gap:8px;margin-top:4px">{cells}</div></div>'
    )


def _credits(cost: float | None) -> str | None:
    return None if cost is None else f"{cost:.4g} credits (estimated)"


def _count(assets: Sequence[object]) -> str:
    return f"{len(assets)} image" + ("" if len(assets) == 1 else "s")


def image_result_html(result: ImageResult) -> str:
    """A grid of the result's images, with the model, request id and creation time."""
    return _grid(
        f"ImageResult: {_count(result.images)}",
        result.images,
        [
            ("model", result.model),
            ("created", _when(result.created_at)),
            ("cost", _credits(result.cost)),
            ("request id", result.request_id),
        ],
    )


def content_response_html(response: GenerateContentResponse) -> str:
    """A grid of a Gemini answer's final images, with its text and finish reason."""
    text = response.text
    if text is not None and len(text) > TEXT_LIMIT:
        text = text[:TEXT_LIMIT] + "…"
    return _grid(
        f"GenerateContentResponse: {_count(response.images)}",
        response.images,
        [
            ("text", text),
            ("finish reason", response.finish_reason),
            ("block reason", response.block_reason),
            ("model version", response.model_version),
            ("cost", _credits(response.cost)),
            ("request id", response.request_id),
        ],
    )
