"""The fake's generateContent reads what Google's SDK sends: base64 variants, images only, fileData."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from _image_headers import gif, jpeg, webp

from maxapi_async.testing import FakeMaxAPI, make_png, png_size, pytest_plugin

pytestmark = pytest.mark.anyio

fake_maxapi = pytest_plugin.fake_maxapi

MODEL = "google/gemini-2.5-flash-image"
PRO = "google/gemini-3-pro-image-preview"
NATIVE = f"/v1beta/models/{MODEL}:generateContent"
# google-genai subclasses aiohttp.ClientSession, which aiohttp deprecates: that one warning is
# ignored in the tests that use the SDK's async client.
GENAI_AIOHTTP = pytest.mark.filterwarnings(
    r"ignore:Inheritance class \w+ from ClientSession is discouraged:DeprecationWarning"
)


@pytest.fixture
async def fake() -> AsyncIterator[FakeMaxAPI]:
    async with FakeMaxAPI() as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def inline(data: bytes, encode: Any = base64.b64encode, mime: str = "image/png") -> dict[str, Any]:
    return {"inlineData": {"mimeType": mime, "data": encode(data).decode("ascii")}}


async def generate(
    http: aiohttp.ClientSession, fake: FakeMaxAPI, parts: list[Any], model: str = MODEL, **config: str
) -> tuple[int, Any]:
    body: dict[str, Any] = {"contents": [{"role": "user", "parts": parts}]}
    if config:
        body["generationConfig"] = {"imageConfig": config}
    headers = {"x-goog-api-key": fake.api_key}
    url = f"{fake.base_url}/v1beta/models/{model}:generateContent"
    async with http.post(url, json=body, headers=headers) as resp:
        return resp.status, await resp.json()


def image_of(answer: Any) -> bytes:
    parts = answer["candidates"][0]["content"]["parts"]
    [data] = [p["inlineData"]["data"] for p in parts if "inlineData" in p]
    return base64.b64decode(data)


# -- base64 -----------------------------------------------------------------------------------


def _urlsafe_unpadded(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _standard_unpadded(data: bytes) -> bytes:
    return base64.b64encode(data).rstrip(b"=")


@pytest.mark.parametrize(
    "encode",
    [base64.b64encode, base64.urlsafe_b64encode, _urlsafe_unpadded, _standard_unpadded],
    ids=["standard", "urlsafe", "urlsafe-unpadded", "standard-unpadded"],
)
async def test_inline_data_in_any_base64_alphabet_with_or_without_padding(
    fake: FakeMaxAPI, http: aiohttp.ClientSession, encode: Any
) -> None:
    # a PNG whose standard base64 holds '+' and '/' and needs padding, so the variants differ
    reference = next(
        png
        for seed in range(64)
        if (png := make_png(300, 201, seed))
        and len(png) % 3
        and {b"+", b"/"} <= {bytes([c]) for c in base64.b64encode(png)}
    )
    status, answer = await generate(http, fake, [{"text": "make it night"}, inline(reference, encode)])
    assert status == 200, answer
    assert png_size(image_of(answer)) == (1248, 832)  # 300x201 is nearest 3:2


async def test_base64_that_is_not_base64_is_still_refused(
    fake: FakeMaxAPI, http: aiohttp.ClientSession
) -> None:
    status, answer = await generate(
        http, fake, [{"text": "x"}, {"inlineData": {"mimeType": "image/png", "data": "%%%"}}]
    )
    assert status == 400
    assert "base64" in answer["error"]["message"]


# -- what contents may hold ------------------------------------------------------------------------


async def test_image_only_contents_and_several_images(fake: FakeMaxAPI, http: aiohttp.ClientSession) -> None:
    status, answer = await generate(http, fake, [inline(make_png(64, 64))])
    assert status == 200, answer
    assert png_size(image_of(answer)) == (1024, 1024)
    assert fake.requests[-1].prompt is None
    parts = [
        inline(jpeg(600, 800), mime="image/jpeg"),
        inline(make_png(80, 80)),
        inline(gif(10, 10), mime="image/gif"),
    ]
    status, answer = await generate(http, fake, [{"text": "combine"}, *parts])
    assert status == 200, answer
    assert png_size(image_of(answer)) == (864, 1184)  # the first image is 3:4
    assert answer["usageMetadata"]["promptTokenCount"] == 1 + 3 * 258
    status, answer = await generate(http, fake, [{"text": "   "}])
    assert status == 400  # neither text nor an image
    status, _ = await generate(
        http, fake, [{"text": "a draft", "thought": True}, {"text": "night"}, inline(gif(8, 8))]
    )
    assert status == 200
    assert fake.requests[-1].prompt == "night"  # what the model was asked, not its own thoughts


async def test_file_data_parts_are_references(fake: FakeMaxAPI, http: aiohttp.ClientSession) -> None:
    # one of the fake's own assets: its size is known
    async with http.post(
        fake.base_url + "/v1/images/generations",
        json={"model": MODEL, "prompt": "x", "aspect_ratio": "21:9"},
        headers={"Authorization": f"Bearer {fake.api_key}"},
    ) as resp:
        url = (await resp.json())["data"][0]["url"]
    file_part = {"fileData": {"mimeType": "image/png", "fileUri": url}}
    status, answer = await generate(http, fake, [{"text": "x"}, file_part])
    assert status == 200, answer
    assert png_size(image_of(answer)) == (1536, 672)
    # google-genai's spelling, a URI elsewhere: a reference of unknown shape, so the default ratio
    foreign = {"fileData": {"file_uri": "https://example.com/a.png", "mime_type": "image/png"}}
    status, answer = await generate(http, fake, [{"text": "x"}, foreign])
    assert status == 200, answer
    assert png_size(image_of(answer)) == (1024, 1024)
    assert answer["usageMetadata"]["promptTokenCount"] == 1 + 258
    for bad_part in (
        {"fileData": {"mimeType": "image/png"}},
        {"fileData": {"fileUri": url, "mimeType": "text/plain"}},
    ):
        status, answer = await generate(http, fake, [{"text": "x"}, bad_part])
        assert status == 400, bad_part


@pytest.mark.parametrize(
    ("reference", "size"),
    [
        (make_png(300, 200), (1248, 832)),  # 3:2
        (jpeg(1080, 1920), (768, 1344)),  # 9:16
        (webp(2100, 900), (1536, 672)),  # 21:9
        (gif(500, 400), (1152, 896)),  # 5:4
    ],
    ids=["png", "jpeg", "webp", "gif"],
)
async def test_an_image_without_a_ratio_gets_the_nearest_table_size_in_every_format(
    fake: FakeMaxAPI, http: aiohttp.ClientSession, reference: bytes, size: tuple[int, int]
) -> None:
    status, answer = await generate(http, fake, [{"text": "x"}, inline(reference)])
    assert status == 200, answer
    assert png_size(image_of(answer)) == size


async def test_image_config_names_google_genai_writes(fake: FakeMaxAPI, http: aiohttp.ClientSession) -> None:
    status, answer = await generate(
        http, fake, [{"text": "x"}], model=PRO, aspectRatio="9:16", imageSize="2K"
    )
    assert status == 200, answer
    assert png_size(image_of(answer)) == (1536, 2752)
    assert fake.requests[-1].unknown_fields == ()
    status, answer = await generate(
        http, fake, [{"text": "x"}], model=PRO, aspectRatio="9:16", imageSize="3K"
    )
    assert status == 400


# -- google-genai itself --------------------------------------------------------------------------


def _genai_client(fake: FakeMaxAPI) -> Any:
    from google import genai
    from google.genai import types

    return genai.Client(
        api_key=fake.api_key,
        http_options=types.HttpOptions(base_url=fake.base_url, api_version="v1beta"),
    )


def _sizes(response: Any) -> list[tuple[int, int] | None]:
    content = response.candidates[0].content
    return [png_size(p.inline_data.data) for p in content.parts if p.inline_data and p.inline_data.data]


@GENAI_AIOHTTP
async def test_google_genai_edits_with_one_and_two_reference_images(fake_maxapi: FakeMaxAPI) -> None:
    from google.genai import types

    sdk = _genai_client(fake_maxapi)
    try:
        one = await sdk.aio.models.generate_content(
            model=MODEL,
            contents=["make it night", types.Part.from_bytes(data=make_png(300, 200), mime_type="image/png")],
        )
        two = await sdk.aio.models.generate_content(
            model=MODEL,
            contents=[
                "put the cube on the beach",
                types.Part.from_bytes(data=jpeg(600, 800), mime_type="image/jpeg"),
                types.Part.from_bytes(data=make_png(64, 64, 3), mime_type="image/png"),
            ],
            config=types.GenerateContentConfig(
                response_modalities=["IMAGE"], image_config=types.ImageConfig(aspect_ratio="16:9")
            ),
        )
    finally:
        await sdk.aio.aclose()
        sdk.close()
    assert _sizes(one) == [(1248, 832)]  # nearest 3:2
    assert _sizes(two) == [(1344, 768)]
    sent = fake_maxapi.requests_to("/v1beta/models/")
    assert [len(r.json["contents"][0]["parts"]) for r in sent] == [2, 3]
    assert all(r.unknown_fields == () for r in sent)


def test_google_genai_sync_client_edits_in_a_plain_test(fake_maxapi: FakeMaxAPI) -> None:
    from google.genai import types

    with _genai_client(fake_maxapi) as sdk:
        response = sdk.models.generate_content(
            model=MODEL,
            contents=[
                types.Part.from_bytes(data=webp(2100, 900), mime_type="image/webp"),
                types.Part.from_bytes(data=gif(10, 10), mime_type="image/gif"),
            ],
        )
    assert _sizes(response) == [(1536, 672)]  # image-only, two references, the first 21:9
