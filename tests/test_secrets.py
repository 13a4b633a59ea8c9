"""Secret hygiene: the API key shows up nowhere but in the ``Authorization`` header of requests to
the API's own origin, and names derived from server data cannot leave their folder.

A canary key is the fake's only valid key, so a flow that succeeds has really sent it; every
``repr``/``str``, every error (chained causes included) and every log line at DEBUG is then
searched for it.
"""

from __future__ import annotations

import logging
import socket
import traceback
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

import maxapi_async
from maxapi_async import AsyncMaxAPI, Hooks, ImageAsset, PollPolicy, RetryPolicy, Timeouts
from maxapi_async._files import safe_filename
from maxapi_async.testing import FakeMaxAPI, Fault, make_png

CANARY = "sk-canary-7f3a9c1e5b2d4f60a8e1"
WRONG = "sk-canary-wrong-0c9d8e7f6a5b"
SECRETS = (CANARY, WRONG, CANARY.removeprefix("sk-"), WRONG.removeprefix("sk-"))
GENERATIONS = "/v1/images/generations"
TRUNCATED = b'{"created": 1, "da'

pytestmark = [pytest.mark.anyio, pytest.mark.fake_maxapi(api_key=CANARY)]


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


def error_texts(err: BaseException) -> str:
    """Everything a program or a log handler may print about an error, causes included."""
    parts = [str(err), repr(err), "".join(traceback.format_exception(err)), repr(vars(err))]
    cause = err.__cause__ or err.__context__
    while cause is not None:
        parts += [str(cause), repr(cause)]
        cause = cause.__cause__ or cause.__context__
    return "\n".join(parts)


@pytest.fixture
async def client(fake_maxapi: FakeMaxAPI) -> AsyncIterator[AsyncMaxAPI]:
    async with AsyncMaxAPI(
        CANARY,
        base_url=fake_maxapi.base_url,
        retry_policy=RetryPolicy.instant(),
        poll_policy=PollPolicy.instant(),
        max_polls_per_second=1000,
    ) as c:
        yield c


# -- repr, str, errors and logs ------------------------------------------------------------------


async def test_no_repr_or_str_of_the_client_or_its_configuration_shows_the_key(
    fake_maxapi: FakeMaxAPI,
) -> None:
    client = AsyncMaxAPI(
        CANARY,
        base_url=fake_maxapi.base_url,
        timeout=Timeouts(total=30, connect=2, read=20),
        retry_policy=RetryPolicy(max_attempts=2),
        poll_policy=PollPolicy(),
        hooks=Hooks(on_request=print),
    )
    async with client:
        await client.images.generate("a cube")  # the session exists, the key has been used
        things: list[Any] = [
            client,
            client.timeouts,
            client.retry_policy,
            client.poll_policy,
            client.hooks,
            client.images,
            client.models,
            client.tasks,
            client._transport,
            client._transport._credentials,
            vars(client),
        ]
        for thing in things:
            assert_no_secret(repr(thing))
            assert_no_secret(str(thing))
    assert_no_secret(repr(client))


async def collect_errors(client: AsyncMaxAPI, fake: FakeMaxAPI, tmp_path: Path) -> list[BaseException]:
    """Run calls that fail in every way the client knows, and return their errors."""
    errors: list[BaseException] = []

    async def expect(call: Any, error: type[BaseException] = maxapi_async.MaxAPIError) -> None:
        try:
            await call
        except error as exc:
            errors.append(exc)
        else:
            raise AssertionError(f"{call} did not fail")

    fake.add_fault(Fault(reset=True, method="POST"))
    await expect(client.images.generate("reset after sending"))
    fake.add_fault(Fault(delay=2.0, method="POST"))
    await expect(client.images.generate("read timeout", timeout=0.2))
    fake.add_fault(Fault(status=200, body=TRUNCATED, method="POST"))
    await expect(client.images.generate("truncated answer", wait=False))
    fake.fail_next(400)
    await expect(client.images.generate("bad request"))
    fake.fail_next(503, times=None)
    await expect(client.images.generate("server down"))
    fake.clear_faults()
    await expect(client.tasks.get("no-such-task").wait())
    fake.fail_tasks("CONTENT_MODERATION")
    await expect(_moderated(client))
    fake.block_next("IMAGE_SAFETY")
    await expect(client.models.generate_content(contents="blocked"))
    fake.complete_after_polls = 1_000
    handle = await client.images.generate("slow", wait=False)
    await expect(handle.wait(timeout=0.05))
    fake.complete_after_polls = 1
    asset = (await client.images.generate("an asset")).images[0]
    fake.add_fault(Fault(status=404, origin="cdn"))
    await expect(asset.save(tmp_path / "gone.png"))
    fake.add_fault(Fault(status=200, body=b"<html>", headers={"Content-Type": "text/html"}, origin="cdn"))
    await expect(asset.read())
    await expect(client.images.generate(""))
    async with AsyncMaxAPI(WRONG, base_url=fake.base_url) as wrong:
        await expect(wrong.images.generate("wrong key"))
    async with AsyncMaxAPI(CANARY, base_url=fake.base_url, max_response_bytes=10) as small:
        await expect(small.images.generate("too large"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    async with AsyncMaxAPI(
        CANARY, base_url=f"http://127.0.0.1:{closed_port}", retry_policy=RetryPolicy.none()
    ) as c:
        await expect(c.images.generate("refused"))
    closed = AsyncMaxAPI(CANARY, base_url=fake.base_url)
    await closed.aclose()
    await expect(closed.images.generate("closed"))
    try:
        AsyncMaxAPI(CANARY, base_url="http://api.maxapi.dev")
    except maxapi_async.ConfigurationError as exc:
        errors.append(exc)
    return errors


async def _moderated(client: AsyncMaxAPI) -> object:
    handle = await client.images.generate("moderated", wait=False)
    return await handle


@pytest.mark.fake_maxapi(api_key=CANARY, complete_after_polls=1)
async def test_no_error_and_no_debug_log_line_shows_the_key(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger: ours, aiohttp's, asyncio's
    # A full flow with retries: a failed submission, failed polls, a failed download.
    fake_maxapi.fail_next(500)
    await client.images.generate("sync")
    handle = await client.images.generate("queued", wait=False)
    fake_maxapi.add_fault(Fault(status=503, method="GET"))
    fake_maxapi.add_fault(Fault(reset=True, method="GET", times=2))
    result = await handle
    fake_maxapi.add_fault(Fault(status=502, origin="cdn"))
    await result.images[0].save(tmp_path / "queued.png")
    await client.models.generate_content(contents="native")
    await (await client.models.generate_content(contents="native queued", wait=False))
    await client.images.edit("edit", [make_png(8, 8)])

    errors = await collect_errors(client, fake_maxapi, tmp_path)
    kinds = {type(e).__name__ for e in errors}
    assert {
        "APIConnectionError",
        "APITimeoutError",
        "ResponseError",
        "BadRequestError",
        "ServerError",
        "NotFoundError",
        "TaskFailedError",
        "BlockedError",
        "TaskTimeoutError",
        "AssetTypeError",
        "InvalidRequestError",
        "AuthenticationError",
        "ResponseTooLargeError",
        "ClientClosedError",
        "ConfigurationError",
    } <= kinds
    for err in errors:
        assert_no_secret(error_texts(err))

    formatter = logging.Formatter("%(levelname)s %(name)s %(message)s")
    lines = [formatter.format(record) for record in caplog.records]
    assert any("attempt 2" in line for line in lines)  # the retries were logged
    for line in lines:
        assert_no_secret(line)


# -- the key goes to the API origin only ---------------------------------------------------------


@pytest.mark.fake_maxapi(api_key=CANARY, gemini_file_data=True)
async def test_the_key_goes_only_to_the_api_origin_and_never_into_a_url(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, tmp_path: Path
) -> None:
    result = await client.images.generate("a cube")
    await result.images[0].read()
    mirrored = await client.images.generate("a cube", asset_delivery="mirror")
    await mirrored.images[0].save(tmp_path / "mirror.png")
    native = await client.models.generate_content(contents="a cube")
    [image] = native.images
    assert image.url is not None
    await ImageAsset(url=image.url, fetcher=client).read()  # the fileData URL, downloaded
    assert fake_maxapi.requests
    for request in fake_maxapi.requests:
        assert request.header("Authorization") == f"Bearer {CANARY}"
        assert request.header("x-goog-api-key") is None
        assert_no_secret(repr(request.query))
        assert_no_secret(request.path)
    assert len(fake_maxapi.cdn_requests) == 3
    for request in fake_maxapi.cdn_requests:
        assert request.header("Authorization") is None
        assert_no_secret(repr(request.headers))
        assert_no_secret(request.path + repr(request.query))


@pytest.mark.parametrize("target", ["api", "mirror"])
async def test_a_cdn_redirect_to_another_origin_carries_no_key(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, target: str
) -> None:
    asset = (await client.images.generate("a cube")).images[0]
    asset_id = Path(asset.url or "").stem
    location = (
        f"{fake_maxapi.base_url}{GENERATIONS}/task_x"
        if target == "api"
        else fake_maxapi.asset_url(asset_id, mirror=True)
    )
    fake_maxapi.add_fault(Fault(status=302, headers={"Location": location}, origin="cdn"))
    if target == "api":
        with pytest.raises(maxapi_async.AuthenticationError):
            await asset.read()  # the API origin refuses a request without the key
        followed = fake_maxapi.requests[-1]
    else:
        assert await asset.read() == fake_maxapi.assets[asset_id].data
        followed = fake_maxapi.cdn_requests[-1]
        assert followed.path.startswith("/mirror/")
    assert followed.header("Authorization") is None
    assert all(r.header("Authorization") is None for r in fake_maxapi.cdn_requests)


@pytest.mark.parametrize(("method", "status"), [("POST", 302), ("POST", 307), ("GET", 301), ("GET", 308)])
async def test_an_api_redirect_is_never_followed(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, method: str, status: int
) -> None:
    steal = f"{fake_maxapi.cdn_url}/steal"
    handle = await client.images.generate("a cube", wait=False)
    fake_maxapi.add_fault(Fault(status=status, method=method, headers={"Location": steal}))
    before = len(fake_maxapi.requests)
    call = client.images.generate("a cube") if method == "POST" else handle.refresh()
    with pytest.raises(maxapi_async.APIError) as info:
        await call
    assert info.value.status == status
    assert len(fake_maxapi.requests) == before + 1
    assert fake_maxapi.cdn_requests == []


@pytest.mark.fake_maxapi(api_key=CANARY, poll_url_style="foreign")
async def test_a_poll_url_on_another_origin_is_never_followed_with_the_key(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI
) -> None:
    handle = await client.images.generate("a cube", wait=False)
    assert handle.ref.poll_url is not None
    assert handle.ref.poll_url.startswith(fake_maxapi.cdn_url)
    await handle
    polls = [r for r in fake_maxapi.requests if r.method == "GET"]
    assert polls
    assert all(r.path == f"{GENERATIONS}/{handle.id}" for r in polls)
    assert fake_maxapi.cdn_requests == []


# -- plain http ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://api.maxapi.dev",
        "http://10.0.0.1",
        "http://localhost.evil.example",
        "http://127.0.0.1.nip.io",
        "http://0.0.0.0:8080",
    ],
)
def test_plain_http_to_a_remote_host_is_refused(url: str) -> None:
    with pytest.raises(maxapi_async.ConfigurationError, match="unencrypted") as info:
        AsyncMaxAPI(CANARY, base_url=url)
    assert_no_secret(error_texts(info.value))


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9", "http://127.8.9.10", "http://[::1]:9", "http://localhost"]
)
def test_plain_http_to_loopback_is_allowed(url: str) -> None:
    AsyncMaxAPI(CANARY, base_url=url)


def test_plain_http_elsewhere_needs_an_explicit_opt_in() -> None:
    client = AsyncMaxAPI(CANARY, base_url="http://intranet.example", allow_insecure_http=True)
    assert client.base_url.scheme == "http"


# -- file names from server data -----------------------------------------------------------------


class WritingFetcher:
    """Stands in for the client: ``save`` writes these bytes wherever it was told."""

    def __init__(self) -> None:
        self.targets: list[Path] = []

    async def _download_bytes(self, url: str) -> bytes:
        return make_png(4, 4)

    async def _download_to(self, url: str, path: Path) -> None:
        self.targets.append(path)
        await anyio.Path(path).write_bytes(make_png(4, 4))


HOSTILE_URLS = [
    "https://cdn.maxapi.dev/../../etc/passwd",
    "https://cdn.maxapi.dev/assets/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "https://cdn.maxapi.dev/assets/..%5c..%5cwindows%5cwin.ini",
    "https://cdn.maxapi.dev/assets/..\\..\\x.png",
    "https://cdn.maxapi.dev/assets/..",
    "https://cdn.maxapi.dev/assets/.",
    "https://cdn.maxapi.dev/assets/",
    "https://cdn.maxapi.dev",
    "",
    "https://cdn.maxapi.dev/assets/%00evil.png",
    "https://cdn.maxapi.dev/assets/.hidden.png",
    "https://cdn.maxapi.dev/assets/" + "a" * 5_000 + ".png",
    "https://cdn.maxapi.dev/assets/x.png?name=../../etc/passwd#../../y",
    "file:///etc/passwd",
    "https://cdn.maxapi.dev/assets/%2F%2Froot%2F.ssh%2Fauthorized_keys",
]


def assert_safe_name(name: str) -> None:
    assert name
    assert name not in (".", "..")
    assert not name.startswith(".")
    assert "/" not in name
    assert "\\" not in name
    assert "\x00" not in name
    assert len(name) <= 128


@pytest.mark.parametrize("url", HOSTILE_URLS)
async def test_a_file_named_from_a_url_stays_in_its_folder(tmp_path: Path, url: str) -> None:
    folder = tmp_path / "out"
    await anyio.Path(folder).mkdir()
    fetcher = WritingFetcher()
    asset = ImageAsset(url=url or None, data=None if url else make_png(4, 4), fetcher=fetcher)
    saved = await asset.save(folder)
    assert saved.parent == folder
    real = await anyio.Path(saved).resolve()
    assert real.parent == await anyio.Path(folder).resolve()
    assert_safe_name(saved.name)
    assert sorted([p.name async for p in anyio.Path(folder).iterdir()]) == [saved.name]


@given(
    url=st.text(max_size=300) | st.builds(lambda s: "https://cdn.maxapi.dev/a/" + s, st.text(max_size=300))
)
def test_any_url_gives_a_safe_file_name(url: str) -> None:
    assert_safe_name(safe_filename(url, default="image.png"))


async def test_a_hostile_asset_url_from_the_service_is_saved_inside_the_folder(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, tmp_path: Path
) -> None:
    url = f"{fake_maxapi.cdn_url}/assets/%2e%2e%2f%2e%2e%2fescape.png"
    fake_maxapi.add_fault(Fault(status=200, body={"created": 1, "data": [{"url": url}]}))
    result = await client.images.generate("a cube")
    fake_maxapi.add_fault(
        Fault(status=200, body=make_png(4, 4), headers={"Content-Type": "image/png"}, origin="cdn")
    )
    folder = tmp_path / "out"
    await anyio.Path(folder).mkdir()
    saved = await result.images[0].save(folder)
    assert saved == folder / "escape.png"
    assert sorted([p.name async for p in anyio.Path(tmp_path).iterdir()]) == ["out"]
