"""Reading an answer of big inline images lets go of each copy as soon as the next exists.

One answer of 4 images of 1.5 MB (8 MB of JSON): the client's path from the body's bytes to
the result, under ``tracemalloc``. The floor is about 2.3x the image bytes (the body once,
plus the images); parsing holds the body and its strings at once (2.7x). Holding the body
while the base64 is decoded, or a text copy of it while it is parsed, costs 3.7x to 4x.
``benchmarks/memory.py`` measures the same through the payload service.
"""

from __future__ import annotations

import base64
import gc
import json
import os
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from maxapi_async import AsyncMaxAPI
from maxapi_async._transport.bodies import RawResponse
from maxapi_async.testing import make_png

MODEL = "google/gemini-2.5-flash-image"
IMAGES = 4
IMAGE_BYTES = 1_500_000
TARGET = 2.75

pytestmark = pytest.mark.anyio


def _images() -> list[bytes]:
    return [
        make_png(64, 64, seed=i) + os.urandom(IMAGE_BYTES - len(make_png(64, 64, seed=i)))
        for i in range(IMAGES)
    ]


def _body(shape: str, images: list[bytes]) -> bytes:
    texts = [base64.b64encode(image).decode() for image in images]
    if shape == "b64_json":
        return json.dumps({"created": 1732400000, "data": [{"b64_json": t} for t in texts]}).encode()
    parts: list[dict[str, Any]] = [{"text": "ok"}]
    parts += [{"inlineData": {"mimeType": "image/png", "data": t}} for t in texts]
    candidate = {"content": {"role": "model", "parts": parts}, "finishReason": "STOP"}
    return json.dumps({"candidates": [candidate]}).encode()


async def _peak(call: Callable[[], Awaitable[list[bytes | None]]]) -> tuple[int, list[bytes | None]]:
    gc.collect()
    tracemalloc.start()
    try:
        got = await call()
        return tracemalloc.get_traced_memory()[1], got
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("shape", ["b64_json", "inlineData"])
async def test_an_answer_of_big_inline_images_peaks_below_2_75_times_its_images(shape: str) -> None:
    images = _images()
    template = _body(shape, images)
    headers = CIMultiDictProxy(CIMultiDict({"Content-Type": "application/json"}))

    async def send(spec: Any, **_: Any) -> RawResponse:  # timeout, limits, idempotency_key
        # Fresh bytes, made inside the traced window, as the transport's read makes them.
        return RawResponse(200, headers, bytes(bytearray(template)))

    async with AsyncMaxAPI(api_key="k", base_url="http://127.0.0.1:1") as client:
        client._transport.send = send  # type: ignore[method-assign]  # the answer, without a socket

        async def call() -> list[bytes | None]:
            if shape == "b64_json":
                result = await client.images.generate("a cube", n=IMAGES, response_format="b64_json")
                return [image.data for image in result.images]
            response = await client.models.generate_content(model=MODEL, contents="a cube")
            return [image.data for image in response.images]

        assert await call() == images  # untraced: imports, the worker thread
        peak, got = await _peak(call)
    assert got == images
    ratio = peak / (IMAGES * IMAGE_BYTES)
    assert ratio <= TARGET, f"peak {peak / 1e6:.1f} MB is {ratio:.2f}x the image bytes"
