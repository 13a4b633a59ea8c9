"""Exercises the public API under `mypy --strict` (run by .ci/run); never executed."""

from __future__ import annotations

from pathlib import Path

from typing_extensions import assert_type

import maxapi_async
from maxapi_async import AsyncMaxAPI, ImageAsset, ImageResult
from maxapi_async.testing import FakeMaxAPI


async def generate_and_edit(fake: FakeMaxAPI) -> None:
    async with AsyncMaxAPI(fake.api_key, base_url=fake.base_url, route_mode="official") as client:
        result = await client.images.generate("cube", aspect_ratio="16:9", n=2, timeout=30)
        assert_type(result, ImageResult)
        asset = result.images[0]
        assert_type(asset, ImageAsset)
        assert_type(asset.size, "tuple[int, int] | None")
        assert_type(await asset.read(), bytes)
        assert_type(await asset.save("out.png"), Path)
        edited = await client.images.edit("compose", [Path("a.png"), b"\x89PNG...", asset])
        assert_type(edited.images, "list[ImageAsset]")


def handle(err: maxapi_async.MaxAPIError) -> str | None:
    if isinstance(err, maxapi_async.APIError):
        assert_type(err.status, int)
        return err.request_id
    if isinstance(err, maxapi_async.InvalidRequestError):
        return err.argument
    return None
