"""The Gemini-native surface end to end: ``client.models.generate_content`` against FakeMaxAPI."""

from __future__ import annotations

import base64
import contextlib
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import maxapi_async
from maxapi_async import AsyncMaxAPI, GenerateContentResponse, PollPolicy, RetryPolicy, TaskHandle
from maxapi_async._protocol.gemini_answer import parse_generate_content
from maxapi_async.testing import FakeMaxAPI, Fault, make_png, png_size

pytestmark = pytest.mark.anyio

MODEL = "google/gemini-2.5-flash-image"
NATIVE = f"/v1beta/models/{MODEL}:generateContent"
OPERATIONS = "/v1beta/operations"


@contextlib.asynccontextmanager
async def make_client(fake: FakeMaxAPI, **options: Any) -> AsyncIterator[AsyncMaxAPI]:
    options.setdefault("poll_policy", PollPolicy.instant())
    options.setdefault("retry_policy", RetryPolicy.instant())
    async with AsyncMaxAPI(fake.api_key, base_url=fake.base_url, **options) as client:
        yield client


@pytest.fixture
async def client(fake_maxapi: FakeMaxAPI) -> AsyncIterator[AsyncMaxAPI]:
    async with make_client(fake_maxapi) as c:
        yield c


def sent(fake: FakeMaxAPI) -> dict[str, Any]:
    """The JSON body of the last generateContent request."""
    body = fake.requests_to(NATIVE)[-1].json
    assert isinstance(body, dict)
    return body


# -- the request -------------------------------------------------------------------------


async def test_generate_content_sends_camel_case_and_the_route_header(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI
) -> None:
    await client.models.generate_content(
        model=MODEL,
        contents=["put this cube on a beach", make_png(32, 32)],
        aspect_ratio="16:9",
        response_modalities=["IMAGE", "TEXT"],
        route_mode="official-cheap",
        wait=True,
    )
    request = fake_maxapi.requests[-1]
    assert request.path == NATIVE
    assert request.header("X-MaxAPI-Route-Mode") == "official-cheap"
    assert request.header("X-MaxAPI-Async") is None
    body = request.json
    assert body["generationConfig"]["imageConfig"]["aspectRatio"] == "16:9"
    assert body["generationConfig"]["responseModalities"] == ["IMAGE", "TEXT"]
    text, image = body["contents"][0]["parts"]
    assert text == {"text": "put this cube on a beach"}
    assert image["inlineData"]["mimeType"] == "image/png"
    assert base64.b64decode(image["inlineData"]["data"]) == make_png(32, 32)
    assert "generation_config" not in body
    assert "inline_data" not in image


async def test_a_string_is_one_user_text_part(client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI) -> None:
    await client.models.generate_content(model=MODEL, contents="a glass cube")
    assert sent(fake_maxapi)["contents"] == [{"role": "user", "parts": [{"text": "a glass cube"}]}]
    assert "generationConfig" not in sent(fake_maxapi)


async def test_paths_binary_files_and_image_assets_are_sent_inline(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, tmp_path: Path
) -> None:
    path = tmp_path / "ref.png"
    path.write_bytes(make_png(20, 10))
    earlier = await client.images.generate("a cube", aspect_ratio="1:1")  # an ImageAsset by URL
    inline_asset = maxapi_async.ImageAsset(data=make_png(12, 12))
    await client.models.generate_content(
        model=MODEL,
        contents=["combine these", path, io.BytesIO(make_png(14, 14)), earlier.images[0], inline_asset],
    )
    parts = sent(fake_maxapi)["contents"][0]["parts"]
    sizes = [png_size(base64.b64decode(p["inlineData"]["data"])) for p in parts[1:]]
    assert sizes == [(20, 10), (14, 14), (1024, 1024), (12, 12)]
    assert all(p["inlineData"]["mimeType"] == "image/png" for p in parts[1:])
    assert all(r.header("Authorization") is None for r in fake_maxapi.cdn_requests)


async def test_google_style_content_dicts_are_sent_as_camel_case(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI
) -> None:
    png = base64.b64encode(make_png(16, 16)).decode()
    contents = [
        {
            "role": "user",
            "parts": [{"text": "make it blue"}, {"inline_data": {"mime_type": "image/png", "data": png}}],
        }
    ]
    result = await client.models.generate_content(model=MODEL, contents=contents)
    assert sent(fake_maxapi)["contents"] == [
        {
            "role": "user",
            "parts": [{"text": "make it blue"}, {"inlineData": {"mimeType": "image/png", "data": png}}],
        }
    ]
    assert len(result.images) == 1


async def test_client_route_mode_is_the_default_header(fake_maxapi: FakeMaxAPI) -> None:
    async with make_client(fake_maxapi, route_mode="mix") as client:
        await client.models.generate_content(model=MODEL, contents="x")
        await client.models.generate_content(model=MODEL, contents="x", route_mode="official")
    assert [r.header("X-MaxAPI-Route-Mode") for r in fake_maxapi.requests_to(NATIVE)] == ["mix", "official"]


# -- the answer ------------------------------------------------------------------------------


async def test_answer_is_a_generate_content_response_with_images_and_text(client: AsyncMaxAPI) -> None:
    response = await client.models.generate_content(model=MODEL, contents="a glass cube", aspect_ratio="3:4")
    assert isinstance(response, GenerateContentResponse)
    assert len(response.candidates) == 1
    assert [p.text is not None for p in response.parts] == [True, False]
    assert response.finish_reason == "STOP"
    assert response.text == "Here is your image."
    usage = response.usage_metadata
    assert usage is not None
    assert usage.candidates_token_count == 1290
    assert usage.total_token_count == (usage.prompt_token_count or 0) + 1290
    (image,) = response.images
    assert image.data is not None
    assert png_size(image.data) == image.size == (864, 1184)
    assert image.mime_type == "image/png"
    assert response.request_id is not None


@pytest.mark.fake_maxapi(gemini_file_data=True)
async def test_file_data_parts_give_the_image_a_cdn_url(client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI) -> None:
    response = await client.models.generate_content(model=MODEL, contents="a glass cube")
    assert any(p.file_data is not None for p in response.parts)
    (image,) = response.images  # inline bytes and their CDN copy are one image
    assert image.url is not None
    assert image.url.startswith(fake_maxapi.cdn_url)
    assert image.data is not None
    assert image.expires_at is not None


async def test_a_file_data_only_answer_is_an_image_by_url(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI
) -> None:
    url = f"{fake_maxapi.cdn_url}/assets/whatever.png"
    body = {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [{"fileData": {"mimeType": "image/png", "fileUri": url}}],
                },
                "finishReason": "STOP",
            }
        ]
    }
    fake_maxapi.add_fault(Fault(status=200, body=body, path=NATIVE))
    response = await client.models.generate_content(model=MODEL, contents="x", aspect_ratio="16:9")
    (image,) = response.images
    assert (image.url, image.data, image.size) == (url, None, (1344, 768))
    assert response.raw == body
    assert response.candidates == parse_generate_content(body).candidates
    assert response.finish_reason == "STOP"
    assert response.text is None


@pytest.mark.fake_maxapi(gemini_thought_drafts=2)
async def test_thought_drafts_are_not_images(client: AsyncMaxAPI) -> None:
    response = await client.models.generate_content(model=MODEL, contents="a glass cube")
    assert len(response.images) == 1
    assert len(response.draft_parts) == 2
    assert all(p.thought for p in response.draft_parts)
    final = response.image_parts[0].inline_data
    assert final is not None
    assert response.images[0].data == base64.b64decode(final.data)


@pytest.mark.fake_maxapi(gemini_snake_case=True)
async def test_snake_case_answers_parse(client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI) -> None:
    response = await client.models.generate_content(model=MODEL, contents="a glass cube", aspect_ratio="4:3")
    assert "usage_metadata" in response.raw
    assert response.finish_reason == "STOP"
    assert response.usage_metadata is not None
    assert response.usage_metadata.candidates_token_count == 1290
    assert [i.size for i in response.images] == [(1184, 864)]


@pytest.mark.parametrize("reason", ["IMAGE_SAFETY", "PROHIBITED_CONTENT", "IMAGE_OTHER"])
async def test_a_blocked_candidate_raises_blocked_naming_the_reason(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, reason: str
) -> None:
    fake_maxapi.block_next(reason)
    with pytest.raises(maxapi_async.BlockedError) as caught:
        await client.models.generate_content(model=MODEL, contents="x")
    assert caught.value.reason == reason
    assert reason in str(caught.value)
    assert isinstance(caught.value.response, GenerateContentResponse)


async def test_a_blocked_prompt_raises_blocked_naming_the_block_reason(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI
) -> None:
    fake_maxapi.block_next("SAFETY", prompt_feedback=True)
    with pytest.raises(maxapi_async.BlockedError) as caught:
        await client.models.generate_content(model=MODEL, contents="x")
    assert caught.value.reason == "SAFETY"
    assert "SAFETY" in str(caught.value)


# -- queued operations ----------------------------------------------------------------------------


async def test_wait_false_sends_the_async_header_and_returns_an_operation_handle(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI
) -> None:
    handle = await client.models.generate_content(model=MODEL, contents="a glass cube", wait=False)
    assert isinstance(handle, TaskHandle)
    assert handle.kind == "operation"
    (submit,) = fake_maxapi.requests
    assert submit.header("X-MaxAPI-Async") == "true"
    assert handle.status.state in ("pending", "running")
    response = await handle
    assert isinstance(response, GenerateContentResponse)
    assert len(response.images) == 1
    polled = [r.path for r in fake_maxapi.requests[1:]]
    assert polled == [f"{OPERATIONS}/{handle.id}"] * 2
    assert not handle.id.startswith("operations/")


async def test_an_operation_gives_the_same_response_type_as_the_direct_call(client: AsyncMaxAPI) -> None:
    direct = await client.models.generate_content(model=MODEL, contents="a glass cube", aspect_ratio="5:4")
    queued = await (
        await client.models.generate_content(
            model=MODEL, contents="a glass cube", aspect_ratio="5:4", wait=False
        )
    )
    assert type(queued) is type(direct) is GenerateContentResponse
    assert [i.size for i in queued.images] == [i.size for i in direct.images] == [(1152, 896)]
    assert [i.data for i in queued.images] == [i.data for i in direct.images]
    assert queued.text == direct.text


async def test_wait_by_polling_queues_native_calls_too(fake_maxapi: FakeMaxAPI) -> None:
    async with make_client(fake_maxapi, wait_by_polling=True) as client:
        response = await client.models.generate_content(model=MODEL, contents="a glass cube")
    assert isinstance(response, GenerateContentResponse)
    assert fake_maxapi.requests[0].header("X-MaxAPI-Async") == "true"
    assert fake_maxapi.requests[-1].path.startswith(f"{OPERATIONS}/")


# The fake's operation error is Google's shape: {"code": 3, "status": "INVALID_ARGUMENT", "message":
# "<REASON>: ...", "details": [{"@type": ...ErrorInfo, "reason": "<REASON>"}]}: the specific reason
# must win over the generic gRPC status.
@pytest.mark.parametrize(
    "reason",
    [
        "CONTENT_MODERATION",
        "INVALID_PARAMETERS",
        "INSUFFICIENT_POINTS",
    ],
)
async def test_a_failed_operation_raises_task_failed_with_its_reason(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, reason: str
) -> None:
    fake_maxapi.fail_tasks(reason)
    handle = await client.models.generate_content(model=MODEL, contents="x", wait=False)
    with pytest.raises(maxapi_async.TaskFailedError) as caught:
        await handle
    assert (caught.value.reason, caught.value.kind, caught.value.task_id) == (reason, "operation", handle.id)
    assert handle.status.state == "failed"


async def test_a_failed_operation_names_its_reason_in_the_message(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI
) -> None:
    fake_maxapi.fail_tasks("CONTENT_MODERATION")
    handle = await client.models.generate_content(model=MODEL, contents="x", wait=False)
    with pytest.raises(maxapi_async.TaskFailedError, match="CONTENT_MODERATION"):
        await handle


async def test_a_blocked_operation_raises_blocked(client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI) -> None:
    fake_maxapi.block_next("IMAGE_SAFETY")
    handle = await client.models.generate_content(model=MODEL, contents="x", wait=False)
    with pytest.raises(maxapi_async.BlockedError) as caught:
        await handle
    assert caught.value.reason == "IMAGE_SAFETY"


@pytest.mark.fake_maxapi(gemini_snake_case=True)
async def test_snake_case_operations_parse(client: AsyncMaxAPI) -> None:
    handle = await client.models.generate_content(model=MODEL, contents="x", wait=False)
    response = await handle
    assert len(response.images) == 1


async def test_an_unknown_operation_is_not_found(client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI) -> None:
    with pytest.raises(maxapi_async.NotFoundError):
        await client.tasks.get("operations/nope", kind="operation")
    assert fake_maxapi.requests[-1].path == f"{OPERATIONS}/nope"


# -- the google-genai SDK against the fake --------------------------------------------------------


# google-genai subclasses aiohttp.ClientSession, which aiohttp deprecates: that one warning is
# ignored, for this test only.
@pytest.mark.filterwarnings(
    r"ignore:Inheritance class \w+ from ClientSession is discouraged:DeprecationWarning"
)
async def test_google_genai_sdk_gets_an_image_from_the_native_endpoint(fake_maxapi: FakeMaxAPI) -> None:
    from google import genai
    from google.genai import types

    sdk = genai.Client(
        api_key=fake_maxapi.api_key,
        http_options=types.HttpOptions(base_url=fake_maxapi.base_url, api_version="v1beta"),
    )
    try:
        response = await sdk.aio.models.generate_content(
            model=MODEL,
            contents="a cube",
            config=types.GenerateContentConfig(image_config=types.ImageConfig(aspect_ratio="16:9")),
        )
    finally:
        await sdk.aio.aclose()
        sdk.close()
    assert response.candidates
    content = response.candidates[0].content
    assert content is not None
    images = [p.inline_data.data for p in content.parts or [] if p.inline_data and p.inline_data.data]
    assert len(images) == 1
    assert png_size(images[0]) == (1344, 768)
    request = fake_maxapi.requests[-1]
    assert request.path == NATIVE
    assert request.header("x-goog-api-key") == fake_maxapi.api_key
    assert request.json["generationConfig"]["imageConfig"]["aspectRatio"] == "16:9"
