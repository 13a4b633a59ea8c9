"""The fake MaxAPI server (``maxapi_async.testing``), driven with a plain aiohttp.ClientSession."""

from __future__ import annotations

import asyncio
import base64
import importlib.metadata
import json
import struct
import time
import zlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import anyio
import pytest

from maxapi_async._protocol.catalog import MODELS
from maxapi_async.testing import (
    DEFAULT_API_KEY,
    FakeMaxAPI,
    Fault,
    RecordedFile,
    google_error,
    make_png,
    openai_error,
    platform_error,
    png_size,
    pytest_plugin,
    sniff_image_type,
)

pytestmark = pytest.mark.anyio

# The plugin's fixture, made available here whether or not the entry point is installed.
fake_maxapi = pytest_plugin.fake_maxapi

MODEL = "google/gemini-2.5-flash-image"
PRO = "google/gemini-3-pro-image-preview"
GEN = "/v1/images/generations"
EDITS = "/v1/images/edits"
NATIVE = f"/v1beta/models/{MODEL}:generateContent"
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 32
WEBP = b"RIFF\x10\x00\x00\x00WEBPVP8 " + b"\x00" * 16


# -- helpers --------------------------------------------------------------------


def decode_png(data: bytes) -> tuple[int, int]:
    """Check a PNG thoroughly (signature, chunk CRCs, IDAT size, filter bytes); return its size."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, kinds = 8, b"", []
    width = height = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        payload = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + payload) & 0xFFFFFFFF, kind
        kinds.append(kind)
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", payload)
            assert (depth, colour, interlace) == (8, 2, 0)
        elif kind == b"IDAT":
            idat += payload
        pos += 12 + length
    assert kinds[0] == b"IHDR"
    assert kinds[-1] == b"IEND"
    raw = zlib.decompress(idat)
    stride = 1 + 3 * width
    assert len(raw) == height * stride
    assert raw[::stride] == bytes(height)  # filter type 0 on every row
    return width, height


def auth(fake: FakeMaxAPI) -> dict[str, str]:
    return {"Authorization": f"Bearer {fake.api_key}"}


async def post_json(
    http: aiohttp.ClientSession,
    fake: FakeMaxAPI,
    path: str,
    body: Any,
    *,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, Mapping[str, str]]:
    async with http.post(
        fake.base_url + path, json=body, headers=auth(fake) if headers is None else headers
    ) as resp:
        return resp.status, await resp.json(content_type=None), resp.headers


async def get_json(
    http: aiohttp.ClientSession, fake: FakeMaxAPI, path: str
) -> tuple[int, Any, Mapping[str, str]]:
    async with http.get(fake.base_url + path, headers=auth(fake)) as resp:
        return resp.status, await resp.json(content_type=None), resp.headers


async def download(http: aiohttp.ClientSession, url: str) -> bytes:
    async with http.get(url) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "image/png"
        data = await resp.read()
        assert int(resp.headers["Content-Length"]) == len(data)
        return data


def edit_form(
    images: list[tuple[str, bytes, str]],
    *,
    field: str = "image[]",
    **fields: str,
) -> aiohttp.FormData:
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("model", fields.pop("model", MODEL))
    form.add_field("prompt", fields.pop("prompt", "put it on a beach"))
    for name, value in fields.items():
        form.add_field(name, value)
    for filename, data, content_type in images:
        form.add_field(field, data, filename=filename, content_type=content_type)
    return form


async def post_form(http: aiohttp.ClientSession, fake: FakeMaxAPI, form: aiohttp.FormData) -> tuple[int, Any]:
    async with http.post(fake.base_url + EDITS, data=form, headers=auth(fake)) as resp:
        return resp.status, await resp.json(content_type=None)


def native_body(text: str = "a glass cube", **image_config: str) -> dict[str, Any]:
    body: dict[str, Any] = {"contents": [{"role": "user", "parts": [{"text": text}]}]}
    if image_config:
        body["generationConfig"] = {"responseModalities": ["IMAGE"], "imageConfig": image_config}
    return body


def native_image(answer: dict[str, Any]) -> bytes:
    parts = answer["candidates"][0]["content"]["parts"]
    finals = [p for p in parts if "inlineData" in p and not p.get("thought")]
    assert len(finals) == 1
    return base64.b64decode(finals[0]["inlineData"]["data"])


@pytest.fixture
async def fake() -> AsyncIterator[FakeMaxAPI]:
    async with FakeMaxAPI() as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


# -- lifecycle ------------------------------------------------------------------


async def test_lifecycle_explicit_start_and_close() -> None:
    fake = FakeMaxAPI(api_key="sk-other")
    with pytest.raises(RuntimeError):
        _ = fake.base_url
    assert await fake.start() is fake
    try:
        assert fake.api_key == "sk-other"
        assert fake.base_url == f"http://127.0.0.1:{fake.port}"
        assert fake.cdn_url == f"http://127.0.0.1:{fake.cdn_port}"
        assert fake.mirror_url == f"http://localhost:{fake.cdn_port}"
        assert fake.port != fake.cdn_port
        with pytest.raises(RuntimeError):
            await fake.start()
    finally:
        await fake.close()
    await fake.close()  # idempotent


async def test_constructor_rejects_bad_options() -> None:
    with pytest.raises(ValueError, match="task_style"):
        FakeMaxAPI(task_style="weird")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="status_words"):
        FakeMaxAPI(status_words={"done": "ok"})


_PLUGIN_REGISTERED = any(
    entry.value == "maxapi_async.testing.pytest_plugin"
    for entry in importlib.metadata.entry_points(group="pytest11")
)

if _PLUGIN_REGISTERED:  # the marker exists only once the plugin's pytest_configure ran

    @pytest.mark.fake_maxapi(task_style="camel", api_key="sk-marker")
    async def test_plugin_fixture_marker_options(fake_maxapi: FakeMaxAPI) -> None:
        assert fake_maxapi.task_style == "camel"
        assert fake_maxapi.api_key == "sk-marker"


async def test_plugin_fixture(fake_maxapi: FakeMaxAPI, http: aiohttp.ClientSession) -> None:
    assert fake_maxapi.api_key == DEFAULT_API_KEY
    status, body, _ = await post_json(http, fake_maxapi, GEN, {"model": MODEL, "prompt": "x"})
    assert status == 200
    assert len(body["data"]) == 1


# -- auth and request ids -------------------------------------------------------


async def test_missing_and_wrong_key_get_openai_401(fake: FakeMaxAPI, http: aiohttp.ClientSession) -> None:
    body = {"model": MODEL, "prompt": "x"}
    for headers in ({}, {"Authorization": "Bearer sk-wrong"}, {"x-goog-api-key": fake.api_key}):
        status, answer, resp_headers = await post_json(http, fake, GEN, body, headers=headers)
        assert status == 401
        assert answer["error"]["type"] == "invalid_request_error"
        assert answer["error"]["code"] == "invalid_api_key"
        assert answer["error"]["param"] is None
        assert answer["error"]["message"]
        assert resp_headers["x-request-id"].startswith("req_")
    assert len(fake.requests) == 3  # rejected requests are recorded too


async def test_native_auth_accepts_three_forms(fake: FakeMaxAPI, http: aiohttp.ClientSession) -> None:
    for headers, query in (
        (auth(fake), ""),
        ({"x-goog-api-key": fake.api_key}, ""),
        ({}, f"?key={fake.api_key}"),
    ):
        async with http.post(fake.base_url + NATIVE + query, json=native_body(), headers=headers) as resp:
            assert resp.status == 200, await resp.text()
    for headers in ({}, {"x-goog-api-key": "nope"}):
        status, answer, _ = await post_json(http, fake, NATIVE, native_body(), headers=headers)
        assert status == 401
        assert answer["error"]["code"] == 401
        assert answer["error"]["status"] == "UNAUTHENTICATED"


async def test_request_ids_are_unique_and_recorded(fake: FakeMaxAPI, http: aiohttp.ClientSession) -> None:
    ids = []
    for _ in range(3):
        _, _, headers = await post_json(http, fake, GEN, {"model": MODEL, "prompt": "x"})
        ids.append(headers["x-request-id"])
    async with http.get(fake.base_url + "/v1/nothing-here", headers=auth(fake)) as resp:
        assert resp.status == 404
        assert (await resp.json())["error"]["type"] == "invalid_request_error"
        ids.append(resp.headers["x-request-id"])
    assert len(set(ids)) == 4
    assert [r.request_id for r in fake.requests] == ids


# -- generations ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"prompt": "x"}, "model"),
        ({"model": MODEL}, "prompt"),
        ({"model": MODEL, "prompt": ""}, "prompt"),
        ({"model": MODEL, "prompt": "   "}, "prompt"),
        ({"model": MODEL, "prompt": 5}, "prompt"),
        ({"model": MODEL, "prompt": "x", "n": 0}, "n"),
        ({"model": MODEL, "prompt": "x", "n": MODELS[MODEL].max_n + 1}, "n"),
        ({"model": MODEL, "prompt": "x", "n": "2"}, "n"),
        ({"model": MODEL, "prompt": "x", "n": True}, "n"),
        ({"model": MODEL, "prompt": "x", "n": 1.5}, "n"),
        ({"model": MODEL, "prompt": "x", "aspect_ratio": "7:3"}, "aspect_ratio"),
        ({"model": MODEL, "prompt": "x", "aspect_ratio": 1.5}, "aspect_ratio"),
        ({"model": MODEL, "prompt": "x", "route_mode": "cheapest"}, "route_mode"),
        ({"model": MODEL, "prompt": "x", "response_format": "png"}, "response_format"),
        ({"model": MODEL, "prompt": "x", "asset_delivery": "cdn"}, "asset_delivery"),
        ({"model": MODEL, "prompt": "x", "async": "true"}, "async"),
        ({"model": PRO, "prompt": "x", "resolution": "8K"}, "resolution"),
        ([{"model": MODEL}], None),
    ],
)
async def test_generation_validation(
    fake: FakeMaxAPI, http: aiohttp.ClientSession, body: Any, param: str | None
) -> None:
    status, answer, headers = await post_json(http, fake, GEN, body)
    assert status == 400
    assert answer["error"]["param"] == param
    assert answer["error"]["type"] == "invalid_request_error"
    assert "x-request-id" in headers


async def test_generation_body_not_json(fake: FakeMaxAPI, http: aiohttp.ClientSession) -> None:
    headers = {**auth(fake), "Content-Type": "application/json"}
    async with http.post(fake.base_url + GEN, data=b"{not json", headers=headers) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["param"] is None
    assert fake.requests[-1].json is None
    assert fake.requests[-1].body == b"{not json"


async def test_resolution_is_ignored_by_flash_image(fake: FakeMaxAPI, http: aiohttp.ClientSession) -> None:
    body = {"model": MODEL, "prompt": "x", "resolution": "4K", "aspect_ratio": "9:16"}
    status, answer, _ = await post_json(http, fake, GEN, body)
    assert status == 200
    assert decode_png(await download(http, answer["data"][0]["url"])) == (768, 1344)


@pytest.mark.parametrize("ratio", ["1:1", "16:9", "9:16", "21:9", "4:5"])
async def test_url_answer_has_png_of_exact_size(
    fake: FakeMaxAPI, http: aiohttp.ClientSession, ratio: str
) -> None:
    body = {"model": MODEL, "prompt": "a glass cube", "aspect_ratio": ratio, "route_mode": "official"}
    status, answer, _ = await post_json(http, fake, GEN, body)
    assert status == 200
    assert isinstance(answer["created"], int)
    assert abs(answer["created"] - time.time()) < 60
    [item] = answer["data"]
    assert set(item) == {"url", "revised_prompt"}
    assert item["revised_prompt"] is None
    assert item["url"].startswith(fake.cdn_url + "/assets/")
    assert answer["usage"]["output_tokens"] == 1290
    assert decode_png(await download(http, item["url"])) == MODELS[MODEL].size_for(ratio)


async def test_default_size_and_b64_answers(fake: FakeMaxAPI, http: aiohttp.ClientSession) -> None:
    body = {"model": MODEL, "prompt": "x", "n": 3, "response_format": "b64_json"}
    status, answer, _ = await post_json(http, fake, GEN, body)
    assert status == 200
    assert len(answer["data"]) == 3
    images = [base64.b64decode(item["b64_json"]) for item in answer["data"]]
    assert all("url" not in item for item in answer["data"])
    assert [decode_png(image) for image in images] == [(1024, 1024)] * 3
    assert len(set(images)) == 3  # the n images differ
    assert not fake.cdn_requests


async def test_resolution_tiers_of_pro_model(fake: FakeMaxAPI, http: aiohttp.ClientSession) -> None:
    body = {"model": PRO, "prompt": "x", "aspect_ratio": "9:16", "resolution": "2K"}
    body["response_format"] = "b64_json"
    status, answer, _ = await post_json(http, fake, GEN, body)
    assert status == 200
    assert png_size(base64.b64decode(answer["data"][0]["b64_json"])) == (1536, 2752)


async def test_an_unknown_model_is_404_model_not_found_in_each_routes_shape(
    fake: FakeMaxAPI, http: aiohttp.ClientSession
) -> None:
    body = {"model": "acme/new-image-model", "prompt": "x"}
    status, answer, headers = await post_json(http, fake, GEN, body)
    assert status == 404
    assert answer["error"]["code"] == "model_not_found"
    assert answer["error"]["param"] == "model"
    assert "x-request-id" in headers
    status, answer = await post_form(
        http, fake, edit_form([("a.png", make_png(4, 4), "image/png")], model="acme/new-image-model")
    )
    assert (status, answer["error"]["code"]) == (404, "model_not_found")
    status, answer, _ = await post_json(http, fake, "/v1beta/models/acme/next:generateContent", native_body())
    assert status == 404
    assert answer["error"]["status"] == "NOT_FOUND"
    assert answer["error"]["details"][0]["reason"] == "model_not_found"
    assert not fake.assets


async def test_extra_models_pass_through_without_size_checks(http: aiohttp.ClientSession) -> None:
    async with FakeMaxAPI(extra_models=["acme/new-image-model"]) as fake:
        body = {"model": "acme/new-image-model", "prompt": "x", "aspect_ratio": "7:3", "resolution": "9K"}
        status, answer, _ = await post_json(http, fake, GEN, body)
        assert status == 200
        assert decode_png(await download(http, answer["data"][0]["url"])) == (1024, 1024)
        form = edit_form([("a.png", make_png(300, 200), "image/png")], model="acme/new-image-model")
        status, answer = await post_form(http, fake, form)
        assert status == 200
        assert decode_png(await download(http, answer["data"][0]["url"])) == (300, 200)


# -- CDN and mirror ----------------------------------------------------------------


async def test_cdn_serves_and_records_without_api_key(fake: FakeMaxAPI, http: aiohttp.ClientSession) -> None:
    _, answer, _ = await post_json(http, fake, GEN, {"model": MODEL, "prompt": "x", "n": 2})
    urls = [item["url"] for item in answer["data"]]
    for url in urls:
        await download(http, url)
    assert [r.path for r in fake.cdn_requests] == [url.removeprefix(fake.cdn_url) for url in urls]
    assert all(r.origin == "cdn" and r.header("authorization") is None for r in fake.cdn_requests)
    assert all(r.headers["Host"] == f"127.0.0.1:{fake.cdn_port}" for r in fake.cdn_requests)
    assert [r.path for r in fake.requests] == [GEN]  # CDN traffic is kept apart
    assert fake.requests[0].headers["Authorization"] == f"Bearer {fake.api_key}"
    asset_id = urls[0].rsplit("/", 1)[1].removesuffix(".png")
    asset = fake.assets[asset_id]
    assert (asset.width, asset.height) == (1024, 1024)
    assert asset.expires_at - asset.created_at == 7 * 24 * 3600
    # a client that leaks the key is visible in the record
    async with http.get(urls[0], headers=auth(fake)) as resp:
        assert resp.status == 200
    assert fake.cdn_requests[-1].header("Authorization") == f"Bearer {fake.api_key}"


async def test_cdn_unknown_asset_is_404(fake: FakeMaxAPI, http: aiohttp.ClientSession) -> None:
    for path in ("/assets/img_missing.png", "/mirror/img_missing.png", "/elsewhere"):
        async with http.get(fake.cdn_url + path) as resp:
            assert resp.status == 404
            assert "x-request-id" in resp.headers
    assert len(fake.cdn_requests) == 3


async def test_mirror_delivery_uses_another_origin(fake: FakeMaxAPI, http: aiohttp.ClientSession) -> None:
    body = {"model": MODEL, "prompt": "x", "asset_delivery": "mirror", "aspect_ratio": "3:2"}
    _, answer, _ = await post_json(http, fake, GEN, body)
    url = answer["data"][0]["url"]
    assert url.startswith(f"http://localhost:{fake.cdn_port}/mirror/")
    assert decode_png(await download(http, url)) == (1248, 832)
    assert fake.cdn_requests[-1].headers["Host"] == f"localhost:{fake.cdn_port}"
    assert fake.cdn_requests[-1].path.startswith("/mirror/")


# -- edits -----------------------------------------------------------------------


async def test_edits_with_two_images(fake: FakeMaxAPI, http: aiohttp.ClientSession) -> None:
    first, second = make_png(640, 480, 1), make_png(32, 32, 2)
    form = edit_form([("a.png", first, "image/png"), ("b.jpg", JPEG, "image/jpeg")], n="2")
    status, answer = await post_form(http, fake, form)
    assert status == 200, answer
    assert len(answer["data"]) == 2
    # no aspect_ratio: the table size whose ratio is nearest the first reference's (4:3)
    assert decode_png(await download(http, answer["data"][1]["url"])) == (1184, 864)
    record = fake.requests_to(EDITS)[-1]
    assert record.form == {"model": MODEL, "prompt": "put it on a beach", "n": "2"}
    assert record.files == [
        RecordedFile("image[]", "a.png", "image/png", first),
        RecordedFile("image[]", "b.jpg", "image/jpeg", JPEG),
    ]
    assert record.json is None
    assert answer["usage"]["input_tokens_details"]["image_tokens"] == 2 * 258
    form = edit_form([("b.webp", WEBP, "image/webp"), ("a.png", second, "image/png")], aspect_ratio="16:9")
    status, answer = await post_form(http, fake, form)
    assert status == 200
    assert decode_png(await download(http, answer["data"][0]["url"])) == (1344, 768)
    # a first reference whose header gives no size, and no ratio: the model's default, 1:1
    status, answer = await post_form(http, fake, edit_form([("b.webp", WEBP, "image/webp")]))
    assert decode_png(await download(http, answer["data"][0]["url"])) == (1024, 1024)


async def test_edits_single_image_field_mask_and_b64(fake: FakeMaxAPI, http: aiohttp.ClientSession) -> None:
    form = edit_form([("a.png", make_png(64, 48), "image/png")], field="image", response_format="b64_json")
    form.add_field("mask", make_png(64, 48), filename="mask.png", content_type="image/png")
    status, answer = await post_form(http, fake, form)
    assert status == 200
    assert decode_png(base64.b64decode(answer["data"][0]["b64_json"])) == (1184, 864)  # 4:3
    assert [f.field for f in fake.requests[-1].files] == ["image", "mask"]


@pytest.mark.parametrize(
    ("images", "fields", "param"),
    [
        ([], {}, "image"),
        ([("a.txt", b"hello, not an image", "image/png")], {}, "image"),
        ([("a.png", make_png(4, 4), "image/png"), ("b.bin", b"\x00" * 16, "image/png")], {}, "image"),
        ([("a.png", make_png(4, 4), "image/png")], {"n": "two"}, "n"),
        ([("a.png", make_png(4, 4), "image/png")], {"n": "0"}, "n"),
        ([("a.png", make_png(4, 4), "image/png")], {"async": "maybe"}, "async"),
        ([("a.png", make_png(4, 4), "image/png")], {"aspect_ratio": "2:1"}, "aspect_ratio"),
        ([("a.png", make_png(4, 4), "image/png")], {"route_mode": "fast"}, "route_mode"),
        ([("a.png", make_png(4, 4), "image/png")], {"prompt": ""}, "prompt"),
        ([("a.png", make_png(4, 4), "image/png")], {"model": ""}, "model"),
    ],
)
async def test_edits_validation(
    fake: FakeMaxAPI,
    http: aiohttp.ClientSession,
    images: list[tuple[str, bytes, str]],
    fields: dict[str, str],
    param: str,
) -> None:
    status, answer = await post_form(http, fake, edit_form(images, **fields))
    assert status == 400
    assert answer["error"]["param"] == param


async def test_edits_need_multipart_and_a_bad_mask_is_rejected(
    fake: FakeMaxAPI, http: aiohttp.ClientSession
) -> None:
    status, answer, _ = await post_json(http, fake, EDITS, {"model": MODEL, "prompt": "x"})
    assert status == 400
    assert answer["error"]["param"] == "image"
    form = edit_form([("a.png", make_png(4, 4), "image/png")])
    form.add_field("mask", b"nope", filename="mask.png", content_type="image/png")
    status, answer = await post_form(http, fake, form)
    assert status == 400
    assert answer["error"]["param"] == "mask"


# -- faults -------------------------------------------------------------------------


async def test_fault_status_body_headers_and_countdown(fake: FakeMaxAPI, http: aiohttp.ClientSession) -> None:
    fake.add_fault(
        Fault(status=429, body=openai_error(429, "slow down"), headers={"Retry-After": "3"}, times=2)
    )
    body = {"model": MODEL, "prompt": "x"}
    for _ in range(2):
        status, answer, headers = await post_json(http, fake, GEN, body)
        assert status == 429
        assert answer == openai_error(429, "slow down")
        assert headers["Retry-After"] == "3"
        assert headers["Content-Type"] == "application/json"
        assert "x-request-id" in headers
    status, _, _ = await post_json(http, fake, GEN, body)
    assert status == 200
    assert len(fake.requests) == 3


async def test_fault_raw_bytes_and_text(fake: FakeMaxAPI, http: aiohttp.ClientSession) -> None:
    fake.add_fault(Fault(status=502, body=b"<html>Bad gateway</html>", headers={"Content-Type": "text/html"}))
    fake.add_fault(Fault(status=503, body="upstream down"))
    async with http.post(fake.base_url + GEN, json={}, headers=auth(fake)) as resp:
        assert resp.status == 502
        assert resp.headers["Content-Type"] == "text/html"
        assert await resp.read() == b"<html>Bad gateway</html>"
    async with http.post(fake.base_url + GEN, json={}, headers=auth(fake)) as resp:
        assert resp.status == 503
        assert await resp.text() == "upstream down"


async def test_fault_filters_by_path_method_and_origin(fake: FakeMaxAPI, http: aiohttp.ClientSession) -> None:
    fake.add_fault(Fault(status=500, path=EDITS))
    fake.add_fault(Fault(status=418, method="GET"))
    fake.add_fault(Fault(status=503, origin="cdn"))
    status, answer, _ = await post_json(http, fake, GEN, {"model": MODEL, "prompt": "x"})
    assert status == 200
    async with http.get(answer["data"][0]["url"]) as resp:
        assert resp.status == 503
    await download(http, answer["data"][0]["url"])
    status, _, _ = await get_json(http, fake, f"{GEN}/task_missing")
    assert status == 418
    status, answer = await post_form(http, fake, edit_form([("a.png", make_png(4, 4), "image/png")]))
    assert status == 500
    assert answer["error"]["type"] == "server_error"


async def test_fail_next_uses_the_route_style(fake: FakeMaxAPI, http: aiohttp.ClientSession) -> None:
    fake.fail_next(503, path="/v1beta/")
    fake.fail_next(402, platform_error(402, "insufficient points"))
    status, answer, _ = await post_json(http, fake, GEN, {"model": MODEL, "prompt": "x"})
    assert (status, answer) == (402, {"code": 402, "msg": "insufficient points"})
    status, answer, _ = await post_json(http, fake, NATIVE, native_body())
    assert status == 503
    assert answer["error"]["status"] == "UNAVAILABLE"
    assert answer["error"]["details"] == []
    fake.fail_next(500)
    status, answer, _ = await post_json(http, fake, GEN, {"model": MODEL, "prompt": "x"})
    assert status == 500
    assert set(answer["error"]) == {"message", "type", "param", "code"}


async def test_unlimited_fault_until_cleared(fake: FakeMaxAPI, http: aiohttp.ClientSession) -> None:
    fake.fail_next(500, times=None)
    for _ in range(3):
        status, _, _ = await post_json(http, fake, GEN, {"model": MODEL, "prompt": "x"})
        assert status == 500
    fake.clear_faults()
    status, _, _ = await post_json(http, fake, GEN, {"model": MODEL, "prompt": "x"})
    assert status == 200


async def test_fault_delay(fake: FakeMaxAPI, http: aiohttp.ClientSession) -> None:
    fake.add_fault(Fault(delay=0.2))
    fake.add_fault(Fault(status=500, delay=0.1))
    started = time.monotonic()
    status, _, _ = await post_json(http, fake, GEN, {"model": MODEL, "prompt": "x"})
    assert status == 200  # status=None: delay, then answer normally
    assert time.monotonic() - started >= 0.2
    started = time.monotonic()
    status, _, _ = await post_json(http, fake, GEN, {"model": MODEL, "prompt": "x"})
    assert status == 500
    assert time.monotonic() - started >= 0.1


async def test_fault_delay_lets_the_client_time_out(fake: FakeMaxAPI, http: aiohttp.ClientSession) -> None:
    fake.add_fault(Fault(delay=5.0))
    with pytest.raises(asyncio.TimeoutError):
        await http.post(
            fake.base_url + GEN,
            json={"model": MODEL, "prompt": "x"},
            headers=auth(fake),
            timeout=aiohttp.ClientTimeout(total=0.2),
        )


async def test_fault_reset_drops_the_connection(fake: FakeMaxAPI, http: aiohttp.ClientSession) -> None:
    fake.add_fault(Fault(reset=True))
    # aiohttp retries an idempotent request once after a disconnect: two resets for a GET
    fake.add_fault(Fault(reset=True, origin="cdn", times=2))
    with pytest.raises(aiohttp.ClientConnectionError):
        await post_json(http, fake, GEN, {"model": MODEL, "prompt": "x"})
    status, answer, _ = await post_json(http, fake, GEN, {"model": MODEL, "prompt": "x"})
    assert status == 200
    assert len(fake.requests) == 2
    with pytest.raises(aiohttp.ClientConnectionError):
        await download(http, answer["data"][0]["url"])
    assert len(fake.cdn_requests) == 2
    await download(http, answer["data"][0]["url"])


async def test_error_body_helpers() -> None:
    assert openai_error(400, "bad", "invalid_value", param="n") == {
        "error": {"message": "bad", "type": "invalid_request_error", "param": "n", "code": "invalid_value"}
    }
    assert openai_error(500)["error"]["type"] == "server_error"
    assert openai_error(429)["error"]["message"] == "Too Many Requests"
    assert google_error(429, "quota") == {
        "error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED", "details": []}
    }
    assert google_error(400, "x", "FAILED_PRECONDITION")["error"]["status"] == "FAILED_PRECONDITION"
    assert platform_error(402, "no credits") == {"code": 402, "msg": "no credits"}


# -- queued tasks ---------------------------------------------------------------------


def _task_fields(body: dict[str, Any], style: str) -> tuple[str, str, dict[str, Any]]:
    """(id, status word, task object) for any task style."""
    if style == "envelope":
        assert (body["code"], body["msg"]) == (0, "ok")
        task = body["data"]
        return task["task_id"], task["status"], task
    if style == "camel":
        return body["taskId"], body["state"], body
    return body["id"], body["status"], body


def _task_urls(task: dict[str, Any], style: str) -> list[str]:
    if style == "camel":
        urls: list[str] = task["result"]["urls"]
        return urls
    items = task["result"]["data"] if style == "result_data" else task["data"]
    return [item["url"] for item in items]


@pytest.mark.parametrize("style", ["plain", "envelope", "camel", "result_data"])
async def test_queued_generation_each_style(http: aiohttp.ClientSession, style: Any) -> None:
    async with FakeMaxAPI(task_style=style) as fake:
        body = {"model": MODEL, "prompt": "x", "async": True, "aspect_ratio": "16:9", "n": 2}
        status, answer, _ = await post_json(http, fake, GEN, body)
        assert status == 200
        task_id, word, task = _task_fields(answer, style)
        assert word == ("QUEUED" if style == "camel" else "queued")
        assert task["model"] == MODEL
        assert isinstance(task["created"], int)
        assert task["poll_url"] == f"{GEN}/{task_id}"
        assert not fake.cdn_requests
        _, answer, _ = await get_json(http, fake, task["poll_url"])
        _, word, task = _task_fields(answer, style)
        assert word == ("PROCESSING" if style == "camel" else "processing")
        assert 0 < task["progress"] < 100
        _, answer, _ = await get_json(http, fake, task["poll_url"])
        _, word, task = _task_fields(answer, style)
        assert word == ("SUCCESS" if style == "camel" else "succeeded")
        urls = _task_urls(task, style)
        assert len(urls) == 2
        assert decode_png(await download(http, urls[0])) == (1344, 768)


@pytest.mark.parametrize("style", ["plain", "envelope", "camel", "result_data"])
async def test_queued_failure_each_style(http: aiohttp.ClientSession, style: Any) -> None:
    async with FakeMaxAPI(task_style=style, complete_after_polls=1) as fake:
        fake.fail_tasks("CONTENT_MODERATION", "nope")
        _, answer, _ = await post_json(http, fake, GEN, {"model": MODEL, "prompt": "x", "async": True})
        task_id, _, _ = _task_fields(answer, style)
        _, answer, _ = await get_json(http, fake, f"{GEN}/{task_id}")
        _, word, task = _task_fields(answer, style)
        assert word.lower() == "failed"
        if style == "plain":
            assert task["error"] == {"message": "nope", "code": "CONTENT_MODERATION"}
        else:
            assert task["failure_reason"] == {"code": "CONTENT_MODERATION", "msg": "nope"}
        assert "data" not in task
        assert "result" not in task
        # only the next task fails
        _, answer, _ = await post_json(http, fake, GEN, {"model": MODEL, "prompt": "x", "async": True})
        task_id, _, _ = _task_fields(answer, style)
        _, answer, _ = await get_json(http, fake, f"{GEN}/{task_id}")
        assert _task_fields(answer, style)[1] in ("succeeded", "SUCCESS")


async def test_queued_edit_202_retry_after_and_b64(http: aiohttp.ClientSession) -> None:
    async with FakeMaxAPI(task_http_status=202, poll_retry_after=1, complete_after_polls=3) as fake:
        form = edit_form(
            [("a.png", make_png(80, 60), "image/png")], response_format="b64_json", **{"async": "true"}
        )
        async with http.post(fake.base_url + EDITS, data=form, headers=auth(fake)) as resp:
            assert resp.status == 202
            assert resp.headers["Retry-After"] == "1"
            task = await resp.json()
        assert task["status"] == "queued"
        assert task["poll_url"] == f"{EDITS}/{task['id']}"
        status, _, _ = await get_json(http, fake, f"{GEN}/{task['id']}")
        assert status == 404  # an edit task is not a generation task
        progress = []
        for _ in range(2):
            _, answer, headers = await get_json(http, fake, task["poll_url"])
            assert answer["status"] == "processing"
            assert headers["Retry-After"] == "1"
            progress.append(answer["progress"])
        assert progress == sorted(progress)
        _, answer, headers = await get_json(http, fake, task["poll_url"])
        assert answer["status"] == "succeeded"
        assert "Retry-After" not in headers
        assert decode_png(base64.b64decode(answer["data"][0]["b64_json"])) == (1184, 864)  # 4:3


async def test_queued_unknown_task_is_404(fake: FakeMaxAPI, http: aiohttp.ClientSession) -> None:
    for path in (f"{GEN}/task_nope", f"{EDITS}/task_nope"):
        status, answer, _ = await get_json(http, fake, path)
        assert status == 404
        assert answer["error"]["type"] == "invalid_request_error"


async def test_queued_completion_by_time(http: aiohttp.ClientSession) -> None:
    async with FakeMaxAPI(complete_after_seconds=0.4) as fake:
        _, task, _ = await post_json(http, fake, GEN, {"model": MODEL, "prompt": "x", "async": True})
        _, answer, _ = await get_json(http, fake, task["poll_url"])
        assert answer["status"] == "processing"
        assert 0 < answer["progress"] < 100
        # the clock starts when the submission was received
        time_left = 0.4 - (time.monotonic() - fake.requests[0].received_at)
        await anyio.sleep(max(time_left, 0) + 0.05)
        _, answer, _ = await get_json(http, fake, task["poll_url"])
        assert answer["status"] == "succeeded"


async def test_complete_on_first_poll_and_status_words(http: aiohttp.ClientSession) -> None:
    words = {"pending": "submitted", "succeeded": "COMPLETED"}
    async with FakeMaxAPI(complete_after_polls=0, status_words=words) as fake:
        _, task, _ = await post_json(http, fake, GEN, {"model": MODEL, "prompt": "x", "async": True})
        assert task["status"] == "submitted"
        _, answer, _ = await get_json(http, fake, task["poll_url"])
        assert answer["status"] == "COMPLETED"
        assert answer["progress"] == 100


@pytest.mark.parametrize("style", ["absolute", "foreign", "none"])
async def test_poll_url_styles(http: aiohttp.ClientSession, style: Any) -> None:
    async with FakeMaxAPI(poll_url_style=style) as fake:
        _, task, _ = await post_json(http, fake, GEN, {"model": MODEL, "prompt": "x", "async": True})
        path = f"{GEN}/{task['id']}"
        expected = {"absolute": fake.base_url + path, "foreign": fake.cdn_url + path, "none": None}
        assert task.get("poll_url") == expected[style]
        if style == "foreign":
            async with http.get(task["poll_url"]) as resp:
                assert resp.status == 404  # the CDN knows no tasks
            assert fake.cdn_requests[-1].path == path


# -- Gemini-native -----------------------------------------------------------------------


async def test_native_sync_answer(fake: FakeMaxAPI, http: aiohttp.ClientSession) -> None:
    reference = make_png(300, 200)
    body = native_body(aspectRatio="16:9")
    body["contents"][0]["parts"].append(
        {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(reference).decode()}}
    )
    headers = {**auth(fake), "X-MaxAPI-Route-Mode": "official-cheap"}
    status, answer, resp_headers = await post_json(http, fake, NATIVE, body, headers=headers)
    assert status == 200
    assert "x-request-id" in resp_headers
    candidate = answer["candidates"][0]
    assert candidate["finishReason"] == "STOP"
    assert candidate["content"]["role"] == "model"
    assert decode_png(native_image(answer)) == (1344, 768)
    usage = answer["usageMetadata"]
    assert usage["candidatesTokenCount"] == 1290
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + 1290
    assert answer["modelVersion"] == "gemini-2.5-flash-image"
    assert answer["responseId"]
    assert fake.requests[-1].json == body
    # no ratio: the table size nearest the first reference image's ratio; TEXT+IMAGE by default
    body = native_body()
    body["contents"][0]["parts"].append(
        {"inline_data": {"mime_type": "image/png", "data": base64.b64encode(reference).decode()}}
    )
    status, answer, _ = await post_json(http, fake, NATIVE, body)
    assert status == 200
    assert answer["candidates"][0]["content"]["parts"][0]["text"]
    assert decode_png(native_image(answer)) == (1248, 832)  # 300x200 is 3:2


async def test_native_snake_case_request_and_only_v1beta(
    fake: FakeMaxAPI, http: aiohttp.ClientSession
) -> None:
    body = {
        "contents": [{"parts": [{"text": "x"}]}],
        "generation_config": {"response_modalities": ["IMAGE"], "image_config": {"aspect_ratio": "9:16"}},
    }
    headers = {"x-goog-api-key": fake.api_key}
    status, answer, _ = await post_json(http, fake, NATIVE, body, headers=headers)
    assert status == 200
    assert decode_png(native_image(answer)) == (768, 1344)
    assert fake.requests[-1].unknown_fields == ()
    # google-genai's default /v1 is not MaxAPI's: a 404 in Google's shape, with a request id
    for path in (f"/v1/models/{MODEL}:generateContent", "/v1/operations/op_1"):
        status, answer, resp_headers = await post_json(http, fake, path, body, headers=headers)
        assert status == 404
        assert answer["error"]["status"] == "NOT_FOUND"
        assert resp_headers["x-request-id"].startswith("req_")
    status, answer, _ = await post_json(http, fake, f"/v1beta/models/models/{PRO}:generateContent", body)
    assert status == 200
    assert png_size(native_image(answer)) == (768, 1376)


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        ({}, {}),
        ({"contents": []}, {}),
        ({"contents": [{"parts": []}]}, {}),
        ({"contents": [{"parts": [{"inlineData": {"mimeType": "image/png", "data": "AAAA"}}]}]}, {}),
        (
            {
                "contents": [
                    {"parts": [{"text": "x"}, {"inlineData": {"mimeType": "image/png", "data": "%%"}}]}
                ]
            },
            {},
        ),
        (native_body(aspectRatio="5:1"), {}),
        (native_body(), {"X-MaxAPI-Route-Mode": "cheapest"}),
        (native_body(), {"X-MaxAPI-Async": "perhaps"}),
        ({**native_body(), "generationConfig": {"responseModalities": ["AUDIO"]}}, {}),
        (["not", "an", "object"], {}),
    ],
)
async def test_native_validation(
    fake: FakeMaxAPI, http: aiohttp.ClientSession, body: Any, headers: dict[str, str]
) -> None:
    status, answer, _ = await post_json(http, fake, NATIVE, body, headers={**auth(fake), **headers})
    assert status == 400
    assert answer["error"]["code"] == 400
    assert answer["error"]["status"] == "INVALID_ARGUMENT"


async def test_native_unknown_method_is_404(fake: FakeMaxAPI, http: aiohttp.ClientSession) -> None:
    status, answer, _ = await post_json(http, fake, f"/v1beta/models/{MODEL}:countTokens", native_body())
    assert status == 404
    assert answer["error"]["status"] == "NOT_FOUND"


async def test_native_queued_operation(http: aiohttp.ClientSession) -> None:
    async with FakeMaxAPI(poll_retry_after=2) as fake:
        headers = {**auth(fake), "X-MaxAPI-Async": "true"}
        status, op, resp_headers = await post_json(
            http, fake, NATIVE, native_body(aspectRatio="4:3"), headers=headers
        )
        assert status == 200
        assert op["done"] is False
        assert op["name"].startswith("operations/")
        assert op["metadata"]["model"] == MODEL
        assert resp_headers["Retry-After"] == "2"
        op_id = op["name"].removeprefix("operations/")
        _, answer, _ = await get_json(http, fake, f"/v1beta/operations/{op_id}")
        assert answer["done"] is False
        _, answer, _ = await get_json(http, fake, f"/v1beta/{op['name']}")
        assert answer["done"] is True
        assert answer["name"] == op["name"]
        assert decode_png(native_image(answer["response"])) == (1184, 864)
        # the name with its prefix appended to the collection path works too
        _, answer, _ = await get_json(http, fake, f"/v1beta/operations/{op['name']}")
        assert answer["done"] is True
        status, answer, _ = await get_json(http, fake, "/v1beta/operations/op_unknown")
        assert status == 404
        assert answer["error"]["status"] == "NOT_FOUND"


async def test_native_queued_failure(http: aiohttp.ClientSession) -> None:
    async with FakeMaxAPI(complete_after_polls=1) as fake:
        fake.fail_tasks("INVALID_PARAMETERS", "bad prompt")
        headers = {**auth(fake), "X-MaxAPI-Async": "true"}
        _, op, _ = await post_json(http, fake, NATIVE, native_body(), headers=headers)
        _, answer, _ = await get_json(http, fake, f"/v1beta/{op['name']}")
        assert answer["done"] is True
        assert "response" not in answer
        assert answer["error"]["code"] == 3
        assert answer["error"]["status"] == "INVALID_ARGUMENT"
        assert "bad prompt" in answer["error"]["message"]


async def test_native_blocked_answers(fake: FakeMaxAPI, http: aiohttp.ClientSession) -> None:
    fake.block_next("IMAGE_SAFETY")
    fake.block_next("SAFETY", prompt_feedback=True)
    status, answer, _ = await post_json(http, fake, NATIVE, native_body())
    assert status == 200
    [candidate] = answer["candidates"]
    assert candidate["finishReason"] == "IMAGE_SAFETY"
    assert all("inlineData" not in part for part in candidate["content"]["parts"])
    status, answer, _ = await post_json(http, fake, NATIVE, native_body())
    assert status == 200
    assert "candidates" not in answer
    assert answer["promptFeedback"]["blockReason"] == "SAFETY"
    assert answer["usageMetadata"]["candidatesTokenCount"] == 0
    status, answer, _ = await post_json(http, fake, NATIVE, native_body())
    assert answer["candidates"][0]["finishReason"] == "STOP"


async def test_native_blocked_by_constructor_and_queued(http: aiohttp.ClientSession) -> None:
    async with FakeMaxAPI(gemini_block_reason="PROHIBITED_CONTENT", complete_after_polls=0) as fake:
        _, answer, _ = await post_json(http, fake, NATIVE, native_body())
        assert answer["candidates"][0]["finishReason"] == "PROHIBITED_CONTENT"
        headers = {**auth(fake), "X-MaxAPI-Async": "true"}
        _, op, _ = await post_json(http, fake, NATIVE, native_body(), headers=headers)
        _, answer, _ = await get_json(http, fake, f"/v1beta/{op['name']}")
        assert answer["response"]["candidates"][0]["finishReason"] == "PROHIBITED_CONTENT"


async def test_native_answer_variants(http: aiohttp.ClientSession) -> None:
    options: dict[str, Any] = {"gemini_file_data": True, "gemini_thought_drafts": 2}
    async with FakeMaxAPI(**options) as fake:
        _, answer, _ = await post_json(http, fake, NATIVE, native_body(aspectRatio="1:1"))
        parts = answer["candidates"][0]["content"]["parts"]
        assert [p.get("thought", False) for p in parts if "inlineData" in p] == [True, True, False]
        [file_part] = [p for p in parts if "fileData" in p]
        assert file_part["fileData"]["fileUri"].startswith(fake.cdn_url + "/assets/")
        assert decode_png(await download(http, file_part["fileData"]["fileUri"])) == (1024, 1024)
        assert decode_png(native_image(answer)) == (1024, 1024)
    async with FakeMaxAPI(gemini_snake_case=True) as fake:
        _, answer, _ = await post_json(http, fake, NATIVE, native_body())
        part = answer["candidates"][0]["content"]["parts"][-1]
        assert part["inline_data"]["mime_type"] == "image/png"
        assert answer["candidates"][0]["finish_reason"] == "STOP"
        assert "candidates_token_count" in answer["usage_metadata"]


# -- recording ------------------------------------------------------------------------------


async def test_recorded_request_fields(fake: FakeMaxAPI, http: aiohttp.ClientSession) -> None:
    headers = {**auth(fake), "X-Custom-Header": "yes"}
    body = {"model": MODEL, "prompt": "x", "route_mode": "mix"}
    async with http.post(fake.base_url + GEN + "?trace=1", json=body, headers=headers) as resp:
        assert resp.status == 200
    [record] = fake.requests_to("/v1/images")
    assert fake.requests_to("/v1beta") == []
    assert record.method == "POST"
    assert record.path == GEN
    assert record.query == {"trace": "1"}
    assert record.headers["X-Custom-Header"] == "yes"
    assert record.header("x-custom-header") == "yes"
    assert record.json == body
    assert json.loads(record.body) == body
    assert (record.form, record.files) == ({}, [])
    assert record.received_at <= time.monotonic()
    fake.clear()
    assert fake.requests == []


# -- PNG encoder --------------------------------------------------------------------------------


def test_png_encoder_sizes_cache_and_sniffing() -> None:
    for width, height in ((1, 1), (3, 70), (1536, 672)):
        data = make_png(width, height, 5)
        assert decode_png(data) == (width, height)
        assert png_size(data) == (width, height)
    assert make_png(1536, 672, 5) is make_png(1536, 672, 5)  # cached
    assert make_png(64, 64, 1) != make_png(64, 64, 2)
    assert png_size(b"not a png") is None
    with pytest.raises(ValueError, match="out of range"):
        make_png(0, 10)
    assert sniff_image_type(make_png(2, 2)) == "image/png"
    assert sniff_image_type(JPEG) == "image/jpeg"
    assert sniff_image_type(WEBP) == "image/webp"
    assert sniff_image_type(b"GIF89a....") == "image/gif"
    assert sniff_image_type(b"hello") is None
