"""The OpenAI-compatible images answer (``/v1/images/generations`` and ``/edits``): its wire
classes and how it becomes assets. No I/O.

One way for every answer: :func:`~maxapi_async._protocol.convert.decode_json`, then the converter
(:func:`parse_images_response`), then :func:`image_assets` (base64 decoded and checked like
a download, or an image on the CDN). :func:`read_images_answer` runs the three, on the event
loop or in a worker thread as a whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from .assets import decode_b64, expiry, inline_asset, url_asset
from .calls import ImageCall
from .convert import Body, decode_json, structure
from .errors import ResponseError
from .models import ImageAsset, _AssetFetcher

__all__ = [
    "ImageData",
    "ImagesResponse",
    "image_assets",
    "inline_text_size",
    "make_asset",
    "parse_images_response",
    "read_images_answer",
]


# The wire classes are private and never changed once made; not ``frozen`` only because
# every answer makes them, and a frozen class's ``__init__`` costs twice as much.


@attrs.define
class ImageData:
    """One item of an OpenAI-style ``data`` list: a URL or a base64 image."""

    url: str | None = None
    b64_json: str | None = attrs.field(
        default=None, repr=lambda text: "None" if text is None else f"<{len(text)} base64 chars>"
    )
    revised_prompt: str | None = None
    extra: dict[str, Any] = attrs.field(factory=dict, repr=False)


@attrs.define
class ImagesResponse:
    """The OpenAI-compatible synchronous answer: ``{"created": ..., "data": [...]}``."""

    data: list[ImageData]
    created: int | None = None
    usage: dict[str, Any] | None = None
    extra: dict[str, Any] = attrs.field(factory=dict, repr=False)


def parse_images_response(obj: Any, *, request_id: str | None = None) -> ImagesResponse:
    """Structure an OpenAI-style images answer; success without any image is an error."""
    response = structure(obj, ImagesResponse, what="images answer", request_id=request_id)
    if not response.data:
        raise ResponseError("the images answer holds no images", request_id=request_id, body=obj)
    for i, item in enumerate(response.data):
        if not item.url and not item.b64_json:
            raise ResponseError(
                f"images answer item {i} has neither 'url' nor 'b64_json'",
                request_id=request_id,
                body=obj,
            )
    return response


def make_asset(
    item: ImageData,
    data: bytes | None,
    *,
    call: ImageCall,
    created: int | None,
    fetcher: _AssetFetcher | None,
    index: int = 0,
    request_id: str | None = None,
) -> ImageAsset:
    """An :class:`ImageAsset` from one answer item (the ``index``-th) and its decoded bytes (if inline)."""
    if data is None:
        return url_asset(item.url, None, item.revised_prompt, call.expected_size(), expiry(created), fetcher)
    return inline_asset(
        data,
        claimed=None,
        what=f"inline image {index} of the answer (b64_json)",
        url=item.url,
        expected_size=call.expected_size(),
        revised_prompt=item.revised_prompt,
        fetcher=fetcher,
        request_id=request_id,
    )


def image_assets(
    items: Sequence[ImageData],
    *,
    call: ImageCall,
    created: int | None,
    fetcher: _AssetFetcher | None,
    request_id: str | None = None,
) -> list[ImageAsset]:
    """The assets of an answer's (or a finished task's) items, inline images decoded.

    CPU-bound for inline images: run it in a worker thread when :func:`inline_text_size`
    is large.
    """
    return [
        make_asset(
            item,
            decode_b64(item.b64_json, request_id=request_id) if item.b64_json else None,
            call=call,
            created=created,
            fetcher=fetcher,
            index=i,
            request_id=request_id,
        )
        for i, item in enumerate(items)
    ]


def inline_text_size(items: Sequence[ImageData]) -> int:
    """The base64 characters the items carry inline (what decoding them costs)."""
    return sum(len(item.b64_json or "") for item in items)


def read_images_answer(
    body: bytes | Body,
    status: int,
    request_id: str | None,
    *,
    call: ImageCall,
    fetcher: _AssetFetcher | None,
) -> tuple[dict[str, Any], list[ImageAsset]]:
    """An images answer's JSON and its assets, from its bytes: run inline or in a thread as a whole.

    The JSON is kept as the result's ``raw``, without the base64 text of the images decoded
    into the assets: holding it too would keep every image twice.
    """
    obj = decode_json(body, status=status, request_id=request_id, what="images")
    response = parse_images_response(obj, request_id=request_id)
    assets = image_assets(
        response.data, call=call, created=response.created, fetcher=fetcher, request_id=request_id
    )
    for item in obj["data"]:
        if type(item.get("b64_json")) is str:
            del item["b64_json"]
    return obj, assets
