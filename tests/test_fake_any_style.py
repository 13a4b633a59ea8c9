"""The ``fake_maxapi`` fixture works in every test style, with every client.

Each style is a small test suite run by pytest itself (``pytester``, in this process): anyio's
plugin, pytest-asyncio in strict and in auto mode, and plain ``def`` tests. Each suite has one
test per client: ``AsyncMaxAPI``, the blocking ``MaxAPI``, ``openai.OpenAI`` and
``openai.AsyncOpenAI``, google-genai's sync and async clients. Blocking clients are called
straight from the async tests (except ``MaxAPI``, which refuses a running loop and goes
through a worker thread): the fake answers them from its own thread.
"""

from __future__ import annotations

import textwrap

# Imported once here, so the inner runs (which restore sys.modules after themselves) reuse them.
import google.genai  # noqa: F401
import openai  # noqa: F401
import pytest

pytest_plugins = ["pytester"]

CLIENTS = """
import asyncio
import base64

import maxapi_async
from maxapi_async.testing import FakeMaxAPI, png_size

MODEL = "google/gemini-2.5-flash-image"
TIMEOUT = 10  # seconds: a client the fake does not answer fails instead of hanging


def last_request_was_clean(fake: FakeMaxAPI, path: str) -> None:
    request = fake.requests[-1]
    assert request.path.startswith(path), request.path
    assert request.unknown_fields == ()


async def use_async_maxapi(fake: FakeMaxAPI) -> None:
    # the marker's options reached the fixture: a queued task finishes on its first poll
    assert fake.api_key == "sk-inner-test"
    polls = maxapi_async.PollPolicy.instant()
    async with maxapi_async.AsyncMaxAPI(
        fake.api_key, base_url=fake.base_url, poll_policy=polls, timeout=TIMEOUT
    ) as client:
        handle = await client.images.generate("a cube", aspect_ratio="16:9", wait=False)
        result = await handle.wait()
        data = await result.images[0].read()
    assert png_size(data) == (1344, 768)
    assert fake.created_tasks == 1
    [download] = await fake.wait_for_requests(1, origin="cdn")
    assert download.header("Authorization") is None


def use_blocking_maxapi(fake: FakeMaxAPI) -> None:
    fake.fail_next(503)
    retries = maxapi_async.RetryPolicy.instant()
    url = fake.base_url
    with maxapi_async.MaxAPI(fake.api_key, base_url=url, retry_policy=retries, timeout=TIMEOUT) as client:
        result = client.images.generate("a cube", aspect_ratio="9:16", response_format="b64_json")
    assert result.images[0].size == (768, 1344)
    assert len(fake.requests_to("/v1/images/generations")) == 2  # the 503, then the retry


def use_openai(fake: FakeMaxAPI) -> None:
    import openai

    url = fake.base_url + "/v1"
    with openai.OpenAI(api_key=fake.api_key, base_url=url, max_retries=0, timeout=TIMEOUT) as client:
        result = client.images.generate(
            model=MODEL, prompt="a cube", response_format="b64_json", extra_body={"aspect_ratio": "21:9"}
        )
    assert png_size(base64.b64decode(result.data[0].b64_json)) == (1536, 672)
    last_request_was_clean(fake, "/v1/images/generations")


async def use_async_openai(fake: FakeMaxAPI) -> None:
    import openai

    url = fake.base_url + "/v1"
    client = openai.AsyncOpenAI(api_key=fake.api_key, base_url=url, max_retries=0, timeout=TIMEOUT)
    async with client:
        image = ("a.png", reference(), "image/png")
        options = {"response_format": "b64_json"}
        result = await client.images.edit(model=MODEL, prompt="night", image=[image], **options)
    assert png_size(base64.b64decode(result.data[0].b64_json)) == (1248, 832)
    last_request_was_clean(fake, "/v1/images/edits")


def reference() -> bytes:
    from maxapi_async.testing import make_png

    return make_png(300, 200)


def genai_client(fake: FakeMaxAPI):
    from google import genai
    from google.genai import types

    options = types.HttpOptions(base_url=fake.base_url, api_version="v1beta", timeout=TIMEOUT * 1000)
    return genai.Client(api_key=fake.api_key, http_options=options)


def genai_sizes(response) -> list:
    parts = response.candidates[0].content.parts
    return [png_size(p.inline_data.data) for p in parts if p.inline_data and p.inline_data.data]


def use_genai(fake: FakeMaxAPI) -> None:
    from google.genai import types

    with genai_client(fake) as sdk:
        image = types.Part.from_bytes(data=reference(), mime_type="image/png")
        response = sdk.models.generate_content(model=MODEL, contents=["night", image])
    assert genai_sizes(response) == [(1248, 832)]
    last_request_was_clean(fake, "/v1beta/models/")


async def use_async_genai(fake: FakeMaxAPI) -> None:
    from google.genai import types

    sdk = genai_client(fake)
    try:
        config = types.GenerateContentConfig(image_config=types.ImageConfig(aspect_ratio="4:3"))
        response = await sdk.aio.models.generate_content(model=MODEL, contents="a cube", config=config)
    finally:
        await sdk.aio.aclose()
        sdk.close()
    assert genai_sizes(response) == [(1184, 864)]
    last_request_was_clean(fake, "/v1beta/models/")
"""

ASYNC_TESTS = """
import asyncio

import pytest

from clients import *

MARKER = pytest.mark.fake_maxapi(api_key="sk-inner-test", complete_after_polls=0)


@MARKER
{mark}async def test_async_maxapi(fake_maxapi):
    await use_async_maxapi(fake_maxapi)


{mark}async def test_blocking_maxapi(fake_maxapi):
    await asyncio.to_thread(use_blocking_maxapi, fake_maxapi)


{mark}async def test_openai(fake_maxapi):
    use_openai(fake_maxapi)  # blocks this test's loop: the fake answers from its own


{mark}async def test_async_openai(fake_maxapi):
    await use_async_openai(fake_maxapi)


{mark}async def test_genai(fake_maxapi):
    use_genai(fake_maxapi)


{mark}async def test_async_genai(fake_maxapi):
    await use_async_genai(fake_maxapi)
"""

SYNC_TESTS = """
import asyncio

import pytest

from clients import *


@pytest.mark.fake_maxapi(api_key="sk-inner-test", complete_after_polls=0)
def test_async_maxapi(fake_maxapi):
    asyncio.run(use_async_maxapi(fake_maxapi))


def test_blocking_maxapi(fake_maxapi):
    use_blocking_maxapi(fake_maxapi)


def test_openai(fake_maxapi):
    use_openai(fake_maxapi)


def test_async_openai(fake_maxapi):
    asyncio.run(use_async_openai(fake_maxapi))


def test_genai(fake_maxapi):
    use_genai(fake_maxapi)


def test_async_genai(fake_maxapi):
    asyncio.run(use_async_genai(fake_maxapi))
"""

INI = """
[pytest]
addopts = --strict-markers -p no:cacheprovider
filterwarnings =
    error
    ignore:Inheritance class \\w+ from ClientSession is discouraged:DeprecationWarning
"""

STYLES = {
    # style: (test module, ini lines, plugins to turn off)
    "anyio": (ASYNC_TESTS.format(mark="@pytest.mark.anyio\n"), "", ["-p", "no:asyncio"]),
    "pytest-asyncio-strict": (
        ASYNC_TESTS.format(mark="@pytest.mark.asyncio\n"),
        "asyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n",
        ["-p", "no:anyio"],
    ),
    "pytest-asyncio-auto": (
        ASYNC_TESTS.format(mark=""),
        "asyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n",
        ["-p", "no:anyio"],
    ),
    "plain-def": (SYNC_TESTS, "", ["-p", "no:asyncio", "-p", "no:anyio"]),
}


@pytest.mark.parametrize("style", list(STYLES))
def test_fake_maxapi_fixture_with_every_client(pytester: pytest.Pytester, style: str) -> None:
    if style.startswith("pytest-asyncio"):
        pytest.importorskip("pytest_asyncio", reason="pytest-asyncio comes with the dev extra")
    tests, ini, plugins = STYLES[style]
    pytester.makeini(INI + ini)
    pytester.makepyfile(clients=CLIENTS, test_clients=textwrap.dedent(tests))
    pytester.syspathinsert()
    result = pytester.runpytest_inprocess(*plugins, "-q")
    result.assert_outcomes(passed=6)
