"""AsyncMaxAPI end to end against FakeMaxAPI over real loopback HTTP."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

import maxapi_async
from maxapi_async import AsyncMaxAPI
from maxapi_async.testing import FakeMaxAPI, Fault, google_error, make_png, openai_error, platform_error

pytestmark = pytest.mark.anyio

GENERATIONS = "/v1/images/generations"
EDITS = "/v1/images/edits"


@pytest.fixture
async def client(fake_maxapi: FakeMaxAPI) -> AsyncIterator[AsyncMaxAPI]:
    # Retries off: these tests see every answer as the service sent it.
    async with AsyncMaxAPI(
        fake_maxapi.api_key, base_url=fake_maxapi.base_url, retry_policy=maxapi_async.RetryPolicy.none()
    ) as c:
        yield c


# -- configuration ------------------------------------------------------------


async def test_key_and_base_url_come_from_the_environment(
    fake_maxapi: FakeMaxAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAXAPI_KEY", fake_maxapi.api_key)
    monkeypatch.setenv("MAXAPI_BASE_URL", fake_maxapi.base_url)
    async with AsyncMaxAPI() as client:
        result = await client.images.generate("a glass cube")
    assert len(result.images) == 1


def test_missing_key_names_the_argument_and_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MAXAPI_KEY", raising=False)
    with pytest.raises(maxapi_async.ConfigurationError, match=r"api_key=.*MAXAPI_KEY"):
        AsyncMaxAPI()


def test_argument_wins_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAXAPI_BASE_URL", "https://env.example")
    client = AsyncMaxAPI("k", base_url="https://arg.example/")
    assert str(client.base_url) == "https://arg.example/"


def test_default_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MAXAPI_BASE_URL", raising=False)
    assert str(AsyncMaxAPI("k").base_url).rstrip("/") == "https://api.maxapi.dev"


def test_openai_style_base_url_with_v1_suffix_is_accepted() -> None:
    assert str(AsyncMaxAPI("k", base_url="https://api.maxapi.dev/v1").base_url) == "https://api.maxapi.dev/"


@pytest.mark.parametrize(
    "url", ["http://api.maxapi.dev", "ftp://x", "not a url", "https://u:p@api.maxapi.dev"]
)
def test_unsafe_or_malformed_base_url_is_refused(url: str) -> None:
    with pytest.raises(maxapi_async.ConfigurationError, match="base_url"):
        AsyncMaxAPI("k", base_url=url)


def test_plain_http_is_allowed_on_loopback_or_when_asked() -> None:
    AsyncMaxAPI("k", base_url="http://127.0.0.1:9")
    AsyncMaxAPI("k", base_url="http://localhost:9")
    AsyncMaxAPI("k", base_url="http://intranet.example", allow_insecure_http=True)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"route_mode": "cheap"}, maxapi_async.InvalidRequestError),
        ({"max_concurrency": 0}, maxapi_async.ConfigurationError),
        ({"timeout": -1}, maxapi_async.ConfigurationError),
    ],
)
def test_bad_client_options_are_refused(kwargs: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        AsyncMaxAPI("k", **kwargs)  # type: ignore[arg-type]


def test_repr_never_shows_the_key() -> None:
    canary = "sk-canary-5f1e2d3c4b5a"
    client = AsyncMaxAPI(canary)
    for text in (repr(client), str(client), repr(client._transport), repr(vars(client))):
        assert canary not in text


def test_client_built_outside_a_loop_works_inside_one() -> None:
    # Module level in a web app: no running loop yet when the client is made.
    async def run() -> tuple[int, int]:
        async with FakeMaxAPI() as fake:
            client = AsyncMaxAPI(fake.api_key, base_url=fake.base_url, max_concurrency=7)
            async with client:
                result = await client.images.generate("x")
                session = client._transport._get_session()
                assert isinstance(session.connector, aiohttp.TCPConnector)
                return len(result.images), session.connector.limit

    assert asyncio.run(run()) == (1, 7)


async def test_callers_session_is_used_and_left_open(fake_maxapi: FakeMaxAPI) -> None:
    async with aiohttp.ClientSession(headers={"X-Trace": "mine"}) as session:
        async with AsyncMaxAPI(fake_maxapi.api_key, base_url=fake_maxapi.base_url, http_session=session) as c:
            await c.images.generate("x")
        assert not session.closed
        assert fake_maxapi.requests[-1].header("X-Trace") == "mine"


async def test_closed_client_says_so(client: AsyncMaxAPI) -> None:
    await client.aclose()
    assert client.closed
    with pytest.raises(maxapi_async.ClientClosedError, match="closed"):
        await client.images.generate("x")
    await client.aclose()  # idempotent


# -- generations --------------------------------------------------------------


async def test_generate_returns_assets_with_size_expiry_and_url(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI
) -> None:
    result = await client.images.generate("a glass cube", aspect_ratio="16:9")
    assert result.model == "google/gemini-2.5-flash-image"
    assert result.created is not None
    assert result.request_id
    assert result.raw["data"][0]["url"] == result.images[0].url
    asset = result.images[0]
    assert asset.url is not None
    assert asset.url.startswith(fake_maxapi.cdn_url)
    assert (asset.width, asset.height) == (1344, 768)
    assert asset.mime_type == "image/png"
    assert asset.expires_at is not None
    assert result.created_at is not None
    assert asset.expires_at == result.created_at + maxapi_async.ASSET_TTL
    body = fake_maxapi.requests[-1].json
    assert body == {
        "model": "google/gemini-2.5-flash-image",
        "prompt": "a glass cube",
        "aspect_ratio": "16:9",
    }


@pytest.mark.parametrize(
    ("ratio", "size"), [("1:1", (1024, 1024)), ("9:16", (768, 1344)), ("21:9", (1536, 672))]
)
async def test_downloaded_image_has_the_size_of_its_ratio(
    client: AsyncMaxAPI, ratio: str, size: tuple[int, int]
) -> None:
    result = await client.images.generate("x", aspect_ratio=ratio)
    data = await result.images[0].read()
    assert maxapi_async._protocol.images.image_size(data) == size == result.images[0].size


async def test_asset_download_never_carries_the_key(client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI) -> None:
    result = await client.images.generate("x")
    await result.images[0].read()
    assert fake_maxapi.cdn_requests
    for request in fake_maxapi.cdn_requests:
        assert request.header("Authorization") is None
        assert fake_maxapi.api_key not in json.dumps(request.headers)
    assert all(r.header("Authorization") == f"Bearer {fake_maxapi.api_key}" for r in fake_maxapi.requests)


async def test_save_streams_the_image_to_disk(client: AsyncMaxAPI, tmp_path: Path) -> None:
    result = await client.images.generate("x", aspect_ratio="3:4")
    target = await result.images[0].save(tmp_path / "out" / "cube.png")
    assert target == tmp_path / "out" / "cube.png"
    assert maxapi_async._protocol.images.image_size(target.read_bytes()) == (864, 1184)
    assert [p.name for p in target.parent.iterdir()] == ["cube.png"]  # no partial file left


async def test_save_into_a_directory_names_the_file_after_the_url(
    client: AsyncMaxAPI, tmp_path: Path
) -> None:
    result = await client.images.generate("x")
    target = await result.images[0].save(tmp_path)
    assert target.parent == tmp_path
    assert target.suffix == ".png"


async def test_b64_json_answer_carries_decoded_bytes(client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI) -> None:
    result = await client.images.generate("x", aspect_ratio="4:5", response_format="b64_json", n=2)
    assert len(result.images) == 2
    for asset in result.images:
        assert asset.url is None
        assert asset.data is not None
        assert asset.size == (896, 1152)
        assert await asset.read() == asset.data
    assert fake_maxapi.cdn_requests == []


async def test_save_all_writes_every_image(client: AsyncMaxAPI, tmp_path: Path) -> None:
    result = await client.images.generate("x", n=3, response_format="b64_json")
    paths = await result.save_all(tmp_path, stem="cube")
    assert [p.name for p in paths] == ["cube-0.png", "cube-1.png", "cube-2.png"]


async def test_mirror_delivery_and_route_mode_are_sent(client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI) -> None:
    result = await client.images.generate("x", asset_delivery="mirror", route_mode="official-cheap")
    assert fake_maxapi.requests[-1].json["route_mode"] == "official-cheap"
    assert fake_maxapi.requests[-1].json["asset_delivery"] == "mirror"
    assert result.images[0].url is not None
    assert result.images[0].url.startswith(fake_maxapi.mirror_url)
    assert len(await result.images[0].read()) > 0


async def test_client_default_route_mode_applies_unless_overridden(fake_maxapi: FakeMaxAPI) -> None:
    async with AsyncMaxAPI(fake_maxapi.api_key, base_url=fake_maxapi.base_url, route_mode="official") as c:
        await c.images.generate("x")
        await c.images.generate("x", route_mode="mix")
    assert [r.json["route_mode"] for r in fake_maxapi.requests] == ["official", "mix"]


async def test_resolution_warns_and_is_still_sent(client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI) -> None:
    with pytest.warns(maxapi_async.MaxAPIWarning, match="ignored") as record:
        await client.images.generate("x", resolution="4K")
    assert record[0].filename == __file__  # the warning points at the caller's line
    assert fake_maxapi.requests[-1].json["resolution"] == "4K"


# -- edits --------------------------------------------------------------------


async def test_edit_sends_each_reference_as_an_image_part(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, tmp_path: Path
) -> None:
    png = make_png(64, 48)
    path = tmp_path / "ref.png"
    path.write_bytes(png)
    jpeg = b"\xff\xd8\xff\xe0" + b"\0" * 64
    gif = b"GIF89a" + b"\x10\x00\x10\x00" + b"\0" * 32
    webp = b"RIFF\x20\0\0\0WEBPVP8 " + b"\0" * 32
    earlier = (await client.images.generate("base", aspect_ratio="1:1")).images[0]
    result = await client.images.edit(
        "compose these",
        [path, str(path), jpeg, io.BytesIO(gif), webp, earlier],
        aspect_ratio="16:9",
    )
    assert result.images[0].size == (1344, 768)
    request = fake_maxapi.requests_to(EDITS)[-1]
    assert request.form["prompt"] == "compose these"
    assert request.form["aspect_ratio"] == "16:9"
    assert [(f.field, f.content_type) for f in request.files] == [
        ("image[]", "image/png"),
        ("image[]", "image/png"),
        ("image[]", "image/jpeg"),
        ("image[]", "image/gif"),
        ("image[]", "image/webp"),
        ("image[]", "image/png"),
    ]
    assert request.files[0].filename == "ref.png"
    assert all(f.filename for f in request.files)
    assert request.files[0].data == png


async def test_edit_without_ratio_follows_the_reference_size(client: AsyncMaxAPI) -> None:
    result = await client.images.edit("x", [make_png(832, 1248)], response_format="b64_json")
    assert result.images[0].size == (832, 1248)


async def test_binary_file_object_from_open(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, tmp_path: Path
) -> None:
    path = tmp_path / "photo.png"
    path.write_bytes(make_png(8, 8))
    with path.open("rb") as fh:
        await client.images.edit("x", [fh])
    assert fake_maxapi.requests[-1].files[0].filename == "photo.png"


# -- bad input never reaches the wire -----------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"prompt": ""}, "prompt"),
        ({"n": 0}, "n"),
        ({"n": 11}, "n"),
        ({"aspect_ratio": "5:3"}, "aspect_ratio"),
        ({"route_mode": "fastest"}, "route_mode"),
        ({"response_format": "jpeg"}, "response_format"),
        ({"timeout": 0}, "timeout"),
    ],
)
async def test_bad_generate_input_fails_before_any_request(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, kwargs: dict[str, object], argument: str
) -> None:
    args: dict[str, object] = {"prompt": "x", **kwargs}
    with pytest.raises(maxapi_async.InvalidRequestError) as info:
        await client.images.generate(**args)  # type: ignore[arg-type]
    assert info.value.argument == argument
    assert fake_maxapi.requests == []


async def test_edit_input_errors_name_the_argument(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, tmp_path: Path
) -> None:
    png = make_png(4, 4)
    cases: list[tuple[list[object], str, str]] = [
        ([], "images", "at least one"),
        ([tmp_path / "missing.png"], "images[0]", "cannot read"),
        ([png, b"plain text, no image"], "images[1]", "not an image"),
        ([png, 42], "images[1]", "unsupported type"),
        ([io.StringIO("text")], "images[0]", "binary"),
    ]
    for images, argument, text in cases:
        with pytest.raises(maxapi_async.InvalidRequestError, match=text) as info:
            await client.images.edit("x", images)  # type: ignore[arg-type]
        assert info.value.argument == argument
    with pytest.raises(maxapi_async.InvalidRequestError) as info:
        await client.images.edit("", [tmp_path / "missing.png"])
    assert info.value.argument == "prompt"  # checked before any file is read
    assert fake_maxapi.requests == []


# -- errors on the wire -------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "cls", "code", "message"),
    [
        (
            400,
            openai_error(400, "bad ratio", "invalid_value"),
            maxapi_async.BadRequestError,
            "invalid_value",
            "bad ratio",
        ),
        (
            401,
            openai_error(401, "bad key", "invalid_api_key"),
            maxapi_async.AuthenticationError,
            "invalid_api_key",
            "bad key",
        ),
        (
            402,
            platform_error(402, "insufficient points"),
            maxapi_async.InsufficientCreditsError,
            402,
            "insufficient points",
        ),
        (
            403,
            google_error(403, "no access"),
            maxapi_async.PermissionDeniedError,
            "PERMISSION_DENIED",
            "no access",
        ),
        (
            404,
            openai_error(404, "no such model", "model_not_found"),
            maxapi_async.NotFoundError,
            "model_not_found",
            "no such model",
        ),
        (429, google_error(429, "quota"), maxapi_async.RateLimitError, "RESOURCE_EXHAUSTED", "quota"),
        (500, platform_error(500, "upstream failed"), maxapi_async.ServerError, 500, "upstream failed"),
        (
            503,
            "<html>Service Unavailable</html>",
            maxapi_async.ServerError,
            None,
            "<html>Service Unavailable</html>",
        ),
    ],
)
async def test_http_errors_become_typed_errors(
    client: AsyncMaxAPI,
    fake_maxapi: FakeMaxAPI,
    status: int,
    body: object,
    cls: type[maxapi_async.APIError],
    code: object,
    message: str,
) -> None:
    fake_maxapi.add_fault(Fault(status=status, body=body, headers={"Retry-After": "2"}))  # type: ignore[arg-type]
    with pytest.raises(cls) as info:
        await client.images.generate("x")
    err = info.value
    assert (err.status, err.code, err.message) == (status, code, message)
    assert err.request_id == fake_maxapi.requests[-1].request_id
    assert err.body is not None
    assert err.retry_after == 2.0


async def test_wrong_key_is_an_authentication_error(fake_maxapi: FakeMaxAPI) -> None:
    async with AsyncMaxAPI("sk-wrong", base_url=fake_maxapi.base_url) as client:
        with pytest.raises(maxapi_async.AuthenticationError) as info:
            await client.images.generate("x")
    assert "sk-wrong" not in str(info.value)
    assert "sk-wrong" not in repr(info.value)


@pytest.mark.parametrize(
    "body",
    [b"not json at all", b"[]", b'{"data": []}', b'{"data": [{"url": 5}]}', b'{"created": 1}'],
)
async def test_unreadable_success_answer_is_a_response_error(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, body: bytes
) -> None:
    fake_maxapi.add_fault(Fault(status=200, body=body, headers={"Content-Type": "application/json"}))
    with pytest.raises(maxapi_async.ResponseError) as info:
        await client.images.generate("x")
    assert info.value.request_id == fake_maxapi.requests[-1].request_id


async def test_dropped_connection_is_a_connection_error(client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI) -> None:
    fake_maxapi.add_fault(Fault(reset=True))
    with pytest.raises(maxapi_async.APIConnectionError):
        await client.images.generate("x")


async def test_per_call_timeout_raises_the_librarys_timeout_error(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI
) -> None:
    fake_maxapi.add_fault(Fault(delay=2.0))
    with pytest.raises(maxapi_async.APITimeoutError) as info:
        await client.images.generate("x", timeout=0.2)
    assert isinstance(info.value, TimeoutError)


async def test_expired_asset_download_is_not_found(client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI) -> None:
    result = await client.images.generate("x")
    fake_maxapi.add_fault(Fault(status=404, origin="cdn"))
    with pytest.raises(maxapi_async.NotFoundError):
        await result.images[0].read()


# -- the fake speaks OpenAI's wire format ---------------------------------------


async def test_official_openai_sdk_generates_against_the_fake(fake_maxapi: FakeMaxAPI) -> None:
    openai = pytest.importorskip("openai")
    sdk = openai.AsyncOpenAI(
        base_url=fake_maxapi.base_url + "/v1", api_key=fake_maxapi.api_key, max_retries=0
    )
    try:
        response = await sdk.images.generate(
            model="google/gemini-2.5-flash-image", prompt="a glass cube", extra_body={"aspect_ratio": "16:9"}
        )
    finally:
        await sdk.close()
    assert response.data is not None
    assert response.data[0].url is not None
    assert response.data[0].url.startswith(fake_maxapi.cdn_url)
    assert fake_maxapi.requests[-1].json["aspect_ratio"] == "16:9"
