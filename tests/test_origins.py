"""One function decides an origin: the poller's choice of ``poll_url`` and the transport's decision
to add the key agree on every spelling of a URL (letter case, default ports, IDNA, credentials).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from yarl import URL

from maxapi_async import AsyncMaxAPI, ConfigurationError, PollPolicy, RetryPolicy
from maxapi_async._protocol.tasks import poll_path
from maxapi_async._protocol.urls import on_origin, origin_of
from maxapi_async._transport.http import Transport
from maxapi_async._transport.timeouts import Timeouts
from maxapi_async.testing import FakeMaxAPI

API = "https://api.maxapi.dev"


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://api.maxapi.dev/v1/x", ("https", "api.maxapi.dev", 443)),
        ("HTTPS://API.MAXAPI.DEV/v1/x", ("https", "api.maxapi.dev", 443)),
        ("https://api.maxapi.dev:443/v1/x", ("https", "api.maxapi.dev", 443)),
        ("HTTP://127.0.0.1:8080/v1/x", ("http", "127.0.0.1", 8080)),
        ("http://127.0.0.1/v1/x", ("http", "127.0.0.1", 80)),
        ("https://bücher.example/x", ("https", "xn--bcher-kva.example", 443)),
        ("https://XN--BCHER-KVA.example/x", ("https", "xn--bcher-kva.example", 443)),
    ],
)
def test_an_origin_is_read_in_one_normal_form(url: str, origin: tuple[str, str, int]) -> None:
    assert origin_of(url) == origin
    assert origin_of(URL(url)) == origin


@pytest.mark.parametrize(
    "url",
    [
        "https://user:pw@api.maxapi.dev/x",
        "https://user@api.maxapi.dev/x",
        "ftp://api.maxapi.dev/x",
        "file:///etc/passwd",
        "//api.maxapi.dev/x",
        "/v1/x",
        "https://api.maxapi.dev\\@evil.example/x",
        "https://api.maxapi.dev /x",
        "https://api.maxapi.dev:99999/x",
        "https://",
        "",
    ],
)
def test_a_url_without_a_safe_origin_has_none(url: str) -> None:
    assert origin_of(url) is None


@pytest.mark.parametrize(
    "poll_url",
    [
        "HTTPS://api.maxapi.dev/v1/tasks/t1",
        "https://API.MAXAPI.DEV/v1/tasks/t1",
        "Https://Api.MaxAPI.dev:443/v1/tasks/t1",
    ],
)
def test_the_poller_and_the_transport_agree_on_a_same_origin_poll_url(poll_url: str) -> None:
    path = poll_path("generation", "t1", poll_url=poll_url, origin=API)
    assert path == poll_url  # followed
    transport = _transport(API)
    assert transport.api_url(path) == "https://api.maxapi.dev/v1/tasks/t1"


@pytest.mark.parametrize(
    "poll_url",
    [
        "https://api.maxapi.dev.evil.example/v1/tasks/t1",
        "https://api.maxapi.dev@evil.example/v1/tasks/t1",
        "https://evil.example\\@api.maxapi.dev/v1/tasks/t1",
        "https://api.maxapi.dev:8443/v1/tasks/t1",
        "HTTP://api.maxapi.dev/v1/tasks/t1",
        "https://user:pw@API.maxapi.dev/v1/tasks/t1",
        "//api.maxapi.dev/v1/tasks/t1",
        "Ftp://api.maxapi.dev/v1/tasks/t1",
    ],
)
def test_a_foreign_poll_url_is_refused_by_both(poll_url: str) -> None:
    assert poll_path("generation", "t1", poll_url=poll_url, origin=API) == "/v1/images/generations/t1"
    with pytest.raises(ConfigurationError):
        _transport(API).api_url(poll_url)


def test_on_origin_gives_the_url_as_it_is_sent() -> None:
    origin = origin_of(API)
    assert origin is not None
    assert on_origin("HTTPS://API.maxapi.dev:443/v1/t?x=1", origin) == "https://api.maxapi.dev/v1/t?x=1"
    assert on_origin("https://evil.example/v1/t", origin) is None


def _transport(base: str) -> Transport:
    return Transport(
        base_url=URL(base), api_key="sk-test", max_concurrency=1, timeouts=Timeouts(), user_agent="t"
    )


@pytest.fixture
async def client(fake_maxapi: FakeMaxAPI) -> AsyncIterator[AsyncMaxAPI]:
    async with AsyncMaxAPI(
        fake_maxapi.api_key,
        base_url=fake_maxapi.base_url,
        retry_policy=RetryPolicy.none(),
        poll_policy=PollPolicy.instant(),
    ) as c:
        yield c


@pytest.mark.anyio
async def test_an_upper_case_poll_url_on_the_api_origin_is_polled(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI
) -> None:
    submitted = await client.images.generate("a cube", wait=False)
    url = URL(fake_maxapi.base_url)
    path = f"/v1/images/generations/{submitted.id}?via=poll_url"
    shouted = f"HTTP://{(url.host or '').upper()}:{url.port}{path}"
    handle = client.tasks.from_dict({**submitted.to_dict(), "poll_url": shouted})
    result = await handle.wait(timeout=5)
    assert result.images
    polls = [r for r in fake_maxapi.requests if r.method == "GET"]
    assert polls
    assert all(r.path == f"/v1/images/generations/{submitted.id}" for r in polls)
    assert polls[0].query == {"via": "poll_url"}  # the poll_url (later ones: the poll_url it answers with)
    assert all(r.header("Authorization") == f"Bearer {fake_maxapi.api_key}" for r in polls)
