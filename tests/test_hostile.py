"""Hostile answers: whatever the service (or something pretending to be it) sends, only the
library's own errors come out, nothing above a size cap is read into memory, and an asset that is
not the image it claims to be is reported.

The JSON-level fuzzing of task objects (``parse_task``/``parse_operation``) and of generateContent
answers lives in ``test_tasks_protocol.py`` and ``test_gemini_protocol.py``; this file covers the
rest: error bodies, raw bytes into ``decode_json``, the OpenAI images pipeline, ``Retry-After``,
request ids and the download type check.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import json
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import maxapi_async
from maxapi_async import AsyncMaxAPI, ImageAsset, MaxAPIError, RetryPolicy
from maxapi_async._protocol.assets import check_asset_type, decode_b64
from maxapi_async._protocol.calls import ImageCall, error_from_response, parse_retry_after, request_id_from
from maxapi_async._protocol.convert import decode_json
from maxapi_async._protocol.errors import APIError, AssetTypeError, ResponseError, ServerError
from maxapi_async._protocol.gemini_answer import check_blocked, decode_inline_images, parse_generate_content
from maxapi_async._protocol.openai_answer import make_asset, parse_images_response
from maxapi_async._protocol.task_objects import parse_task
from maxapi_async.testing import FakeMaxAPI, Fault, make_png

MODEL = "google/gemini-2.5-flash-image"
PNG = make_png(16, 16)
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + b"\x00" * 64
HTML = b"<!doctype html><html><body>502 Bad Gateway</body></html>"

# -- strategies ----------------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
ERROR_BODIES = st.fixed_dictionaries(
    {},
    optional={
        "error": JSON
        | st.fixed_dictionaries(
            {}, optional={"message": JSON, "code": JSON, "type": JSON, "status": JSON, "details": JSON}
        ),
        "code": JSON,
        "msg": JSON,
        "message": JSON,
        "detail": JSON,
    },
)
B64 = st.binary(max_size=64).map(lambda b: base64.b64encode(b).decode()) | st.sampled_from(
    [base64.b64encode(PNG).decode(), "data:image/png;base64," + base64.b64encode(PNG).decode(), "!!", "QQ"]
)
IMAGE_ITEMS = st.fixed_dictionaries(
    {}, optional={"url": st.text(max_size=20) | JSON, "b64_json": B64 | JSON, "revised_prompt": JSON}
)
IMAGE_ANSWERS = st.fixed_dictionaries(
    {"data": st.lists(IMAGE_ITEMS, max_size=3) | JSON},
    optional={"created": JSON, "usage": JSON, "model": JSON},
)
HEADER_NAMES = st.sampled_from(["Retry-After", "x-request-id", "request-id", "x-trace-id", "Content-Type"])
HEADERS = st.dictionaries(HEADER_NAMES, st.text(max_size=40), max_size=5)


def encoded(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    return strategy.map(lambda obj: json.dumps(obj).encode())


RAW_BODIES = (
    st.binary(max_size=400)
    | encoded(JSON)
    | st.sampled_from([b"", b"[" * 100_000 + b"]" * 100_000, b"\xef\xbb\xbf{}", b"\xff\xfe{\x00}\x00", HTML])
)


# -- every parser yields the library's errors only -----------------------------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(status=st.integers(300, 599), headers=HEADERS, body=RAW_BODIES | encoded(ERROR_BODIES))
def test_any_error_answer_becomes_a_typed_api_error(
    status: int, headers: dict[str, str], body: bytes
) -> None:
    err = error_from_response(status, headers, body)
    assert isinstance(err, APIError)
    assert err.status == status
    assert isinstance(err.message, str)
    assert err.message
    assert err.code is None or isinstance(err.code, (str, int))
    assert err.retry_after is None or (math.isfinite(err.retry_after) and err.retry_after >= 0)
    if status >= 500:
        assert isinstance(err, ServerError)
    assert str(err)
    assert repr(err)


@settings(max_examples=300, deadline=None)
@given(body=RAW_BODIES)
def test_any_bytes_decode_to_json_or_a_response_error(body: bytes) -> None:
    error: ResponseError | None = None
    try:
        decode_json(body, status=200, request_id="req-1", what="images")
    except ResponseError as err:
        error = err
    if error is not None:
        assert error.status == 200
        assert error.request_id == "req-1"
        assert len(str(error)) < 1000  # an excerpt, never the whole body


def images_pipeline(body: bytes) -> None:
    """What the client does with a synchronous images answer, end to end."""
    obj = decode_json(body, status=200, request_id=None, what="images")
    response = parse_images_response(obj)
    call = ImageCall("generation", MODEL, "16:9")
    for item in response.data:
        data = decode_b64(item.b64_json) if item.b64_json else None
        make_asset(item, data, call=call, created=response.created, fetcher=None)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=RAW_BODIES | encoded(JSON | IMAGE_ANSWERS))
def test_any_images_answer_raises_only_library_errors(body: bytes) -> None:
    with contextlib.suppress(MaxAPIError):
        images_pipeline(body)


@settings(max_examples=150, deadline=None)
@given(body=RAW_BODIES)
def test_any_bytes_as_a_task_or_gemini_answer_raise_only_library_errors(body: bytes) -> None:
    with contextlib.suppress(MaxAPIError):
        parse_task(decode_json(body, status=200, request_id=None, what="task"), kind="generation")
    with contextlib.suppress(MaxAPIError):
        response = parse_generate_content(decode_json(body, status=200, request_id=None, what="gc"))
        check_blocked(response, response_modalities=["IMAGE"])
        decode_inline_images(response)


@settings(max_examples=300, deadline=None)
@given(
    value=st.none()
    | st.text(max_size=40)
    | st.sampled_from(["1e999", "nan", "-inf", "-3", "Fri, 31 Dec 99999 23:59:59 GMT"])
)
def test_any_retry_after_is_a_finite_wait_or_none(value: str | None) -> None:
    seconds = parse_retry_after(value)
    assert seconds is None or (math.isfinite(seconds) and seconds >= 0)


@given(headers=st.dictionaries(st.text(max_size=12) | HEADER_NAMES, st.text(max_size=20), max_size=6))
def test_any_headers_give_a_request_id_or_none(headers: dict[str, str]) -> None:
    rid = request_id_from(headers)
    assert rid is None or (isinstance(rid, str) and rid)


@settings(max_examples=300, deadline=None)
@given(
    head=st.binary(max_size=24)
    | st.sampled_from([PNG[:16], JPEG[:16], b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"GIF89a"]),
    claimed=st.none() | st.sampled_from(["image/png", "image/jpeg", "image/avif"]) | st.text(max_size=12),
    content_type=st.none()
    | st.sampled_from(["image/png", "image/jpg", "application/octet-stream"])
    | st.text(max_size=20),
)
def test_any_download_head_is_accepted_or_an_asset_type_error(
    head: bytes, claimed: str | None, content_type: str | None
) -> None:
    with contextlib.suppress(AssetTypeError):
        check_asset_type(head, claimed=claimed, content_type=content_type)


# -- the download type check, case by case -------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "claimed", "content_type", "actual"),
    [
        (PNG, "image/png", "image/png", "image/png"),
        (PNG, "image/png", "application/octet-stream", "image/png"),
        (PNG, None, None, "image/png"),
        (PNG, None, "image/x-png; charset=binary", "image/png"),
        (JPEG, "image/jpeg", "image/jpg", "image/jpeg"),
        (b"\x00\x00\x00\x1cftypavif", "image/avif", "image/avif", None),  # a type we cannot sniff
    ],
)
def test_an_image_of_the_claimed_type_passes(
    head: bytes, claimed: str | None, content_type: str | None, actual: str | None
) -> None:
    assert check_asset_type(head, claimed=claimed, content_type=content_type) == actual


@pytest.mark.parametrize(
    ("head", "claimed", "content_type", "named"),
    [
        (JPEG, "image/png", "image/jpeg", "image/png"),  # a JPEG behind a .png URL
        (PNG, None, "image/jpeg", "image/jpeg"),  # the header disagrees with the bytes
        (HTML, "image/png", "text/html", "image/png"),  # an error page served with 200
        (HTML, None, None, None),
        (b"", "image/png", "image/png", "image/png"),  # nothing at all
        (b"\x00\x00\x00\x1cftypavif", "image/png", None, "image/png"),  # unknown bytes called a PNG
    ],
)
def test_bytes_that_are_not_the_claimed_image_are_refused(
    head: bytes, claimed: str | None, content_type: str | None, named: str | None
) -> None:
    with pytest.raises(AssetTypeError) as info:
        check_asset_type(head, claimed=claimed, content_type=content_type, status=200, request_id="r")
    assert info.value.claimed == named
    assert info.value.actual == (
        None if head in (HTML, b"") or head.startswith(b"\x00") else info.value.actual
    )
    assert info.value.request_id == "r"
    assert isinstance(info.value, maxapi_async.ResponseError)


# -- size caps, end to end -----------------------------------------------------------------------

pytestmark = pytest.mark.anyio


async def listdir(folder: Path) -> list[str]:
    return sorted([p.name async for p in anyio.Path(folder).iterdir()])


@contextlib.asynccontextmanager
async def make_client(fake: FakeMaxAPI, **options: Any) -> AsyncIterator[AsyncMaxAPI]:
    options.setdefault("retry_policy", RetryPolicy.instant())
    async with AsyncMaxAPI(fake.api_key, base_url=fake.base_url, **options) as client:
        yield client


@contextlib.asynccontextmanager
async def serve(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> AsyncIterator[str]:
    """A one-handler server on 127.0.0.1 (for answers FakeMaxAPI cannot give: no Content-Length)."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def endless(
    content_type: str, first: bytes, written: list[int]
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A handler streaming chunked 64 KiB pieces, with no Content-Length, until the client hangs up."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_type = content_type
        response.enable_chunked_encoding()
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):
            await response.write(first)
            for _ in range(2_000):  # 128 MiB at most: a guard, the client stops long before
                await response.write(b" " * 65_536)
                written.append(1)
        return response

    return handler


async def test_a_json_answer_above_the_cap_is_refused_before_reading(fake_maxapi: FakeMaxAPI) -> None:
    fake_maxapi.add_fault(Fault(status=200, body=b"{" + b" " * 5_000 + b"}"))
    async with make_client(fake_maxapi, max_response_bytes=1_024) as client:
        with pytest.raises(maxapi_async.ResponseTooLargeError) as info:
            await client.images.generate("a cube")
    err = info.value
    assert (err.limit, err.size, err.status) == (1_024, 5_002, 200)
    assert err.request_id == fake_maxapi.requests[-1].request_id
    # The service accepted the submission: it may have been charged, and is not repeated.
    assert err.idempotency_key == fake_maxapi.requests[-1].header("Idempotency-Key")
    assert "may have been charged" in str(err)
    assert len(fake_maxapi.requests) == 1


async def test_a_compressed_answer_is_counted_as_it_unpacks(fake_maxapi: FakeMaxAPI) -> None:
    bomb = gzip.compress(b'{"created": 1, "data": [' + b" " * 8_000_000 + b"]}")
    assert len(bomb) < 20_000
    fake_maxapi.add_fault(Fault(status=200, body=bomb, headers={"Content-Encoding": "gzip"}))
    async with make_client(fake_maxapi, max_response_bytes=1_000_000) as client:
        with pytest.raises(maxapi_async.ResponseTooLargeError) as info:
            await client.images.generate("a cube")
    assert info.value.size is not None
    assert 1_000_000 < info.value.size < 2_000_000


async def test_an_answer_without_a_length_is_cut_off_at_the_cap() -> None:
    written: list[int] = []
    async with contextlib.AsyncExitStack() as stack:
        url = await stack.enter_async_context(serve(endless("application/json", b'{"data": [', written)))
        client = await stack.enter_async_context(
            AsyncMaxAPI("k", base_url=url, max_response_bytes=256 * 1024)
        )
        with pytest.raises(maxapi_async.ResponseTooLargeError) as info:
            await client.images.generate("a cube")
    assert info.value.size is not None
    assert info.value.size <= 256 * 1024 + 65_536
    assert len(written) < 2_000


async def test_a_large_error_answer_is_still_a_typed_retryable_error(fake_maxapi: FakeMaxAPI) -> None:
    fake_maxapi.add_fault(Fault(status=502, body=HTML + b" " * 500_000))
    async with make_client(fake_maxapi, max_response_bytes=100_000) as client:
        result = await client.images.generate("a cube")
    assert len(result.images) == 1
    assert len(fake_maxapi.requests) == 2


@pytest.mark.parametrize("how", ["read", "save"])
async def test_a_download_above_the_cap_is_refused_and_leaves_no_file(
    fake_maxapi: FakeMaxAPI, tmp_path: Path, how: str
) -> None:
    async with make_client(fake_maxapi, max_download_bytes=1_000) as client:
        asset = (await client.images.generate("a cube")).images[0]
        with pytest.raises(maxapi_async.ResponseTooLargeError) as info:
            await (asset.read() if how == "read" else asset.save(tmp_path / "cube.png"))
    assert info.value.limit == 1_000
    assert info.value.size == len(fake_maxapi.assets[Path(asset.url or "").stem].data)
    assert len(fake_maxapi.cdn_requests) == 1  # not retried
    assert await listdir(tmp_path) == []


@pytest.mark.parametrize("how", ["read", "save"])
async def test_a_compressed_download_is_counted_as_it_unpacks(
    fake_maxapi: FakeMaxAPI, tmp_path: Path, how: str
) -> None:
    bomb = gzip.compress(PNG + b"\x00" * 8_000_000)
    async with make_client(fake_maxapi, max_download_bytes=1_000_000) as client:
        asset = (await client.images.generate("a cube")).images[0]
        headers = {"Content-Encoding": "gzip", "Content-Type": "image/png"}
        fake_maxapi.add_fault(Fault(status=200, body=bomb, headers=headers, origin="cdn"))
        with pytest.raises(maxapi_async.ResponseTooLargeError):
            await (asset.read() if how == "read" else asset.save(tmp_path / "cube.png"))
    assert await listdir(tmp_path) == []


@pytest.mark.parametrize("how", ["read", "save"])
async def test_a_download_without_a_length_is_cut_off_at_the_cap(tmp_path: Path, how: str) -> None:
    written: list[int] = []
    async with contextlib.AsyncExitStack() as stack:
        url = await stack.enter_async_context(serve(endless("image/png", PNG, written)))
        client = await stack.enter_async_context(AsyncMaxAPI("k", max_download_bytes=300_000))
        asset = ImageAsset(url=f"{url}/assets/big.png", mime_type="image/png", fetcher=client)
        with pytest.raises(maxapi_async.ResponseTooLargeError):
            await (asset.read() if how == "read" else asset.save(tmp_path / "big.png"))
    assert len(written) < 2_000
    assert await listdir(tmp_path) == []


async def test_the_default_caps_fit_four_large_images_as_base64(fake_maxapi: FakeMaxAPI) -> None:
    big = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 1_500_000).decode()
    fake_maxapi.add_fault(Fault(status=200, body={"created": 1, "data": [{"b64_json": big}] * 4}))
    async with make_client(fake_maxapi) as client:
        result = await client.images.generate("a cube", n=4)
    assert len(result.images) == 4


@pytest.mark.parametrize(
    "options", [{"max_response_bytes": 0}, {"max_download_bytes": -1}, {"max_download_bytes": 1.5}]
)
def test_bad_size_caps_are_configuration_errors(options: dict[str, Any]) -> None:
    with pytest.raises(maxapi_async.ConfigurationError):
        AsyncMaxAPI("k", **options)


# -- an asset that is not the image it claims ----------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type", "actual"),
    [(JPEG, "image/jpeg", "image/jpeg"), (HTML, "text/html", None), (b"", "image/png", None)],
    ids=["jpeg behind png", "html page", "empty"],
)
@pytest.mark.parametrize("how", ["read", "save"])
async def test_a_download_that_is_not_the_claimed_image_is_reported(
    fake_maxapi: FakeMaxAPI, tmp_path: Path, body: bytes, content_type: str, actual: str | None, how: str
) -> None:
    async with make_client(fake_maxapi) as client:
        asset = (await client.images.generate("a cube")).images[0]
        assert asset.mime_type == "image/png"
        headers = {"Content-Type": content_type}
        fake_maxapi.add_fault(Fault(status=200, body=body, headers=headers, origin="cdn"))
        with pytest.raises(maxapi_async.AssetTypeError) as info:
            await (asset.read() if how == "read" else asset.save(tmp_path / "cube.png"))
    assert info.value.claimed == "image/png"
    assert info.value.actual == actual
    assert info.value.request_id == fake_maxapi.cdn_requests[-1].request_id
    assert len(fake_maxapi.cdn_requests) == 1  # the same bytes would come again: not retried
    assert await listdir(tmp_path) == []


@pytest.mark.parametrize(("content_type", "ok"), [("application/octet-stream", True), ("image/jpeg", False)])
async def test_without_an_extension_the_content_type_is_the_claim(
    fake_maxapi: FakeMaxAPI, content_type: str, ok: bool
) -> None:
    async with make_client(fake_maxapi) as client:
        asset = ImageAsset(url=f"{fake_maxapi.cdn_url}/assets/no-extension", fetcher=client)
        headers = {"Content-Type": content_type}
        fake_maxapi.add_fault(Fault(status=200, body=PNG, headers=headers, origin="cdn"))
        if ok:
            assert await asset.read() == PNG
        else:
            with pytest.raises(maxapi_async.AssetTypeError):
                await asset.read()
