"""Inline images are checked like downloads: base64 that is not base64 is a ``ResponseError``,
bytes that are not an image an ``AssetTypeError``, and the size comes from the image's header.

Both APIs (``b64_json``, ``inlineData``), synchronous answers and queued task results, small
answers and big ones (read in a worker thread): every inline image passes through
``_assets.inline_asset``. A paid answer that cannot be read says so and keeps its
``Idempotency-Key`` (and a task result its task id).
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import pytest

from maxapi_async import AssetTypeError, AsyncMaxAPI, PollPolicy, ResponseError, RetryPolicy
from maxapi_async._protocol.assets import decode_b64
from maxapi_async._protocol.calls import ImageCall
from maxapi_async._protocol.gemini_answer import (
    decode_inline_images,
    make_native_assets,
    parse_generate_content,
)
from maxapi_async._protocol.openai_answer import make_asset, parse_images_response
from maxapi_async.testing import FakeMaxAPI, Fault, make_png

MODEL = "google/gemini-2.5-flash-image"
PNG = make_png(5, 4)
PNG_B64 = base64.b64encode(PNG).decode()
NOT_AN_IMAGE = base64.b64encode(b"<html>this is no image</html>").decode()
# Above the 256 KiB read on the event loop, so the answer is read in a worker thread.
BIG_NOT_AN_IMAGE = base64.b64encode(bytes(range(256)) * 4700).decode()
GENERATE_CONTENT = f"/v1beta/models/{MODEL}:generateContent"


# -- the protocol: decoding and checking ---------------------------------------------------------


@pytest.mark.parametrize("text", ["@@@@", "iVBO@@@@", "iVBORw0KGgo=\x00", "é" * 8, "QUJD=RA=="])
def test_text_that_is_not_base64_is_a_response_error(text: str) -> None:
    with pytest.raises(ResponseError, match="not valid base64"):
        decode_b64(text, request_id="req-1")


@pytest.mark.parametrize(
    "text",
    [
        PNG_B64,
        "data:image/png;base64," + PNG_B64,
        "\n".join(PNG_B64[i : i + 76] for i in range(0, len(PNG_B64), 76)),  # MIME line breaks
        PNG_B64.rstrip("="),  # no padding
        base64.urlsafe_b64encode(PNG).decode(),  # proto JSON's other alphabet
    ],
)
def test_base64_spellings_servers_send_decode_to_the_image(text: str) -> None:
    assert decode_b64(text) == PNG


@pytest.mark.parametrize("data", [b"", b"<html>502</html>", bytes(range(64))], ids=["empty", "html", "junk"])
def test_inline_bytes_that_are_not_an_image_are_an_asset_type_error(data: bytes) -> None:
    (item,) = parse_images_response({"data": [{"b64_json": "AAAA"}]}).data
    with pytest.raises(AssetTypeError, match="inline image 0"):
        make_asset(item, data, call=ImageCall("generation", MODEL), created=None, fetcher=None)


def test_an_inline_image_reports_the_size_in_its_header_not_the_table() -> None:
    (item,) = parse_images_response({"data": [{"b64_json": PNG_B64}]}).data
    asset = make_asset(item, PNG, call=ImageCall("generation", MODEL, "16:9"), created=None, fetcher=None)
    assert (asset.size, asset.mime_type) == ((5, 4), "image/png")


def _gemini_answer(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"candidates": [{"content": {"role": "model", "parts": list(parts)}, "finishReason": "STOP"}]}


def _gemini_assets(answer: dict[str, Any]) -> list[Any]:
    response = parse_generate_content(answer)
    call = ImageCall("generation", MODEL, "16:9")
    return make_native_assets(response, decode_inline_images(response), call=call, fetcher=None)


def test_gemini_inline_data_of_another_type_than_it_claims_is_refused() -> None:
    answer = _gemini_answer({"inlineData": {"mimeType": "image/jpeg", "data": PNG_B64}})
    with pytest.raises(AssetTypeError, match="should be image/jpeg but is image/png"):
        _gemini_assets(answer)


def test_gemini_inline_data_of_a_type_we_cannot_sniff_is_trusted_when_claimed() -> None:
    avif = base64.b64encode(b"\x00\x00\x00\x1cftypavif" + b"\x00" * 32).decode()
    (asset,) = _gemini_assets(_gemini_answer({"inlineData": {"mimeType": "image/avif", "data": avif}}))
    assert (asset.mime_type, asset.size) == ("image/avif", (1344, 768))  # no header to read: the table


# -- end to end: synchronous answers -------------------------------------------------------------


@pytest.fixture
async def client(fake_maxapi: FakeMaxAPI) -> AsyncIterator[AsyncMaxAPI]:
    async with AsyncMaxAPI(
        fake_maxapi.api_key,
        base_url=fake_maxapi.base_url,
        retry_policy=RetryPolicy.instant(),
        poll_policy=PollPolicy.instant(),
    ) as c:
        yield c


def _openai(b64: str) -> dict[str, Any]:
    return {"created": 1732400000, "data": [{"b64_json": b64}]}


def _gemini(b64: str) -> dict[str, Any]:
    return _gemini_answer({"inlineData": {"mimeType": "image/png", "data": b64}})


CASES = [
    pytest.param("@@@@", ResponseError, "not valid base64", id="junk"),
    pytest.param(NOT_AN_IMAGE, AssetTypeError, "is not an image", id="not-an-image"),
    pytest.param(BIG_NOT_AN_IMAGE, AssetTypeError, "is not an image", id="big-not-an-image"),
]


def _assert_paid_and_unreadable(exc: ResponseError, fake: FakeMaxAPI, client: AsyncMaxAPI) -> None:
    submissions = [r for r in fake.requests if r.method == "POST"]
    assert len(submissions) == 1  # never repeated
    assert exc.idempotency_key is not None
    assert exc.idempotency_key == submissions[0].header("Idempotency-Key")
    assert "may have been charged" in str(exc)
    assert client.usage.images == 0


@pytest.mark.anyio
@pytest.mark.parametrize(("b64", "error", "message"), CASES)
async def test_a_generation_answer_with_a_bad_inline_image_is_refused(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, b64: str, error: type[ResponseError], message: str
) -> None:
    fake_maxapi.add_fault(Fault(status=200, body=_openai(b64), method="POST"))
    with pytest.raises(error, match=message) as info:
        await client.images.generate("a cube", response_format="b64_json")
    _assert_paid_and_unreadable(info.value, fake_maxapi, client)


@pytest.mark.anyio
@pytest.mark.parametrize(("b64", "error", "message"), CASES)
async def test_a_generate_content_answer_with_a_bad_inline_image_is_refused(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, b64: str, error: type[ResponseError], message: str
) -> None:
    fake_maxapi.add_fault(Fault(status=200, body=_gemini(b64), method="POST"))
    with pytest.raises(error, match=message) as info:
        await client.models.generate_content(contents="a cube")
    _assert_paid_and_unreadable(info.value, fake_maxapi, client)


@pytest.mark.anyio
async def test_a_good_inline_image_still_reads(client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI) -> None:
    fake_maxapi.add_fault(Fault(status=200, body=_openai(PNG_B64), method="POST"))
    (asset,) = (await client.images.generate("a cube", aspect_ratio="16:9")).images
    assert (asset.data, asset.size) == (PNG, (5, 4))


# -- end to end: queued task results -------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(("b64", "error", "message"), CASES)
async def test_a_task_result_with_a_bad_inline_image_is_refused_naming_the_task(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, b64: str, error: type[ResponseError], message: str
) -> None:
    handle = await client.images.generate("a cube", wait=False)
    done = {"id": handle.id, "status": "succeeded", "data": [{"b64_json": b64}]}
    fake_maxapi.add_fault(Fault(status=200, body=done, method="GET", times=None))
    with pytest.raises(error, match=message) as info:
        await handle.wait(timeout=5)
    assert handle.id in str(info.value)
    assert "may have been charged" in str(info.value)
    assert info.value.idempotency_key == handle.ref.idempotency_key is not None
    assert client.usage.images == 0


@pytest.mark.anyio
@pytest.mark.parametrize(("b64", "error", "message"), CASES)
async def test_an_operation_result_with_a_bad_inline_image_is_refused_naming_it(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, b64: str, error: type[ResponseError], message: str
) -> None:
    handle = await client.models.generate_content(contents="a cube", wait=False)
    done = {"name": f"operations/{handle.id}", "done": True, "response": _gemini(b64)}
    fake_maxapi.add_fault(Fault(status=200, body=done, method="GET", times=None))
    with pytest.raises(error, match=message) as info:
        await handle.wait(timeout=5)
    assert handle.id in str(info.value)
    assert info.value.idempotency_key == handle.ref.idempotency_key is not None
