"""The fake is as strict as the service: unknown fields, only documented routes, table sizes for edits."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from _image_headers import gif, jpeg, webp

import maxapi_async
from maxapi_async._protocol.catalog import MODELS
from maxapi_async.testing import FakeMaxAPI, make_png, png_size, pytest_plugin
from maxapi_async.testing._image_request import closest_ratio

pytestmark = pytest.mark.anyio

fake_maxapi = pytest_plugin.fake_maxapi

MODEL = "google/gemini-2.5-flash-image"
PRO = "google/gemini-3-pro-image-preview"
GEN = "/v1/images/generations"
EDITS = "/v1/images/edits"
NATIVE = f"/v1beta/models/{MODEL}:generateContent"
FAST = maxapi_async.PollPolicy(earliest=0.0, latest=0.05, spacing=0.0, initial=0.0, jitter=0.0)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def post(
    http: aiohttp.ClientSession, fake: FakeMaxAPI, path: str, body: Any = None, data: Any = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {fake.api_key}"}
    async with http.post(fake.base_url + path, json=body, data=data, headers=headers) as resp:
        assert "x-request-id" in resp.headers
        return resp.status, await resp.json()


def edit_form(image: bytes, **fields: str) -> aiohttp.FormData:
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("model", fields.pop("model", MODEL))
    form.add_field("prompt", "x")
    for name, value in fields.items():
        form.add_field(name, value)
    form.add_field("image[]", image, filename="ref", content_type="application/octet-stream")
    return form


def gemini_body(**extra: Any) -> dict[str, Any]:
    return {
        "contents": [{"role": "user", "parts": [{"text": "x", "videoMetadata": {}}]}],
        "generationConfig": {
            "temperature": 0.5,
            "imageConfig": {"aspectRatio": "1:1", "personGeneration": "x"},
        },
        **extra,
    }


# -- body fields the wire spec does not list --------------------------------------------------


async def test_unknown_fields_are_recorded_and_answered_normally(http: aiohttp.ClientSession) -> None:
    async with FakeMaxAPI() as fake:
        status, _ = await post(
            http, fake, GEN, {"model": MODEL, "prompt": "x", "size": "1024x1024", "quality": "hd"}
        )
        assert status == 200
        form = edit_form(make_png(8, 8), style="vivid")
        form.add_field("extra_image", make_png(8, 8), filename="x.png", content_type="image/png")
        status, _ = await post(http, fake, EDITS, data=form)
        assert status == 200
        status, _ = await post(http, fake, NATIVE, gemini_body(safetySettings=[]))
        assert status == 200
        status, _ = await post(
            http, fake, GEN, {"model": MODEL, "prompt": "x", "aspect_ratio": "1:1", "n": 1}
        )
        assert status == 200
    assert [r.unknown_fields for r in fake.requests] == [
        ("size", "quality"),
        ("style", "extra_image"),
        (
            "safetySettings",
            "contents[0].parts[0].videoMetadata",
            "generationConfig.temperature",
            "generationConfig.imageConfig.personGeneration",
        ),
        (),
    ]


async def test_strict_refuses_unknown_fields_in_each_routes_shape(http: aiohttp.ClientSession) -> None:
    async with FakeMaxAPI(strict=True) as fake:
        status, answer = await post(
            http, fake, GEN, {"model": MODEL, "prompt": "x", "quality": "hd", "async": True}
        )
        assert status == 400
        assert answer["error"]["param"] == "quality"
        assert answer["error"]["message"] == "Unrecognized request argument supplied: quality"
        status, answer = await post(http, fake, EDITS, data=edit_form(make_png(8, 8), size="256x256"))
        assert (status, answer["error"]["param"]) == (400, "size")
        status, answer = await post(http, fake, NATIVE, gemini_body())
        assert status == 400
        assert answer["error"]["status"] == "INVALID_ARGUMENT"
        assert "Unknown name \"videoMetadata\" at 'contents[0].parts[0]'" in answer["error"]["message"]
        # refused before anything was made; documented fields pass
        assert (fake.created_tasks, fake.assets) == (0, {})
        status, _ = await post(
            http, fake, GEN, {"model": MODEL, "prompt": "x", "response_format": "b64_json"}
        )
        assert status == 200
        # a wrong key is still a 401 first
        async with http.post(fake.base_url + GEN, json={"model": MODEL, "prompt": "x", "size": "1"}) as resp:
            assert resp.status == 401


async def test_this_package_sends_only_documented_fields(tmp_path: Any) -> None:
    async with (
        FakeMaxAPI(strict=True, complete_after_polls=0) as fake,
        maxapi_async.AsyncMaxAPI(fake.api_key, base_url=fake.base_url, poll_policy=FAST) as client,
    ):
        await client.images.generate("a cube", aspect_ratio="16:9", n=2, route_mode="official")
        await client.images.generate("a cube", wait=True, response_format="b64_json")
        handle = await client.images.generate("a queued cube", wait=False)
        await handle.wait()
        await client.images.edit("night", images=[jpeg(600, 800), make_png(8, 8)], aspect_ratio="4:3")
        await client.models.generate_content(
            model=MODEL, contents=["night", make_png(30, 20)], aspect_ratio="3:2"
        )
        operation = await client.models.generate_content(model=MODEL, contents="x", wait=False)
        await operation
    assert all(r.unknown_fields == () for r in fake.requests)
    assert {r.path.split("/")[-1] for r in fake.requests if r.method == "POST"} >= {"generations", "edits"}


# -- only documented routes ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/models"),
        ("POST", "/v1/chat/completions"),
        ("POST", "/v1/images/variations"),
        ("POST", f"/v1/models/{MODEL}:generateContent"),
        ("GET", "/v1/operations/op_1"),
        ("POST", "/v1alpha/models/x:generateContent"),
        ("GET", "/v1beta/files"),
    ],
)
async def test_undocumented_routes_are_404_in_json_with_a_request_id(
    http: aiohttp.ClientSession, method: str, path: str
) -> None:
    async with FakeMaxAPI() as fake:
        headers = {"Authorization": f"Bearer {fake.api_key}"}
        async with http.request(method, fake.base_url + path, json={}, headers=headers) as resp:
            assert resp.status == 404
            assert resp.headers["x-request-id"].startswith("req_")
            answer = await resp.json()
        assert answer["error"]["message"]
        assert fake.requests[-1].path == path


# -- edits without a ratio: the nearest size of the table ----------------------------------------


@pytest.mark.parametrize(
    ("reference", "model", "size"),
    [
        (make_png(300, 200), MODEL, (1248, 832)),
        (make_png(1000, 1010), MODEL, (1024, 1024)),
        (jpeg(720, 1280), MODEL, (768, 1344)),
        (webp(3000, 1000), MODEL, (1536, 672)),  # wider than every row: the widest, 21:9
        (gif(800, 1000), MODEL, (896, 1152)),
        (jpeg(1200, 900), PRO, (1200, 896)),  # the default 1K tier of a model with tiers
    ],
    ids=["png-3:2", "png-square", "jpeg-9:16", "webp-21:9", "gif-4:5", "jpeg-pro-4:3"],
)
async def test_an_edit_without_a_ratio_gets_the_table_size_nearest_the_first_reference(
    http: aiohttp.ClientSession, reference: bytes, model: str, size: tuple[int, int]
) -> None:
    async with FakeMaxAPI() as fake:
        form = edit_form(reference, model=model, response_format="b64_json")
        form.add_field("image[]", make_png(500, 100), filename="second.png", content_type="image/png")
        status, answer = await post(http, fake, EDITS, data=form)
    assert status == 200, answer
    assert png_size(base64.b64decode(answer["data"][0]["b64_json"])) == size


def test_closest_ratio_prefers_the_first_row_on_a_tie() -> None:
    spec = MODELS[MODEL]
    assert closest_ratio(spec, 1, 1) == "1:1"
    assert closest_ratio(spec, 1, 100) == "9:16"
    assert closest_ratio(spec, 5, 4) == "5:4"
    assert spec.aspect_ratios.index("4:5") < spec.aspect_ratios.index("5:4")


async def test_an_edit_answered_through_the_client_has_the_table_size(fake_maxapi: FakeMaxAPI) -> None:
    async with maxapi_async.AsyncMaxAPI(fake_maxapi.api_key, base_url=fake_maxapi.base_url) as client:
        result = await client.images.edit("night", images=[webp(1500, 1000)], response_format="b64_json")
    assert result.images[0].size == (1248, 832)
