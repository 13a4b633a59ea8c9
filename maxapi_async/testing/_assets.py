"""The images the fake hands out and the CDN origin that serves them.

The API routes draw a PNG of the answer's size (:func:`render`) and, for an answer by URL, keep
it as a :class:`StoredAsset` (:func:`store_asset`) in :attr:`FakeMaxAPI.assets`. The CDN origin
serves stored assets (:func:`serve_asset`) at ``/assets/<id>.png``, and at ``/mirror/<id>.png``
for the ``asset_delivery: "mirror"`` alias, with the real CDN's caching headers.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import time
from collections.abc import Callable
from typing import Final

import attrs
from aiohttp import hdrs, web

from ._png import make_png

__all__ = ["StoredAsset", "render", "serve_asset", "store_asset"]

_ASSET_TTL: Final = 7 * 24 * 3600.0
#: How many different pictures there are; a seed picks one.
_SEEDS: Final = 16


@attrs.frozen
class StoredAsset:
    """A generated image the CDN origin serves. ``created_at`` is a Unix time."""

    id: str
    data: bytes
    width: int
    height: int
    created_at: float
    content_type: str = "image/png"

    @property
    def expires_at(self) -> float:
        """Unix time the real CDN would drop the asset (7 days after creation)."""
        return self.created_at + _ASSET_TTL


async def render(width: int, height: int, seed: int) -> bytes:
    """A PNG of ``width`` x ``height``; the same seed gives the same picture."""
    # Encoding is cached, but a first encode of a large image is worth a thread hop.
    return await asyncio.to_thread(make_png, width, height, seed % _SEEDS)


async def store_asset(
    assets: dict[str, StoredAsset], next_id: Callable[[str], str], width: int, height: int, seed: int
) -> StoredAsset:
    """Render a PNG and keep it in ``assets`` under a new ``img_`` id, for the CDN to serve."""
    data = await render(width, height, seed)
    asset = StoredAsset(id=next_id("img_"), data=data, width=width, height=height, created_at=time.time())
    assets[asset.id] = asset
    return asset


def serve_asset(assets: dict[str, StoredAsset], request: web.Request) -> web.Response:
    """The CDN's answer for ``/assets/{name}`` or ``/mirror/{name}``: the stored PNG, or a 404."""
    name = request.match_info["name"]
    asset_id, dot, ext = name.rpartition(".")
    asset = assets.get(asset_id) if dot and ext == "png" else None
    if asset is None:
        raise web.HTTPNotFound(reason="Asset not found")
    response = web.Response(body=asset.data, content_type=asset.content_type)
    response.headers[hdrs.CACHE_CONTROL] = "public, max-age=604800, immutable"
    response.headers[hdrs.LAST_MODIFIED] = _dt.datetime.fromtimestamp(
        asset.created_at, _dt.timezone.utc
    ).strftime("%a, %d %b %Y %H:%M:%S GMT")
    return response
